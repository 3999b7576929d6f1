namespace LlmMemory.Cli.Rendering;

/// <summary>Hard-wraps prose to a width at spaces; a word longer than the width is cut so no line is wider.</summary>
internal static class Prose
{
    /// <summary>The lines of <paramref name="text"/>, each at most <paramref name="width"/> characters; lines after the first start with <paramref name="indent"/> spaces.</summary>
    public static IEnumerable<string> Wrap(string text, int width, int indent = 0)
    {
        string pad = new(' ', Math.Clamp(indent, 0, width / 2));
        var line = new System.Text.StringBuilder();
        foreach (string piece in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            string word = piece;
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line.ToString();
                line.Clear().Append(pad);
            }

            while ((line.Length == 0 || line.ToString() == pad) && line.Length + word.Length > width)
            {
                int room = width - line.Length;
                yield return line.Append(word[..room]).ToString();
                line.Clear().Append(pad);
                word = word[room..];
            }

            line.Append(line.Length > 0 && line.ToString() != pad ? " " : "").Append(word);
        }

        if (line.Length > 0 && line.ToString() != pad)
        {
            yield return line.ToString();
        }
    }
}
