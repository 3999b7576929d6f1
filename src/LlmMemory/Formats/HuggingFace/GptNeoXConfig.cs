using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>GPT-NeoX and Pythia (<c>gpt_neox</c>): fused QKV with bias, two LayerNorms per block, untied <c>embed_out</c>.</summary>
/// <remarks>transformers <c>modeling_gpt_neox.py</c>; rotary <c>inv_freq</c> buffers are not parameters. <c>attention_bias</c> defaults to true.</remarks>
internal static class GptNeoXConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int inner = c.Size(Limits.MaxIntermediate, "intermediate_size");
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        bool bias = c.Bool("attention_bias", true);
        bool tied = c.Bool("tie_word_embeddings", false);

        var b = new InventoryBuilder();
        b.Embedding("gpt_neox.embed_in.weight", TensorRole.TokenEmbedding, vocab, hidden, "embed_in");
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"gpt_neox.layers.{layer}";
            b.Norm(p, "input_layernorm", layer, hidden, withBias: true);
            b.Norm(p, "post_attention_layernorm", layer, hidden, withBias: true);
            b.Linear($"{p}.attention", "query_key_value", TensorRole.Attention, layer, 3L * hidden, hidden, bias);
            b.Linear($"{p}.attention", "dense", TensorRole.Attention, layer, hidden, hidden, bias);
            b.Linear($"{p}.mlp", "dense_h_to_4h", TensorRole.FeedForward, layer, inner, hidden, bias: true);
            b.Linear($"{p}.mlp", "dense_4h_to_h", TensorRole.FeedForward, layer, hidden, inner, bias: true);
        }

        b.Norm("gpt_neox", "final_layer_norm", null, hidden, withBias: true);
        if (!tied)
        {
            b.Linear("", "embed_out", TensorRole.OutputHead, null, vocab, hidden, bias: false);
        }

        return Classic.Decoder(c, modelType, ModelFamily.GptNeoX, b, layers, hidden, heads, heads, headDim, inner, vocab,
            c.OptionalSize(Limits.MaxPositions, "max_position_embeddings"), tied, gated: false) with
            {
                ParallelBlock = c.Bool("use_parallel_residual", true),
                // GPTNeoXAttention: rotary_ndims = int(head_size * rotary_pct) (partial_rotary_factor in newer configs), 0.25 by
                // default (configuration_gpt_neox.py).
                RotaryDimension = (int)(headDim * RotaryFraction(c)),
                // configuration_gpt_neox.py: hidden_dropout = 0.0, which GPTNeoXModel.emb_dropout and each layer's
                // post_attention_dropout and post_mlp_dropout use.
                EmbeddingDropout = Common.Probability(c, "hidden_dropout", 0.0),
                ResidualDropout = Common.Probability(c, "hidden_dropout", 0.0),
            };
    }

    private const double DefaultRotaryFraction = 0.25;

    private static double RotaryFraction(ConfigObject c)
    {
        string key = c.Has("partial_rotary_factor") ? "partial_rotary_factor" : "rotary_pct";
        double f = c.Number(key) ?? DefaultRotaryFraction;
        return f is > 0 and <= 1 ? f : throw new ModelFormatException(c.Source, key, $"is {f}, not a fraction in (0, 1].");
    }
}
