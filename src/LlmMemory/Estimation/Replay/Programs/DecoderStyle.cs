using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// How a Llama-like decoder block is wired, where its families differ (transformers 5 modeling files): every family
/// decision of the replay is made here, from the model type and the tensors the config produced.
/// </summary>
/// <param name="GemmaNorms"><c>GemmaRMSNorm</c> (all fp32 inside, <c>1 + weight</c>) and the embedding scaled by √h (Gemma 1–3).</param>
/// <param name="SandwichNorms">Norms after attention and around the MLP as well (Gemma 2 and 3: four per block).</param>
/// <param name="QkNorm">Per-head RMSNorm on q and k (Qwen3, Gemma 3).</param>
/// <param name="LocalRotary">A second rotary table for the sliding layers (Gemma 3).</param>
/// <param name="EmbedScaleBuffer">An fp32 <c>embed_scale</c> buffer (Gemma 3).</param>
/// <param name="FusedProjections">q, k, v in one <c>qkv_proj</c> and gate, up in one <c>gate_up_proj</c> (Phi-3).</param>
internal sealed record DecoderStyle(bool GemmaNorms, bool SandwichNorms, bool QkNorm, bool LocalRotary, bool EmbedScaleBuffer, bool FusedProjections)
{
    public static DecoderStyle Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        bool gemma3 = model.ModelType is "gemma3_text" or "gemma3";
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        return new DecoderStyle(
            GemmaNorms: model.ModelType.StartsWith("gemma", StringComparison.Ordinal),
            SandwichNorms: tensors.Any(t => t.Module == "pre_feedforward_layernorm"),
            QkNorm: tensors.Any(t => t.Module == "q_norm"),
            LocalRotary: gemma3,
            EmbedScaleBuffer: gemma3,
            FusedProjections: tensors.Any(t => t.Module == "qkv_proj"));
    }

    /// <summary>Elements of the non-parameter fp32 buffers, in creation order: rotary <c>inv_freq</c> (d/2 per table), <c>embed_scale</c>.</summary>
    public IEnumerable<(long Elements, ScalarType Type)> Buffers(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        long half = (model.LatentAttention?.RopeHeadDimension ?? model.HeadDimension) / 2;
        long[] elements = [half, .. LocalRotary ? [half] : Array.Empty<long>(), .. EmbedScaleBuffer ? [1L] : Array.Empty<long>()];
        return elements.Select(n => (n, ScalarType.Float32));
    }

    /// <summary>
    /// The order the modules create a block's tensors, as far as it matters to the allocator (within its small and large
    /// pools): attention weights, their biases, q/k norms, the block norms, then the MLP.
    /// </summary>
    public static int Rank(TensorSpec tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        bool bias = tensor.Name.EndsWith(".bias", StringComparison.Ordinal);
        int projection = tensor.Module switch
        {
            "q_proj" or "qkv_proj" => 0,
            "k_proj" => 1,
            "v_proj" => 2,
            "o_proj" => 3,
            _ => -1,
        };
        if (projection >= 0 && tensor.Role == TensorRole.Attention)
        {
            return bias ? 4 + projection : projection;
        }

        return tensor.Module switch
        {
            "q_norm" => 8,
            "k_norm" => 9,
            "input_layernorm" => 10,
            "post_attention_layernorm" => 11,
            "pre_feedforward_layernorm" => 12,
            "post_feedforward_layernorm" => 13,
            _ => 14,
        };
    }
}
