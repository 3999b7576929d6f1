using System.Text;
using System.Text.Json;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;

namespace LlmMemory.Fuzz;

/// <summary>
/// Valid files of one tiny Llama (2 layers, width 256, 1,000 tokens) in each binary format, as seeds. Every seed of a
/// format describes the same tensors, so the data section has one length per format, which the target passes as the
/// file's length instead of carrying megabytes of zeros through every mutation.
/// </summary>
public static class TinySeeds
{
    /// <summary>The tiny model's config.json (all keys the llama reader needs, written out).</summary>
    public static readonly string ConfigJson = """
        {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
         "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "vocab_size": 1000,
         "max_position_embeddings": 2048, "rms_norm_eps": 1e-05, "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
        """;

    public static ModelArchitecture Architecture { get; } = ConfigJsonReader.Read(Encoding.UTF8.GetBytes(ConfigJson), "tiny/config.json");

    /// <summary>Bytes of the safetensors data section: every tensor in a 16-bit type.</summary>
    public static long SafetensorsDataBytes { get; } = Architecture.ParameterCount * 2;

    /// <summary>
    /// Safetensors files (length prefix and header, no data): bf16; fp16 with metadata; tensors in reverse order with a
    /// padded header; and one with the embedding in F32 and the head dropped to keep the byte count (a mismatch with the config).
    /// </summary>
    public static IReadOnlyList<byte[]> Safetensors { get; } =
    [
        SafetensorsFile(Architecture.Tensors.Tensors, _ => "BF16", new() { ["format"] = "pt" }),
        SafetensorsFile(Architecture.Tensors.Tensors, _ => "F16", new() { ["format"] = "pt", ["total_parameters"] = "1,000" }),
        SafetensorsFile(Architecture.Tensors.Tensors.Reverse().ToArray(), _ => "BF16", null, padding: 64),
        SafetensorsFile(Architecture.Tensors.Tensors.Where(t => t.Name != "lm_head.weight").ToArray(),
            t => t.Name == "model.embed_tokens.weight" ? "F32" : "BF16", new() { ["format"] = "pt" }),
    ];

    /// <summary>Bytes of the GGUF data section (Q4_K, Q6_K and F32 tensors, 32-byte aligned).</summary>
    public static long GgufDataBytes { get; } = GgufTensors().Aggregate(0L, (offset, t) => Align(offset + t.Bytes));

    /// <summary>GGUF headers (no data): v3 with a tokenizer; v2; v3 with tokenizer scores, types and merges.</summary>
    public static IReadOnlyList<byte[]> Gguf { get; } = [GgufFile(3, extraTokenizer: false), GgufFile(2, extraTokenizer: false), GgufFile(3, extraTokenizer: true)];

    private static byte[] SafetensorsFile(IReadOnlyList<TensorSpec> tensors, Func<TensorSpec, string> dtype, Dictionary<string, string>? metadata, int padding = 0)
    {
        using var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject("__metadata__");
                foreach ((string key, string value) in metadata)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach (TensorSpec t in tensors)
            {
                string type = dtype(t);
                json.WriteStartObject(t.Name);
                json.WriteString("dtype", type);
                json.WriteStartArray("shape");
                foreach (long d in t.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += t.Elements * (type == "F32" ? 4 : 2);
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        for (int i = 0; i < padding || header.Length % 8 != 0; i++)
        {
            header.WriteByte((byte)' ');
        }

        return [.. BitConverter.GetBytes((ulong)header.Length), .. header.ToArray()];
    }

    private static long Align(long offset) => (offset + 31) / 32 * 32;

    /// <summary>llama.cpp's names for the tiny model, GGUF order of dimensions (input first), Q4_K_M-like types.</summary>
    private static List<(string Name, long[] Dims, uint Type, long Bytes)> GgufTensors()
    {
        const uint f32 = 0, q4K = 12, q6K = 14;
        static long Bytes(long[] dims, uint type)
        {
            long n = dims.Aggregate(1L, (a, b) => a * b);
            return type == f32 ? n * 4 : n / 256 * (type == q4K ? 144 : 210);
        }

        var list = new List<(string, long[], uint)>
        {
            ("token_embd.weight", [256, 1000], q4K), ("rope_freqs.weight", [32], f32),
        };
        for (int b = 0; b < 2; b++)
        {
            list.Add(($"blk.{b}.attn_norm.weight", [256], f32));
            list.Add(($"blk.{b}.ffn_down.weight", [512, 256], q6K));
            list.Add(($"blk.{b}.ffn_gate.weight", [256, 512], q4K));
            list.Add(($"blk.{b}.ffn_up.weight", [256, 512], q4K));
            list.Add(($"blk.{b}.ffn_norm.weight", [256], f32));
            list.Add(($"blk.{b}.attn_k.weight", [256, 128], q4K));
            list.Add(($"blk.{b}.attn_output.weight", [256, 256], q4K));
            list.Add(($"blk.{b}.attn_q.weight", [256, 256], q4K));
            list.Add(($"blk.{b}.attn_v.weight", [256, 128], q6K));
        }

        list.Add(("output_norm.weight", [256], f32));
        list.Add(("output.weight", [256, 1000], q6K));
        return list.Select(t => (t.Item1, t.Item2, t.Item3, Bytes(t.Item2, t.Item3))).ToList();
    }

    private static byte[] GgufFile(uint version, bool extraTokenizer)
    {
        using var buffer = new MemoryStream();
        using var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true);
        var metadata = new List<Action>();
        void Key(string key, uint type)
        {
            Str(key);
            w.Write(type);
        }

        void Str(string text)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            w.Write((ulong)bytes.Length);
            w.Write(bytes);
        }

        void U32(string key, uint value) => metadata.Add(() => { Key(key, 4); w.Write(value); });
        void F32(string key, float value) => metadata.Add(() => { Key(key, 6); w.Write(value); });
        void S(string key, string value) => metadata.Add(() => { Key(key, 8); Str(value); });
        void Array(string key, uint element, int count, Action<int> item) => metadata.Add(() =>
        {
            Key(key, 9);
            w.Write(element);
            w.Write((ulong)count);
            for (int i = 0; i < count; i++)
            {
                item(i);
            }
        });

        S("general.architecture", "llama");
        S("general.name", "tiny");
        U32("llama.block_count", 2);
        U32("llama.context_length", 2048);
        U32("llama.embedding_length", 256);
        U32("llama.feed_forward_length", 512);
        U32("llama.attention.head_count", 4);
        U32("llama.attention.head_count_kv", 2);
        F32("llama.rope.freq_base", 500000f);
        F32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        U32("general.file_type", 15);
        U32("llama.vocab_size", 1000);
        S("tokenizer.ggml.model", "gpt2");
        Array("tokenizer.ggml.tokens", 8, 1000, i => Str($"tok{i}"));
        if (extraTokenizer)
        {
            Array("tokenizer.ggml.scores", 6, 1000, i => w.Write(-i / 1000f));
            Array("tokenizer.ggml.token_type", 5, 1000, i => w.Write(i < 990 ? 1 : 3));
            Array("tokenizer.ggml.merges", 8, 300, i => Str($"t{i % 30} k{i / 30}"));
            U32("tokenizer.ggml.bos_token_id", 1);
        }

        U32("general.quantization_version", 2);
        List<(string Name, long[] Dims, uint Type, long Bytes)> tensors = GgufTensors();
        w.Write(Encoding.ASCII.GetBytes("GGUF"));
        w.Write(version);
        w.Write((ulong)tensors.Count);
        w.Write((ulong)metadata.Count);
        foreach (Action write in metadata)
        {
            write();
        }

        long offset = 0;
        foreach ((string name, long[] dims, uint type, long bytes) in tensors)
        {
            Str(name);
            w.Write((uint)dims.Length);
            foreach (long d in dims)
            {
                w.Write((ulong)d);
            }

            w.Write(type);
            w.Write((ulong)offset);
            offset = Align(offset + bytes);
        }

        w.Flush();
        buffer.SetLength(Align(buffer.Length));
        return buffer.ToArray();
    }
}
