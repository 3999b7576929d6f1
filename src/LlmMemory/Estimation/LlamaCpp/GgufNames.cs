using LlmMemory.Models;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The GGUF name <c>convert_hf_to_gguf.py</c> gives a Hugging Face tensor (<c>gguf-py/gguf/tensor_mapping.py</c>):
/// <c>model.layers.3.self_attn.v_proj.weight</c> → <c>blk.3.attn_v.weight</c>.
/// </summary>
/// <remarks>
/// llama-quant.cpp picks types by substrings of these names (<c>attn_v.weight</c>, <c>ffn_down</c>, <c>_norm.weight</c>,
/// <c>ffn_gate_inp.weight</c>, …), so a name only has to carry the right stem; tensors without a GGUF counterpart keep their
/// Hugging Face name under <c>blk.N.</c>.
/// </remarks>
internal static class GgufNames
{
    public static string Of(TensorSpec t, string modelType)
    {
        ArgumentNullException.ThrowIfNull(t);
        string suffix = t.Form == TensorForm.Bias || t.Name.EndsWith(".bias", StringComparison.Ordinal) ? "bias" : "weight";
        string stem = t.Layer is int layer ? $"blk.{layer}.{BlockStem(t, modelType)}" : GlobalStem(t);
        return $"{stem}.{suffix}";
    }

    private static string GlobalStem(TensorSpec t) => t.Module == "relative_attention_bias"
        ? (t.Name.StartsWith("decoder", StringComparison.Ordinal) ? "dec" : "enc") + ".blk.0.attn_rel_b"
        : t.Role switch
    {
        TensorRole.TokenEmbedding => "token_embd",
        TensorRole.PositionEmbedding => "position_embd",
        TensorRole.TokenTypeEmbedding => "token_types",
        TensorRole.OutputHead => "output",
        TensorRole.Norm => t.Name.Contains("emb", StringComparison.OrdinalIgnoreCase) ? "token_embd_norm" : "output_norm",
        _ => t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal)
            ? t.Name[..t.Name.LastIndexOf('.')]
            : t.Name,
    };

    private static string BlockStem(TensorSpec t, string modelType) => t.Role switch
    {
        TensorRole.Norm => NormStem(t.Module, modelType),
        TensorRole.Attention => t.Module switch
        {
            "q_proj" or "query" or "q" => "attn_q",
            "k_proj" or "key" or "k" => "attn_k",
            "v_proj" or "value" or "v" => "attn_v",
            "qkv_proj" or "query_key_value" or "c_attn" or "Wqkv" => "attn_qkv",
            "kv_b_proj" => "attn_kv_b",
            "kv_a_proj_with_mqa" => "attn_kv_a_mqa",
            "q_a_proj" => "attn_q_a",
            "q_b_proj" => "attn_q_b",
            "o_proj" or "dense" or "c_proj" or "out_proj" or "o" => "attn_output",
            "sinks" => "attn_sinks",
            string other => "attn_" + other,
        },
        TensorRole.Expert => t.Module switch
        {
            "gate_proj" or "w1" => "ffn_gate_exps",
            "down_proj" or "w2" or "output_linear" => "ffn_down_exps",
            "gate_up_proj" or "input_linear" => "ffn_gate_up_exps",
            _ => "ffn_up_exps",
        },
        TensorRole.SharedExpert => t.Module == "shared_expert_gate" ? "ffn_gate_inp_shexp" : FeedForwardStem(t) + "_shexp",
        TensorRole.FeedForward => FeedForwardStem(t),
        TensorRole.Router => t.Form == TensorForm.Vector && t.Name.Contains("bias", StringComparison.Ordinal) ? "exp_probs_b" : "ffn_gate_inp",
        _ => t.Module,
    };

    private static string FeedForwardStem(TensorSpec t) => t.Module switch
    {
        "gate_proj" or "w1" or "wi_0" => "ffn_gate",
        "down_proj" or "w2" or "dense_4h_to_h" or "c_proj" or "fc2" or "fc_out" or "wo" or "output_linear" => "ffn_down",
        "dense" when t.Shape.Length == 2 && t.Shape[0] < t.Shape[1] => "ffn_down",
        _ => "ffn_up",
    };

    /// <summary>Norm names; every one ends in <c>_norm</c>, which keeps it out of quantization.</summary>
    private static string NormStem(string module, string modelType) => module switch
    {
        "input_layernorm" or "ln_1" or "attention_norm" or "self_attn_layer_norm" or "ln_attn" => "attn_norm",
        "post_attention_layernorm" when modelType.StartsWith("gemma", StringComparison.Ordinal) => "post_attention_norm",
        "post_attention_layernorm" or "ln_2" or "ffn_norm" or "final_layer_norm" or "pre_feedforward_layernorm" or "ln_mlp" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "q_norm" => "attn_q_norm",
        "k_norm" => "attn_k_norm",
        "q_a_layernorm" => "attn_q_a_norm",
        "kv_a_layernorm" => "attn_kv_a_norm",
        string other => other.EndsWith("_norm", StringComparison.Ordinal) ? other : other + "_norm",
    };
}
