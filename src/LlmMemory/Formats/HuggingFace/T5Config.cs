using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>T5 (<c>t5</c>): encoder-decoder with RMS-style LayerNorm (weight only), relative position buckets in the first block of each stack.</summary>
/// <remarks>
/// transformers <c>modeling_t5.py</c>: attention width is heads × <c>d_kv</c> (not <c>d_model</c>); <c>feed_forward_proj</c>
/// "gated-gelu" (T5 v1.1, Flan-T5) uses <c>wi_0</c>/<c>wi_1</c>; the head is tied unless <c>tie_word_embeddings</c> is false.
/// </remarks>
internal static class T5Config
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int model = c.Size(Limits.MaxHidden, "d_model");
        int headDim = c.Size(Limits.MaxHidden, "d_kv");
        int heads = c.Size(Limits.MaxHeads, "num_heads");
        int inner = c.Size(Limits.MaxIntermediate, "d_ff");
        int encoderLayers = c.Size(Limits.MaxLayers, "num_layers");
        int decoderLayers = c.OptionalSize(Limits.MaxLayers, "num_decoder_layers") ?? encoderLayers;
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        int buckets = c.OptionalSize(1 << 16, "relative_attention_num_buckets") ?? 32;
        bool gated = (c.String("feed_forward_proj") ?? "relu").StartsWith("gated", StringComparison.Ordinal);
        bool tied = c.Bool("tie_word_embeddings", true);
        long attentionWidth = (long)heads * headDim;

        var b = new InventoryBuilder();
        b.Embedding("shared.weight", TensorRole.TokenEmbedding, vocab, model, "shared");
        foreach ((string stack, int layers, bool decoder) in new[] { ("encoder", encoderLayers, false), ("decoder", decoderLayers, true) })
        {
            for (int layer = 0; layer < layers; layer++)
            {
                string p = $"{stack}.block.{layer}.layer";
                AddAttention(b, $"{p}.0.SelfAttention", layer, model, attentionWidth);
                if (layer == 0)
                {
                    b.Embedding($"{p}.0.SelfAttention.relative_attention_bias.weight", TensorRole.Other, buckets, heads, "relative_attention_bias");
                }

                b.Norm($"{p}.0", "layer_norm", layer, model, withBias: false);
                int ff = 1;
                if (decoder)
                {
                    AddAttention(b, $"{p}.1.EncDecAttention", layer, model, attentionWidth);
                    b.Norm($"{p}.1", "layer_norm", layer, model, withBias: false);
                    ff = 2;
                }

                string dense = $"{p}.{ff}.DenseReluDense";
                if (gated)
                {
                    b.Linear(dense, "wi_0", TensorRole.FeedForward, layer, inner, model, bias: false);
                    b.Linear(dense, "wi_1", TensorRole.FeedForward, layer, inner, model, bias: false);
                }
                else
                {
                    b.Linear(dense, "wi", TensorRole.FeedForward, layer, inner, model, bias: false);
                }

                b.Linear(dense, "wo", TensorRole.FeedForward, layer, model, inner, bias: false);
                b.Norm($"{p}.{ff}", "layer_norm", layer, model, withBias: false);
            }

            b.Norm(stack, "final_layer_norm", null, model, withBias: false);
        }

        if (!tied)
        {
            b.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, model, bias: false);
        }

        return Classic.Decoder(c, modelType, ModelFamily.T5, b, decoderLayers, model, heads, heads, headDim, inner, vocab, null, tied, gated)
            with { EncoderLayerCount = encoderLayers, LayerNormWithBias = false };
    }

    private static void AddAttention(InventoryBuilder b, string prefix, int layer, long model, long width)
    {
        b.Linear(prefix, "q", TensorRole.Attention, layer, width, model, bias: false);
        b.Linear(prefix, "k", TensorRole.Attention, layer, width, model, bias: false);
        b.Linear(prefix, "v", TensorRole.Attention, layer, width, model, bias: false);
        b.Linear(prefix, "o", TensorRole.Attention, layer, model, width, bias: false);
    }
}
