using LlmMemory.Models;

namespace LlmMemory.Estimation.Weights;

/// <summary>The tensor categories llama.cpp's quantizer distinguishes (GGUF names <c>attn_v</c>, <c>ffn_down</c>, …).</summary>
internal enum GgufCategory
{
    TokenEmbedding,
    PositionEmbedding,
    Output,
    Norm,
    AttnQ,
    AttnK,
    AttnV,
    AttnQkv,
    AttnOutput,
    AttnKvB,
    AttnOther,
    FfnGate,
    FfnUp,
    FfnDown,
    ExpertGate,
    ExpertUp,
    ExpertDown,
    Router,
    Vector,
    Other,
}

/// <summary>Maps Hugging Face module names to the GGUF categories of <c>convert_hf_to_gguf.py</c> (<c>q_proj</c> → <c>attn_q</c>, …).</summary>
internal static class GgufCategories
{
    public static GgufCategory Of(TensorSpec t)
    {
        if (t.Form is TensorForm.Bias or TensorForm.Vector)
        {
            return t.Role == TensorRole.Norm ? GgufCategory.Norm : GgufCategory.Vector;
        }

        return t.Role switch
        {
            TensorRole.TokenEmbedding => GgufCategory.TokenEmbedding,
            TensorRole.PositionEmbedding or TensorRole.TokenTypeEmbedding => GgufCategory.PositionEmbedding,
            TensorRole.OutputHead => GgufCategory.Output,
            TensorRole.Norm => GgufCategory.Norm,
            TensorRole.Router => GgufCategory.Router,
            TensorRole.Attention => t.Module switch
            {
                "q_proj" or "query" or "q" or "q_a_proj" or "q_b_proj" => GgufCategory.AttnQ,
                "k_proj" or "key" or "k" => GgufCategory.AttnK,
                "v_proj" or "value" or "v" => GgufCategory.AttnV,
                "qkv_proj" or "query_key_value" or "c_attn" or "Wqkv" => GgufCategory.AttnQkv,
                "kv_b_proj" => GgufCategory.AttnKvB,
                "o_proj" or "dense" or "c_proj" or "out_proj" or "o" => GgufCategory.AttnOutput,
                _ => GgufCategory.AttnOther,
            },
            TensorRole.Expert => t.Module switch
            {
                "gate_proj" or "w1" => GgufCategory.ExpertGate,
                "down_proj" or "w2" or "output_linear" => GgufCategory.ExpertDown,
                _ => GgufCategory.ExpertUp,
            },
            TensorRole.FeedForward or TensorRole.SharedExpert => t.Module switch
            {
                "gate_proj" or "w1" or "wi_0" => GgufCategory.FfnGate,
                "down_proj" or "w2" or "dense_4h_to_h" or "c_proj" or "fc2" or "fc_out" or "wo" or "dense" when IsDown(t) => GgufCategory.FfnDown,
                "shared_expert_gate" => GgufCategory.Router,
                _ => GgufCategory.FfnUp,
            },
            _ => GgufCategory.Other,
        };
    }

    /// <summary>llama-quant.cpp <c>tensor_allows_quantization</c>: ≥ 2-D, not a norm, router or position embedding.</summary>
    public static bool Quantizable(GgufCategory category, TensorSpec t) =>
        t.Shape.Length >= 2 && category is not (GgufCategory.Norm or GgufCategory.Router or GgufCategory.PositionEmbedding or GgufCategory.Vector);

    /// <summary>A feed-forward matrix projecting back to the residual width (BERT's output.dense, GPT's c_proj).</summary>
    private static bool IsDown(TensorSpec t) => t.Module is not "dense" || t.OutFeatures < t.InFeatures;
}
