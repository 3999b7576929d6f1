using BenchmarkDotNet.Attributes;
using LlmMemory.Estimation;

namespace LlmMemory.Benchmarks;

/// <summary>One estimate of each kind, end to end from the scenario (catalog lookup included), against the rule of thumb.</summary>
/// <remarks>The target is 2 µs for one estimate; the ratio column says how far each path is from the trivial one.</remarks>
[MemoryDiagnoser]
public class EstimateBenchmarks
{
    [GlobalSetup]
    public void Warm()
    {
        // The catalog parses its configs on first use; that cost belongs to start-up (see the hyperfine figures), not to an estimate.
        foreach ((_, Workloads.Scenario scenario) in Scenarios.All)
        {
            _ = MemoryEstimator.Estimate(scenario);
        }
    }

    [Benchmark(Baseline = true)]
    public MemoryEstimate RuleOfThumb() => MemoryEstimator.Estimate(Scenarios.RuleOfThumb);

    [Benchmark]
    public MemoryEstimate InferenceTransformers() => MemoryEstimator.Estimate(Scenarios.InferenceTransformers);

    [Benchmark]
    public MemoryEstimate InferenceVllm() => MemoryEstimator.Estimate(Scenarios.InferenceVllm);

    [Benchmark]
    public MemoryEstimate InferenceLlamaCpp() => MemoryEstimator.Estimate(Scenarios.InferenceLlamaCpp);

    [Benchmark]
    public MemoryEstimate Training() => MemoryEstimator.Estimate(Scenarios.Training);

    [Benchmark]
    public MemoryEstimate Lora() => MemoryEstimator.Estimate(Scenarios.Lora);
}
