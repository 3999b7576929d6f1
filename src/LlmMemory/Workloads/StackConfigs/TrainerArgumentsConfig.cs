using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// transformers <c>TrainingArguments</c> and TRL's <c>SFTConfig</c> with its <c>ModelConfig</c> (the arguments
/// <c>HfArgumentParser</c>/<c>TrlParser</c> read from a YAML or JSON file, as the alignment-handbook recipes are written) as
/// scenario fields.
/// </summary>
/// <remarks>
/// Precision: a model loaded in bf16 (<c>torch_dtype: bfloat16</c>) and trained in full holds bf16 parameters and no fp32
/// master (<c>precision: bf16</c>) whatever the autocast; otherwise <c>bf16</c>/<c>fp16</c> are the Trainer's autocast over
/// fp32 parameters (<c>mixed-bf16</c>/<c>mixed-fp16</c>), and both false is fp32. Under LoRA the loaded dtype is the frozen
/// base's storage (<c>weights</c>).
/// </remarks>
internal static class TrainerArgumentsConfig
{
    public static void Map(ConfigKeys keys)
    {
        Version? trl = TrlRelease.Read(keys);
        keys.Pass("model_name_or_path", "model");
        string mode = Mode(keys);
        keys.Pass("per_device_train_batch_size", "batch");
        keys.Pass("gradient_accumulation_steps", "gradient_accumulation");
        keys.Pass("max_seq_length", "seq");
        keys.Pass("max_length", "seq");
        AxolotlConfig.Checkpointing(keys, "gradient_checkpointing");
        if (keys.Bool("activation_offloading") == true)
        {
            keys.Set("gradient_checkpointing", JsonValue.Create("offload"), "activation_offloading");
        }

        if (trl is not null)
        {
            TrlDefaults(keys, trl);
        }

        // transformers PR #48444: gradient_checkpointing_kwargs {"offload": true} wraps the checkpointing function in
        // torch's save_on_cpu(pin_memory=True), so each checkpointed layer's saved input is held in host memory.
        bool checkpointed = keys.Peek("gradient_checkpointing") is { } on ? on.ToJsonString() == "true" : trl >= TrlRelease.CheckpointingAndBf16;
        if (keys.Bool("gradient_checkpointing_kwargs.offload") == true && checkpointed)
        {
            keys.Set("gradient_checkpointing", JsonValue.Create("offload"), "gradient_checkpointing_kwargs.offload");
        }

        StackOptimizers.Map(keys, "optim");
        Precision(keys, mode, defaultBf16: trl >= TrlRelease.CheckpointingAndBf16);
        Loss(keys, trl);
        if (mode is "lora" or "qlora")
        {
            Lora(keys);
        }

        Attention(keys);
        if (keys.Bool("torch_compile") is bool compile)
        {
            keys.Set("compile", JsonValue.Create(compile), "torch_compile");
        }

        if (keys.Bool("packing") == true)
        {
            keys.Set("packed", JsonValue.Create(true), "packing");
        }

        Parallel(keys);
        if (keys.Bool("use_liger_kernel") == true)
        {
            // transformers applies liger_kernel's _apply_liger_kernel_to_instance with its defaults: fused_linear_cross_entropy=True.
            keys.Set("cross_entropy", JsonValue.Create("fused-linear"), "use_liger_kernel");
            keys.Unmodelled("use_liger_kernel", "Liger's RMSNorm, RoPE and SwiGLU kernels save fewer activations (its fused linear cross-entropy is cross_entropy fused-linear)");
        }
    }

    /// <summary>
    /// TRL's <c>SFTConfig</c> defaults of the release <c>trl_version</c> names, for the keys the file leaves out
    /// (<see cref="TrlRelease"/>): the per-device batch 8, the sequence length 1024, and from 0.19 gradient checkpointing.
    /// </summary>
    private static void TrlDefaults(ConfigKeys keys, Version trl)
    {
        var defaults = new List<string>();
        if (!keys.IsSet("batch"))
        {
            keys.Set("batch", JsonValue.Create(TrlRelease.Batch), TrlRelease.Key, isDefault: true);
            defaults.Add($"per_device_train_batch_size {TrlRelease.Batch}");
        }

        if (!keys.IsSet("seq"))
        {
            keys.Set("seq", JsonValue.Create(TrlRelease.MaxLength), TrlRelease.Key, isDefault: true);
            defaults.Add($"max_length {TrlRelease.MaxLength}");
        }

        if (trl >= TrlRelease.CheckpointingAndBf16 && !keys.IsSet("gradient_checkpointing"))
        {
            keys.Set("gradient_checkpointing", JsonValue.Create("full"), TrlRelease.Key, isDefault: true);
            defaults.Add("gradient_checkpointing true");
        }

        if (trl >= TrlRelease.CheckpointingAndBf16 && keys.Peek("bf16") is null && keys.Bool("fp16") != true)
        {
            defaults.Add("bf16 true (fp16 not set)");
        }

        keys.Confirm(TrlRelease.Key, $"TRL {trl.ToString(3)}'s SFTConfig defaults for the keys the file leaves out: {(defaults.Count == 0 ? "none that moves memory" : string.Join(", ", defaults))}");
    }

    /// <summary>
    /// SFT's <c>loss_type</c>: <c>"nll"</c> is the standard loss; <c>"chunked_nll"</c> (TRL PR #5575: the head only on
    /// labelled tokens and the loss in checkpointed chunks), TRL's default from 1.7 unless <c>use_liger_kernel</c>, and
    /// <c>"dft"</c> have no scenario value yet.
    /// </summary>
    private static void Loss(ConfigKeys keys, Version? trl)
    {
        string? loss = keys.Peek("loss_type") is null ? null : keys.Text("loss_type");
        if (loss == "nll")
        {
            keys.Confirm("loss_type", "the standard causal-LM loss");
        }
        else if (loss is not null)
        {
            keys.Unmodelled("loss_type", $"\"{loss}\" is not the standard loss, which the estimate keeps{(loss == "chunked_nll" ? " (chunked_nll: the head on labelled tokens only and the loss in checkpointed chunks of 256 tokens)" : "")}");
        }
        else if (trl >= TrlRelease.ChunkedNll && keys.Bool("use_liger_kernel") != true)
        {
            keys.Unmodelled("loss_type", $"left out, TRL {trl.ToString(3)} takes chunked_nll (from 1.7): the head on labelled tokens only and the loss in checkpointed chunks of 256 tokens; the estimate keeps the standard loss (give loss_type: nll to run it)");
        }
    }

    private static string Mode(ConfigKeys keys)
    {
        bool peft = keys.Bool("use_peft") == true;
        bool in4 = keys.Bool("load_in_4bit") == true;
        bool in8 = keys.Bool("load_in_8bit") == true;
        string mode = !peft ? "training" : in4 ? "qlora" : "lora";
        keys.Set("mode", JsonValue.Create(mode), peft ? "use_peft" : null);
        // kbit_preparation stays unset: current TRL's SFTTrainer no longer calls prepare_model_for_kbit_training, and the
        // releases that did followed it, with bf16, by peft_module_casting_to_bf16 (head and embedding back to bf16, norms
        // fp32), a state the field does not describe (docs/scenario-extensions.md).
        if (in4 && peft)
        {
            keys.Confirm("load_in_4bit", "the 4-bit NF4 base of qlora");
            // TRL's get_quantization_config: BitsAndBytesConfig(..., bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant),
            // and ModelConfig.use_bnb_nested_quant defaults to False: no double quantization unless the file asks for it.
            if (keys.Bool("use_bnb_nested_quant") == true)
            {
                keys.Confirm("use_bnb_nested_quant", "double quantization, the format nf4");
            }
            else
            {
                keys.Set("bnb_4bit_use_double_quant", JsonValue.Create(false), keys.Peek("use_bnb_nested_quant") is null ? "load_in_4bit" : "use_bnb_nested_quant");
            }
        }
        else if (in4 || (in8 && !peft))
        {
            keys.Unmodelled(in4 ? "load_in_4bit" : "load_in_8bit", "a quantized base is trained through adapters: set use_peft");
        }
        else if (in8)
        {
            keys.Set("weights", JsonValue.Create("int8"), "load_in_8bit");
        }

        return mode;
    }

    private static void Precision(ConfigKeys keys, string mode, bool defaultBf16)
    {
        string dtypeKey = keys.Peek("dtype") is not null ? "dtype" : "torch_dtype";
        string? loaded = keys.Peek(dtypeKey) is { } d && !ConfigKeys.IsAuto(d) ? keys.Text(dtypeKey) switch
        {
            "bfloat16" => "bf16",
            "float16" => "fp16",
            "float32" => "fp32",
            var other => throw keys.Error(dtypeKey, $"is \"{other}\"; expected bfloat16, float16, float32 or auto"),
        } : null;
        bool? fp16 = keys.Bool("fp16");
        // TRL from 0.19: bf16 left out is on unless fp16 is (SFTConfig.__post_init__: self.bf16 = not (self.fp16)).
        bool fromRelease = defaultBf16 && keys.Peek("bf16") is null && fp16 != true;
        bool? bf16 = fromRelease ? true : keys.Bool("bf16");
        string? amp = bf16 == true ? "bf16" : fp16 == true ? "fp16" : bf16 == false || fp16 == false ? "none" : null;
        string ampKey = fromRelease ? TrlRelease.Key : bf16 == true ? "bf16" : fp16 == true ? "fp16" : bf16 is not null ? "bf16" : "fp16";
        if (mode == "training")
        {
            if (loaded == "bf16")
            {
                keys.Set("precision", JsonValue.Create("bf16"), dtypeKey);
            }
            else if (loaded == "fp16")
            {
                keys.Unmodelled(dtypeKey, "fp16 parameters with no fp32 master, a regime the scenario has no name for");
            }
            else if (amp is not null)
            {
                keys.Set("precision", JsonValue.Create(amp switch { "bf16" => "mixed-bf16", "fp16" => "mixed-fp16", _ => "fp32" }), ampKey, isDefault: fromRelease);
            }

            return;
        }

        if (loaded is not null && mode == "lora" && !keys.IsSet("weights"))
        {
            keys.Set("weights", JsonValue.Create(loaded), dtypeKey);
        }
        else if (loaded is not null)
        {
            keys.Confirm(dtypeKey, "the compute type of the quantized base");
        }

        if (amp is not null)
        {
            keys.Set("precision", JsonValue.Create(amp switch { "bf16" => "mixed-bf16", "fp16" => "mixed-fp16", _ => loaded == "bf16" ? "bf16" : "fp32" }), ampKey, isDefault: fromRelease);
        }
    }

    private static void Lora(ConfigKeys keys)
    {
        keys.Pass("lora_r", "lora.r");
        keys.Pass("lora_target_modules", "lora.targets");
        if (keys.Bool("use_dora") is bool dora)
        {
            keys.Set("lora.dora", JsonValue.Create(dora), "use_dora");
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
        string? attention = keys.Peek("attn_implementation") is null ? null : keys.Text("attn_implementation");
        if (attention is null)
        {
            return;
        }

        keys.Set("attention", JsonValue.Create(attention switch
        {
            "flash_attention_2" or "flash_attention_3" => "flash",
            "sdpa" => "sdpa",
            "eager" => "eager",
            _ => throw keys.Error("attn_implementation", $"is \"{attention}\"; expected eager, sdpa, flash_attention_2 or flash_attention_3"),
        }), "attn_implementation");
    }

    /// <summary><c>fsdp: "full_shard auto_wrap"</c> (a string or list of words) with <c>fsdp_config</c>; <c>deepspeed</c> as an inline config or a file name.</summary>
    private static void Parallel(ConfigKeys keys)
    {
        if (keys.Peek("fsdp") is { } fsdp)
        {
            string[] words = fsdp is JsonArray list ? [.. list.Select(w => w?.ToString() ?? "")] : fsdp.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (words.FirstOrDefault(w => w is "full_shard" or "shard_grad_op" or "hybrid_shard") is { } mode)
            {
                keys.Set("parallel.fsdp", JsonValue.Create(mode), "fsdp");
            }

            if (words.Contains("offload"))
            {
                keys.Set("parallel.offload", JsonValue.Create("optimizer+params"), "fsdp");
            }
        }

        if (keys.Peek("fsdp_config") is JsonObject)
        {
            FsdpSettings.Map(keys, "fsdp_config.");
        }

        switch (keys.Peek("deepspeed"))
        {
            case JsonObject:
                DeepSpeedConfig.Map(keys, "deepspeed.");
                break;
            case { } file:
                keys.Unmodelled("deepspeed", $"names a DeepSpeed JSON file ({ConfigKeys.Shown(file)}): give that file as a second --config to read its ZeRO stage and offload");
                break;
        }
    }
}
