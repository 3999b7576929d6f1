namespace LlmMemory.Hub;

/// <summary>
/// A file name inside a repository, as the Hub's file list, an index or a GGUF split name gives it: a server (or a hostile
/// index) can send any string, so each is checked before it is joined onto the cache folder or a URL.
/// </summary>
internal static class HubFileName
{
    /// <summary>Longest name accepted: Hub paths are short (the longest in practice are well under 200 characters).</summary>
    public const int MaxLength = 1024;

    /// <summary>What is wrong with <paramref name="name"/> as a plain relative path (segments joined by '/'); null when nothing is.</summary>
    public static string? Problem(string name) =>
        name.Length == 0 ? "is empty"
        : name.Length > MaxLength ? $"is longer than {MaxLength:N0} characters"
        : name.Any(char.IsControl) ? "holds a control character"
        : name.Contains('\\', StringComparison.Ordinal) ? "holds a backslash"
        : name[0] == '/' || Path.IsPathRooted(name) ? "is an absolute path"
        : name.Length >= 2 && char.IsAsciiLetter(name[0]) && name[1] == ':' ? "starts with a drive letter"
        : name.Split('/').Any(segment => segment is "" or "." or "..") ? "has an empty, '.' or '..' segment"
        : null;

    /// <summary>Returns <paramref name="name"/> when it is a plain relative path.</summary>
    /// <exception cref="HubException">It is not; the message says where it came from and what is wrong.</exception>
    public static string Check(HubModelId id, string name, string where) =>
        Problem(name) is string problem
            ? throw new HubException($"{id.Repo}: {where} names the file \"{(name.Length > 100 ? name[..100] + "…" : name)}\", which {problem}; only plain relative paths inside the repository are read.")
            : name;
}
