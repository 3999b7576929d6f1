using System.Text.RegularExpressions;
using LlmMemory.Estimation;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Models;
using LlmMemory.Sources;

namespace LlmMemory.Hub;

/// <summary>
/// Resolves a Hub id to a model: <c>config.json</c> and the safetensors headers (or a GGUF file's header), each taken from
/// the local cache when it is there and otherwise fetched with HTTP Range requests, shards concurrently.
/// </summary>
/// <remarks>The bytes go to the library's readers unchanged; nothing here parses a weights format.</remarks>
public sealed partial class HubModelSource(HubClient client, IProgress<HubProgress>? progress = null)
{
    /// <summary>Requests in flight at once (shard headers fetched concurrently); the client's connections per server are capped to match.</summary>
    public const int MaxConcurrentRequests = 8;

    /// <summary>
    /// Files one model may take from the Hub (safetensors shards or GGUF splits), one request or more each: the largest published
    /// checkpoints have under 200 shards (DeepSeek-V3: 163), so an index naming 65,536 means 65,536 requests and is refused.
    /// </summary>
    public const int MaxFiles = 1024;

    private readonly HubCache _cache = new(client.Settings.CacheDirectory);

    /// <summary>Resolves <c>org/name[@revision][:file-or-quant]</c>.</summary>
    /// <exception cref="HubException">Not found, gated, unreachable, not cached while offline, or interrupted.</exception>
    /// <exception cref="ModelFormatException">A file is malformed or the files disagree.</exception>
    public ResolvedModel Resolve(string text)
    {
        HubModelId id = HubModelId.Parse(text);
        ModelArchitecture architecture = id.Selector is not null ? Gguf(id, id.Selector) : Checkpoint(id);
        return new ResolvedModel(id.Repo.Split('/')[1], id.Repo, $"hub:{id}", architecture);
    }

    private ModelArchitecture Checkpoint(HubModelId id)
    {
        byte[]? config = Small(id, "config.json", Limits.MaxConfigBytes, "a config.json");
        if (config is null)
        {
            // No config.json: a GGUF repository, when it holds exactly one model file.
            string[] ggufs = Files(id).Where(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).ToArray();
            string[] models = ggufs.Where(f => !SplitPart().IsMatch(f) || f.Contains("-00001-of-", StringComparison.Ordinal)).ToArray();
            return models.Length == 1 ? Gguf(id, models[0])
                : models.Length == 0 ? throw new HubException($"{id}: the repository has no config.json and no .gguf file.")
                : throw new HubException($"{id.Repo} holds {models.Length} GGUF files; pick one with {id.Repo}:QUANT, e.g. {Quants(models)}.");
        }

        ModelArchitecture described = ConfigJsonReader.Read(config, $"{id}/config.json");
        // A cached snapshot that holds model.safetensors has no index: it need not be asked for over the network.
        byte[]? indexBytes = _cache.CachedFile(id.Repo, id.Revision, "model.safetensors") is not null && _cache.CachedFile(id.Repo, id.Revision, "model.safetensors.index.json") is null
            ? null
            : Small(id, "model.safetensors.index.json", SafetensorsLimits.MaxIndexBytes, "a safetensors index");
        SafetensorsIndex? index = indexBytes is null ? null : SafetensorsIndex.Parse(indexBytes, $"{id}/model.safetensors.index.json");
        IReadOnlyList<string> shards = index?.Shards ?? ["model.safetensors"];
        if (shards.Count > MaxFiles)
        {
            throw new HubException($"{id}/model.safetensors.index.json names {shards.Count:N0} shards; at most {MaxFiles:N0} are fetched from the Hub.");
        }

        SafetensorsHeader[] headers = Headers(id, shards);
        if (index is not null)
        {
            SafetensorsCheckpoint.CheckIndex(index, headers, $"{id}/model.safetensors.index.json");
        }

        return SafetensorsCheckpoint.FromHeaders(described, headers, id.ToString());
    }

    private SafetensorsHeader[] Headers(HubModelId id, IReadOnlyList<string> shards)
    {
        var headers = new SafetensorsHeader[shards.Count];
        int done = 0;
        progress?.Report(new HubProgress(0, shards.Count, $"safetensors headers of {id.Repo}"));
        Concurrently(shards.Count, i =>
        {
            headers[i] = Read(id, shards[i], (stream, source) => SafetensorsHeaderReader.Read(stream, source));
            progress?.Report(new HubProgress(Interlocked.Increment(ref done), shards.Count, $"safetensors headers of {id.Repo}"));
        });
        return headers;
    }

    private ModelArchitecture Gguf(HubModelId id, string selector)
    {
        string first = selector.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase) ? selector : PickQuant(id, selector);
        IReadOnlyList<string> parts = GgufModel.SplitPaths(first);
        if (parts.Count > MaxFiles)
        {
            throw new HubException($"{id.Repo}: {first} names {parts.Count:N0} splits; at most {MaxFiles:N0} are fetched from the Hub.");
        }

        var files = new GgufFile[parts.Count];
        int done = 0;
        Concurrently(parts.Count, i =>
        {
            files[i] = Read(id, parts[i], (stream, source) => GgufReader.Read(stream, source));
            progress?.Report(new HubProgress(Interlocked.Increment(ref done), parts.Count, $"GGUF header of {id.Repo}"));
        });
        return GgufModel.FromFiles(files, $"{id.Repo}/{first}");
    }

    /// <summary>The GGUF file whose name carries the quantization tag (<c>Q4_K_M</c>), the first split when split.</summary>
    private string PickQuant(HubModelId id, string quant)
    {
        string[] ggufs = Files(id).Where(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).ToArray();
        string[] matching = ggufs.Where(f => Regex.IsMatch(Path.GetFileName(f), $@"(^|[-._]){Regex.Escape(quant)}([-._]|$)", RegexOptions.IgnoreCase))
            .Where(f => !SplitPart().IsMatch(f) || f.Contains("-00001-of-", StringComparison.Ordinal)).ToArray();
        return matching.Length == 1 ? matching[0]
            : matching.Length == 0 ? throw new HubException($"{id.Repo} has no GGUF file for '{quant}'. Available: {Quants(ggufs)}.")
            : throw new HubException($"{id.Repo} has several GGUF files for '{quant}': {string.Join(", ", matching)}; name the file instead.");
    }

    private static string Quants(IEnumerable<string> files) =>
        string.Join(", ", files.Select(f => QuantTag().Match(Path.GetFileName(f)) is { Success: true } m ? m.Value.Trim('-', '.', '_') : f)
            .Distinct(StringComparer.OrdinalIgnoreCase).Take(12));

    private IReadOnlyList<string> Files(HubModelId id) =>
        _cache.Files(id.Repo, id.Revision) is { Count: > 0 } cached && (client.Settings.Offline || cached.Any(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)))
            ? cached
            : client.Settings.Offline ? throw Offline(id, "its file list") : client.ListFiles(id);

    /// <summary>A small file of at most <paramref name="limit"/> bytes: from the cache, else over HTTP; null when it does not exist.</summary>
    private byte[]? Small(HubModelId id, string file, int limit, string what)
    {
        HubFileName.Check(id, file, "the model");
        if (_cache.CachedFile(id.Repo, id.Revision, file) is string path)
        {
            return LocalFile.ReadAllBytes(path, limit, what);
        }

        if (client.Settings.Offline)
        {
            return _cache.Snapshot(id.Repo, id.Revision) is not null ? null : throw Offline(id, file);
        }

        return client.TryGetSmall(id, file, limit);
    }

    /// <summary>Reads a weights file's header: from the cached file when present, else through a Range stream.</summary>
    private T Read<T>(HubModelId id, string file, Func<Stream, string, T> read)
    {
        HubFileName.Check(id, file, "the model");
        if (_cache.CachedFile(id.Repo, id.Revision, file) is string path)
        {
            using FileStream local = LocalFile.OpenRead(path, 64 << 10, FileOptions.RandomAccess);
            return read(local, path);
        }

        if (client.Settings.Offline)
        {
            throw Offline(id, file);
        }

        using Stream remote = client.OpenRange(id, file);
        return read(remote, $"{id}/{file}");
    }

    /// <summary>Runs <paramref name="body"/> for 0..count−1, <see cref="MaxConcurrentRequests"/> at a time; the first failure is rethrown as itself.</summary>
    private static void Concurrently(int count, Action<int> body)
    {
        try
        {
            Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = MaxConcurrentRequests }, body);
        }
        catch (AggregateException error) when (error.InnerExceptions.Count > 0)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(error.InnerExceptions[0]).Throw();
        }
    }

    private HubException Offline(HubModelId id, string what) =>
        new($"{id}: {what} is not in the local cache ({client.Settings.CacheDirectory}) and HF_HUB_OFFLINE=1 forbids fetching it.");

    [GeneratedRegex(@"-\d{5}-of-\d{5}\.gguf$")]
    private static partial Regex SplitPart();

    [GeneratedRegex(@"[-._](I?Q\d[\w]*|F16|BF16|F32)(?=[-._])", RegexOptions.IgnoreCase)]
    private static partial Regex QuantTag();
}
