using System.Text;
using LlmMemory.Tests.Support;

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

    private static readonly string[] Tags = ["facebook", "meta", "pytorch", "llama", "llama-3", "text-generation"];

    private static readonly string[] Languages = ["en", "de", "fr", "it", "pt", "hi", "es", "th"];

    /// <summary>Number of BPE merges in Llama 3's tokenizer.json.</summary>
    private const int MergeCount = 280147;

    /// <summary>Writes the file and returns its length in bytes.</summary>
    public static long Write(string path, Shape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        var gguf = new GgufWriter()
            .String("general.architecture", "llama")
            .String("general.type", "model")
            .String("general.name", shape.Name)
            .String("general.finetune", "Instruct")
            .String("general.basename", "Meta-Llama-3.1")
            .String("general.size_label", shape.SizeLabel)
            .String("general.license", "llama3.1")
            .Strings("general.tags", Tags)
            .Strings("general.languages", Languages)
            .UInt32("llama.block_count", (uint)shape.Layers)
            .UInt32("llama.context_length", 131072)
            .UInt32("llama.embedding_length", (uint)shape.Hidden)
            .UInt32("llama.feed_forward_length", (uint)shape.Ffn)
            .UInt32("llama.attention.head_count", (uint)shape.Heads)
            .UInt32("llama.attention.head_count_kv", (uint)shape.KvHeads)
            .Float32("llama.rope.freq_base", 500000f)
            .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .UInt32("general.file_type", 15) // LLAMA_FTYPE_MOSTLY_Q4_K_M
            .UInt32("llama.vocab_size", (uint)shape.Vocab)
            .UInt32("llama.rope.dimension_count", (uint)(shape.Hidden / shape.Heads))
            .String("tokenizer.ggml.model", "gpt2")
            .String("tokenizer.ggml.pre", "llama-bpe")
            .Strings("tokenizer.ggml.tokens", [.. Enumerable.Range(0, shape.Vocab).Select(Token)])
            .Int32s("tokenizer.ggml.token_type", [.. Enumerable.Range(0, shape.Vocab).Select(i => i < 128000 ? 1 : 3)])
            .Strings("tokenizer.ggml.merges", [.. Enumerable.Range(0, MergeCount).Select(i => Token(i % 100000) + " " + Token((i * 7 + 13) % 100000))])
            .UInt32("tokenizer.ggml.bos_token_id", 128000)
            .UInt32("tokenizer.ggml.eos_token_id", 128009)
            // Llama 3.1's chat template is about 4.2 kB of Jinja; a placeholder of that length stands in for it.
            .String("tokenizer.chat_template", string.Concat(Enumerable.Repeat("{{- bos_token }}{%- if messages[0]['role'] == 'system' %}", 72)))
            .UInt32("general.quantization_version", 2);
        foreach ((string name, long[] dims, int type) in Tensors(shape))
        {
            gguf.Tensor(name, dims, type);
        }

        gguf.Write(path);
        return new FileInfo(path).Length;
    }

    /// <summary>Tensors in the order llama.cpp writes them (token_embd, rope_freqs, blocks, output_norm, output), GGUF dims [in, out].</summary>
    private static List<(string Name, long[] Dims, int Type)> Tensors(Shape s)
    {
        int head = s.Hidden / s.Heads;
        long kv = (long)head * s.KvHeads;
        var list = new List<(string, long[], int)>
        {
            ("token_embd.weight", [s.Hidden, s.Vocab], GgufWriter.Q4_K),
            ("rope_freqs.weight", [head / 2], GgufWriter.F32),
        };
        for (int i = 0; i < s.Layers; i++)
        {
            bool moreBits = i < s.Layers / 8 || i >= 7 * s.Layers / 8 || (i - s.Layers / 8) % 3 == 2;
            int v = moreBits ? GgufWriter.Q6_K : s.IsSeventyB ? GgufWriter.Q5_K : GgufWriter.Q4_K;
            list.Add(($"blk.{i}.attn_norm.weight", [s.Hidden], GgufWriter.F32));
            list.Add(($"blk.{i}.ffn_down.weight", [s.Ffn, s.Hidden], moreBits ? GgufWriter.Q6_K : GgufWriter.Q4_K));
            list.Add(($"blk.{i}.ffn_gate.weight", [s.Hidden, s.Ffn], GgufWriter.Q4_K));
            list.Add(($"blk.{i}.ffn_up.weight", [s.Hidden, s.Ffn], GgufWriter.Q4_K));
            list.Add(($"blk.{i}.ffn_norm.weight", [s.Hidden], GgufWriter.F32));
            list.Add(($"blk.{i}.attn_k.weight", [s.Hidden, kv], GgufWriter.Q4_K));
            list.Add(($"blk.{i}.attn_output.weight", [s.Hidden, s.Hidden], GgufWriter.Q4_K));
            list.Add(($"blk.{i}.attn_q.weight", [s.Hidden, s.Hidden], GgufWriter.Q4_K));
            list.Add(($"blk.{i}.attn_v.weight", [s.Hidden, kv], v));
        }

        list.Add(("output_norm.weight", [s.Hidden], GgufWriter.F32));
        list.Add(("output.weight", [s.Hidden, s.Vocab], GgufWriter.Q6_K));
        return list;
    }

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
}
