using BenchmarkDotNet.Attributes;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>One estimate of each kind, end to end from the scenario (catalog lookup included), against the rule of thumb.</summary>
/// <remarks>
/// The target is 2 µs for one estimate; the ratio column says how far each path is from the trivial one.
/// Replays and llama.cpp runs are kept per model and scenario, so a repeated scenario is timed by the plain benchmarks and
/// a scenario seen for the first time by the <c>First</c> ones, which move the context by one token on every call.
/// </remarks>
[MemoryDiagnoser]
public class EstimateBenchmarks
{
    private int calls;

    [GlobalSetup]
    public void Warm()
    {
        // The catalog parses its configs on first use; that cost belongs to start-up (see the hyperfine figures), not to an estimate.
        foreach ((_, Scenario scenario) in Scenarios.All)
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

    [Benchmark]
    public MemoryEstimate InferenceTransformersFirst() => MemoryEstimator.Estimate(Unseen(Scenarios.InferenceTransformers));

    [Benchmark]
    public MemoryEstimate InferenceLlamaCppFirst() => MemoryEstimator.Estimate(Unseen(Scenarios.InferenceLlamaCpp));

    [Benchmark]
    public MemoryEstimate TrainingFirst() => MemoryEstimator.Estimate(Unseen(Scenarios.Training));

    [Benchmark]
    public MemoryEstimate LoraFirst() => MemoryEstimator.Estimate(Unseen(Scenarios.Lora));

    /// <summary>
    /// The scenario with a context one to a thousand tokens longer: a kept run is dropped after 512 others, so none answers it.
    /// </summary>
    private Scenario Unseen(Scenario scenario) => scenario with { Seq = scenario.Seq + 1 + (calls++ % 1000) };
}
