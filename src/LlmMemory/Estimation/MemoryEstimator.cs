using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>The entry point: estimates the memory of a scenario.</summary>
public static class MemoryEstimator
{
    /// <summary>Resolves the scenario's model and estimates it.</summary>
    /// <exception cref="ModelFormatException">The model or a setting cannot be read; the message names it.</exception>
    public static MemoryEstimate Estimate(Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        return Estimate(ModelResolver.Resolve(scenario.Model, scenario.BaseDirectory), scenario);
    }

    /// <summary>Estimates a scenario for an already resolved model (the solvers call this in a loop).</summary>
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        Gpu? gpu = scenario.Gpu is null ? null : GpuCatalog.TryFind(scenario.Gpu, out Gpu found) ? found
            : throw new ModelFormatException("scenario", "gpu", $"is \"{scenario.Gpu}\", which is not a GPU of the catalog. {GpuCatalog.Suggestion(scenario.Gpu)}");
        MemoryEstimate estimate = model.Architecture is null || model.ParameterCount == 0
            ? RuleOfThumb.Estimate(model, scenario)
            : scenario.IsTraining
                ? IsDistributed(scenario.Parallel) || model.Architecture.Experts is not null
                    ? Parallel.DistributedTraining.Estimate(model, scenario, gpu)
                    : Training.TrainingEstimator.Estimate(model, scenario, gpu)
                : Inference.InferenceEstimator.Estimate(model, scenario, gpu);
        // What a weights-file reader noticed (a config/header mismatch, tensors outside the layout) travels with every estimate.
        return estimate with { Gpu = gpu, Notes = [.. estimate.Notes, .. model.Architecture?.WeightsFile?.Notes ?? []] };
    }

    /// <summary>
    /// Sharded, offloaded or model-parallel training, even on one GPU (ZeRO-3 with offload on a single device), goes to the
    /// closed-form per-device estimator; so does mixture-of-experts training, whose routed experts the replay has no program for.
    /// </summary>
    private static bool IsDistributed(ParallelSettings p) =>
        p.Gpus > 1 || p.Zero > 0 || p.Fsdp != FsdpMode.None || p.Offload != OffloadMode.None || p.Tp * p.Pp * p.Cp > 1;
}
