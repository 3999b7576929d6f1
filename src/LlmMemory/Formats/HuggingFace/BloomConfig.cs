using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>BLOOM (<c>bloom</c>): ALiBi (no position parameters), LayerNorm after the embeddings, fused QKV with bias, tied head.</summary>
/// <remarks>transformers <c>modeling_bloom.py</c>.</remarks>
internal static class BloomConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "n_layer", "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size", "n_embed");
        int heads = c.Size(Limits.MaxHeads, "n_head", "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        int inner = checked(4 * hidden);

        var b = new InventoryBuilder();
        b.Embedding("transformer.word_embeddings.weight", TensorRole.TokenEmbedding, vocab, hidden, "word_embeddings");
        b.Norm("transformer", "word_embeddings_layernorm", null, hidden, withBias: true);
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"transformer.h.{layer}";
            b.Norm(p, "input_layernorm", layer, hidden, withBias: true);
            b.Linear($"{p}.self_attention", "query_key_value", TensorRole.Attention, layer, 3L * hidden, hidden, bias: true);
            b.Linear($"{p}.self_attention", "dense", TensorRole.Attention, layer, hidden, hidden, bias: true);
            b.Norm(p, "post_attention_layernorm", layer, hidden, withBias: true);
            b.Linear($"{p}.mlp", "dense_h_to_4h", TensorRole.FeedForward, layer, inner, hidden, bias: true);
            b.Linear($"{p}.mlp", "dense_4h_to_h", TensorRole.FeedForward, layer, hidden, inner, bias: true);
        }

        b.Norm("transformer", "ln_f", null, hidden, withBias: true);
        bool tied = c.Bool("tie_word_embeddings", true);
        if (!tied)
        {
            b.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, hidden, bias: false);
        }

        return Classic.Decoder(c, modelType, ModelFamily.Bloom, b, layers, hidden, heads, heads, headDim, inner, vocab,
            c.OptionalSize(Limits.MaxPositions, "seq_length", "max_position_embeddings"), tied, gated: false) with
            {
                // configuration_bloom.py: hidden_dropout = 0.0; BloomAttention and BloomMLP end in
                // dropout_add(x, residual, hidden_dropout, training). The embeddings are not dropped.
                ResidualDropout = Common.Probability(c, "hidden_dropout", 0.0),
            };
    }
}
