using LlmMemory.Hardware;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>The result of an estimate: a breakdown whose device components add up to the device total.</summary>
public sealed record MemoryEstimate
{
    /// <summary>The model as resolved (name, origin, architecture summary).</summary>
    public required ResolvedModel Model { get; init; }

    public required ParameterSummary Parameters { get; init; }

    /// <summary>Every component at the peak, in the order the essay teaches (weights first).</summary>
    public required IReadOnlyList<MemoryComponent> Components { get; init; }

    /// <summary>When the peak happens ("prefill", "loss and start of backward", "optimizer step", "load").</summary>
    public required string PeakPhase { get; init; }

    /// <summary>Devices of the run (1 unless parallel).</summary>
    public int DeviceCount { get; init; } = 1;

    /// <summary>Which device the breakdown is for when devices differ ("rank 0, first pipeline stage").</summary>
    public string Device { get; init; } = "each device";

    /// <summary>The device the estimate was checked against, when one was given.</summary>
    public Gpu? Gpu { get; init; }

    /// <summary>Lines that compare with rules of thumb or other tools; not part of the total.</summary>
    public IReadOnlyList<MemoryComponent> Comparisons { get; init; } = [];

    /// <summary>Derived numbers worth reporting (effective batch, KV tokens that fit, concurrency), keyed in snake_case.</summary>
    public IReadOnlyList<EstimateFact> Facts { get; init; } = [];

    /// <summary>Device memory over one step (training: load, forward per layer, loss, backward, optimizer step; inference:
    /// load, prefill, decode), in order; empty when the estimator has no time structure.</summary>
    public IReadOnlyList<TimelinePoint> Timeline { get; init; } = [];

    /// <summary>Assumptions made and defaults applied, one sentence each.</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Device memory at the peak: every device-resident component (what nvidia-smi would show).</summary>
    public ByteSize DeviceTotal => Sum(c => c.Residence == Residence.Device);

    /// <summary>Host memory the run needs next to the device (offload, llama.cpp host buffers).</summary>
    public ByteSize HostTotal => Sum(c => c.Residence == Residence.Host);

    /// <summary>Device memory summed over all devices of the run.</summary>
    public ByteSize AllDevicesTotal => Components.Where(c => c.Residence == Residence.Device)
        .Aggregate(ByteSize.Zero, (sum, c) => sum + (c.AllDevices ?? c.Bytes * DeviceCount));

    /// <summary>An engine's own start-up check, for engines that size themselves (vLLM needs room for one request of
    /// <c>max_model_len</c> tokens in its KV pool); null when the engine has none.</summary>
    public bool? EngineAccepts { get; init; }

    /// <summary>Why the engine would refuse to start (lower case, no full stop); null when it starts or has no such check.</summary>
    public string? EngineRefusal { get; init; }

    /// <summary>Whether <see cref="DeviceTotal"/> fits the device's budget and the engine accepts the run; null without a device.</summary>
    public bool? Fits => Gpu?.Budget is ByteSize budget ? DeviceTotal <= budget && EngineAccepts != false : null;

    /// <summary>The estimate of a measured quantity, on the most loaded device or summed over devices.</summary>
    public long Quantity(MeasuredQuantity quantity, bool allDevices = false)
    {
        Func<MemoryComponent, bool> include = quantity switch
        {
            MeasuredQuantity.Parameters => _ => false,
            MeasuredQuantity.TrainableParameters => _ => false,
            MeasuredQuantity.Weights => c => c.Kind == ComponentKind.Weights,
            MeasuredQuantity.KvCache => c => c.Kind == ComponentKind.KvCache,
            MeasuredQuantity.ComputeBuffer => c => c.Kind == ComponentKind.ComputeBuffer,
            MeasuredQuantity.PeakAllocated => c => c.Counter == Counter.Allocated,
            MeasuredQuantity.PeakReserved => c => c.Counter != Counter.Device,
            _ => _ => true,
        };
        return quantity switch
        {
            MeasuredQuantity.Parameters => Parameters.Total,
            MeasuredQuantity.TrainableParameters => Parameters.Trainable,
            _ => Components.Where(c => c.Residence == Residence.Device && include(c))
                .Sum(c => allDevices ? (c.AllDevices ?? c.Bytes * DeviceCount).Bytes : c.Bytes.Bytes),
        };
    }

    private ByteSize Sum(Func<MemoryComponent, bool> include) =>
        Components.Where(include).Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);
}

/// <summary>Parameter counts of the estimated model.</summary>
/// <param name="Total">Every parameter.</param>
/// <param name="Trainable">Parameters that receive gradients (0 for inference; adapters only for LoRA).</param>
/// <param name="ActivePerToken">Parameters one token uses (differs from the total for MoE).</param>
public sealed record ParameterSummary(long Total, long Trainable, long ActivePerToken);

/// <summary>Memory allocated on the device at one moment of a step.</summary>
/// <param name="Phase">The moment ("load", "forward layer 12", "loss", "backward layer 3", "optimizer step").</param>
/// <param name="Bytes">Device memory at that moment, counted like <see cref="MemoryEstimate.DeviceTotal"/>; a replayed PyTorch run
/// counts its live tensors there (the allocator's cache, which only grows, is left out so the step's shape shows).</param>
public sealed record TimelinePoint(string Phase, ByteSize Bytes);

/// <summary>A derived number with what it means.</summary>
/// <param name="Key">snake_case key, stable in JSON (<c>effective_batch</c>, <c>kv_tokens</c>).</param>
/// <param name="Value">The number.</param>
/// <param name="Description">One line on what it is.</param>
public sealed record EstimateFact(string Key, long Value, string Description);
