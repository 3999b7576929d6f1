using System.Collections.Frozen;
using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// A torchtune recipe config (pytorch/torchtune, <c>recipes/configs/</c>) as scenario fields, run by the torchtune engine.
/// </summary>
/// <remarks>
/// The model is the builder that <c>model._component_</c> names (<c>torchtune.models.llama3_1.lora_llama3_1_8b</c>): its
/// <c>lora_</c> or <c>qlora_</c> prefix is the mode, and the rest names a catalog model where the table below has it.
/// torchtune's module names are translated to the Hugging Face names the catalog uses (<c>output_proj</c> is
/// <c>o_proj</c>; <c>apply_lora_to_mlp</c> adapts <c>gate_proj</c>, <c>up_proj</c> and <c>down_proj</c>;
/// <c>apply_lora_to_output</c> adapts <c>lm_head</c>), as torchtune's own checkpoint converter maps them.
/// </remarks>
internal static class TorchtuneConfig
{
    /// <summary>torchtune model builders (without lora_/qlora_ and _base/_instruct) → catalog aliases.</summary>
    private static readonly FrozenDictionary<string, string> Builders = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["llama2_7b"] = "llama-2-7b",
        ["llama2_13b"] = "llama-2-13b",
        ["llama2_70b"] = "llama-2-70b",
        ["llama3_8b"] = "llama-3-8b",
        ["llama3_1_8b"] = "llama-3.1-8b",
        ["llama3_1_70b"] = "llama-3.1-70b",
        ["llama3_1_405b"] = "llama-3.1-405b",
        ["llama3_2_1b"] = "llama-3.2-1b",
        ["llama3_2_3b"] = "llama-3.2-3b",
        ["llama3_3_70b"] = "llama-3.3-70b",
        ["mistral_7b"] = "mistral-7b-v0.1",
        ["gemma_2b"] = "gemma-2b",
        ["gemma_7b"] = "gemma-7b",
        ["phi3_mini"] = "phi-3-mini-4k",
        ["qwen2_5_0_5b"] = "qwen2.5-0.5b",
        ["qwen2_5_1_5b"] = "qwen2.5-1.5b",
        ["qwen2_5_3b"] = "qwen2.5-3b",
        ["qwen2_5_7b"] = "qwen2.5-7b",
        ["qwen2_5_14b"] = "qwen2.5-14b",
        ["qwen2_5_32b"] = "qwen2.5-32b",
        ["qwen2_5_72b"] = "qwen2.5-72b",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    private static readonly FrozenDictionary<string, string[]> ModuleNames = new Dictionary<string, string[]>(StringComparer.Ordinal)
    {
        ["q_proj"] = ["q_proj"],
        ["k_proj"] = ["k_proj"],
        ["v_proj"] = ["v_proj"],
        ["output_proj"] = ["o_proj"],
    }.ToFrozenDictionary(StringComparer.Ordinal);

    public static void Map(ConfigKeys keys)
    {
        keys.Set("engine", JsonValue.Create("torchtune"), null);
        string mode = Model(keys);
        keys.Pass("tokenizer.max_seq_len", "seq");
        keys.Pass("batch_size", "batch");
        keys.Pass("gradient_accumulation_steps", "gradient_accumulation");
        if (keys.Bool("enable_activation_checkpointing") is bool checkpoint)
        {
            keys.Set("gradient_checkpointing", JsonValue.Create(checkpoint ? "full" : "none"), "enable_activation_checkpointing");
        }

        if (keys.Bool("enable_activation_offloading") == true)
        {
            keys.Set("gradient_checkpointing", JsonValue.Create("offload"), "enable_activation_offloading");
        }

        Optimizer(keys);
        if (keys.Bool("optimizer_in_bwd") is bool inBackward)
        {
            keys.Set("optimizer_in_backward", JsonValue.Create(inBackward), "optimizer_in_bwd");
        }

        string? dtype = keys.Text("dtype");
        if (dtype is not null)
        {
            keys.Set("precision", JsonValue.Create(dtype switch
            {
                "bf16" => "bf16",
                "fp32" => "fp32",
                _ => throw keys.Error("dtype", $"is \"{dtype}\"; torchtune trains in bf16 or fp32"),
            }), "dtype");
        }

        if (keys.Bool("compile") is bool compile)
        {
            keys.Set("compile", JsonValue.Create(compile), "compile");
        }

        if (keys.Bool("dataset.packed") == true)
        {
            keys.Set("packed", JsonValue.Create(true), "dataset.packed");
        }

        Loss(keys);
        if (mode is "lora" or "qlora")
        {
            Lora(keys);
        }
    }

    private static string Model(ConfigKeys keys)
    {
        string? component = keys.Text("model._component_");
        if (component is null)
        {
            keys.Set("mode", JsonValue.Create("training"), null);
            return "training";
        }

        string builder = component[(component.LastIndexOf('.') + 1)..];
        string mode = builder.StartsWith("qlora_", StringComparison.Ordinal) ? "qlora" : builder.StartsWith("lora_", StringComparison.Ordinal) ? "lora" : "training";
        keys.Set("mode", JsonValue.Create(mode), "model._component_");
        string name = builder[(mode == "training" ? 0 : mode.Length + 1)..];
        foreach (string suffix in new[] { "_base", "_instruct" })
        {
            name = name.EndsWith(suffix, StringComparison.Ordinal) ? name[..^suffix.Length] : name;
        }

        if (Builders.TryGetValue(name, out string? alias))
        {
            keys.Set("model", JsonValue.Create(alias), "model._component_");
        }

        return mode;
    }

    private static void Optimizer(ConfigKeys keys)
    {
        StackOptimizers.Map(keys, "optimizer._component_");
        if (keys.Bool("optimizer.fused") is bool fused)
        {
            keys.Set("fused", JsonValue.Create(fused), "optimizer.fused");
        }

        if (keys.Peek("optimizer.momentum") is { } momentum && keys.IsSet("optimizer"))
        {
            keys.Take("optimizer.momentum");
            if (momentum.ToJsonString() is not ("0" or "0.0"))
            {
                keys.Set("optimizer", JsonValue.Create("sgd-momentum"), "optimizer.momentum");
            }
        }
    }

    private static void Loss(ConfigKeys keys)
    {
        string? loss = keys.Peek("loss._component_") is null ? null : keys.Text("loss._component_");
        switch (loss?[(loss.LastIndexOf('.') + 1)..])
        {
            case null or "CrossEntropyLoss":
                break;
            case "CEWithChunkedOutputLoss":
                keys.Set("cross_entropy", JsonValue.Create("chunked"), "loss._component_");
                break;
            case "LinearCrossEntropyLoss":
                keys.Unmodelled("loss._component_", "LinearCrossEntropyLoss computes the output projection chunk by chunk inside the loss, so the full logits never exist; estimated as the standard loss");
                break;
            default:
                keys.Unmodelled("loss._component_", $"{loss} is not a loss the estimate knows; estimated as the standard loss");
                break;
        }
    }

    private static void Lora(ConfigKeys keys)
    {
        keys.Pass("model.lora_rank", "lora.r");
        if (keys.Bool("model.use_dora") is bool dora)
        {
            keys.Set("lora.dora", JsonValue.Create(dora), "model.use_dora");
        }

        var modules = new List<string>();
        if (keys.Peek("model.lora_attn_modules") is { } attention)
        {
            if (attention is not JsonArray list)
            {
                throw keys.Error("model.lora_attn_modules", $"must be a list of module names, found {ConfigKeys.Shown(attention)}");
            }

            foreach (JsonNode? item in list)
            {
                string name = item?.ToString() ?? "";
                modules.AddRange(ModuleNames.TryGetValue(name, out string[]? hf) ? hf
                    : throw keys.Error("model.lora_attn_modules", $"names \"{name}\"; torchtune's attention modules are q_proj, k_proj, v_proj and output_proj"));
            }

            keys.Take("model.lora_attn_modules");
        }

        if (keys.Bool("model.apply_lora_to_mlp") == true)
        {
            modules.AddRange(["gate_proj", "up_proj", "down_proj"]);
            keys.Confirm("model.apply_lora_to_mlp", "gate_proj, up_proj, down_proj in lora.targets");
        }

        if (keys.Bool("model.apply_lora_to_output") == true)
        {
            modules.Add("lm_head");
            keys.Confirm("model.apply_lora_to_output", "lm_head in lora.targets");
        }

        if (modules.Count > 0)
        {
            keys.Set("lora.targets", new JsonArray([.. modules.Select(m => (JsonNode)JsonValue.Create(m))]), "model.lora_attn_modules");
        }

        if (keys.Peek("model.lora_dropout") is { } dropout && dropout.ToJsonString() is not ("0" or "0.0"))
        {
            keys.Unmodelled("model.lora_dropout", "PEFT-style dropout keeps the dropped-out input of every adapter for backward");
        }
    }
}
