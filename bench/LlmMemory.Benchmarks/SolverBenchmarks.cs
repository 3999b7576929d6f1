using BenchmarkDotNet.Attributes;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>
/// Each planning solver of <c>llm-memory fit</c> on its own, and the whole plan, against one estimate of the same scenario:
/// the ratio is how many estimates' worth of time a solver costs (the target is 1 ms per solver).
/// </summary>
/// <remarks>
/// Inference: Llama-3.1-8B under transformers on an RTX 4090 at 8k tokens (fits; the length and batch searches run to
/// their boundary). Training: Llama-3.1-70B, mixed bf16 with AdamW on one H100 (does not fit, so the GPU count and the
/// training changes are searched).
/// </remarks>
[MemoryDiagnoser]
public class SolverBenchmarks
{
    private static readonly Scenario Inference = new() { Model = new ModelReference.Named("llama-3.1-8b"), Seq = 8192, Gpu = GpuCatalog.Find("rtx-4090") };

    private static readonly Scenario Training = new() { Model = new ModelReference.Named("llama-3.1-70b"), Mode = Mode.Training, Gpu = GpuCatalog.Find("h100-80gb") };

    private ResolvedModel _small = null!;
    private ResolvedModel _large = null!;

    [GlobalSetup]
    public void Resolve()
    {
        _small = ModelResolver.Resolve(Inference.Model);
        _large = ModelResolver.Resolve(Training.Model);
        _ = FitPlanner.Plan(_small, Inference);
        _ = FitPlanner.Plan(_large, Training);
    }

    [Benchmark(Baseline = true)]
    public long OneEstimate() => MemoryEstimator.Estimate(_small, Inference).DeviceTotal.Bytes;

    /// <summary>Longest context that fits: the boundary search over <c>seq</c> that <see cref="FitPlanner"/> runs.</summary>
    [Benchmark]
    public int? MaxSeq()
    {
        var probe = new FitProbe(_small);
        return BoundarySearch.Largest(n => probe.Try(Inference with { Seq = n }).Fits, FitPlanner.MaxSeq).Value;
    }

    /// <summary>Largest batch that fits at 8k tokens.</summary>
    [Benchmark]
    public int? MaxBatch()
    {
        var probe = new FitProbe(_small);
        return BoundarySearch.Largest(n => probe.Try(Inference with { Batch = n }).Fits, FitPlanner.MaxBatch).Value;
    }

    /// <summary>Weight formats from the engine's ladder, each estimated, to find the first that fits.</summary>
    [Benchmark]
    public int WeightFormats()
    {
        var probe = new FitProbe(_small);
        return WeightLadder.Estimate(probe, Inference, WeightLadder.For(Inference.Engine, Inference, _small.Architecture)).Count;
    }

    /// <summary>Fewest GPUs (ZeRO/FSDP layouts) for 70B training.</summary>
    [Benchmark]
    public int? MinGpus() => GpuCounts.Solve(new FitProbe(_large), Training, fitsAsGiven: false).Count;

    /// <summary>Training changes (LoRA, QLoRA, 8-bit optimizer, checkpointing, …) for 70B training.</summary>
    [Benchmark]
    public int TrainingChanges() => Planning.TrainingChanges.Estimate(new FitProbe(_large), Training).Count;

    /// <summary>The whole inference plan (<c>llm-memory fit llama-3.1-8b --gpu rtx-4090 --context 8192</c>).</summary>
    [Benchmark]
    public int? FitInference() => FitPlanner.Plan(_small, Inference).MaxSeq.Value;

    /// <summary>The whole training plan (<c>llm-memory fit llama-3.1-70b --mode training --gpu h100-80gb</c>).</summary>
    [Benchmark]
    public int? FitTraining() => FitPlanner.Plan(_large, Training).MinGpus.Count;
}
