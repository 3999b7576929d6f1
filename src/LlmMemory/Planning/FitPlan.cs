using LlmMemory.Estimation;
using LlmMemory.Hardware;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>The planning answers for one scenario on one kind of GPU: what fits, how far it stretches, what to change.</summary>
public sealed record FitPlan
{
    public required Scenario Scenario { get; init; }

    public required Gpu Gpu { get; init; }

    /// <summary>The memory every answer must fit in (<see cref="Gpu.Budget"/>).</summary>
    public required ByteSize Budget { get; init; }

    /// <summary>The model as resolved (once, for every estimate of the plan).</summary>
    public required ResolvedModel Model { get; init; }

    /// <summary>The estimate of the scenario exactly as given; null when the estimator says it cannot fit this GPU at all
    /// (a serving engine whose weights leave no room for a KV cache), with the reason in <see cref="AsGivenRefusal"/>.</summary>
    public MemoryEstimate? AsGiven { get; init; }

    /// <summary>Why the scenario as given has no estimate on this GPU.</summary>
    public string? AsGivenRefusal { get; init; }

    /// <summary>Whether the scenario is a serving engine (vLLM, SGLang) sized by its max_model_len rather than a batch.</summary>
    public bool ServesRequests { get; init; }

    /// <summary>Tokens per sequence the batch answer and the formats are at: the server's max_model_len when it serves
    /// requests, else the scenario's sequence length.</summary>
    public required int Context { get; init; }

    /// <summary>The largest sequence (context) length at the scenario's batch.</summary>
    public required SolvedValue MaxSeq { get; init; }

    /// <summary>The largest (micro-)batch at the scenario's sequence length.</summary>
    public required SolvedValue MaxBatch { get; init; }

    /// <summary>The model's context window (<c>max_position_embeddings</c>), when known.</summary>
    public int? ContextWindow { get; init; }

    /// <summary>The fewest GPUs of this kind that run the scenario.</summary>
    public required GpuCount MinGpus { get; init; }

    /// <summary>Inference: the engine's weight formats from most to fewest bytes, each estimated at the scenario's batch and context.</summary>
    public IReadOnlyList<PlanOption> Formats { get; init; } = [];

    /// <summary>Inference: the first format of <see cref="Formats"/> that fits; null when none does.</summary>
    public string? FormatNeeded { get; init; }

    /// <summary>Inference: what a serving engine (vLLM) would make of the GPU at the scenario's context.</summary>
    public ServingCapacity? Serving { get; init; }

    /// <summary>Training: micro-batch and accumulation steps that reach the target effective batch.</summary>
    public AccumulationPlan? Accumulation { get; init; }

    /// <summary>Training that does not fit: single changes in order of cost, then cumulative combinations.</summary>
    public IReadOnlyList<PlanOption> Changes { get; init; } = [];

    /// <summary>What the planner noticed: limits of the estimator, non-monotone estimates, context windows.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Whether the scenario as given fits (<see cref="MemoryEstimate.Fits"/>, the rule of <c>estimate --gpu</c>).</summary>
    public bool Fits => AsGiven?.Fits == true;

    /// <summary>The cheapest change (or combination) that fits; null when the scenario fits or nothing tried does.</summary>
    public PlanOption? CheapestChange => Changes.FirstOrDefault(c => c.Fits);
}

/// <summary>A solved boundary: the value, and what stops it from being one larger.</summary>
/// <param name="Value">The answer; null when even 1 does not fit.</param>
/// <param name="Limit">What the next value runs into.</param>
/// <param name="Reason">One line on the limit, with numbers ("32,769 needs 23.70 GiB of 23.64 GiB").</param>
/// <param name="Questions">Estimates the solver made (0 when the answer came from the estimate's facts).</param>
public sealed record SolvedValue(int? Value, SolveLimit Limit, string Reason, int Questions);

/// <summary>What bounds a solved value.</summary>
public enum SolveLimit
{
    /// <summary>The next value's estimate exceeds the GPU's budget.</summary>
    Memory,

    /// <summary>The estimator refuses the next value (the reason says why).</summary>
    Estimator,

    /// <summary>Memory does not bound it below the solver's cap; the value is the cap.</summary>
    SearchLimit,

    /// <summary>Even the smallest value does not fit.</summary>
    NothingFits,

    /// <summary>A serving engine's KV pool (from the estimate's facts).</summary>
    KvPool,
}

/// <summary>The fewest GPUs of the scenario's kind, and the layout that spreads the work over them.</summary>
/// <param name="Count">The answer; null when no count up to the cap fits or the estimator cannot spread this work.</param>
/// <param name="Layout">The layout tried ("tensor parallel", "ZeRO-3", "FSDP full_shard").</param>
/// <param name="Supported">False when the estimator does not model this layout for this engine and mode yet.</param>
/// <param name="Reason">One line on how the answer was found or why there is none.</param>
/// <param name="Questions">Estimates the solver made.</param>
public sealed record GpuCount(int? Count, string Layout, bool Supported, string Reason, int Questions);

/// <summary>One alternative the planner estimated: a weight format, or a change to a training run.</summary>
/// <param name="Name">Short name (<c>q4_k_m</c>, <c>gradient checkpointing</c>).</param>
/// <param name="Cost">What it costs besides memory, in words.</param>
/// <param name="Scenario">The scenario estimated.</param>
/// <param name="Estimate">The estimate; null when the estimator refused the scenario.</param>
/// <param name="Refusal">The estimator's reason when it refused.</param>
public sealed record PlanOption(string Name, string Cost, Scenario Scenario, MemoryEstimate? Estimate, string? Refusal)
{
    /// <summary>Weight bytes of the option, known even when its engine refused it (formats only).</summary>
    public ByteSize? Weights { get; init; }

    public bool Fits => Estimate?.Fits == true;
}

/// <summary>vLLM-style serving of the model on the GPU: the KV pool and how many requests of the scenario's context it holds.</summary>
/// <param name="Engine">The serving engine estimated.</param>
/// <param name="Estimate">Its estimate; null when it refused (the model leaves no room for a KV cache).</param>
/// <param name="Refusal">The estimator's reason when it refused.</param>
/// <param name="KvTokens">KV cache capacity in tokens.</param>
/// <param name="MaxModelLen">The longest single request the pool holds.</param>
/// <param name="RequestTokens">The request length the concurrency is for (the engine's <c>max_model_len</c>).</param>
/// <param name="MaxConcurrency">Requests of <paramref name="RequestTokens"/> that fit in the pool at once.</param>
public sealed record ServingCapacity(Engine Engine, MemoryEstimate? Estimate, string? Refusal, long KvTokens, long MaxModelLen, int RequestTokens,
    long MaxConcurrency)
{
    /// <summary>
    /// Why that many requests: the pool ÷ the request, or, when sliding-window layers keep only their window (vLLM's
    /// hybrid KV cache manager), the blocks each request takes in every layer group.
    /// </summary>
    public string Reason => MaxConcurrency > KvTokens / Math.Max(1, RequestTokens)
        ? $"KV pool of {Estimation.Text.N(KvTokens)} tokens; a request of {Estimation.Text.N(RequestTokens)} tokens keeps every token only in full-attention layers (sliding-window layers hold their window), so {Estimation.Text.N(MaxConcurrency)} share it"
        : $"KV pool of {Estimation.Text.N(KvTokens)} tokens ÷ {Estimation.Text.N(RequestTokens)} tokens per request (max_model_len {Estimation.Text.N(RequestTokens)})";
}

/// <summary>Gradient accumulation that reaches a target effective batch without exceeding the largest micro-batch that fits.</summary>
/// <param name="TargetBatch">The effective batch asked for.</param>
/// <param name="MicroBatch">Sequences per forward pass on each GPU (at most the largest that fits).</param>
/// <param name="Steps">Micro-batches accumulated per optimizer step.</param>
/// <param name="DataParallel">Data-parallel replicas.</param>
/// <param name="Reason">How the numbers were chosen.</param>
public sealed record AccumulationPlan(int TargetBatch, int MicroBatch, int Steps, int DataParallel, string Reason)
{
    /// <summary>micro-batch × steps × replicas.</summary>
    public long EffectiveBatch => (long)MicroBatch * Steps * DataParallel;
}
