using System.Collections.Frozen;
using System.Globalization;

namespace LlmMemory.Workloads;

/// <summary>The fields of docs/scenario.md by their JSON paths: which exist, and each one's value in a typed scenario.</summary>
public static class ScenarioFields
{
    /// <summary>The top-level fields of a scenario object.</summary>
    public static readonly FrozenSet<string> TopLevel = FrozenSet.ToFrozenSet(
    [
        "model", "mode", "engine", "weights", "precision", "optimizer", "optimizer_in_backward", "batch", "seq", "gradient_accumulation",
        "gradient_checkpointing", "attention", "cross_entropy", "compile", "packed", "lora", "kv_cache_dtype", "v_cache_dtype", "parallel",
        "engine_options", "gpu", "new_tokens", "cache", "alloc_conf", "foreach", "fused", "kbit_preparation", "use_cache", "bitsandbytes_version",
        "bitsandbytes_converter", "bnb_4bit_use_double_quant", "custom_sharded_layers", "hold_previous_logits",
        "model_code",
    ]);

    private static readonly Scenario Defaults = new() { Model = new ModelReference.Named("") };

    /// <summary>The value of <paramref name="path"/> in <paramref name="scenario"/>, as a message shows it; null when unset.</summary>
    public static string? Value(Scenario scenario, string path)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ParallelSettings p = scenario.Parallel;
        EngineOptions e = scenario.EngineOptions;
        return path switch
        {
            "model" => scenario.Model.ToString(),
            "mode" => Names.Of(scenario.Mode),
            "engine" => Names.Of(scenario.Engine),
            "weights" => scenario.Weights?.Name,
            "precision" => scenario.Precision is { } precision ? Names.Of(precision) : null,
            "optimizer" => scenario.Optimizer is { } optimizer ? Names.Of(optimizer) : null,
            "optimizer_in_backward" => Flag(scenario.OptimizerInBackward),
            "batch" => Number(scenario.Batch),
            "seq" => Number(scenario.Seq),
            "gradient_accumulation" => Number(scenario.GradientAccumulation),
            "gradient_checkpointing" => Names.Of(scenario.GradientCheckpointing),
            "attention" => Names.Of(scenario.Attention),
            "cross_entropy" => Names.Of(scenario.CrossEntropy),
            "compile" => Flag(scenario.Compile),
            "packed" => Flag(scenario.Packed),
            "kv_cache_dtype" => scenario.KvCacheDtype is { } kv ? KvCacheTypes.Spelling(kv) : null,
            "v_cache_dtype" => scenario.VCacheDtype is { } v ? KvCacheTypes.Spelling(v) : null,
            "gpu" => scenario.Gpu?.Id,
            "new_tokens" => Number(scenario.NewTokens),
            "cache" => scenario.Cache is { } cache ? Names.Of(cache) : null,
            "alloc_conf" => scenario.AllocConf,
            "foreach" => scenario.Foreach is bool each ? Flag(each) : null,
            "fused" => scenario.Fused is bool fused ? Flag(fused) : null,
            "kbit_preparation" => Flag(scenario.KbitPreparation),
            "use_cache" => scenario.UseCache is bool cache ? Flag(cache) : null,
            "bitsandbytes_version" => scenario.BitsandbytesVersion,
            "hold_previous_logits" => Flag(scenario.HoldPreviousLogits),
            "bitsandbytes_converter" => Names.Of(scenario.BitsandbytesConverter),
            "model_code" => Names.Of(scenario.ModelCode),
            "bnb_4bit_use_double_quant" => scenario.Bnb4bitUseDoubleQuant is bool dq ? Flag(dq) : null,
            "custom_sharded_layers" => scenario.CustomShardedLayers == CustomShardedLayers.None ? null
                : string.Join(", ", Enum.GetValues<CustomShardedLayers>().Where(l => l != CustomShardedLayers.None && scenario.CustomShardedLayers.HasFlag(l)).Select(l => Names.Of(l))),
            "parallel.gpus" => Number(p.Gpus),
            "parallel.zero" => Number(p.Zero),
            "parallel.fsdp" => Names.Of(p.Fsdp),
            "parallel.tp" => Number(p.Tp),
            "parallel.pp" => Number(p.Pp),
            "parallel.schedule" => Names.Of(p.Schedule),
            "parallel.cp" => Number(p.Cp),
            "parallel.offload" => Names.Of(p.Offload),
            "engine_options.gpu_memory_utilization" => e.GpuMemoryUtilization?.ToString(CultureInfo.InvariantCulture),
            "engine_options.max_model_len" => Number(e.MaxModelLen),
            "engine_options.max_num_seqs" => Number(e.MaxNumSeqs),
            "engine_options.max_num_batched_tokens" => Number(e.MaxNumBatchedTokens),
            "engine_options.block_size" => Number(e.BlockSize),
            "engine_options.kv_cache_memory" => Number(e.KvCacheMemory),
            "engine_options.n_ctx" => Number(e.NCtx),
            "engine_options.n_batch" => Number(e.NBatch),
            "engine_options.n_ubatch" => Number(e.NUbatch),
            "engine_options.n_seq" => Number(e.NSeq),
            "engine_options.n_gpu_layers" => Number(e.NGpuLayers),
            "engine_options.flash_attn" => e.FlashAttn is bool flash ? Flag(flash) : null,
            "engine_options.mmap" => e.Mmap is bool mmap ? Flag(mmap) : null,
            "engine_options.version" => e.Version,
            "engine_options.pp_layer_partition" => e.PpLayerPartition,
            _ when path == "lora" || path.StartsWith("lora.", StringComparison.Ordinal) => scenario.Lora is { } lora
                ? $"r = {lora.Rank} on {lora.Targets}{(lora.Dora ? " (DoRA)" : "")}"
                : null,
            _ => null,
        };
    }

    /// <summary>True when <paramref name="path"/> holds what a scenario that does not name it would hold.</summary>
    public static bool IsDefault(Scenario scenario, string path) => Value(scenario, path) == Value(Defaults, path);

    private static string Flag(bool value) => value ? "true" : "false";

    private static string? Number(long? value) => value?.ToString("N0", CultureInfo.InvariantCulture);
}
