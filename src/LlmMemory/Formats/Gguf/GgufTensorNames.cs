using System.Collections.Frozen;
using System.Globalization;
using System.Text.RegularExpressions;
using LlmMemory.Models;

namespace LlmMemory.Formats.Gguf;

/// <summary>What llama.cpp tensor names mean: role, module and form (llama.cpp <c>gguf-py/gguf/constants.py</c> <c>TENSOR_NAMES</c>).</summary>
internal static partial class GgufTensorNames
{
    /// <summary>The meaning of one tensor name.</summary>
    /// <param name="Role">What it does.</param>
    /// <param name="Module">The Hugging Face leaf module it corresponds to (the LoRA target name).</param>
    /// <param name="Form">Module kind for its weight (a <c>.bias</c> is always <see cref="TensorForm.Bias"/>).</param>
    /// <param name="IsBuffer">Stored but not a parameter (rope frequency tables).</param>
    public sealed record Meaning(TensorRole Role, string Module, TensorForm Form, bool IsBuffer = false);

    private static readonly FrozenDictionary<string, Meaning> Global = new Dictionary<string, Meaning>
    {
        ["token_embd"] = new(TensorRole.TokenEmbedding, "embed_tokens", TensorForm.Embedding),
        ["position_embd"] = new(TensorRole.PositionEmbedding, "embed_positions", TensorForm.Embedding),
        ["token_types"] = new(TensorRole.TokenTypeEmbedding, "token_type_embeddings", TensorForm.Embedding),
        ["token_embd_norm"] = new(TensorRole.Norm, "embed_layer_norm", TensorForm.Vector),
        ["output_norm"] = new(TensorRole.Norm, "norm", TensorForm.Vector),
        ["output"] = new(TensorRole.OutputHead, "lm_head", TensorForm.LinearWeight),
        // Precomputed rotary frequency factors (Llama 3.1 rope scaling, Phi-3 LongRoPE): buffers, like HF's inv_freq.
        ["rope_freqs"] = new(TensorRole.Other, "rotary_emb", TensorForm.Vector, IsBuffer: true),
        ["rope_factors_long"] = new(TensorRole.Other, "rotary_emb", TensorForm.Vector, IsBuffer: true),
        ["rope_factors_short"] = new(TensorRole.Other, "rotary_emb", TensorForm.Vector, IsBuffer: true),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, Meaning> Block = new Dictionary<string, Meaning>
    {
        ["attn_norm"] = new(TensorRole.Norm, "input_layernorm", TensorForm.Vector),
        ["attn_norm_2"] = new(TensorRole.Norm, "input_layernorm_2", TensorForm.Vector),
        ["ffn_norm"] = new(TensorRole.Norm, "post_attention_layernorm", TensorForm.Vector),
        ["post_attention_norm"] = new(TensorRole.Norm, "post_attention_layernorm", TensorForm.Vector),
        ["post_ffw_norm"] = new(TensorRole.Norm, "post_feedforward_layernorm", TensorForm.Vector),
        ["layer_output_norm"] = new(TensorRole.Norm, "layer_output_norm", TensorForm.Vector),
        ["attn_q_norm"] = new(TensorRole.Norm, "q_norm", TensorForm.Vector),
        ["attn_k_norm"] = new(TensorRole.Norm, "k_norm", TensorForm.Vector),
        ["attn_q_a_norm"] = new(TensorRole.Norm, "q_a_layernorm", TensorForm.Vector),
        ["attn_kv_a_norm"] = new(TensorRole.Norm, "kv_a_layernorm", TensorForm.Vector),
        ["attn_q"] = new(TensorRole.Attention, "q_proj", TensorForm.LinearWeight),
        ["attn_k"] = new(TensorRole.Attention, "k_proj", TensorForm.LinearWeight),
        ["attn_v"] = new(TensorRole.Attention, "v_proj", TensorForm.LinearWeight),
        ["attn_qkv"] = new(TensorRole.Attention, "qkv_proj", TensorForm.LinearWeight),
        ["attn_output"] = new(TensorRole.Attention, "o_proj", TensorForm.LinearWeight),
        ["attn_q_a"] = new(TensorRole.Attention, "q_a_proj", TensorForm.LinearWeight),
        ["attn_q_b"] = new(TensorRole.Attention, "q_b_proj", TensorForm.LinearWeight),
        ["attn_kv_a_mqa"] = new(TensorRole.Attention, "kv_a_proj_with_mqa", TensorForm.LinearWeight),
        ["attn_kv_b"] = new(TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        ["attn_k_b"] = new(TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        ["attn_v_b"] = new(TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        ["attn_sinks"] = new(TensorRole.Attention, "sinks", TensorForm.Vector),
        ["attn_rot_embd"] = new(TensorRole.Other, "rotary_emb", TensorForm.Vector, IsBuffer: true),
        ["ffn_gate"] = new(TensorRole.FeedForward, "gate_proj", TensorForm.LinearWeight),
        ["ffn_up"] = new(TensorRole.FeedForward, "up_proj", TensorForm.LinearWeight),
        ["ffn_down"] = new(TensorRole.FeedForward, "down_proj", TensorForm.LinearWeight),
        ["ffn_gate_inp"] = new(TensorRole.Router, "gate", TensorForm.LinearWeight),
        ["exp_probs_b"] = new(TensorRole.Router, "gate", TensorForm.Vector),
        ["ffn_gate_exps"] = new(TensorRole.Expert, "gate_proj", TensorForm.ExpertLinear),
        ["ffn_up_exps"] = new(TensorRole.Expert, "up_proj", TensorForm.ExpertLinear),
        ["ffn_down_exps"] = new(TensorRole.Expert, "down_proj", TensorForm.ExpertLinear),
        ["ffn_gate_up_exps"] = new(TensorRole.Expert, "gate_up_proj", TensorForm.ExpertLinear),
        ["ffn_gate_shexp"] = new(TensorRole.SharedExpert, "gate_proj", TensorForm.LinearWeight),
        ["ffn_up_shexp"] = new(TensorRole.SharedExpert, "up_proj", TensorForm.LinearWeight),
        ["ffn_down_shexp"] = new(TensorRole.SharedExpert, "down_proj", TensorForm.LinearWeight),
        ["ffn_gate_inp_shexp"] = new(TensorRole.SharedExpert, "shared_expert_gate", TensorForm.LinearWeight),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>Module names where a family's Hugging Face modules differ from Llama's (so LoRA targets match the checkpoint's).</summary>
    private static readonly FrozenDictionary<(string, string), string> FamilyModules = new Dictionary<(string, string), string>
    {
        [("gpt_neox", "qkv_proj")] = "query_key_value", [("gpt_neox", "o_proj")] = "dense",
        [("gpt_neox", "up_proj")] = "dense_h_to_4h", [("gpt_neox", "down_proj")] = "dense_4h_to_h",
        [("gpt_neox", "embed_tokens")] = "embed_in", [("gpt_neox", "lm_head")] = "embed_out",
        [("phi3", "up_proj")] = "gate_up_proj",
        [("gpt_oss", "gate")] = "router",
        [("granitemoe", "gate")] = "layer",
    }.ToFrozenDictionary();

    /// <summary>The meaning of <paramref name="name"/>, its block index, or null for a name llama.cpp does not define.</summary>
    /// <remarks>DeepSeek's multi-token-prediction tensors (<c>blk.N.nextn.*</c>) are returned as buffers: counted apart, as in HF.</remarks>
    public static (Meaning Meaning, int? Layer)? Describe(string name, string modelType)
    {
        bool bias = name.EndsWith(".bias", StringComparison.Ordinal);
        string stem = bias ? name[..^5] : name.EndsWith(".weight", StringComparison.Ordinal) ? name[..^7] : name;
        Meaning? meaning;
        int? layer = null;
        Match block = BlockName().Match(stem);
        if (block.Success)
        {
            layer = int.Parse(block.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture);
            string part = block.Groups[2].Value;
            meaning = part.StartsWith("nextn.", StringComparison.Ordinal)
                ? new Meaning(TensorRole.Other, part[6..], TensorForm.Vector, IsBuffer: true)
                : Block.GetValueOrDefault(part);
        }
        else
        {
            meaning = Global.GetValueOrDefault(stem);
        }

        if (meaning is null)
        {
            return null;
        }

        string module = FamilyModules.GetValueOrDefault((modelType, meaning.Module), meaning.Module);
        TensorForm form = bias ? TensorForm.Bias : meaning.Form;
        return (meaning with { Module = module, Form = form }, layer);
    }

    [GeneratedRegex(@"^blk\.(\d{1,9})\.(.+)$")]
    private static partial Regex BlockName();
}
