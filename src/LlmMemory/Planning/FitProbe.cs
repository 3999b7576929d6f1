using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>Estimates variants of a scenario for an already resolved model, turning the estimator's refusals into answers.</summary>
/// <remarks>
/// A variant the solvers make up (a longer context, a smaller format, more GPUs) can be one the estimator refuses: a
/// product beyond 2^63 bytes (<see cref="OverflowException"/> from checked arithmetic) certainly fits no device, and a
/// serving engine says when the weights leave no room for a KV cache, and a variant the estimator does not model yet
/// (<see cref="NotSupportedException"/>) cannot be shown to fit. All count as "does not fit", with the reason kept.
/// The scenario as given is estimated outside the probe, so a mistake in the user's input is still reported as one; a
/// variant is the solver's, not the user's, so an option the variant's engine or mode would not read is not refused
/// (the ladder's llama.cpp fallback, the weight sizes read from a transformers inference, LoRA in place of training).
/// The cancellation token goes to every estimate: the solvers stop at the next replay's layer boundary.
/// </remarks>
internal sealed class FitProbe(ResolvedModel model, CancellationToken cancellation = default)
{
    public ResolvedModel Model { get; } = model;

    public Probe Try(Scenario scenario)
    {
        try
        {
            return new Probe(MemoryEstimator.Estimate(Model, scenario with { Given = GivenFields.None }, cancellation), null);
        }
        catch (OverflowException)
        {
            return new Probe(null, "needs more than 2^63 bytes");
        }
        catch (Exception refused) when (refused is ModelFormatException or NotSupportedException)
        {
            return new Probe(null, refused.Message);
        }
    }

    /// <summary>
    /// <c>Try(scenario).Fits</c>, answered without the figures where they cost a replay more: a replay that runs out of
    /// the device's memory is a "no" (<see cref="MemoryEstimator.Fits"/>). For questions whose readings are never shown.
    /// </summary>
    public bool Fits(Scenario scenario)
    {
        try
        {
            return MemoryEstimator.Fits(Model, scenario with { Given = GivenFields.None }, cancellation);
        }
        catch (Exception refused) when (refused is OverflowException or ModelFormatException or NotSupportedException)
        {
            return false;
        }
    }

    public PlanOption Option(string name, string cost, Scenario scenario)
    {
        Probe probe = Try(scenario);
        return new PlanOption(name, cost, scenario, probe.Estimate, probe.Refusal);
    }
}

/// <summary>An estimate, or the estimator's reason for refusing the scenario.</summary>
internal sealed record Probe(MemoryEstimate? Estimate, string? Refusal)
{
    public bool Fits => Estimate?.Fits == true;

    /// <summary>This answer for a boundary search: whether it fits and how many bytes over <paramref name="budget"/> it is.</summary>
    public Reading Against(ByteSize budget) => new(Fits, Estimate is { } e ? (double)(e.DeviceTotal - budget).Bytes : null);
}
