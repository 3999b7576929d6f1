using System.Text.Json;
using System.Text.Unicode;

namespace LlmMemory.Formats;

/// <summary>
/// The one check every JSON reader makes before parsing: text that <see cref="JsonDocument"/> accepts but cannot turn into
/// .NET strings. JsonDocument checks neither UTF-8 inside strings nor escaped surrogates (<c>"\ud800"</c>) until a string
/// is read, and then throws InvalidOperationException from wherever the reader happens to look (found by fuzzing:
/// docs/performance.md).
/// </summary>
public static class JsonText
{
    /// <summary>Fails when a name or string value is invalid UTF-8 or an escaped lone surrogate, naming the field it is in.</summary>
    /// <param name="json">The document's bytes.</param>
    /// <param name="source">The file or input, which starts the message.</param>
    /// <param name="invalidUtf8">The problem when invalid UTF-8 lies outside any field (the parse would not reach it otherwise).</param>
    /// <exception cref="ModelFormatException">Invalid UTF-8, or an escaped lone surrogate in a name or value.</exception>
    public static void Check(ReadOnlySpan<byte> json, string source, string invalidUtf8 = "is not valid UTF-8.")
    {
        bool utf8 = Utf8.IsValid(json);
        if (utf8 && json.IndexOf("\\u"u8) < 0)
        {
            return;
        }

        var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
        string? field = null;
        try
        {
            while (reader.Read())
            {
                if (reader.TokenType is not (JsonTokenType.PropertyName or JsonTokenType.String) || (utf8 && !reader.ValueIsEscaped && reader.TokenType == JsonTokenType.String))
                {
                    continue;
                }

                string? text = Text(ref reader);
                if (text is null)
                {
                    bool escaped = reader.ValueIsEscaped && (reader.HasValueSequence ? Utf8.IsValid(System.Buffers.BuffersExtensions.ToArray(reader.ValueSequence)) : Utf8.IsValid(reader.ValueSpan));
                    string problem = escaped ? "holds an escaped lone surrogate (such as \\ud800), which is not valid Unicode." : "is not valid UTF-8.";
                    throw reader.TokenType == JsonTokenType.PropertyName || field is null
                        ? new ModelFormatException(source, null, $"has a field name that {problem}")
                        : new ModelFormatException(source, field, problem);
                }

                if (reader.TokenType == JsonTokenType.PropertyName)
                {
                    field = text;
                }
            }
        }
        catch (JsonException)
        {
            // Malformed JSON: the parse that follows reports it with its position (invalid UTF-8 outside a string, below).
        }

        if (!utf8)
        {
            throw new ModelFormatException(source, null, invalidUtf8);
        }
    }

    /// <summary>The token as a string; null when it is not valid Unicode.</summary>
    private static string? Text(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }
}
