using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>The architecture record of the pre-Llama families, which share LayerNorm and full attention.</summary>
internal static class Classic
{
    public static ModelArchitecture Decoder(ConfigObject c, string modelType, ModelFamily family, InventoryBuilder builder,
        int layers, int hidden, int heads, int kvHeads, int headDim, int intermediate, int vocab, int? positions, bool tied, bool gated) =>
        new()
        {
            ModelType = modelType,
            Family = family,
            LayerCount = layers,
            HiddenSize = hidden,
            AttentionHeadCount = heads,
            KeyValueHeadCount = kvHeads,
            HeadDimension = headDim,
            ValueHeadDimension = headDim,
            IntermediateSize = intermediate,
            VocabularySize = vocab,
            MaxPositions = positions,
            TiedEmbeddings = tied,
            GatedFeedForward = gated,
            LayerNormWithBias = true,
            LayerAttention = Common.AllFull(layers),
            UseCache = c.Bool("use_cache", true),
            StoredType = Common.ReadStoredType(c),
            Quantization = Common.ReadQuantization(c),
            Tensors = builder.Build(c.Source),
        };
}
