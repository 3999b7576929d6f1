using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Inference;

/// <summary>What one cached token costs in one block: K and V row widths and their storage types (docs/memory-model.md §2.1).</summary>
/// <remarks>
/// GQA/MQA cache <c>n_kv × head_dim</c> per K and V; MLA caches one latent of <c>kv_lora_rank + qk_rope_head_dim</c> and no V
/// in engines that store the compressed form (vLLM, SGLang, llama.cpp), while transformers caches the decompressed
/// per-head K (heads × (nope + rope)) and V (heads × v_head_dim) (§2.3).
/// </remarks>
/// <param name="KeyWidth">Elements of K per token per block.</param>
/// <param name="ValueWidth">Elements of V per token per block (0 when V is not stored).</param>
/// <param name="KeyType">Storage of K.</param>
/// <param name="ValueType">Storage of V.</param>
internal sealed record KvLayout(long KeyWidth, long ValueWidth, DataType KeyType, DataType ValueType)
{
    /// <summary>Bytes of one token in one block: K row + V row in their (possibly block-quantized) types.</summary>
    public long BytesPerTokenPerLayer => KeyType.BytesFor(KeyWidth) + (ValueWidth == 0 ? 0 : ValueType.BytesFor(ValueWidth));

    /// <summary>The layout an engine uses for <paramref name="model"/> with <paramref name="kvHeadsPerDevice"/> KV heads on one device.</summary>
    public static KvLayout For(ModelArchitecture model, DataType keyType, DataType valueType, bool compressedLatent, int kvHeadsPerDevice)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.LatentAttention is LatentAttention mla)
        {
            return compressedLatent
                ? new KvLayout(mla.LatentWidth, 0, keyType, valueType)
                : new KvLayout((long)kvHeadsPerDevice * (mla.NopeHeadDimension + mla.RopeHeadDimension),
                    (long)kvHeadsPerDevice * mla.ValueHeadDimension, keyType, valueType);
        }

        return new KvLayout((long)kvHeadsPerDevice * model.HeadDimension, (long)kvHeadsPerDevice * model.ValueHeadDimension, keyType, valueType);
    }

    /// <summary>The bytes of one token in <paramref name="layers"/> layers, as terms: "2 × 32 layers × 1,024 × 2 B".</summary>
    public Formula PerToken(int layers)
    {
        Formula count = Formula.Count(layers, "layers");
        static Formula Row(long width, DataType type) => Formula.Count(width) * Formula.Bytes(type.BytesFor(width) / (double)width);
        return ValueWidth == 0 ? count * Formula.Count(KeyWidth, "latent") * Formula.Bytes(KeyType.BytesFor(KeyWidth) / (double)KeyWidth)
            : KeyType == ValueType && KeyWidth == ValueWidth ? Formula.Count(2) * count * Row(KeyWidth, KeyType)
            : count * (Row(KeyWidth, KeyType) + Row(ValueWidth, ValueType));
    }
}
