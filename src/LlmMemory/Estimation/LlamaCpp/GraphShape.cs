using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>The llama.cpp graph builders modelled node by node (<c>src/models/*.cpp</c>, earlier <c>llm_build_*</c>).</summary>
internal enum GraphFamily
{
    /// <summary><c>llm_build_llama</c>: Llama, Mistral (llama.cpp's llama graph has no sliding window).</summary>
    Llama,

    /// <summary><c>llm_build_qwen2</c>: the llama graph plus q/k/v biases.</summary>
    Qwen2,

    /// <summary><c>llm_build_gptneox</c>: fused QKV with bias, LayerNorm with bias, parallel residual (Pythia).</summary>
    GptNeoX,
}

/// <summary>Which graph builder a model gets.</summary>
internal static class GraphFamilies
{
    /// <summary>The graph builder modelled node by node for this model, or null when only the closed form applies.</summary>
    public static GraphFamily? Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Experts is not null || model.LatentAttention is not null || model.EncoderLayerCount > 0)
        {
            return null;
        }

        return model.ModelType switch
        {
            "llama" or "mistral" when model.GatedFeedForward => GraphFamily.Llama,
            "qwen2" when model.GatedFeedForward => GraphFamily.Qwen2,
            "gpt_neox" => GraphFamily.GptNeoX,
            _ => null,
        };
    }
}

/// <summary>The hyper-parameters a graph depends on.</summary>
/// <param name="Family">Which builder.</param>
/// <param name="Embedding">n_embd.</param>
/// <param name="Layers">n_layer.</param>
/// <param name="Vocabulary">n_vocab.</param>
/// <param name="FeedForward">n_ff.</param>
/// <param name="Heads">n_head.</param>
/// <param name="KvHeads">n_head_kv.</param>
/// <param name="HeadDim">n_embd_head_k (= v).</param>
/// <param name="TiedEmbeddings">No <c>output.weight</c>: the output layer uses a duplicate of <c>token_embd</c>.</param>
internal sealed record GraphShape(GraphFamily Family, int Embedding, int Layers, int Vocabulary, int FeedForward, int Heads, int KvHeads,
    int HeadDim, bool TiedEmbeddings);

/// <summary>One graph <c>llama_context::graph_reserve</c> builds: a ubatch against a full KV cache.</summary>
/// <param name="Tokens">n_tokens of the ubatch.</param>
/// <param name="Outputs">n_outputs (rows of logits).</param>
/// <param name="KvCells">n_kv: cells per stream (the whole cache is assumed full).</param>
/// <param name="Streams">KV streams (parallel sequences of a non-unified cache).</param>
/// <param name="FlashAttention">Whether attention is one FLASH_ATTN_EXT op.</param>
/// <param name="KeyType">K cache type.</param>
/// <param name="ValueType">V cache type.</param>
/// <param name="WeightTypes">ggml type of each weight, by GGUF name (decides weight copies into a compute buffer).</param>
/// <param name="Version">Which llama.cpp behaviour to follow.</param>
internal sealed record GraphRequest(int Tokens, int Outputs, int KvCells, int Streams, bool FlashAttention, DataType KeyType, DataType ValueType,
    IReadOnlyDictionary<string, DataType> WeightTypes, LlamaCppVersion Version);
