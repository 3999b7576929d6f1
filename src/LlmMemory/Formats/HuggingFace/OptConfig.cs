using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>OPT (<c>opt</c>): learned positions with 2 extra rows (offset 2), q/k/v/out and fc1/fc2 with bias, tied head.</summary>
/// <remarks>transformers <c>modeling_opt.py</c>: <c>OPTLearnedPositionalEmbedding(num_embeddings + 2)</c>; <c>project_in</c>/<c>project_out</c>
/// exist when <c>word_embed_proj_dim</c> differs from the hidden size (OPT-350m).</remarks>
internal static class OptConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "num_hidden_layers");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "num_attention_heads");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int inner = c.Size(Limits.MaxIntermediate, "ffn_dim");
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        int positions = c.Size(Limits.MaxPositions, "max_position_embeddings");
        int projection = c.OptionalSize(Limits.MaxHidden, "word_embed_proj_dim") ?? hidden;
        bool bias = c.Bool("enable_bias", true);
        bool affine = c.Bool("layer_norm_elementwise_affine", true);
        bool finalNorm = c.Bool("do_layer_norm_before", true) && !c.Bool("_remove_final_layer_norm", false);

        var b = new InventoryBuilder();
        b.Embedding("model.decoder.embed_tokens.weight", TensorRole.TokenEmbedding, vocab, projection, "embed_tokens");
        b.Embedding("model.decoder.embed_positions.weight", TensorRole.PositionEmbedding, positions + 2L, hidden, "embed_positions");
        if (projection != hidden)
        {
            b.Linear("model.decoder", "project_out", TensorRole.Other, null, projection, hidden, bias: false);
            b.Linear("model.decoder", "project_in", TensorRole.Other, null, hidden, projection, bias: false);
        }

        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"model.decoder.layers.{layer}";
            foreach (string module in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
            {
                b.Linear($"{p}.self_attn", module, TensorRole.Attention, layer, hidden, hidden, bias);
            }

            if (affine)
            {
                b.Norm(p, "self_attn_layer_norm", layer, hidden, withBias: true);
            }

            b.Linear(p, "fc1", TensorRole.FeedForward, layer, inner, hidden, bias);
            b.Linear(p, "fc2", TensorRole.FeedForward, layer, hidden, inner, bias);
            if (affine)
            {
                b.Norm(p, "final_layer_norm", layer, hidden, withBias: true);
            }
        }

        if (finalNorm && affine)
        {
            b.Norm("model.decoder", "final_layer_norm", null, hidden, withBias: true);
        }

        bool tied = c.Bool("tie_word_embeddings", true);
        if (!tied)
        {
            b.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, projection, bias: false);
        }

        return Classic.Decoder(c, modelType, ModelFamily.Opt, b, layers, hidden, heads, heads, headDim, inner, vocab, positions, tied, gated: false) with
        {
            // configuration_opt.py: activation_function = "relu", dropout = 0.1 (OPTDecoderLayer drops the attention output and
            // fc2's output with it; the embeddings are not dropped).
            ReluActivation = Activation(c) == "relu",
            ResidualDropout = Common.Probability(c, "dropout", 0.1),
        };
    }

    /// <summary>The MLP activations the replay knows for OPT: ReLU (every OPT checkpoint) or GELU.</summary>
    private static string Activation(ConfigObject c)
    {
        string activation = c.String("activation_function") ?? "relu";
        return activation is "relu" or "gelu"
            ? activation
            : throw new ModelFormatException(c.Source, "activation_function", $"is '{activation}'; the replay knows OPT with 'relu' or 'gelu'.");
    }
}
