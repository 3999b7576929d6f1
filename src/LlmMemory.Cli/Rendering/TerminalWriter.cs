using System.Text;

namespace LlmMemory.Cli.Rendering;

/// <summary>
/// Every character the CLI prints passes here: control characters are shown escaped (ESC as <c>\x1b</c>, BEL as <c>\x07</c>),
/// so a <c>model_type</c>, GGUF architecture or tensor name from a hostile file cannot move the cursor, retitle the terminal or
/// ring its bell. Line breaks and tabs, which the CLI's own layout uses, pass unchanged.
/// </summary>
internal sealed class TerminalWriter(TextWriter inner) : TextWriter
{
    /// <summary>The writer this one escapes for.</summary>
    public TextWriter Inner { get; } = inner;

    public override Encoding Encoding => Inner.Encoding;

    public override IFormatProvider FormatProvider => Inner.FormatProvider;

    /// <summary>Whether <paramref name="writer"/> is <paramref name="target"/>, or escapes for it.</summary>
    public static bool Writes(TextWriter writer, TextWriter target) =>
        ReferenceEquals(writer is TerminalWriter escaping ? escaping.Inner : writer, target);

    /// <summary><paramref name="text"/> with its control characters escaped, except line breaks and tabs.</summary>
    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.Any(NeedsEscape))
        {
            return text;
        }

        var escaped = new StringBuilder(text.Length + 8);
        foreach (char c in text)
        {
            escaped.Append(NeedsEscape(c) ? $"\\x{(int)c:x2}" : c);
        }

        return escaped.ToString();
    }

    public override void Write(char value)
    {
        if (NeedsEscape(value))
        {
            Inner.Write($"\\x{(int)value:x2}");
        }
        else
        {
            Inner.Write(value);
        }
    }

    public override void Write(string? value) => Inner.Write(value is null ? null : Escape(value));

    public override void Write(char[] buffer, int index, int count) => Write(new string(buffer, index, count));

    public override void Write(ReadOnlySpan<char> buffer) => Write(new string(buffer));

    public override void WriteLine(string? value) => Inner.WriteLine(value is null ? null : Escape(value));

    public override void Flush() => Inner.Flush();

    /// <summary>C0 and C1 controls and DEL, less '\n', '\r' and '\t' (the progress bar redraws its line with '\r').</summary>
    private static bool NeedsEscape(char c) => char.IsControl(c) && c is not ('\n' or '\r' or '\t');
}
