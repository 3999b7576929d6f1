using System.Text.RegularExpressions;
using LlmMemory.Models;

namespace LlmMemory.Tests.Support;

/// <summary>
/// Converts a config-described model to a GGUF file the way llama.cpp's <c>convert_hf_to_gguf.py</c> does: its metadata
/// keys (<c>set_gguf_parameters</c>) and its tensor names (<c>gguf-py/gguf/tensor_mapping.py</c>), shapes reversed to ggml
/// order, fused gpt-oss/Granite experts split into gate and up, every tensor in F16 (sparse data).
/// </summary>
internal static partial class GgufFromConfig
{
    private static readonly Dictionary<string, string> Architectures = new()
    {
        ["llama"] = "llama", ["mistral"] = "llama", ["mixtral"] = "llama", ["qwen2"] = "qwen2", ["qwen2_moe"] = "qwen2moe",
        ["qwen3"] = "qwen3", ["qwen3_moe"] = "qwen3moe", ["gemma"] = "gemma", ["gemma2"] = "gemma2", ["gemma3_text"] = "gemma3",
        ["phi3"] = "phi3", ["deepseek_v2"] = "deepseek2", ["deepseek_v3"] = "deepseek2", ["gpt_oss"] = "gpt-oss",
        ["granitemoe"] = "granitemoe", ["gpt_neox"] = "gptneox",
    };

    /// <summary>In-block Hugging Face module paths → llama.cpp names (tensor_mapping.py).</summary>
    private static readonly Dictionary<string, string> BlockNames = new()
    {
        ["input_layernorm"] = "attn_norm", ["pre_feedforward_layernorm"] = "ffn_norm", ["post_feedforward_layernorm"] = "post_ffw_norm",
        ["self_attn.q_proj"] = "attn_q", ["self_attn.k_proj"] = "attn_k", ["self_attn.v_proj"] = "attn_v", ["self_attn.o_proj"] = "attn_output",
        ["self_attn.qkv_proj"] = "attn_qkv", ["self_attn.q_norm"] = "attn_q_norm", ["self_attn.k_norm"] = "attn_k_norm",
        ["self_attn.q_a_proj"] = "attn_q_a", ["self_attn.q_a_layernorm"] = "attn_q_a_norm", ["self_attn.q_b_proj"] = "attn_q_b",
        ["self_attn.kv_a_proj_with_mqa"] = "attn_kv_a_mqa", ["self_attn.kv_a_layernorm"] = "attn_kv_a_norm", ["self_attn.kv_b_proj"] = "attn_kv_b",
        ["self_attn.sinks"] = "attn_sinks", ["mlp.gate_proj"] = "ffn_gate", ["mlp.up_proj"] = "ffn_up", ["mlp.down_proj"] = "ffn_down",
        ["mlp.gate_up_proj"] = "ffn_up", ["mlp.gate"] = "ffn_gate_inp", ["block_sparse_moe.gate"] = "ffn_gate_inp", ["mlp.router"] = "ffn_gate_inp",
        ["block_sparse_moe.router.layer"] = "ffn_gate_inp", ["mlp.gate.e_score_correction_bias"] = "exp_probs_b",
        ["mlp.experts.*.gate_proj"] = "ffn_gate_exps", ["mlp.experts.*.up_proj"] = "ffn_up_exps", ["mlp.experts.*.down_proj"] = "ffn_down_exps",
        ["block_sparse_moe.experts.*.w1"] = "ffn_gate_exps", ["block_sparse_moe.experts.*.w3"] = "ffn_up_exps", ["block_sparse_moe.experts.*.w2"] = "ffn_down_exps",
        ["mlp.shared_expert.gate_proj"] = "ffn_gate_shexp", ["mlp.shared_expert.up_proj"] = "ffn_up_shexp", ["mlp.shared_expert.down_proj"] = "ffn_down_shexp",
        ["mlp.shared_experts.gate_proj"] = "ffn_gate_shexp", ["mlp.shared_experts.up_proj"] = "ffn_up_shexp", ["mlp.shared_experts.down_proj"] = "ffn_down_shexp",
        ["mlp.shared_expert_gate"] = "ffn_gate_inp_shexp", ["mlp.experts.down_proj"] = "ffn_down_exps", ["block_sparse_moe.output_linear"] = "ffn_down_exps",
        ["attention.query_key_value"] = "attn_qkv", ["attention.dense"] = "attn_output", ["mlp.dense_h_to_4h"] = "ffn_up", ["mlp.dense_4h_to_h"] = "ffn_down",
    };

    private static readonly Dictionary<string, string> GlobalNames = new()
    {
        ["model.embed_tokens"] = "token_embd", ["model.norm"] = "output_norm", ["lm_head"] = "output", ["gpt_neox.embed_in"] = "token_embd",
        ["gpt_neox.final_layer_norm"] = "output_norm", ["embed_out"] = "output",
    };

    public static bool Supports(ModelArchitecture a) => Architectures.ContainsKey(a.ModelType);

    /// <summary>The GGUF tensors of the model, with the role config.json gives each: (name, ggml dims, role).</summary>
    public static IEnumerable<(string Name, long[] Dims, TensorRole Role)> Tensors(ModelArchitecture a)
    {
        foreach (TensorSpec t in a.Tensors.Tensors)
        {
            foreach ((string name, long[] shape) in Convert(t, a.ModelType))
            {
                yield return (name, [.. shape.Reverse()], t.Role);
            }
        }
    }

    public static GgufWriter Writer(ModelArchitecture a)
    {
        string arch = Architectures[a.ModelType];
        var w = new GgufWriter()
            .String("general.architecture", arch)
            .String("general.name", a.ModelType)
            .UInt32($"{arch}.block_count", (uint)a.LayerCount)
            .UInt32($"{arch}.context_length", (uint)(a.MaxPositions ?? 4096))
            .UInt32($"{arch}.embedding_length", (uint)a.HiddenSize)
            .UInt32($"{arch}.feed_forward_length", (uint)a.IntermediateSize)
            .UInt32($"{arch}.attention.head_count", (uint)a.AttentionHeadCount)
            .UInt32($"{arch}.attention.head_count_kv", (uint)a.KeyValueHeadCount)
            .Strings("tokenizer.ggml.tokens", ["<s>", "</s>", "hello"]);
        if (a.ModelType != "gpt_neox")
        {
            w.UInt32($"{arch}.attention.key_length", (uint)a.HeadDimension).UInt32($"{arch}.attention.value_length", (uint)a.ValueHeadDimension);
        }

        if (a.SlidingWindow is int window)
        {
            w.UInt32($"{arch}.attention.sliding_window", (uint)window);
        }

        if (a.Experts is { } moe)
        {
            w.UInt32($"{arch}.expert_count", (uint)moe.ExpertCount).UInt32($"{arch}.expert_used_count", (uint)moe.ActiveExperts)
                .UInt32($"{arch}.expert_feed_forward_length", (uint)moe.ExpertIntermediateSize);
            if (a.ModelType == "qwen2_moe")
            {
                w.UInt32($"{arch}.expert_shared_feed_forward_length", (uint)moe.SharedExpertIntermediateSize);
            }

            if (a.ModelType is "deepseek_v2" or "deepseek_v3")
            {
                w.UInt32($"{arch}.expert_shared_count", (uint)(moe.SharedExpertIntermediateSize / moe.ExpertIntermediateSize))
                    .UInt32($"{arch}.leading_dense_block_count", (uint)moe.MoeLayers.Min());
            }
        }

        if (a.LatentAttention is { } mla)
        {
            if (mla.QueryRank is int q)
            {
                w.UInt32($"{arch}.attention.q_lora_rank", (uint)q);
            }

            w.UInt32($"{arch}.attention.kv_lora_rank", (uint)mla.KeyValueRank).UInt32($"{arch}.rope.dimension_count", (uint)mla.RopeHeadDimension);
        }

        foreach ((string name, long[] dims, TensorRole _) in Tensors(a))
        {
            w.Tensor(name, dims, GgufWriter.F16);
        }

        return w;
    }

    private static IEnumerable<(string Name, long[] Shape)> Convert(TensorSpec t, string modelType)
    {
        long[] shape = [.. t.Shape];
        string suffix = t.Name.EndsWith(".bias", StringComparison.Ordinal) || t.Name.EndsWith("_bias", StringComparison.Ordinal) ? ".bias" : ".weight";
        string stem = t.Name.EndsWith(".weight", StringComparison.Ordinal) ? t.Name[..^7] : t.Name.EndsWith(".bias", StringComparison.Ordinal) ? t.Name[..^5] : t.Name;
        Match block = Block().Match(stem);
        if (!block.Success)
        {
            yield return (GlobalNames[stem] + suffix, shape);
            yield break;
        }

        string prefix = $"blk.{block.Groups[1].Value}.";
        string part = block.Groups[2].Value;
        switch (part)
        {
            case "post_attention_layernorm":
                yield return (prefix + (modelType is "gemma2" or "gemma3_text" ? "post_attention_norm" : "ffn_norm") + suffix, shape);
                break;
            case "mlp.gate.e_score_correction_bias":
                yield return (prefix + "exp_probs_b.bias", shape);
                break;
            case "mlp.experts.gate_up_proj" or "block_sparse_moe.input_linear":
                // gpt-oss gate_up_proj is [E, H, 2W] (interleaved), Granite input_linear [E, 2W, H]: llama.cpp splits both into gate and up.
                long[] half = modelType == "gpt_oss" ? [shape[0], shape[2] / 2, shape[1]] : [shape[0], shape[1] / 2, shape[2]];
                yield return (prefix + "ffn_gate_exps.weight", half);
                yield return (prefix + "ffn_up_exps.weight", half);
                break;
            case "mlp.experts.gate_up_proj_bias":
                yield return (prefix + "ffn_gate_exps.bias", [shape[0], shape[1] / 2]);
                yield return (prefix + "ffn_up_exps.bias", [shape[0], shape[1] / 2]);
                break;
            case "mlp.experts.down_proj" when modelType == "gpt_oss":
                yield return (prefix + "ffn_down_exps.weight", [shape[0], shape[2], shape[1]]);
                break;
            case "mlp.experts.down_proj_bias":
                yield return (prefix + "ffn_down_exps.bias", shape);
                break;
            default:
                yield return (prefix + BlockNames[part] + suffix, shape);
                break;
        }
    }

    [GeneratedRegex(@"^(?:model|gpt_neox)\.layers\.(\d+)\.(.+)$")]
    private static partial Regex Block();
}
