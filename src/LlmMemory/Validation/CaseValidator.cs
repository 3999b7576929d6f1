using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Validation;

/// <summary>Estimates each case and compares it with its measurement on the quantity that was measured.</summary>
/// <remarks>
/// The estimate is asked for the measured quantity (<see cref="MemoryEstimate.Quantity"/>), so it includes exactly what
/// that counter sees (<see cref="Counter"/> of each component): live tensors for <c>peak_allocated</c>, plus the
/// allocator's cache for <c>peak_reserved</c>, plus the CUDA context and other memory outside the allocator for
/// <c>device_used</c>; on the most loaded device or summed over devices as <c>measured.per</c> says. A case the estimator cannot do is kept as <see cref="CaseStatus.Unsupported"/> with the
/// reason: the estimator throws <see cref="NotSupportedException"/> for what it does not model yet, and a
/// <see cref="FormatException"/> for a model or setting it cannot resolve; an estimate with no part of the measured
/// kind (no KV cache, no compute buffer) is unsupported too. Any other exception is a bug and propagates.
/// </remarks>
public static class CaseValidator
{
    /// <summary>Validates every case, in order.</summary>
    public static ValidationReport Validate(IEnumerable<ValidationCase> cases)
    {
        ArgumentNullException.ThrowIfNull(cases);
        return new ValidationReport(cases.Select(Validate).ToArray());
    }

    /// <summary>Estimates one case and compares it with its measurement.</summary>
    public static CaseResult Validate(ValidationCase validationCase)
    {
        ArgumentNullException.ThrowIfNull(validationCase);
        Measurement measured = validationCase.Measured;
        MemoryEstimate estimate;
        try
        {
            estimate = MemoryEstimator.Estimate(validationCase.Scenario);
        }
        catch (Exception error) when (error is NotSupportedException or FormatException)
        {
            return Unsupported(validationCase, error.Message);
        }

        long value = estimate.Quantity(measured.What, allDevices: measured.Scope == MeasurementScope.Total);
        if (value == 0)
        {
            return Unsupported(validationCase, $"the estimate has no {Names.Of(measured.What)} part for this scenario.");
        }

        return new CaseResult
        {
            Case = validationCase,
            Status = CaseStatus.Ok,
            Estimated = value,
            Naive = NaiveRules.Estimate(estimate.Model, validationCase.Scenario, measured),
        };
    }

    private static CaseResult Unsupported(ValidationCase validationCase, string reason) =>
        new() { Case = validationCase, Status = CaseStatus.Unsupported, Reason = reason };
}
