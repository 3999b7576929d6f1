namespace LlmMemory.Tests.Validation;

/// <summary>A case file in a fresh temporary folder, deleted on dispose.</summary>
internal sealed class CaseFiles : IDisposable
{
    public CaseFiles() => Directory.CreateDirectory(Folder);

    public string Folder { get; } = Path.Combine(Path.GetTempPath(), $"llm-memory-cases-{Guid.NewGuid():N}");

    public string Write(string name, params string[] lines)
    {
        string path = Path.Combine(Folder, name);
        File.WriteAllText(path, string.Join('\n', lines) + "\n");
        return path;
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);
}
