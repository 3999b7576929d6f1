using BenchmarkDotNet.Attributes;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>
/// Fresh questions: every kept estimate is forgotten before each operation (<see cref="EstimateCache.ClearAll"/>), as for
/// a CLI run or a web user who moves a slider. Weight layouts stay cached per model, as for a loaded model. The ratios
/// the issue asks for are between rows of one run: a fit against the estimate of the same scenario, and a 70B training
/// replay against an 8B one.
/// </summary>
[MemoryDiagnoser]
public class FreshBenchmarks
{
    /// <summary><c>llm-memory fit llama-3.1-8b --mode lora --gpu rtx-4090</c>.</summary>
    public static readonly Scenario Lora8B = new() { Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Lora, Gpu = GpuCatalog.Find("rtx-4090") };

    /// <summary><c>llm-memory fit llama-3.1-70b --mode training --gpu h100-80gb</c>.</summary>
    public static readonly Scenario Training70B = new() { Model = new ModelReference.Named("llama-3.1-70b"), Mode = Mode.Training, Gpu = GpuCatalog.Find("h100-80gb") };

    /// <summary>Llama-3.1-8B full training, mixed bf16 with AdamW, batch 1 × 2048, no GPU limit.</summary>
    public static readonly Scenario Training8B = new() { Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Training };

    private ResolvedModel _small = null!;
    private ResolvedModel _large = null!;

    [GlobalSetup]
    public void Resolve()
    {
        _small = ModelResolver.Resolve(Lora8B.Model);
        _large = ModelResolver.Resolve(Training70B.Model);
    }

    [Benchmark(Baseline = true)]
    public long EstimateLora8B() => Fresh(() => MemoryEstimator.Estimate(_small, Lora8B).DeviceTotal.Bytes);

    [Benchmark]
    public int? FitLora8B() => Fresh(() => FitPlanner.Plan(_small, Lora8B).MaxSeq.Value);

    [Benchmark]
    public long EstimateTraining70B() => Fresh(() => MemoryEstimator.Estimate(_large, Training70B).DeviceTotal.Bytes);

    [Benchmark]
    public int? FitTraining70B() => Fresh(() => FitPlanner.Plan(_large, Training70B).MinGpus.Count);

    /// <summary>One training replay of 8B (no device limit), the base of the 70B-to-8B ratio.</summary>
    [Benchmark]
    public long ReplayTraining8B() => Fresh(() => MemoryEstimator.Estimate(_small, Training8B).DeviceTotal.Bytes);

    /// <summary>The same replay of 70B.</summary>
    [Benchmark]
    public long ReplayTraining70B() => Fresh(() => MemoryEstimator.Estimate(_large, Training8B with { Model = Training70B.Model }).DeviceTotal.Bytes);

    private static T Fresh<T>(Func<T> question)
    {
        EstimateCache.ClearAll();
        return question();
    }
}
