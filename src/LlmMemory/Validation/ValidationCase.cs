using LlmMemory.Estimation;
using LlmMemory.Workloads;

namespace LlmMemory.Validation;

/// <summary>A scenario plus a real measurement of it: one line of a case file (docs/scenario.md, "Case fields").</summary>
public sealed record ValidationCase
{
    /// <summary>Unique, stable id (<c>id</c>).</summary>
    public required string Id { get; init; }

    /// <summary>Where the measurement was published (<c>source</c>).</summary>
    public required string Source { get; init; }

    /// <summary>What was measured and how precisely (<c>measured</c>).</summary>
    public required Measurement Measured { get; init; }

    /// <summary>The work that was measured.</summary>
    public required Scenario Scenario { get; init; }

    /// <summary>
    /// True when the case says <c>"confidence": "low"</c>: it is run and reported, but kept out of the error statistics,
    /// because the measurement itself is uncertain (assumed settings, a range, an unnamed counter).
    /// </summary>
    public bool LowConfidence { get; init; }

    /// <summary>The fine-tuning stack that ran the case, name and version (<c>stack</c>), where the case names one; the accuracy page groups by it.</summary>
    public string? Stack { get; init; }

    /// <summary>
    /// The named mechanism that keeps this case's estimate off, and where it is written up (<c>known_gap</c>), where the
    /// scenario cannot express it; it changes no estimate and no statistic, and the accuracy page prints it beside the case.
    /// </summary>
    public string? KnownGap { get; init; }

    /// <summary>Where the case was read ("cases.jsonl line 12"), for messages.</summary>
    public string Location { get; init; } = "";
}

/// <summary>A measured figure (<c>measured</c>).</summary>
/// <param name="What">The quantity (<c>measured.what</c>).</param>
/// <param name="Value">Bytes, or a count for parameters (<c>measured.bytes</c>); at least 1.</param>
/// <param name="Scope">One device (the most loaded) or the sum over devices (<c>measured.per</c>).</param>
/// <param name="Exact">The figure is exact to the byte and fixed by arithmetic, so the estimate must equal it (<c>measured.exact</c>).</param>
/// <param name="ToleranceBytes">How far the published figure can be from the true value because of its printed rounding (<c>measured.tolerance_bytes</c>).</param>
public sealed record Measurement(MeasuredQuantity What, long Value, MeasurementScope Scope, bool Exact, long? ToleranceBytes)
{
    /// <summary>Whether the estimate is judged by equality (exact) or by the tolerance rather than by its relative error.</summary>
    public bool ExactRequired => Exact || ToleranceBytes is not null;

    /// <summary>Whether <paramref name="estimate"/> meets an exact requirement: within <see cref="ToleranceBytes"/> when given, else equal.</summary>
    public bool Matches(long estimate) => Math.Abs(estimate - Value) <= (ToleranceBytes ?? 0);
}
