using BenchmarkDotNet.Attributes;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.Safetensors;

namespace LlmMemory.Benchmarks;

/// <summary>
/// The header of a Q4_K_M GGUF (4.9 GB for 8B, 42.5 GB for 70B) into an architecture, against the I/O floor: reading the
/// header's bytes from the same file in one read. The naive way (reading the whole file) and the @huggingface/gguf peer
/// are timed by bench/peer.sh, which cannot fit a 10-second operation into BenchmarkDotNet's iterations.
/// </summary>
[MemoryDiagnoser]
public class GgufBenchmarks
{
    private string _path = "";
    private int _headerBytes;

    [Params("8b", "70b")]
    public string Size { get; set; } = "8b";

    [GlobalSetup]
    public void Write()
    {
        _path = BenchFiles.Gguf(Size);
        GgufFile header = GgufReader.ReadFile(_path);
        _headerBytes = checked((int)header.DataOffset);
        // Llama-3.1's config.json counts; rope_freqs (64 floats) is a buffer, not a parameter, and the reader leaves it out.
        long expected = Size == "70b" ? 70_553_706_496 : 8_030_261_248;
        if (ReaderProbe.ReadGguf(_path) != expected)
        {
            throw new InvalidOperationException($"{_path}: the reader counts {ReaderProbe.ReadGguf(_path):N0} parameters, not {expected:N0}.");
        }
    }

    /// <summary>The floor: the header's bytes read in one call (no parsing).</summary>
    [Benchmark(Baseline = true)]
    public int HeaderBytes() => ReaderProbe.ReadHead(_path, _headerBytes);

    /// <summary>The header parsed (metadata, tensor infos, placement checks), tokenizer arrays skipped by seeking.</summary>
    [Benchmark]
    public int GgufHeader() => GgufReader.ReadFile(_path).Tensors.Count;

    /// <summary>The header into an architecture with its tensor inventory: <c>llm-memory params FILE.gguf</c>.</summary>
    [Benchmark]
    public long GgufModelRead() => ReaderProbe.ReadGguf(_path);
}

/// <summary>
/// The 30 safetensors headers and the index of Llama-3.1-70B's bf16 checkpoint (141 GB, sparse) into an architecture,
/// against the I/O floor: each shard's 8-byte length and header read raw, and then each header parsed as JSON.
/// </summary>
[MemoryDiagnoser]
public class SafetensorsBenchmarks
{
    private string _folder = "";
    private string[] _shards = [];

    [GlobalSetup]
    public void Write()
    {
        _folder = BenchFiles.Llama70BCheckpoint();
        _shards = Directory.GetFiles(_folder, "*.safetensors").Order(StringComparer.Ordinal).ToArray();
        long count = SafetensorsCheckpoint.ReadFolder(_folder).ParameterCount;
        if (count != 70_553_706_496)
        {
            throw new InvalidOperationException($"{_folder}: the reader counts {count:N0} parameters, not Llama-3.1-70B's 70,553,706,496.");
        }
    }

    /// <summary>The floor: open each shard, read its length prefix and header bytes.</summary>
    [Benchmark(Baseline = true)]
    public long RawHeaders()
    {
        long total = 0;
        foreach (string shard in _shards)
        {
            total += RawHeader(shard).Length;
        }

        return total;
    }

    /// <summary>The same bytes, each header also parsed into a JsonDocument (what any reader must do).</summary>
    [Benchmark]
    public int RawHeadersAsJson()
    {
        int tensors = 0;
        foreach (string shard in _shards)
        {
            using var document = System.Text.Json.JsonDocument.Parse(RawHeader(shard));
            tensors += document.RootElement.GetPropertyCount();
        }

        return tensors;
    }

    /// <summary>config.json, the index and every shard header into the architecture (<c>llm-memory params FOLDER</c>).</summary>
    [Benchmark]
    public long CheckpointRead() => SafetensorsCheckpoint.ReadFolder(_folder).ParameterCount;

    private static byte[] RawHeader(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        Span<byte> prefix = stackalloc byte[8];
        file.ReadExactly(prefix);
        byte[] header = new byte[checked((int)BitConverter.ToUInt64(prefix))];
        file.ReadExactly(header);
        return header;
    }
}
