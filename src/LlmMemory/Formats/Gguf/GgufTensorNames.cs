using System.Collections.Frozen;
using System.Globalization;
using System.Text.RegularExpressions;
using LlmMemory.Models;

namespace LlmMemory.Formats.Gguf;

/// <summary>
/// llama.cpp's tensor names and the Hugging Face modules they are converted from, in one table read both ways: a GGUF
/// file's names are described by it (<see cref="Describe"/>), and a config-described model's tensors are named by it as
/// <c>convert_hf_to_gguf.py</c> would name them (<see cref="NameOf"/>). Sources: llama.cpp <c>gguf-py/gguf/constants.py</c>
/// (<c>TENSOR_NAMES</c>) and <c>gguf-py/gguf/tensor_mapping.py</c> (the Hugging Face names of each).
/// </summary>
internal static partial class GgufTensorNames
{
    /// <summary>The meaning of one tensor name.</summary>
    /// <param name="Role">What it does.</param>
    /// <param name="Module">The Hugging Face leaf module it corresponds to (the LoRA target name).</param>
    /// <param name="Form">Module kind for its weight (a <c>.bias</c> is always <see cref="TensorForm.Bias"/>).</param>
    /// <param name="IsBuffer">Stored but not a parameter (rope frequency tables).</param>
    public sealed record Meaning(TensorRole Role, string Module, TensorForm Form, bool IsBuffer = false);

    /// <summary>One row of the table.</summary>
    /// <param name="Name">The llama.cpp name without <c>blk.N.</c> and <c>.weight</c>/<c>.bias</c>.</param>
    /// <param name="Meaning">What it holds; its module is Llama's (see <see cref="FamilyModules"/> for other families).</param>
    /// <param name="From">Other families' module names that convert to this stem (tensor_mapping.py), besides <see cref="Meaning.Module"/>.</param>
    /// <param name="Default">The stem of every module of this role that no row names (the converter's names for the rest, as this library meets them).</param>
    private sealed record Stem(string Name, Meaning Meaning, string[] From, bool Default);

    private static Stem Row(string name, TensorRole role, string module, TensorForm form, params string[] from) =>
        new(name, new Meaning(role, module, form), from, Default: false);

    private static Stem Fallback(string name, TensorRole role, string module, TensorForm form) =>
        new(name, new Meaning(role, module, form), [], Default: true);

    private static Stem Buffer(string name, string module) =>
        new(name, new Meaning(TensorRole.Other, module, TensorForm.Vector, IsBuffer: true), [], Default: false);

    /// <summary>Names outside the blocks. Where several rows share a module, the first is the name the converter writes.</summary>
    private static readonly Stem[] Global =
    [
        Fallback("token_embd", TensorRole.TokenEmbedding, "embed_tokens", TensorForm.Embedding),
        Fallback("position_embd", TensorRole.PositionEmbedding, "embed_positions", TensorForm.Embedding),
        Fallback("token_types", TensorRole.TokenTypeEmbedding, "token_type_embeddings", TensorForm.Embedding),
        // BERT's embeddings.LayerNorm, BLOOM's word_embeddings_layernorm.
        Row("token_embd_norm", TensorRole.Norm, "embed_layer_norm", TensorForm.Vector, "LayerNorm", "word_embeddings_layernorm"),
        Fallback("output_norm", TensorRole.Norm, "norm", TensorForm.Vector),
        Fallback("output", TensorRole.OutputHead, "lm_head", TensorForm.LinearWeight),
        // Precomputed rotary frequency factors (Llama 3.1 rope scaling, Phi-3 LongRoPE): buffers, like HF's inv_freq.
        Buffer("rope_freqs", "rotary_emb"),
        Buffer("rope_factors_long", "rotary_emb"),
        Buffer("rope_factors_short", "rotary_emb"),
    ];

    /// <summary>Names inside the blocks (<c>blk.N.</c>). Where several rows share a module, the first is the name the converter writes.</summary>
    private static readonly Stem[] Block =
    [
        Row("attn_norm", TensorRole.Norm, "input_layernorm", TensorForm.Vector, "ln_1", "self_attn_layer_norm", "ln_attn"),
        Row("attn_norm_2", TensorRole.Norm, "input_layernorm_2", TensorForm.Vector),
        Row("ffn_norm", TensorRole.Norm, "post_attention_layernorm", TensorForm.Vector, "ln_2", "final_layer_norm", "ln_mlp"),
        Row("post_attention_norm", TensorRole.Norm, "post_attention_layernorm", TensorForm.Vector),
        Row("post_ffw_norm", TensorRole.Norm, "post_feedforward_layernorm", TensorForm.Vector),
        Row("layer_output_norm", TensorRole.Norm, "layer_output_norm", TensorForm.Vector),
        Row("attn_q_norm", TensorRole.Norm, "q_norm", TensorForm.Vector),
        Row("attn_k_norm", TensorRole.Norm, "k_norm", TensorForm.Vector),
        Row("attn_q_a_norm", TensorRole.Norm, "q_a_layernorm", TensorForm.Vector),
        Row("attn_kv_a_norm", TensorRole.Norm, "kv_a_layernorm", TensorForm.Vector),
        Row("attn_q", TensorRole.Attention, "q_proj", TensorForm.LinearWeight, "query", "q"),
        Row("attn_k", TensorRole.Attention, "k_proj", TensorForm.LinearWeight, "key", "k"),
        Row("attn_v", TensorRole.Attention, "v_proj", TensorForm.LinearWeight, "value", "v"),
        Row("attn_qkv", TensorRole.Attention, "qkv_proj", TensorForm.LinearWeight, "query_key_value", "c_attn"),
        Row("attn_output", TensorRole.Attention, "o_proj", TensorForm.LinearWeight, "dense", "c_proj", "out_proj", "o"),
        Row("attn_q_a", TensorRole.Attention, "q_a_proj", TensorForm.LinearWeight),
        Row("attn_q_b", TensorRole.Attention, "q_b_proj", TensorForm.LinearWeight),
        Row("attn_kv_a_mqa", TensorRole.Attention, "kv_a_proj_with_mqa", TensorForm.LinearWeight),
        Row("attn_kv_b", TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        Row("attn_k_b", TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        Row("attn_v_b", TensorRole.Attention, "kv_b_proj", TensorForm.LinearWeight),
        Row("attn_sinks", TensorRole.Attention, "sinks", TensorForm.Vector),
        Buffer("attn_rot_embd", "rotary_emb"),
        Row("ffn_gate", TensorRole.FeedForward, "gate_proj", TensorForm.LinearWeight, "wi_0"),
        Fallback("ffn_up", TensorRole.FeedForward, "up_proj", TensorForm.LinearWeight),
        Row("ffn_down", TensorRole.FeedForward, "down_proj", TensorForm.LinearWeight, "dense_4h_to_h", "c_proj", "fc2", "fc_out", "wo"),
        Fallback("ffn_gate_inp", TensorRole.Router, "gate", TensorForm.LinearWeight),
        Row("exp_probs_b", TensorRole.Router, "gate", TensorForm.Vector),
        Row("ffn_gate_exps", TensorRole.Expert, "gate_proj", TensorForm.ExpertLinear),
        Fallback("ffn_up_exps", TensorRole.Expert, "up_proj", TensorForm.ExpertLinear),
        Row("ffn_down_exps", TensorRole.Expert, "down_proj", TensorForm.ExpertLinear),
        Row("ffn_gate_up_exps", TensorRole.Expert, "gate_up_proj", TensorForm.ExpertLinear),
        Row("ffn_gate_shexp", TensorRole.SharedExpert, "gate_proj", TensorForm.LinearWeight),
        Fallback("ffn_up_shexp", TensorRole.SharedExpert, "up_proj", TensorForm.LinearWeight),
        Row("ffn_down_shexp", TensorRole.SharedExpert, "down_proj", TensorForm.LinearWeight),
        Row("ffn_gate_inp_shexp", TensorRole.SharedExpert, "shared_expert_gate", TensorForm.LinearWeight),
    ];

    /// <summary>
    /// Modules where a family's Hugging Face names differ from Llama's, by (model type, stem): LoRA targets then match the
    /// checkpoint's, and the family's modules get the family's names. Gemma 2 and 3 put a norm before the MLP as well as
    /// after attention; llama.cpp calls the first <c>ffn_norm</c> and the second <c>post_attention_norm</c>
    /// (tensor_mapping.py: <c>ATTN_POST_NORM</c> "# gemma2 olmo2").
    /// </summary>
    private static readonly FrozenDictionary<(string, string), string> FamilyModules = new Dictionary<(string, string), string>
    {
        [("gpt_neox", "attn_qkv")] = "query_key_value", [("gpt_neox", "attn_output")] = "dense",
        [("gpt_neox", "ffn_up")] = "dense_h_to_4h", [("gpt_neox", "ffn_down")] = "dense_4h_to_h",
        [("gpt_neox", "token_embd")] = "embed_in", [("gpt_neox", "output")] = "embed_out", [("gpt_neox", "output_norm")] = "final_layer_norm",
        [("mixtral", "ffn_gate_exps")] = "w1", [("mixtral", "ffn_down_exps")] = "w2", [("mixtral", "ffn_up_exps")] = "w3",
        [("phi3", "ffn_up")] = "gate_up_proj",
        [("gpt_oss", "ffn_gate_inp")] = "router",
        [("granitemoe", "ffn_gate_inp")] = "layer", [("granitemoe", "ffn_gate_up_exps")] = "input_linear",
        [("granitemoe", "ffn_down_exps")] = "output_linear",
        [("gemma2", "ffn_norm")] = "pre_feedforward_layernorm", [("gemma3_text", "ffn_norm")] = "pre_feedforward_layernorm",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, Stem> GlobalByName = Global.ToFrozenDictionary(s => s.Name, StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, Stem> BlockByName = Block.ToFrozenDictionary(s => s.Name, StringComparer.Ordinal);

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
                : MeaningOf(BlockByName.GetValueOrDefault(part), modelType);
        }
        else
        {
            meaning = MeaningOf(GlobalByName.GetValueOrDefault(stem), modelType);
        }

        return meaning is null ? null : (bias ? meaning with { Form = TensorForm.Bias } : meaning, layer);
    }

    private static Meaning? MeaningOf(Stem? row, string modelType) => row is null ? null : row.Meaning with { Module = ModuleOf(row, modelType) };

    /// <summary>
    /// The GGUF name <c>convert_hf_to_gguf.py</c> gives a Hugging Face tensor: <c>model.layers.3.self_attn.v_proj.weight</c> →
    /// <c>blk.3.attn_v.weight</c>. A module the table does not list takes its role's fallback row; without one it keeps its
    /// own name (attention as <c>attn_*</c>, norms as <c>*_norm</c>).
    /// </summary>
    /// <remarks>
    /// llama-quant.cpp picks types by substrings of these names (<c>attn_v.weight</c>, <c>ffn_down</c>, <c>_norm.weight</c>,
    /// <c>ffn_gate_inp.weight</c>, …), so a name only has to carry the right stem.
    /// </remarks>
    public static string NameOf(TensorSpec t, string modelType)
    {
        ArgumentNullException.ThrowIfNull(t);
        // convert_hf_to_gguf.py renames e_score_correction_bias to e_score_correction.bias before mapping it.
        string suffix = t.Form == TensorForm.Bias || t.Name.EndsWith(".bias", StringComparison.Ordinal) || t.Name.EndsWith("_bias", StringComparison.Ordinal)
            ? "bias" : "weight";
        string stem = t.Layer is int layer ? $"blk.{layer}.{BlockStem(t, modelType)}" : GlobalStem(t, modelType);
        return $"{stem}.{suffix}";
    }

    private static string GlobalStem(TensorSpec t, string modelType)
    {
        if (t.Module == "relative_attention_bias")
        {
            // T5's relative position bias lives in the first block of each stack (constants.py ENC_/DEC_ATTN_REL_B).
            return (t.Name.StartsWith("decoder", StringComparison.Ordinal) ? "dec" : "enc") + ".blk.0.attn_rel_b";
        }

        return Find(Global, t, t.Module, modelType)?.Name
            ?? (t.Name.EndsWith(".weight", StringComparison.Ordinal) || t.Name.EndsWith(".bias", StringComparison.Ordinal)
                ? t.Name[..t.Name.LastIndexOf('.')]
                : t.Name);
    }

    private static string BlockStem(TensorSpec t, string modelType)
    {
        // BERT calls both MLP matrices "dense"; the narrowing one (output.dense, [hidden, intermediate]) is the down projection.
        bool narrowingDense = t.Module == "dense" && t.Role is TensorRole.FeedForward or TensorRole.SharedExpert
            && t.Shape.Length == 2 && t.Shape[0] < t.Shape[1];
        return Find(Block, t, narrowingDense ? "down_proj" : t.Module, modelType)?.Name ?? t.Role switch
        {
            TensorRole.Attention => "attn_" + t.Module,
            // Every norm name ends in _norm, which keeps it out of quantization.
            TensorRole.Norm => t.Module.EndsWith("_norm", StringComparison.Ordinal) ? t.Module : t.Module + "_norm",
            _ => t.Module,
        };
    }

    /// <summary>
    /// The first row of the tensor's role that names its module, a vector preferring a vector row (a router's weight is
    /// <c>ffn_gate_inp</c>, its score bias <c>exp_probs_b</c>); else the role's fallback row.
    /// </summary>
    private static Stem? Find(Stem[] rows, TensorSpec t, string module, string modelType)
    {
        IEnumerable<Stem> named = rows.Where(r => !r.Meaning.IsBuffer && r.Meaning.Role == t.Role
            && (ModuleOf(r, modelType) == module || r.From.Contains(module)));
        return named.FirstOrDefault(r => (r.Meaning.Form == TensorForm.Vector) == (t.Form == TensorForm.Vector))
            ?? named.FirstOrDefault()
            ?? rows.FirstOrDefault(r => r.Default && r.Meaning.Role == t.Role);
    }

    private static string ModuleOf(Stem row, string modelType) => FamilyModules.GetValueOrDefault((modelType, row.Name), row.Meaning.Module);

    [GeneratedRegex(@"^blk\.(\d{1,9})\.(.+)$")]
    private static partial Regex BlockName();
}
