using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>GPT-J (<c>gptj</c>): one LayerNorm per block feeding parallel attention and MLP; untied head with bias.</summary>
/// <remarks>transformers <c>modeling_gptj.py</c>: q/k/v/out projections without bias, <c>fc_in</c>/<c>fc_out</c> with bias.</remarks>
internal static class GptJConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "n_layer", "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "n_embd", "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "n_head", "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int inner = c.OptionalSize(Limits.MaxIntermediate, "n_inner") ?? checked(4 * hidden);
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        bool tied = c.Bool("tie_word_embeddings", false);

        var b = new InventoryBuilder();
        b.Embedding("transformer.wte.weight", TensorRole.TokenEmbedding, vocab, hidden, "wte");
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"transformer.h.{layer}";
            b.Norm(p, "ln_1", layer, hidden, withBias: true);
            foreach (string module in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                b.Linear($"{p}.attn", module, TensorRole.Attention, layer, hidden, hidden, bias: false);
            }

            b.Linear($"{p}.mlp", "fc_in", TensorRole.FeedForward, layer, inner, hidden, bias: true);
            b.Linear($"{p}.mlp", "fc_out", TensorRole.FeedForward, layer, hidden, inner, bias: true);
        }

        b.Norm("transformer", "ln_f", null, hidden, withBias: true);
        if (!tied)
        {
            b.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, hidden, bias: true);
        }

        return Classic.Decoder(c, modelType, ModelFamily.GptJ, b, layers, hidden, heads, heads, headDim, inner, vocab,
            c.OptionalSize(Limits.MaxPositions, "n_positions", "max_position_embeddings"), tied, gated: false) with
            {
                ParallelBlock = true,
                // configuration_gptj.py: rotary_dim = 64 (GPTJAttention rotates key[..., :rotary_dim], the whole head when it is
                // null); embd_pdrop = resid_pdrop = 0.0 (self.drop on the embeddings, resid_dropout and the MLP's dropout).
                RotaryDimension = c.IsNull("rotary_dim") ? null : c.OptionalSize(headDim, "rotary_dim") ?? Math.Min(DefaultRotaryDimension, headDim),
                EmbeddingDropout = Common.Probability(c, "embd_pdrop", 0.0),
                ResidualDropout = Common.Probability(c, "resid_pdrop", 0.0),
            };
    }

    private const int DefaultRotaryDimension = 64;
}
