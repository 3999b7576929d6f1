using System.Text;

namespace LlmMemory.Tests.Support;

/// <summary>Writes real GGUF files for tests (ggml-org/ggml docs/gguf.md): header, metadata, tensor infos, sparse aligned data.</summary>
internal sealed class GgufWriter
{
    /// <summary>ggml type ids with (block size, bytes per block), from ggml.c <c>type_traits[]</c>.</summary>
    public static readonly IReadOnlyDictionary<int, (int Block, int Bytes)> Types = new Dictionary<int, (int, int)>
    {
        [0] = (1, 4), [1] = (1, 2), [2] = (32, 18), [8] = (32, 34), [12] = (256, 144), [13] = (256, 176), [14] = (256, 210), [30] = (1, 2),
    };

    public const int F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30;

    private readonly List<(string Key, int Type, Action<BinaryWriter> Value)> _metadata = [];
    private readonly List<(string Name, long[] Dims, int Type)> _tensors = [];

    public uint Version { get; init; } = 3;

    public int Alignment { get; init; } = 32;

    public GgufWriter String(string key, string value) => Add(key, 8, w => WriteString(w, value));

    public GgufWriter UInt32(string key, uint value) => Add(key, 4, w => w.Write(value));

    public GgufWriter UInt64(string key, ulong value) => Add(key, 10, w => w.Write(value));

    public GgufWriter Float32(string key, float value) => Add(key, 6, w => w.Write(value));

    public GgufWriter Bool(string key, bool value) => Add(key, 7, w => w.Write(value));

    public GgufWriter Strings(string key, IReadOnlyList<string> values) => Add(key, 9, w =>
    {
        w.Write(8u);
        w.Write((ulong)values.Count);
        foreach (string v in values)
        {
            WriteString(w, v);
        }
    });

    public GgufWriter Int32s(string key, IReadOnlyList<int> values) => Add(key, 9, w =>
    {
        w.Write(5u);
        w.Write((ulong)values.Count);
        foreach (int v in values)
        {
            w.Write(v);
        }
    });

    /// <summary>Adds a tensor; <paramref name="dims"/> in ggml order (ne[0] = row length first).</summary>
    public GgufWriter Tensor(string name, long[] dims, int type)
    {
        _tensors.Add((name, dims, type));
        return this;
    }

    /// <summary>ggml_nbytes; wraps silently (unchecked) so tests can write the absurd shapes a hostile file would hold.</summary>
    public static long Bytes(long[] dims, int type) => unchecked(dims.Aggregate(1L, (p, d) => unchecked(p * d)) / Types[type].Block * Types[type].Bytes);

    public long Elements => _tensors.Sum(t => t.Dims.Aggregate(1L, (p, d) => p * d));

    /// <summary>Bytes of all tensors' data, padding excluded.</summary>
    public long TensorBytes => _tensors.Sum(t => Bytes(t.Dims, t.Type));

    /// <summary>The header up to (not including) the data section, and the data section's length with its padding.</summary>
    public (byte[] Header, long DataBytes) Build()
    {
        using var buffer = new MemoryStream();
        using var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true);
        w.Write(Encoding.ASCII.GetBytes("GGUF"));
        w.Write(Version);
        w.Write((ulong)_tensors.Count);
        w.Write((ulong)_metadata.Count);
        foreach ((string key, int type, Action<BinaryWriter> value) in _metadata)
        {
            WriteString(w, key);
            w.Write((uint)type);
            value(w);
        }

        long offset = 0;
        foreach ((string name, long[] dims, int type) in _tensors)
        {
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (long d in dims)
            {
                w.Write((ulong)d);
            }

            w.Write((uint)type);
            w.Write((ulong)offset);
            offset = unchecked(Align(offset + Bytes(dims, type)));
        }

        w.Flush();
        long headerLength = Align(buffer.Length);
        buffer.SetLength(headerLength);
        return (buffer.ToArray(), offset);
    }

    /// <summary>Writes the file with its data section as a sparse hole.</summary>
    public void Write(string path)
    {
        (byte[] header, long data) = Build();
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.Write(header);
        file.SetLength(header.Length + data);
    }

    /// <summary>The whole file in memory (data zero-filled); for small files only.</summary>
    public byte[] ToBytes()
    {
        (byte[] header, long data) = Build();
        return [.. header, .. new byte[data]];
    }

    private long Align(long value) => unchecked((value + Alignment - 1) / Alignment * Alignment);

    private GgufWriter Add(string key, int type, Action<BinaryWriter> value)
    {
        _metadata.Add((key, type, value));
        return this;
    }

    private static void WriteString(BinaryWriter w, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }
}
