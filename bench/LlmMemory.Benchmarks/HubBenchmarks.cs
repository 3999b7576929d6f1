using BenchmarkDotNet.Attributes;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Hub;

namespace LlmMemory.Benchmarks;

/// <summary>
/// Resolving <c>meta-llama/Llama-3.1-70B</c> from a Hub on 127.0.0.1 (<see cref="LocalHub"/>): config.json, the index, and
/// a Range request for each of the 30 shard headers (each first answered with a 302, as the Hub does), against one GET of
/// config.json from the same server, and against reading the same checkpoint from the local disk.
/// </summary>
[MemoryDiagnoser]
public class HubBenchmarks
{
    private const string Repo = "meta-llama/Llama-3.1-70B";

    private LocalHub _hub = null!;
    private HubClient _client = null!;
    private HubModelSource _source = null!;
    private string _folder = "";
    private string _cache = "";

    [GlobalSetup]
    public void Start()
    {
        _folder = BenchFiles.Llama70BCheckpoint();
        _hub = new LocalHub(Repo, _folder);
        _cache = Directory.CreateTempSubdirectory("llm-memory-bench-hub-cache").FullName;
        _client = new HubClient(new HubSettings(_hub.Endpoint, Token: null, Offline: false, CacheDirectory: _cache));
        _source = new HubModelSource(_client);
        long count = _source.Resolve(Repo).ParameterCount;
        if (count != 70_553_706_496)
        {
            throw new InvalidOperationException($"The Hub fetch counted {count:N0} parameters, not Llama-3.1-70B's 70,553,706,496.");
        }
    }

    [GlobalCleanup]
    public void Stop()
    {
        _client.Dispose();
        _hub.Dispose();
        Directory.Delete(_cache, recursive: true);
    }

    /// <summary>The floor: one request for config.json (one round trip on loopback).</summary>
    [Benchmark(Baseline = true)]
    public int OneRequest() => _client.TryGetSmall(HubModelId.Parse(Repo), "config.json")!.Length;

    /// <summary>The whole fetch: what <c>llm-memory params meta-llama/Llama-3.1-70B</c> does with no local cache.</summary>
    [Benchmark]
    public long HubFetch() => _source.Resolve(Repo).ParameterCount;

    /// <summary>The same checkpoint from the local disk: the reading without the network.</summary>
    [Benchmark]
    public long LocalRead() => SafetensorsCheckpoint.ReadFolder(_folder).ParameterCount;
}
