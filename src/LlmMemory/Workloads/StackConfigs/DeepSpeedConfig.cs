using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// A DeepSpeed JSON config (deepspeed.ai/docs/config-json) as scenario fields: the ZeRO stage and offload, the micro-batch,
/// accumulation, the GPU count its batch sizes imply, the bf16/fp16 regime and the optimizer. <c>"auto"</c> values are left
/// to the transformers Trainer, which fills them from its own arguments, so they are listed as not used.
/// </summary>
internal static class DeepSpeedConfig
{
    public static void Map(ConfigKeys keys, string prefix)
    {
        string zero = prefix + "zero_optimization.";
        keys.Pass(zero + "stage", "parallel.zero");
        Offload(keys, zero + "offload_optimizer.device", zero + "offload_param.device");

        keys.Pass(prefix + "train_micro_batch_size_per_gpu", "batch");
        keys.Pass(prefix + "gradient_accumulation_steps", "gradient_accumulation");
        Gpus(keys, prefix);
        if (keys.Bool(prefix + "bf16.enabled", allowAuto: true) == true)
        {
            // DeepSpeed's bf16 optimizer keeps the fp32 master in its partition: the scenario's mixed-bf16 under ZeRO.
            keys.Set("precision", JsonValue.Create("mixed-bf16"), prefix + "bf16.enabled");
        }
        else if (keys.Bool(prefix + "fp16.enabled", allowAuto: true) == true)
        {
            keys.Set("precision", JsonValue.Create("mixed-fp16"), prefix + "fp16.enabled");
        }

        if (keys.Peek(prefix + "optimizer.type") is not null)
        {
            StackOptimizers.Map(keys, prefix + "optimizer.type");
        }

        foreach (string key in new[] { "activation_checkpointing.partition_activations", "activation_checkpointing.cpu_checkpointing" })
        {
            if (keys.Bool(prefix + key) == true)
            {
                keys.Unmodelled(prefix + key, "DeepSpeed's own activation checkpointing (the model must call deepspeed.checkpointing)");
            }
        }
    }

    /// <summary>
    /// ZeRO's offload devices as the scenario's <c>parallel.offload</c>: the optimizer alone, or the optimizer and the
    /// parameters; parameters alone have no scenario value. Shared by DeepSpeed's JSON and accelerate's DeepSpeed section.
    /// </summary>
    internal static void Offload(ConfigKeys keys, string optimizerKey, string parameterKey)
    {
        string? optimizer = Device(keys, optimizerKey);
        string? parameters = Device(keys, parameterKey);
        if (optimizer is not null && parameters is not null)
        {
            keys.Set("parallel.offload", JsonValue.Create("optimizer+params"), parameterKey);
            keys.Confirm(optimizerKey, "optimizer+params with offload_param");
        }
        else if (optimizer is not null)
        {
            keys.Set("parallel.offload", JsonValue.Create("optimizer"), optimizerKey);
        }
        else if (parameters is not null)
        {
            keys.Unmodelled(parameterKey, "parameters offloaded without the optimizer states; the scenario offloads the optimizer, or both");
        }
    }

    /// <summary>An offload device: "cpu" or "nvme" moves the states off the GPU (the same to device memory); "none" keeps them.</summary>
    private static string? Device(ConfigKeys keys, string key)
    {
        string? device = keys.Peek(key) is null ? null : keys.Text(key);
        return device switch
        {
            null or "none" => null,
            "cpu" or "nvme" => device,
            _ => throw keys.Error(key, $"is \"{device}\"; expected cpu, nvme or none"),
        };
    }

    /// <summary>train_batch_size = micro-batch × accumulation × GPUs (DeepSpeed's batch rule), so three numbers give the GPU count.</summary>
    private static void Gpus(ConfigKeys keys, string prefix)
    {
        long? total = keys.Peek(prefix + "train_batch_size") is null ? null : keys.Integer(prefix + "train_batch_size");
        long? micro = keys.Peek(prefix + "train_micro_batch_size_per_gpu") is { } m && !ConfigKeys.IsAuto(m) ? keys.Integer(prefix + "train_micro_batch_size_per_gpu") : null;
        long accumulation = keys.Peek(prefix + "gradient_accumulation_steps") is { } a && !ConfigKeys.IsAuto(a) ? keys.Integer(prefix + "gradient_accumulation_steps") ?? 1 : 1;
        if (total is not long t || micro is not long mb || mb <= 0 || accumulation <= 0)
        {
            return;
        }

        long perGpu = checked(mb * accumulation);
        if (t <= 0 || t % perGpu != 0)
        {
            throw keys.Error(prefix + "train_batch_size", $"({t}) must be train_micro_batch_size_per_gpu × gradient_accumulation_steps × GPUs ({mb} × {accumulation} × a whole number)");
        }

        keys.Set("parallel.gpus", JsonValue.Create(t / perGpu), prefix + "train_batch_size");
    }
}
