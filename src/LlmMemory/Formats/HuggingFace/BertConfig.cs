using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>BERT (<c>bert</c>): the encoder as <c>BertModel</c>, with its pooler and without a task head.</summary>
/// <remarks>
/// transformers <c>modeling_bert.py</c>. The published 109,482,240 for bert-base-uncased counts <c>BertModel</c> with the
/// pooler (models/README.md). A task head (MLM transform, classifier) is not in the inventory.
/// </remarks>
internal static class BertConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int inner = c.Size(Limits.MaxIntermediate, "intermediate_size");
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        int positions = c.Size(Limits.MaxPositions, "max_position_embeddings");
        int types = c.OptionalSize(1 << 16, "type_vocab_size") ?? 2;

        var b = new InventoryBuilder();
        b.Embedding("bert.embeddings.word_embeddings.weight", TensorRole.TokenEmbedding, vocab, hidden, "word_embeddings");
        b.Embedding("bert.embeddings.position_embeddings.weight", TensorRole.PositionEmbedding, positions, hidden, "position_embeddings");
        b.Embedding("bert.embeddings.token_type_embeddings.weight", TensorRole.TokenTypeEmbedding, types, hidden, "token_type_embeddings");
        b.Norm("bert.embeddings", "LayerNorm", null, hidden, withBias: true);
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"bert.encoder.layer.{layer}";
            foreach (string module in new[] { "query", "key", "value" })
            {
                b.Linear($"{p}.attention.self", module, TensorRole.Attention, layer, hidden, hidden, bias: true);
            }

            b.Linear($"{p}.attention.output", "dense", TensorRole.Attention, layer, hidden, hidden, bias: true);
            b.Norm($"{p}.attention.output", "LayerNorm", layer, hidden, withBias: true);
            b.Linear($"{p}.intermediate", "dense", TensorRole.FeedForward, layer, inner, hidden, bias: true);
            b.Linear($"{p}.output", "dense", TensorRole.FeedForward, layer, hidden, inner, bias: true);
            b.Norm($"{p}.output", "LayerNorm", layer, hidden, withBias: true);
        }

        b.Linear("bert.pooler", "dense", TensorRole.Other, null, hidden, hidden, bias: true);
        return Classic.Decoder(c, modelType, ModelFamily.Bert, b, layers, hidden, heads, heads, headDim, inner, vocab, positions,
            tied: true, gated: false);
    }
}
