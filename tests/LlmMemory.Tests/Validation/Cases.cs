using LlmMemory.Estimation;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Validation;

/// <summary>Builds cases and results by hand for the statistics and target tests.</summary>
internal static class Cases
{
    public static ValidationCase Case(string id, MeasuredQuantity what = MeasuredQuantity.PeakAllocated, long value = 1000, bool exact = false,
        long? tolerance = null, bool low = false) => new()
        {
            Id = id,
            Source = "test",
            Measured = new Measurement(what, value, MeasurementScope.Gpu, exact, tolerance),
            Scenario = new Scenario { Model = new ModelReference.ParameterCount(1_000_000) },
            LowConfidence = low,
        };

    public static CaseResult Ok(ValidationCase c, long estimated) => new() { Case = c, Status = CaseStatus.Ok, Estimated = estimated };

    public static CaseResult Unsupported(ValidationCase c) => new() { Case = c, Status = CaseStatus.Unsupported, Reason = "not modelled yet" };

    /// <summary>An ok case whose relative error is <paramref name="percent"/> % (measured 1000 bytes).</summary>
    public static CaseResult Off(string id, int percent, bool low = false) => Ok(Case(id, low: low), 1000 + (10 * percent));
}
