using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>GPT-2 (<c>gpt2</c>) and GPT-BigCode (<c>gpt_bigcode</c>, multi-query): learned positions, Conv1D projections with bias, tied head.</summary>
/// <remarks>Shapes from transformers <c>modeling_gpt2.py</c> / <c>modeling_gpt_bigcode.py</c>; the causal-mask buffer <c>attn.bias</c> of old checkpoints is not a parameter.</remarks>
internal static class Gpt2Config
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "n_layer", "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "n_embd", "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "n_head", "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int inner = c.OptionalSize(Limits.MaxIntermediate, "n_inner") ?? checked(4 * hidden);
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        int positions = c.Size(Limits.MaxPositions, "n_positions", "max_position_embeddings");
        bool multiQuery = modelType == "gpt_bigcode" && c.Bool("multi_query", true);
        int kvHeads = multiQuery ? 1 : heads;

        var b = new InventoryBuilder();
        b.Embedding("transformer.wte.weight", TensorRole.TokenEmbedding, vocab, hidden, "wte");
        b.Embedding("transformer.wpe.weight", TensorRole.PositionEmbedding, positions, hidden, "wpe");
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"transformer.h.{layer}";
            b.Norm(p, "ln_1", layer, hidden, withBias: true);
            b.Linear($"{p}.attn", "c_attn", TensorRole.Attention, layer, hidden + 2L * kvHeads * headDim, hidden, bias: true);
            b.Linear($"{p}.attn", "c_proj", TensorRole.Attention, layer, hidden, hidden, bias: true);
            b.Norm(p, "ln_2", layer, hidden, withBias: true);
            b.Linear($"{p}.mlp", "c_fc", TensorRole.FeedForward, layer, inner, hidden, bias: true);
            b.Linear($"{p}.mlp", "c_proj", TensorRole.FeedForward, layer, hidden, inner, bias: true);
        }

        b.Norm("transformer", "ln_f", null, hidden, withBias: true);
        return Classic.Decoder(c, modelType, ModelFamily.Gpt2, b, layers, hidden, heads, kvHeads, headDim, inner, vocab, positions,
            tied: c.Bool("tie_word_embeddings", true), gated: false) with
            {
                // configuration_gpt2.py / configuration_gpt_bigcode.py: embd_pdrop = resid_pdrop = 0.1 by default.
                EmbeddingDropout = Common.Probability(c, "embd_pdrop", DefaultDropout),
                ResidualDropout = Common.Probability(c, "resid_pdrop", DefaultDropout),
            };
    }

    private const double DefaultDropout = 0.1;
}
