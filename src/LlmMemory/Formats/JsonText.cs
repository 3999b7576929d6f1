using System.Text.Json;

namespace LlmMemory.Formats;

/// <summary>
/// The one check every JSON reader makes before parsing: text that <see cref="JsonDocument"/> accepts but cannot turn into
/// .NET strings. JsonDocument checks neither UTF-8 inside strings nor escaped surrogates (<c>"\ud800"</c>) until a string
/// is read, and then throws InvalidOperationException from wherever the reader happens to look (found by fuzzing:
/// docs/performance.md).
/// </summary>
internal static class JsonText
{
    /// <exception cref="ModelFormatException">Invalid UTF-8, or an escaped lone surrogate in a name or value.</exception>
    public static void Check(ReadOnlySpan<byte> json, string source, string invalidUtf8 = "is not valid UTF-8.")
    {
        if (!System.Text.Unicode.Utf8.IsValid(json))
        {
            throw new ModelFormatException(source, null, invalidUtf8);
        }

        if (json.IndexOf("\\u"u8) < 0)
        {
            return;
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.PropertyName or JsonTokenType.String && reader.ValueIsEscaped)
                {
                    _ = reader.GetString();
                }
            }
        }
        catch (InvalidOperationException)
        {
            throw new ModelFormatException(source, null, "holds an escaped string that is not valid Unicode (a lone surrogate such as \\ud800).");
        }
        catch (JsonException)
        {
            // Malformed JSON: the parse that follows reports it with its position.
        }
    }
}
