namespace LlmMemory.Hub;

/// <summary>The local Hub cache in huggingface_hub's layout: <c>models--org--name/refs/REV</c> holds a commit, <c>snapshots/COMMIT/FILE</c> the files.</summary>
/// <remarks>Read only: files here were downloaded whole by other tools; this tool fetches headers only and never writes the cache.</remarks>
internal sealed class HubCache(string root)
{
    /// <summary>Bytes of a <c>refs/REV</c> file: it holds one 40-character commit hash.</summary>
    private const int MaxReferenceBytes = 1024;

    /// <summary>The snapshot folder of <paramref name="repo"/> at <paramref name="revision"/>, when the cache has it.</summary>
    public string? Snapshot(string repo, string revision)
    {
        string folder = Path.Combine(root, "models--" + repo.Replace("/", "--", StringComparison.Ordinal));
        string commit = revision;
        string reference = Path.Combine(folder, "refs", revision);
        if (File.Exists(reference))
        {
            commit = System.Text.Encoding.UTF8.GetString(LocalFile.ReadAllBytes(reference, MaxReferenceBytes, "a cache reference")).Trim();
        }

        if (HubFileName.Problem(commit) is not null || commit.Contains('/', StringComparison.Ordinal))
        {
            return null;
        }

        string snapshot = Path.Combine(folder, "snapshots", commit);
        return Directory.Exists(snapshot) ? snapshot : null;
    }

    /// <summary>The cached path of <paramref name="file"/>, when present.</summary>
    public string? CachedFile(string repo, string revision, string file) =>
        Snapshot(repo, revision) is string snapshot && File.Exists(Path.Combine(snapshot, file)) ? Path.Combine(snapshot, file) : null;

    /// <summary>Every file of the cached snapshot, relative paths with '/'.</summary>
    public IReadOnlyList<string>? Files(string repo, string revision) =>
        Snapshot(repo, revision) is string snapshot
            ? Directory.EnumerateFiles(snapshot, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(snapshot, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToArray()
            : null;
}
