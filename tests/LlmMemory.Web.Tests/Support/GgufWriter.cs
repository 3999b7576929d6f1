using System.Text;

namespace LlmMemory.Web.Tests.Support;

/// <summary>Writes small, valid GGUF v3 files (ggml-org/ggml docs/gguf.md): metadata, tensor infos, aligned zero data.</summary>
internal sealed class GgufWriter
{
    /// <summary>GGUF's default data alignment (general.alignment when absent).</summary>
    private const int Alignment = 32;

    private readonly List<Action<BinaryWriter>> _metadata = [];
    private readonly List<(string Name, long[] Dims, int GgmlType, long Bytes)> _tensors = [];

    public GgufWriter String(string key, string value) => Add(key, 8, w => Text(w, value));

    public GgufWriter UInt32(string key, uint value) => Add(key, 4, w => w.Write(value));

    public GgufWriter Float32(string key, float value) => Add(key, 6, w => w.Write(value));

    /// <summary>An array of strings (type 9 of type 8), like tokenizer.ggml.tokens.</summary>
    public GgufWriter Strings(string key, IReadOnlyList<string> values) => Add(key, 9, w =>
    {
        w.Write(8u);
        w.Write((ulong)values.Count);
        foreach (string value in values)
        {
            Text(w, value);
        }
    });

    /// <summary>A tensor; <paramref name="dims"/> are ggml order (row length first), <paramref name="bytes"/> its stored size.</summary>
    public GgufWriter Tensor(string name, int ggmlType, long bytes, params long[] dims)
    {
        _tensors.Add((name, dims, ggmlType, bytes));
        return this;
    }

    public byte[] ToArray()
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write("GGUF"u8);
            w.Write(3u);
            w.Write((ulong)_tensors.Count);
            w.Write((ulong)_metadata.Count);
            foreach (Action<BinaryWriter> entry in _metadata)
            {
                entry(w);
            }

            long offset = 0;
            foreach ((string name, long[] dims, int type, long bytes) in _tensors)
            {
                Text(w, name);
                w.Write((uint)dims.Length);
                foreach (long dim in dims)
                {
                    w.Write((ulong)dim);
                }

                w.Write((uint)type);
                w.Write((ulong)offset);
                offset = Align(offset + bytes);
            }

            w.Write(new byte[Align(stream.Position) - stream.Position]);
            w.Write(new byte[offset]);
        }

        return stream.ToArray();
    }

    private GgufWriter Add(string key, uint type, Action<BinaryWriter> value)
    {
        _metadata.Add(w =>
        {
            Text(w, key);
            w.Write(type);
            value(w);
        });
        return this;
    }

    private static void Text(BinaryWriter w, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }

    private static long Align(long position) => (position + Alignment - 1) / Alignment * Alignment;
}
