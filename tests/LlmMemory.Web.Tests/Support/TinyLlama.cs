using System.Text.Json.Nodes;
using LlmMemory.Tests.Support;

namespace LlmMemory.Web.Tests.Support;

/// <summary>
/// A one-block Llama small enough to write in a test: hidden 64, 4 heads of 16, 2 KV heads, FFN 128, vocabulary 100,
/// untied output head. Its counts are derived by hand from the Llama layout (transformers modeling_llama.py;
/// llama.cpp's GGUF names in convert_hf_to_gguf.py):
/// <code>
///   token_embd / embed_tokens        100 × 64      = 6,400
///   attn_norm, ffn_norm              2 × 64        =   128
///   attn_q, attn_output              2 × 64 × 64   = 8,192
///   attn_k, attn_v (2 heads × 16)    2 × 64 × 32   = 4,096
///   ffn_gate, ffn_up, ffn_down       3 × 64 × 128  = 24,576
///   output_norm                      64            =    64
///   output / lm_head                 100 × 64      = 6,400
///   total                                          = 49,856 parameters
/// </code>
/// Stored bytes in the GGUF below: the three FFN matrices in Q8_0 (blocks of 32 elements in 34 bytes, ggml-common.h
/// block_q8_0: an fp16 scale and 32 int8) = 24,576 / 32 × 34 = 26,112; the other matrices in F16 = 25,088 × 2 = 50,176;
/// the three norms in F32 = 192 × 4 = 768; total 77,056 bytes.
/// </summary>
internal static class TinyLlama
{
    public const long Parameters = 49_856;

    public const long GgufTensorBytes = 77_056;

    /// <summary>The transformers config.json of the model.</summary>
    public static JsonObject Config() => new()
    {
        ["model_type"] = "llama",
        ["hidden_size"] = 64,
        ["intermediate_size"] = 128,
        ["num_hidden_layers"] = 1,
        ["num_attention_heads"] = 4,
        ["num_key_value_heads"] = 2,
        ["vocab_size"] = 100,
        ["max_position_embeddings"] = 256,
        ["tie_word_embeddings"] = false,
    };

    /// <summary>The model as llama.cpp would write it at Q8_0 (general.file_type 7 = LLAMA_FTYPE_MOSTLY_Q8_0).</summary>
    public static byte[] Gguf()
    {
        const int F32 = GgufWriter.F32, F16 = GgufWriter.F16, Q8_0 = GgufWriter.Q8_0;
        return new GgufWriter()
            .String("general.architecture", "llama")
            .String("general.name", "tiny-llama-test")
            .UInt32("general.file_type", 7)
            .UInt32("llama.block_count", 1)
            .UInt32("llama.context_length", 256)
            .UInt32("llama.embedding_length", 64)
            .UInt32("llama.feed_forward_length", 128)
            .UInt32("llama.attention.head_count", 4)
            .UInt32("llama.attention.head_count_kv", 2)
            .Float32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
            .Strings("tokenizer.ggml.tokens", Enumerable.Range(0, 100).Select(i => $"<t{i}>").ToArray())
            .Tensor("token_embd.weight", [64, 100], F16)
            .Tensor("blk.0.attn_norm.weight", [64], F32)
            .Tensor("blk.0.attn_q.weight", [64, 64], F16)
            .Tensor("blk.0.attn_k.weight", [64, 32], F16)
            .Tensor("blk.0.attn_v.weight", [64, 32], F16)
            .Tensor("blk.0.attn_output.weight", [64, 64], F16)
            .Tensor("blk.0.ffn_norm.weight", [64], F32)
            .Tensor("blk.0.ffn_gate.weight", [64, 128], Q8_0)
            .Tensor("blk.0.ffn_up.weight", [64, 128], Q8_0)
            .Tensor("blk.0.ffn_down.weight", [128, 64], Q8_0)
            .Tensor("output_norm.weight", [64], F32)
            .Tensor("output.weight", [64, 100], F16)
            .ToBytes();
    }
}
