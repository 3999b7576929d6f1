using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// An Axolotl config (axolotl-ai-cloud/axolotl, <c>examples/</c> and <c>docs/config-reference.qmd</c>) as scenario fields.
/// </summary>
/// <remarks>
/// Precision follows Axolotl's <c>normalize_config</c>: <c>bf16</c> (or <c>auto</c> on a bf16 GPU) loads the model in bf16
/// (<c>torch_dtype = torch.bfloat16</c>) and runs the Trainer's bf16 autocast, so a full fine-tune holds bf16 parameters with
/// no fp32 master (<c>precision: bf16</c>) and LoRA a bf16 base under autocast (<c>weights: bf16</c>, <c>mixed-bf16</c>);
/// with neither <c>bf16</c> nor <c>fp16</c> the model is loaded in fp32 (<c>precision: fp32</c>).
/// </remarks>
internal static class AxolotlConfig
{
    public static void Map(ConfigKeys keys)
    {
        keys.Pass("base_model", "model");
        string mode = Mode(keys);
        keys.Pass("sequence_len", "seq");
        keys.Pass("micro_batch_size", "batch");
        keys.Pass("gradient_accumulation_steps", "gradient_accumulation");
        Checkpointing(keys, "gradient_checkpointing");
        StackOptimizers.Map(keys, "optimizer");
        Precision(keys, mode);
        if (mode is "lora" or "qlora")
        {
            Lora(keys);
        }

        if (keys.Bool("sample_packing") == true)
        {
            keys.Set("packed", JsonValue.Create(true), "sample_packing");
        }

        Attention(keys);
        if (keys.Bool("torch_compile", allowAuto: true) == true)
        {
            keys.Set("compile", JsonValue.Create(true), "torch_compile");
        }

        if (keys.Bool("liger_fused_linear_cross_entropy") == true)
        {
            // Axolotl's Liger plugin (integrations/liger) patches the model's forward with Liger's fused linear cross-entropy.
            keys.Set("cross_entropy", JsonValue.Create("fused-linear"), "liger_fused_linear_cross_entropy");
        }

        Fsdp(keys);
        DoubleQuant(keys, mode);
        NotModelled(keys);
    }

    /// <summary>
    /// Axolotl builds QLoRA's <c>BitsAndBytesConfig</c> with <c>bnb_4bit_use_double_quant: True</c> and updates it with
    /// <c>bnb_config_kwargs</c> (<c>loaders/model.py</c>): true is the format nf4 as it is; false stores fp32 absmax constants
    /// (<c>bnb_4bit_use_double_quant</c>), which only the single-GPU replay reads (a sharded run's setting is dropped).
    /// </summary>
    private static void DoubleQuant(ConfigKeys keys, string mode)
    {
        const string key = "bnb_config_kwargs.bnb_4bit_use_double_quant";
        if (mode != "qlora" || keys.Bool(key) is not bool doubleQuant)
        {
            return;
        }

        if (doubleQuant)
        {
            keys.Confirm(key, "Axolotl's default double quantization, the format nf4");
        }
        else
        {
            keys.Set("bnb_4bit_use_double_quant", JsonValue.Create(false), key);
        }
    }

    private static string Mode(ConfigKeys keys)
    {
        string? adapter = keys.Text("adapter");
        bool in4 = keys.Bool("load_in_4bit") == true;
        bool in8 = keys.Bool("load_in_8bit") == true;
        string mode = adapter switch
        {
            null => "training",
            "lora" or "qlora" => adapter,
            _ => throw keys.Error("adapter", $"is \"{adapter}\"; expected lora or qlora (or no adapter for a full fine-tune)"),
        };
        keys.Set("mode", JsonValue.Create(mode), adapter is null ? null : "adapter");
        // A k-bit adapter run calls PEFT's prepare_model_for_kbit_training, but kbit_preparation stays unset: Axolotl casts
        // every "norm" module and the embedding modules (embed_tokens, lm_head) back to torch_dtype for lora/qlora afterwards
        // (ModelLoader._configure_embedding_dtypes, loaders/model.py), which leaves the model as loaded.
        if (in4 && mode == "qlora")
        {
            keys.Confirm("load_in_4bit", "the 4-bit NF4 base of qlora");
        }
        else if (in4)
        {
            keys.Unmodelled("load_in_4bit", "a 4-bit base needs adapter: qlora here");
        }
        else if (mode == "qlora")
        {
            throw keys.Error("adapter", "is qlora, which Axolotl runs with load_in_4bit: true; the file does not set it");
        }

        if (in8)
        {
            keys.Set("weights", JsonValue.Create("int8"), "load_in_8bit");
        }

        return mode;
    }

    private static void Precision(ConfigKeys keys, string mode)
    {
        // "auto" is bf16 wherever the GPU has it (Axolotl's normalize_config), which every GPU this tool sizes training for has.
        bool? bf16 = keys.Peek("bf16") is { } node && ConfigKeys.IsAuto(node) ? true : keys.Bool("bf16");
        bool fp16 = keys.Bool("fp16") == true;
        bool int8 = keys.IsSet("weights");
        if (bf16 == true)
        {
            keys.Set("precision", JsonValue.Create(mode == "training" ? "bf16" : "mixed-bf16"), "bf16");
            if (mode == "lora" && !int8)
            {
                keys.Set("weights", JsonValue.Create("bf16"), "bf16");
            }
        }
        else if (fp16)
        {
            if (mode == "training")
            {
                keys.Unmodelled("fp16", "the model loaded in fp16 under fp16 autocast, a regime the scenario has no name for");
            }
            else
            {
                keys.Set("precision", JsonValue.Create("mixed-fp16"), "fp16");
                if (mode == "lora" && !int8)
                {
                    keys.Set("weights", JsonValue.Create("fp16"), "fp16");
                }
            }
        }
        else if (bf16 == false)
        {
            keys.Set("precision", JsonValue.Create("fp32"), "bf16");
        }
    }

    private static void Lora(ConfigKeys keys)
    {
        keys.Pass("lora_r", "lora.r");
        if (keys.Bool("lora_target_linear") == true)
        {
            keys.Set("lora.targets", JsonValue.Create("all-linear"), "lora_target_linear");
        }
        else if (keys.Peek("lora_target_modules") is { } modules)
        {
            keys.Set("lora.targets", modules.DeepClone(), "lora_target_modules");
        }

        if (keys.Peek("lora_dropout") is { } dropout && dropout.ToJsonString() is not ("0" or "0.0"))
        {
            keys.Unmodelled("lora_dropout", "PEFT keeps the dropped-out input of every adapter for backward");
        }

        if (keys.Peek("lora_modules_to_save") is JsonArray { Count: > 0 })
        {
            keys.Unmodelled("lora_modules_to_save", "trains full copies of these modules, with their gradients and optimizer states");
        }
    }

    private static void Attention(ConfigKeys keys)
    {
        if (keys.Bool("flash_attention") == true)
        {
            keys.Set("attention", JsonValue.Create("flash"), "flash_attention");
        }
        else if (keys.Bool("sdp_attention") == true)
        {
            keys.Set("attention", JsonValue.Create("sdpa"), "sdp_attention");
        }
        else if (keys.Bool("eager_attention") == true)
        {
            keys.Set("attention", JsonValue.Create("eager"), "eager_attention");
        }
    }

    /// <summary><c>fsdp: [full_shard, auto_wrap]</c> or <c>fsdp_config.fsdp_sharding_strategy</c>; <c>fsdp_offload_params</c> offloads states and parameters.</summary>
    private static void Fsdp(ConfigKeys keys)
    {
        if (keys.Peek("fsdp") is JsonArray list)
        {
            string[] words = [.. list.Select(w => w?.ToString() ?? "")];
            string? mode = words.FirstOrDefault(w => w is "full_shard" or "shard_grad_op" or "hybrid_shard");
            if (mode is not null)
            {
                keys.Set("parallel.fsdp", JsonValue.Create(mode), "fsdp");
            }
        }

        FsdpSettings.Map(keys, "fsdp_config.");
        if (keys.Peek("deepspeed") is not null)
        {
            keys.Unmodelled("deepspeed", "names a DeepSpeed JSON file: give that file as a second --config to read its ZeRO stage and offload");
        }
    }

    private static void NotModelled(ConfigKeys keys)
    {
        foreach ((string key, string why) in new[]
        {
            ("liger_rms_norm", "Liger's fused RMSNorm saves fewer activations"),
            ("liger_glu_activation", "Liger's fused SwiGLU saves fewer activations"),
            ("cut_cross_entropy", "Cut Cross-Entropy never holds the full logits"),
            ("unsloth_lora_mlp", "Unsloth's LoRA kernels save fewer activations"),
            ("unsloth_lora_qkv", "Unsloth's LoRA kernels save fewer activations"),
            ("lora_mlp_kernel", "Axolotl's LoRA kernels save fewer activations"),
            ("lora_qkv_kernel", "Axolotl's LoRA kernels save fewer activations"),
            ("lora_o_kernel", "Axolotl's LoRA kernels save fewer activations"),
            ("activation_offloading", "saved activations moved to host memory"),
        })
        {
            if (keys.Peek(key) is { } value && value.ToJsonString() is not ("false" or "null"))
            {
                keys.Unmodelled(key, why);
            }
        }
    }

    /// <summary>
    /// Axolotl's and transformers' <c>gradient_checkpointing</c>: true, false, or Axolotl's "offload" (and "unsloth", its name
    /// for the same checkpointer when Axolotl adopted Unsloth's offloaded gradient checkpointing, axolotl PR #1528): each
    /// layer's input copied to host memory in the forward and brought back in backward.
    /// </summary>
    internal static void Checkpointing(ConfigKeys keys, string key)
    {
        JsonNode? node = keys.Peek(key);
        if (node is null)
        {
            return;
        }

        string value = node.ToJsonString() switch
        {
            "true" => "full",
            "false" => "none",
            "\"offload\"" or "\"unsloth\"" => "offload",
            _ => throw keys.Error(key, $"must be true, false, \"offload\" or \"unsloth\", found {ConfigKeys.Shown(node)}"),
        };
        keys.Set("gradient_checkpointing", JsonValue.Create(value), key);
    }
}
