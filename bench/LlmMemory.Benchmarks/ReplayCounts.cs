using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>
/// <c>replays</c>: how many replays each solver of a fresh <c>fit</c> runs (every kept estimate forgotten before each
/// line), for the scenarios of <see cref="FreshBenchmarks"/>. The searches are counted twice: as the planner runs them
/// (interpolating between estimates, its guard asking only whether values fit) and as a plain doubling and bisection on
/// the same question would.
/// </summary>
internal static class ReplayCounts
{
    public static int Print(TextWriter output)
    {
        foreach ((string name, Scenario scenario) in new[] { ("LoRA 8B, RTX 4090", FreshBenchmarks.Lora8B), ("training 70B, H100", FreshBenchmarks.Training70B) })
        {
            ResolvedModel model = ModelResolver.Resolve(scenario.Model);
            ByteSize budget = scenario.Gpu!.Budget!.Value;
            output.WriteLine(name);
            Count(output, "estimate as given", () => MemoryEstimator.Estimate(model, scenario));
            Count(output, "longest context, interpolated", () => BoundarySearch.Largest(n => Reading(model, scenario with { Seq = n }, budget), FitPlanner.MaxSeq,
                n => new FitProbe(model).Fits(scenario with { Seq = n })));
            Count(output, "longest context, plain", () => BoundarySearch.Largest(n => new FitProbe(model).Try(scenario with { Seq = n }).Fits, FitPlanner.MaxSeq));
            Count(output, "largest batch, interpolated", () => BoundarySearch.Largest(n => Reading(model, scenario with { Batch = n }, budget), FitPlanner.MaxBatch,
                n => new FitProbe(model).Fits(scenario with { Batch = n })));
            Count(output, "largest batch, plain", () => BoundarySearch.Largest(n => new FitProbe(model).Try(scenario with { Batch = n }).Fits, FitPlanner.MaxBatch));
            Count(output, "fewest GPUs", () => GpuCounts.Solve(new FitProbe(model), scenario, fitsAsGiven: false));
            Count(output, "training changes", () => TrainingChanges.Estimate(new FitProbe(model), scenario));
            Count(output, "whole plan", () => FitPlanner.Plan(model, scenario));
        }

        return 0;
    }

    private static Reading Reading(ResolvedModel model, Scenario scenario, ByteSize budget) => new FitProbe(model).Try(scenario).Against(budget);

    private static void Count(TextWriter output, string what, Func<object?> run)
    {
        EstimateCache.ClearAll();
        long before = Replayer.Runs;
        run();
        output.WriteLine($"  {what,-32} {Replayer.Runs - before,4} replays");
    }
}
