namespace LlmMemory;

/// <summary>A model description (config.json, safetensors header, GGUF file, scenario) is malformed, hostile or unsupported.</summary>
/// <remarks>The message is one sentence that names the source and, where there is one, the key or field.</remarks>
public sealed class ModelFormatException : FormatException
{
    public ModelFormatException()
    {
    }

    public ModelFormatException(string message)
        : base(message)
    {
    }

    public ModelFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    /// <summary>
    /// Creates the exception for a problem in <paramref name="source"/> at <paramref name="key"/>. Keys and the values a problem
    /// quotes come from the input (a JSON or YAML key or string, a GGUF name), so control characters are written escaped: the
    /// message stays one line, and a name holding ESC cannot reach a terminal raw.
    /// </summary>
    public ModelFormatException(string source, string? key, string problem)
        : base(Escaped(key is null ? $"{source}: {problem}" : $"{source}: '{key}' {problem}"))
    {
        Input = source;
        Key = key;
    }

    /// <summary>The file or input the problem is in.</summary>
    public string? Input { get; }

    /// <summary>The key or field at fault, when there is one.</summary>
    public string? Key { get; }

    /// <summary><paramref name="text"/> with every control character (line breaks included) written as <c>\xNN</c>.</summary>
    private static string Escaped(string text) =>
        text.Any(char.IsControl) ? string.Concat(text.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString())) : text;
}
