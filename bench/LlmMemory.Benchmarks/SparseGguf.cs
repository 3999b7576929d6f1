using System.Text;

namespace LlmMemory.Benchmarks;

/// <summary>
/// Writes a GGUF v3 file laid out as llama.cpp's <c>convert_hf_to_gguf.py</c> then <c>llama-quantize … Q4_K_M</c> lay out a
/// Llama 3.1 model: the same keys, the same 128,256-token vocabulary and 280,147 merges (synthetic strings of realistic
/// length), the same tensors, types and aligned offsets. The data section is left sparse (<see cref="FileStream.SetLength"/>),
/// so a 40 GB file takes a few megabytes of disk.
/// </summary>
/// <remarks>
/// Types follow <c>ggml-org/llama.cpp:src/llama-quant.cpp</c> for Q4_K_M: Q4_K by default, Q6_K for <c>output.weight</c>, and
/// Q6_K for <c>attn_v</c> and <c>ffn_down</c> in the layers where <c>use_more_bits</c> holds (the first and last eighth, and
/// every third layer between); the 70B model's remaining <c>attn_v</c> go to Q5_K. Norms and <c>rope_freqs</c> stay F32.
/// </remarks>
public static class SparseGguf
{
    /// <summary>A Llama 3.1 shape.</summary>
    public sealed record Shape(string Name, string SizeLabel, int Layers, int Hidden, int Ffn, int Heads, int KvHeads, int Vocab)
    {
        public bool IsSeventyB => Layers == 80 && Hidden == 8192;
    }

    public static Shape Llama318B { get; } = new("Meta Llama 3.1 8B Instruct", "8B", 32, 4096, 14336, 32, 8, 128256);

    public static Shape Llama3170B { get; } = new("Meta Llama 3.1 70B Instruct", "70B", 80, 8192, 28672, 64, 8, 128256);

    private const int Alignment = 32;

    private static readonly string[] Tags = ["facebook", "meta", "pytorch", "llama", "llama-3", "text-generation"];

    private static readonly string[] Languages = ["en", "de", "fr", "it", "pt", "hi", "es", "th"];

    /// <summary>Number of BPE merges in Llama 3's tokenizer.json.</summary>
    private const int MergeCount = 280147;

    private enum Ggml
    {
        F32 = 0,
        Q4_K = 12,
        Q5_K = 13,
        Q6_K = 14,
    }

    /// <summary>Writes the file and returns its length in bytes.</summary>
    public static long Write(string path, Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        List<(string Name, long[] Dims, Ggml Type)> tensors = Tensors(shape);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        using var w = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true);
        w.Write(0x46554747u); // "GGUF"
        w.Write(3u);
        w.Write((ulong)tensors.Count);
        var metadata = new List<Action>();
        void Key(string key, uint type)
        {
            WriteString(w, key);
            w.Write(type);
        }

        void U32(string key, uint value) => metadata.Add(() => { Key(key, 4); w.Write(value); });
        void F32(string key, float value) => metadata.Add(() => { Key(key, 6); w.Write(value); });
        void Str(string key, string value) => metadata.Add(() => { Key(key, 8); WriteString(w, value); });
        void Strings(string key, int count, Func<int, string> item) => metadata.Add(() =>
        {
            Key(key, 9);
            w.Write(8u);
            w.Write((ulong)count);
            for (int i = 0; i < count; i++)
            {
                WriteString(w, item(i));
            }
        });
        void Int32s(string key, int count, Func<int, int> item) => metadata.Add(() =>
        {
            Key(key, 9);
            w.Write(5u);
            w.Write((ulong)count);
            for (int i = 0; i < count; i++)
            {
                w.Write(item(i));
            }
        });

        Str("general.architecture", "llama");
        Str("general.type", "model");
        Str("general.name", shape.Name);
        Str("general.finetune", "Instruct");
        Str("general.basename", "Meta-Llama-3.1");
        Str("general.size_label", shape.SizeLabel);
        Str("general.license", "llama3.1");
        Strings("general.tags", Tags.Length, i => Tags[i]);
        Strings("general.languages", Languages.Length, i => Languages[i]);
        U32("llama.block_count", (uint)shape.Layers);
        U32("llama.context_length", 131072);
        U32("llama.embedding_length", (uint)shape.Hidden);
        U32("llama.feed_forward_length", (uint)shape.Ffn);
        U32("llama.attention.head_count", (uint)shape.Heads);
        U32("llama.attention.head_count_kv", (uint)shape.KvHeads);
        F32("llama.rope.freq_base", 500000f);
        F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        U32("general.file_type", 15); // LLAMA_FTYPE_MOSTLY_Q4_K_M
        U32("llama.vocab_size", (uint)shape.Vocab);
        U32("llama.rope.dimension_count", (uint)(shape.Hidden / shape.Heads));
        Str("tokenizer.ggml.model", "gpt2");
        Str("tokenizer.ggml.pre", "llama-bpe");
        Strings("tokenizer.ggml.tokens", shape.Vocab, Token);
        Int32s("tokenizer.ggml.token_type", shape.Vocab, i => i < 128000 ? 1 : 3);
        Strings("tokenizer.ggml.merges", MergeCount, i => Token(i % 100000) + " " + Token((i * 7 + 13) % 100000));
        U32("tokenizer.ggml.bos_token_id", 128000);
        U32("tokenizer.ggml.eos_token_id", 128009);
        // Llama 3.1's chat template is about 4.2 kB of Jinja; a placeholder of that length stands in for it.
        Str("tokenizer.chat_template", string.Concat(Enumerable.Repeat("{{- bos_token }}{%- if messages[0]['role'] == 'system' %}", 72)));
        U32("general.quantization_version", 2);

        w.Write((ulong)metadata.Count);
        foreach (Action write in metadata)
        {
            write();
        }

        long offset = 0;
        foreach ((string name, long[] dims, Ggml type) in tensors)
        {
            WriteString(w, name);
            w.Write((uint)dims.Length);
            foreach (long d in dims)
            {
                w.Write((ulong)d);
            }

            w.Write((uint)type);
            w.Write((ulong)offset);
            offset = Align(offset + Bytes(dims, type));
        }

        w.Flush();
        long dataStart = Align(file.Position);
        long length = dataStart + offset;
        file.SetLength(length);
        return length;
    }

    /// <summary>Tensors in the order llama.cpp writes them (token_embd, rope_freqs, blocks, output_norm, output), GGUF dims [in, out].</summary>
    private static List<(string Name, long[] Dims, Ggml Type)> Tensors(Shape s)
    {
        int head = s.Hidden / s.Heads;
        long kv = (long)head * s.KvHeads;
        var list = new List<(string, long[], Ggml)>
        {
            ("token_embd.weight", [s.Hidden, s.Vocab], Ggml.Q4_K),
            ("rope_freqs.weight", [head / 2], Ggml.F32),
        };
        for (int i = 0; i < s.Layers; i++)
        {
            bool moreBits = i < s.Layers / 8 || i >= 7 * s.Layers / 8 || (i - s.Layers / 8) % 3 == 2;
            Ggml v = moreBits ? Ggml.Q6_K : s.IsSeventyB ? Ggml.Q5_K : Ggml.Q4_K;
            list.Add(($"blk.{i}.attn_norm.weight", [s.Hidden], Ggml.F32));
            list.Add(($"blk.{i}.ffn_down.weight", [s.Ffn, s.Hidden], moreBits ? Ggml.Q6_K : Ggml.Q4_K));
            list.Add(($"blk.{i}.ffn_gate.weight", [s.Hidden, s.Ffn], Ggml.Q4_K));
            list.Add(($"blk.{i}.ffn_up.weight", [s.Hidden, s.Ffn], Ggml.Q4_K));
            list.Add(($"blk.{i}.ffn_norm.weight", [s.Hidden], Ggml.F32));
            list.Add(($"blk.{i}.attn_k.weight", [s.Hidden, kv], Ggml.Q4_K));
            list.Add(($"blk.{i}.attn_output.weight", [s.Hidden, s.Hidden], Ggml.Q4_K));
            list.Add(($"blk.{i}.attn_q.weight", [s.Hidden, s.Hidden], Ggml.Q4_K));
            list.Add(($"blk.{i}.attn_v.weight", [s.Hidden, kv], v));
        }

        list.Add(("output_norm.weight", [s.Hidden], Ggml.F32));
        list.Add(("output.weight", [s.Hidden, s.Vocab], Ggml.Q6_K));
        return list;
    }

    /// <summary>Bytes of a tensor: rows of whole blocks (Q4_K 144 B, Q5_K 176 B, Q6_K 210 B per 256 values; F32 4 B per value).</summary>
    private static long Bytes(long[] dims, Ggml type)
    {
        long elements = dims.Aggregate(1L, (a, b) => a * b);
        return type switch
        {
            Ggml.F32 => elements * 4,
            Ggml.Q4_K => elements / 256 * 144,
            Ggml.Q5_K => elements / 256 * 176,
            Ggml.Q6_K => elements / 256 * 210,
            _ => throw new ArgumentOutOfRangeException(nameof(type)),
        };
    }

    private static long Align(long offset) => (offset + Alignment - 1) / Alignment * Alignment;

    /// <summary>A token of 1 to 10 bytes (Llama 3's average about 6.5), unique per id: optional "Ġ", base-26 digits, '_' padding.</summary>
    private static string Token(int id)
    {
        const string letters = "abcdefghijklmnopqrstuvwxyz";
        var text = new StringBuilder(id % 3 == 0 ? "Ġ" : "");
        int n = id;
        do
        {
            text.Append(letters[n % 26]);
            n /= 26;
        }
        while (n > 0);
        int pad = (int)(unchecked((uint)id * 2654435761u) % 6);
        return text.Append('_', pad).ToString();
    }

    private static void WriteString(BinaryWriter w, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        w.Write((ulong)bytes.Length);
        w.Write(bytes);
    }
}
