using System.Globalization;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Engines;

/// <summary>The entry point: estimates the memory of a scenario.</summary>
/// <remarks>
/// Every estimate goes through one seam: the engine's path for the model and scenario (<see cref="EngineRegistry"/>), the
/// check that every option the input names is one that path reads (<see cref="OptionCheck"/>), then the path's estimate.
/// </remarks>
public static class MemoryEstimator
{
    /// <summary>Resolves the scenario's model from local sources (catalog, count, files; no Hub) and estimates it.</summary>
    /// <exception cref="ModelFormatException">The model or a setting cannot be read or is not used; the message names it.</exception>
    public static MemoryEstimate Estimate(Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        return Estimate(ModelResolver.Resolve(scenario.Model, scenario.BaseDirectory), scenario);
    }

    /// <summary>
    /// Estimates a scenario for an already resolved model (the hosts resolve once; the solvers call this in a loop). The token
    /// is checked before the estimate and, in a replay, at every layer boundary.
    /// </summary>
    /// <exception cref="ModelFormatException">A setting the engine does not use, a mode it does not run, or sizes beyond 2^63 bytes.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        cancellationToken.ThrowIfCancellationRequested();
        (model, scenario, string? fallback) = Bf16Fallback.Apply(model, scenario);
        EstimatorPath path = EngineRegistry.Route(model, scenario);
        OptionCheck.Check(scenario, path);
        MemoryEstimate estimate;
        try
        {
            estimate = path.Run(model, scenario, scenario.Gpu, cancellationToken);
        }
        catch (OverflowException)
        {
            // Every size is checked arithmetic on long: only absurd inputs (a huge batch × seq on a huge model) get here.
            throw new ModelFormatException(scenario.Given.OriginOf("seq"), "seq", string.Create(CultureInfo.InvariantCulture,
                $"× batch ({scenario.Seq:N0} × {scenario.Batch:N0} tokens) makes a buffer of {model.Name} larger than 2^63 bytes; lower seq or batch."));
        }

        // What a weights-file reader noticed (a config/header mismatch, tensors outside the layout) travels with every estimate.
        return estimate with { Gpu = scenario.Gpu, Notes = [.. fallback is null ? [] : new[] { fallback }, .. estimate.Notes, .. model.Architecture?.WeightsFile?.Notes ?? []] };
    }

    /// <summary>
    /// Whether the scenario's estimate fits its GPU (<see cref="MemoryEstimate.Fits"/>), for a search that needs only that
    /// answer: a replay that runs out of the device's memory answers "no" without the second, unlimited replay that
    /// <see cref="Estimate(ResolvedModel, Scenario, CancellationToken)"/> runs for its figures
    /// (<see cref="Replay.ReplayEstimate.RunsOutOfMemory"/>). Every other answer is the estimate's.
    /// </summary>
    /// <exception cref="ModelFormatException">As <see cref="Estimate(ResolvedModel, Scenario, CancellationToken)"/>.</exception>
    internal static bool Fits(ResolvedModel model, Scenario scenario, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        cancellationToken.ThrowIfCancellationRequested();
        (ResolvedModel routed, Scenario run, _) = Bf16Fallback.Apply(model, scenario);
        EstimatorPath path = EngineRegistry.Route(routed, run);
        OptionCheck.Check(run, path);
        if (run.Gpu?.Budget is not null && path.RunsOutOfMemory?.Invoke(routed, run, run.Gpu, cancellationToken) == true)
        {
            return false;
        }

        return Estimate(model, scenario, cancellationToken).Fits == true;
    }
}
