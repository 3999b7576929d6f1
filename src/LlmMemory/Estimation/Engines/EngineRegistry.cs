using LlmMemory.Estimation;
using LlmMemory.Estimation.Counts;
using LlmMemory.Estimation.Inference;
using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Estimation.Parallel;
using LlmMemory.Estimation.Replay;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Engines;

/// <summary>
/// The engines, each with the modes it runs and the estimator that models it. The seam every estimate goes through: the
/// engine picks its path for the model and scenario, and the path says which scenario fields it reads.
/// </summary>
internal static class EngineRegistry
{
    private static readonly string[] Training =
        ["precision", "optimizer", "batch", "seq", "gradient_accumulation", "gradient_checkpointing", "attention", "cross_entropy", "compile", "packed"];

    /// <summary>transformers and plain PyTorch inference: one forward over the prompt, replayed op by op through PyTorch's caching allocator.</summary>
    private static readonly EstimatorPath ReplayInference = EstimatorPath.Of("transformers inference (a replay of one forward through PyTorch's allocator)",
        ["weights", "batch", "seq", "attention", "compile", "kv_cache_dtype", "new_tokens", "cache", "alloc_conf", "parallel.gpus", "bnb_4bit_use_double_quant"], ReplayEstimate.Build) with { RunsOutOfMemory = ReplayEstimate.RunsOutOfMemory };

    /// <summary>Training, LoRA and QLoRA on one GPU: steps of forward, backward and optimizer replayed op by op.</summary>
    private static readonly EstimatorPath ReplayTraining = EstimatorPath.Of("training on one GPU (a replay of the step through PyTorch's allocator)",
        ["weights", "optimizer_in_backward", "foreach", "fused", "lora", "alloc_conf", "kbit_preparation", "use_cache", "bitsandbytes_version", "bitsandbytes_converter", "bnb_4bit_use_double_quant", "hold_previous_logits", "model_code", "engine_options.version", .. Training], ReplayEstimate.Build) with { RunsOutOfMemory = ReplayEstimate.RunsOutOfMemory };

    /// <summary>Full training sharded by FSDP or DeepSpeed ZeRO over data-parallel GPUs: the step replayed for rank 0, with its gathers and reductions.</summary>
    private static readonly EstimatorPath ShardedReplayTraining = EstimatorPath.Of("FSDP or ZeRO training, one rank of N (a replay of the step through PyTorch's allocator)",
        ["weights", "foreach", "fused", "use_cache", "parallel", "custom_sharded_layers", .. Training], ReplayEstimate.Build) with { RunsOutOfMemory = ReplayEstimate.RunsOutOfMemory };

    /// <summary>Sharded, offloaded or model-parallel training, and mixture-of-experts training: the per-device closed form.</summary>
    private static readonly EstimatorPath ShardedTraining = EstimatorPath.Of("sharded or multi-GPU training (the per-device closed form)",
        ["weights", "lora", "parallel", .. Training], DistributedTraining.Estimate);

    private static readonly EstimatorPath Vllm = EstimatorPath.Of("vLLM",
        ["weights", "kv_cache_dtype", "seq", "parallel.gpus", "parallel.tp", "parallel.pp", "engine_options.gpu_memory_utilization", "engine_options.max_model_len",
            "engine_options.max_num_seqs", "engine_options.max_num_batched_tokens", "engine_options.block_size", "engine_options.kv_cache_memory", "engine_options.version",
            "engine_options.pp_layer_partition"],
        ServingEngines.Estimate);

    private static readonly EstimatorPath Sglang = EstimatorPath.Of("SGLang",
        ["weights", "kv_cache_dtype", "seq", "parallel.gpus", "parallel.tp", "parallel.pp", "engine_options.gpu_memory_utilization", "engine_options.max_model_len",
            "engine_options.block_size", "engine_options.version", "engine_options.pp_layer_partition"],
        ServingEngines.Estimate);

    private static readonly EstimatorPath LlamaCppPath = EstimatorPath.Of("llama.cpp",
        ["weights", "kv_cache_dtype", "v_cache_dtype", "batch", "seq", "parallel.gpus", "parallel.pp", "engine_options.n_ctx", "engine_options.n_batch",
            "engine_options.n_ubatch", "engine_options.n_seq", "engine_options.n_gpu_layers", "engine_options.flash_attn", "engine_options.mmap",
            "engine_options.version"],
        LlamaCppEstimator.Estimate);

    /// <summary>A bare parameter count: bytes per parameter, model states for training, sharded when asked.</summary>
    private static readonly EstimatorPath CountInference = EstimatorPath.Of("a bare parameter count (weights only)", ["weights"],
        (model, scenario, _) => RuleOfThumb.Estimate(model, scenario));

    private static readonly string[] Sharding = ["parallel.gpus", "parallel.zero", "parallel.fsdp", "parallel.tp", "parallel.pp", "parallel.cp"];

    private static readonly EstimatorPath CountTraining = EstimatorPath.Of("a bare parameter count (model states only)",
        ["precision", "optimizer", .. Sharding], (model, scenario, _) => RuleOfThumb.Estimate(model, scenario));

    private static readonly EstimatorPath CountAdapters = EstimatorPath.Of("a bare parameter count (the frozen base only)",
        ["weights", .. Sharding], (model, scenario, _) => RuleOfThumb.Estimate(model, scenario));

    /// <summary>
    /// The scenario fields (JSON paths) that <paramref name="engine"/>'s inference path reads for a model with layers, so a form
    /// offers exactly the settings the estimate uses; empty for engines that do not run inference.
    /// </summary>
    public static IReadOnlyList<string> InferenceFieldsOf(Engine engine)
    {
        return ModesOf(engine).Contains(Mode.Inference) ? InferencePath(engine).Reads.Order(StringComparer.Ordinal).ToArray() : [];
    }

    /// <summary>The path that estimates inference on <paramref name="engine"/> for a model with layers.</summary>
    private static EstimatorPath InferencePath(Engine engine) => engine switch
    {
        Engine.Vllm => Vllm,
        Engine.Sglang => Sglang,
        Engine.LlamaCpp => LlamaCppPath,
        _ => ReplayInference,
    };

    /// <summary>The modes each engine runs; the rest are refused with the reason.</summary>
    private static IReadOnlyList<Mode> ModesOf(Engine engine) => engine switch
    {
        Engine.Vllm or Engine.Sglang or Engine.LlamaCpp => [Mode.Inference],
        Engine.Torchtune or Engine.Deepspeed => [Mode.Training, Mode.Lora, Mode.Qlora],
        Engine.Torchtitan => [Mode.Training],
        _ => [Mode.Inference, Mode.Training, Mode.Lora, Mode.Qlora],
    };

    /// <summary>The path that estimates <paramref name="scenario"/> for <paramref name="model"/>.</summary>
    /// <exception cref="ModelFormatException">The engine does not run the scenario's mode.</exception>
    public static EstimatorPath Route(ResolvedModel model, Scenario scenario)
    {
        Engine engine = scenario.Engine;
        if (!ModesOf(engine).Contains(scenario.Mode))
        {
            throw new ModelFormatException(scenario.Given.OriginOf("mode"), "mode",
                $"is {Names.Of(scenario.Mode)}, which {Names.Of(engine)} does not run ({Names.Of(engine)}: {string.Join(", ", ModesOf(engine).Select(m => Names.Of(m)))}; "
                + $"{(scenario.IsTraining ? "training is estimated for transformers, pytorch, torchtune, torchtitan and deepspeed" : "inference is estimated for transformers, pytorch, vllm, sglang and llama.cpp")}).");
        }

        if (model.Architecture is null || model.ParameterCount == 0)
        {
            return scenario.IsAdapterTraining ? CountAdapters : scenario.IsTraining ? CountTraining : CountInference;
        }

        // Serving engines run inference only (checked above), so they take the first arm.
        return engine switch
        {
            _ when !scenario.IsTraining => InferencePath(engine),
            _ when model.Architecture.Experts is not null => Sharded(scenario),
            _ when IsReplayedSharding(scenario) => ShardedReplayTraining,
            _ => IsSharded(scenario.Parallel) ? Sharded(scenario) : ReplayTraining,
        };
    }

    /// <summary>The closed form sizes the standard, chunked and fused losses; the in-place, fused linear and Unsloth kernels are replayed on one GPU only.</summary>
    private static EstimatorPath Sharded(Scenario scenario) => scenario.CrossEntropy is CrossEntropyKind.InPlace or CrossEntropyKind.FusedLinear or CrossEntropyKind.Unsloth
        ? throw new ModelFormatException(scenario.Given.OriginOf("cross_entropy"), "cross_entropy",
            $"is {Names.Of(scenario.CrossEntropy)}, which is replayed for single-GPU dense training only; the sharded closed form knows standard, chunked and fused.")
        : ShardedTraining;

    /// <summary>
    /// Sharded, offloaded or model-parallel training, even on one GPU (ZeRO-3 with offload on a single device), goes to the
    /// closed-form per-device estimator; so does mixture-of-experts training, whose routed experts the replay has no program for.
    /// </summary>
    private static bool IsSharded(ParallelSettings p) =>
        p.Gpus > 1 || p.Zero > 0 || p.Fsdp != FsdpMode.None || p.Offload != OffloadMode.None || p.Tp * p.Pp * p.Cp > 1;

    /// <summary>
    /// What the per-rank replay runs: full training under FSDP over data-parallel ranks only, with or without its CPU offload
    /// (which moves parameters, gradients and optimizer together), and under DeepSpeed ZeRO (<see cref="IsReplayedZero"/>).
    /// LoRA under FSDP or ZeRO, FSDP with an optimizer-only offload,
    /// tensor, pipeline or context parallelism stay on the closed form, and so do float8 linears and torchtitan's op-level
    /// selective checkpointing, which the closed form models and the replay does not (it replays fp8 as bf16 and selective
    /// checkpointing as full).
    /// </summary>
    private static bool IsReplayedSharding(Scenario scenario) =>
        scenario.Mode == Mode.Training && scenario.EffectivePrecision != Precision.Fp8 && scenario.GradientCheckpointing != Checkpointing.Selective
        && (scenario.Parallel is { Fsdp: not FsdpMode.None, Zero: 0, Tp: 1, Pp: 1, Cp: 1 } p && p.Offload != OffloadMode.Optimizer
            || IsReplayedZero(scenario));

    /// <summary>
    /// DeepSpeed ZeRO-1/2/3 full training over data-parallel ranks, with or without its CPU offload, for the engines that run
    /// it (DeepSpeed itself, and transformers or plain PyTorch scripts handing the model to it); torchtune and torchtitan do
    /// not use DeepSpeed, so a ZeRO stage there stays on the closed form.
    /// </summary>
    private static bool IsReplayedZero(Scenario scenario) =>
        scenario.Parallel is { Zero: > 0, Fsdp: FsdpMode.None, Tp: 1, Pp: 1, Cp: 1 }
        && scenario.Engine is Engine.Deepspeed or Engine.Transformers or Engine.Pytorch;
}
