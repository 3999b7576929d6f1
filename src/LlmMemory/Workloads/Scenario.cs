namespace LlmMemory.Workloads;

/// <summary>One piece of LLM work, precise enough to estimate its memory (docs/scenario.md, format v1).</summary>
/// <remarks>Nullable settings mean "the default for this mode and engine"; the estimator resolves them, never the hosts.</remarks>
public sealed record Scenario
{
    public required ModelReference Model { get; init; }

    public Mode Mode { get; init; } = Mode.Inference;

    public Engine Engine { get; init; } = Engine.Transformers;

    /// <summary>Weight format name (<c>bf16</c>, <c>nf4</c>, <c>q4_k_m</c>, …); null means the model's own dtype.</summary>
    public string? Weights { get; init; }

    /// <summary>Training regime; null means <c>mixed-bf16</c> when training.</summary>
    public Precision? Precision { get; init; }

    /// <summary>Optimizer; null means AdamW when training.</summary>
    public OptimizerKind? Optimizer { get; init; }

    public bool OptimizerInBackward { get; init; }

    /// <summary>Micro-batch: sequences processed at once (llama.cpp: parallel sequences).</summary>
    public int Batch { get; init; } = 1;

    /// <summary>Tokens per sequence (training) or context length, prompt plus generated (inference).</summary>
    public int Seq { get; init; } = 2048;

    public int GradientAccumulation { get; init; } = 1;

    public Checkpointing GradientCheckpointing { get; init; } = Checkpointing.None;

    public AttentionKernel Attention { get; init; } = AttentionKernel.Sdpa;

    public CrossEntropyKind CrossEntropy { get; init; } = CrossEntropyKind.Standard;

    public bool Compile { get; init; }

    public bool Packed { get; init; }

    public LoraSettings? Lora { get; init; }

    /// <summary>K cache storage (and V unless <see cref="VCacheDtype"/> is set); null means the compute dtype (f16 for llama.cpp).</summary>
    public string? KvCacheDtype { get; init; }

    public string? VCacheDtype { get; init; }

    public ParallelSettings Parallel { get; init; } = new();

    public EngineOptions EngineOptions { get; init; } = new();

    /// <summary>GPU catalog id, or <c>cpu</c> for host memory; null when not given.</summary>
    public string? Gpu { get; init; }

    /// <summary>Folder that relative model paths are resolved against (the scenario file's folder).</summary>
    public string? BaseDirectory { get; init; }

    /// <summary>Effective batch: micro-batch × gradient accumulation × data-parallel GPUs.</summary>
    public long EffectiveBatch => (long)Batch * GradientAccumulation * Parallel.DataParallel;

    /// <summary>LoRA settings in effect: the given ones, or r = 16 on all linear layers for a LoRA/QLoRA run that names none
    /// (the rank of the essay's example; PEFT's <c>all-linear</c>); null outside LoRA modes.</summary>
    public LoraSettings? EffectiveLora => Mode is Mode.Lora or Mode.Qlora ? Lora ?? LoraSettings.Default : null;

    /// <summary>
    /// Precision in effect: the given one, or the usual one: pure bf16 for torchtune (every recipe config sets
    /// <c>dtype: bf16</c>) and for LoRA (the frozen base loaded in bf16, as PEFT's examples and transformers 5's
    /// <c>from_pretrained</c> do, with PEFT's adapters in fp32), mixed bf16 (fp32 parameters, bf16 autocast) elsewhere.
    /// </summary>
    public Precision EffectivePrecision =>
        Precision ?? (Engine == Engine.Torchtune || Mode == Mode.Lora ? Workloads.Precision.Bf16 : Workloads.Precision.MixedBf16);

    /// <summary>True for training, LoRA and QLoRA.</summary>
    public bool IsTraining => Mode != Mode.Inference;
}

/// <summary>LoRA adapters (docs/scenario.md <c>lora</c>).</summary>
/// <param name="Rank">r.</param>
/// <param name="Alpha">Scaling numerator; does not change memory.</param>
/// <param name="Targets">Module names, or a preset.</param>
/// <param name="Dora">Weight-decomposed LoRA: adds a trainable magnitude vector per adapted module.</param>
public sealed record LoraSettings(int Rank, double? Alpha, LoraTargets Targets, bool Dora)
{
    /// <summary>r = 16 on every linear layer but the head.</summary>
    public static LoraSettings Default { get; } = new(16, null, LoraTargets.AllLinear, false);
}

/// <summary>Which linear modules get adapters: a preset (<c>all-linear</c>, <c>attention</c>) or explicit names.</summary>
public sealed record LoraTargets(string? Preset, IReadOnlyList<string> Modules)
{
    public static LoraTargets AllLinear { get; } = new("all-linear", []);

    public static LoraTargets AttentionOnly { get; } = new("attention", []);

    /// <summary>Parses "all-linear", "attention" or a comma-separated list "q_proj,v_proj".</summary>
    public static LoraTargets Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string trimmed = text.Trim();
        if (trimmed is "all-linear" or "attention")
        {
            return new LoraTargets(trimmed, []);
        }

        string[] modules = trimmed.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return modules.Length > 0
            ? new LoraTargets(null, modules)
            : throw new FormatException($"'{text}' names no LoRA target; use all-linear, attention or module names such as q_proj,v_proj.");
    }

    public override string ToString() => Preset ?? string.Join(",", Modules);
}

/// <summary>Multi-GPU layout (docs/scenario.md <c>parallel</c>).</summary>
public sealed record ParallelSettings
{
    public int Gpus { get; init; } = 1;

    /// <summary>DeepSpeed ZeRO stage 0–3.</summary>
    public int Zero { get; init; }

    public FsdpMode Fsdp { get; init; } = FsdpMode.None;

    public int Tp { get; init; } = 1;

    public int Pp { get; init; } = 1;

    public int Cp { get; init; } = 1;

    public OffloadMode Offload { get; init; } = OffloadMode.None;

    /// <summary>Data-parallel degree: GPUs not used by tensor, pipeline or context parallelism.</summary>
    public int DataParallel => Math.Max(1, Gpus / Math.Max(1, Tp * Pp * Cp));
}

/// <summary>Engine knobs (docs/scenario.md <c>engine_options</c>); null means the engine's default.</summary>
public sealed record EngineOptions
{
    public double? GpuMemoryUtilization { get; init; }

    public int? MaxModelLen { get; init; }

    public int? MaxNumSeqs { get; init; }

    public int? MaxNumBatchedTokens { get; init; }

    public int? BlockSize { get; init; }

    /// <summary>llama.cpp <c>-c</c>: total KV cells shared by all sequences.</summary>
    public int? NCtx { get; init; }

    public int? NBatch { get; init; }

    public int? NUbatch { get; init; }

    /// <summary>llama.cpp <c>-np</c>: parallel sequences.</summary>
    public int? NSeq { get; init; }

    public int? NGpuLayers { get; init; }

    public bool? FlashAttn { get; init; }

    public bool? Mmap { get; init; }

    /// <summary>
    /// The engine's version or build ("0.6.4" for vLLM, "b4823" for llama.cpp) where its accounting changed between
    /// versions; null means the current release. A project extension of docs/scenario.md (docs/scenario-extensions.md).
    /// </summary>
    public string? Version { get; init; }
}
