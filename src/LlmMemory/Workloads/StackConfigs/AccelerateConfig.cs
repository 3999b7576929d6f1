using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// An accelerate config YAML (<c>accelerate config</c>'s output; huggingface/accelerate <c>examples/config_yaml_templates/</c>)
/// as scenario fields: the GPU count, the precision, and the FSDP or DeepSpeed settings of its <c>distributed_type</c>.
/// </summary>
internal static class AccelerateConfig
{
    public static void Map(ConfigKeys keys)
    {
        string? type = keys.Peek("distributed_type") is null ? null : keys.Text("distributed_type");
        if (type is not (null or "NO"))
        {
            keys.Pass("num_processes", "parallel.gpus");
        }

        string? precision = keys.Peek("mixed_precision") is null ? null : keys.Text("mixed_precision");
        if (precision is not null)
        {
            keys.Set("precision", JsonValue.Create(precision switch
            {
                "no" => "fp32",
                "bf16" => "mixed-bf16",
                "fp16" => "mixed-fp16",
                "fp8" => "fp8",
                _ => throw keys.Error("mixed_precision", $"is \"{precision}\"; expected no, fp16, bf16 or fp8"),
            }), "mixed_precision");
        }

        switch (type)
        {
            case "FSDP":
                FsdpSettings.Map(keys, "fsdp_config.");
                break;
            case "DEEPSPEED":
                Deepspeed(keys);
                break;
            case null or "NO" or "MULTI_GPU":
                break;
            default:
                keys.Unmodelled("distributed_type", $"{type} is a launch this tool does not size (it sizes NO, MULTI_GPU, FSDP and DEEPSPEED)");
                break;
        }
    }

    private static void Deepspeed(ConfigKeys keys)
    {
        keys.Pass("deepspeed_config.zero_stage", "parallel.zero");
        keys.Pass("deepspeed_config.gradient_accumulation_steps", "gradient_accumulation");
        DeepSpeedConfig.Offload(keys, "deepspeed_config.offload_optimizer_device", "deepspeed_config.offload_param_device");

        if (keys.Peek("deepspeed_config.deepspeed_config_file") is not null)
        {
            keys.Unmodelled("deepspeed_config.deepspeed_config_file", "names a DeepSpeed JSON file: give that file as a second --config to read it");
        }
    }
}
