using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>Falcon (<c>falcon</c>, legacy <c>RefinedWeb</c>/<c>RefinedWebModel</c>): fused multi-query or grouped QKV, parallel attention.</summary>
/// <remarks>
/// transformers <c>modeling_falcon.py</c>. The new decoder architecture (Falcon-40B/180B; legacy <c>RefinedWeb</c> with
/// <c>n_head_kv</c>) has <c>ln_attn</c> and <c>ln_mlp</c>; Falcon-7B's parallel block has one <c>input_layernorm</c>.
/// QKV width: (heads + 2·kv_heads)·head_dim for the new architecture, (heads + 2)·head_dim for multi-query, 3·hidden otherwise.
/// </remarks>
internal static class FalconConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType, string declaredType)
    {
        int layers = c.Size(Limits.MaxLayers, "num_hidden_layers", "n_layer");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size", "n_embd");
        int heads = c.Size(Limits.MaxHeads, "num_attention_heads", "n_head");
        int headDim = Common.DivideHeads(c, hidden, heads);
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        bool newArchitecture = c.Bool("new_decoder_architecture", declaredType == "RefinedWeb");
        bool multiQuery = c.Bool("multi_query", true);
        bool parallel = c.Bool("parallel_attn", true);
        bool bias = c.Bool("bias", false);
        int kvHeads = newArchitecture
            ? Common.CheckKvHeads(c, heads, c.Size(Limits.MaxHeads, "num_kv_heads", "n_head_kv"), c.FirstPresent("num_attention_heads", "n_head") ?? "num_attention_heads",
                c.FirstPresent("num_kv_heads", "n_head_kv") ?? "num_kv_heads")
            : multiQuery ? 1 : heads;
        int inner = c.OptionalSize(Limits.MaxIntermediate, "ffn_hidden_size") ?? checked(4 * hidden);

        var b = new InventoryBuilder();
        b.Embedding("transformer.word_embeddings.weight", TensorRole.TokenEmbedding, vocab, hidden, "word_embeddings");
        for (int layer = 0; layer < layers; layer++)
        {
            string p = $"transformer.h.{layer}";
            if (newArchitecture)
            {
                b.Norm(p, "ln_attn", layer, hidden, withBias: true);
                b.Norm(p, "ln_mlp", layer, hidden, withBias: true);
            }
            else
            {
                b.Norm(p, "input_layernorm", layer, hidden, withBias: true);
                if (!parallel)
                {
                    b.Norm(p, "post_attention_layernorm", layer, hidden, withBias: true);
                }
            }

            b.Linear($"{p}.self_attention", "query_key_value", TensorRole.Attention, layer, (heads + 2L * kvHeads) * headDim, hidden, bias);
            b.Linear($"{p}.self_attention", "dense", TensorRole.Attention, layer, hidden, hidden, bias);
            b.Linear($"{p}.mlp", "dense_h_to_4h", TensorRole.FeedForward, layer, inner, hidden, bias);
            b.Linear($"{p}.mlp", "dense_4h_to_h", TensorRole.FeedForward, layer, hidden, inner, bias);
        }

        b.Norm("transformer", "ln_f", null, hidden, withBias: true);
        bool tied = c.Bool("tie_word_embeddings", true);
        if (!tied)
        {
            b.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, hidden, bias: false);
        }

        return Classic.Decoder(c, modelType, ModelFamily.Falcon, b, layers, hidden, heads, kvHeads, headDim, inner, vocab,
            c.OptionalSize(Limits.MaxPositions, "max_position_embeddings"), tied, gated: false) with { ParallelBlock = parallel };
    }
}
