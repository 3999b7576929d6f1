namespace LlmMemory.Validation;

/// <summary>The summary of a validation run, as <c>validate --json</c> prints it (docs/scenario.md).</summary>
/// <param name="Count">Every case.</param>
/// <param name="Ok">Cases estimated.</param>
/// <param name="Unsupported">Cases the estimator cannot do yet.</param>
/// <param name="Errors">|relative error| over the cases in the error statistics (<see cref="CaseResult.InErrorStatistics"/>).</param>
/// <param name="ExactMatches">Cases with an exact requirement that meet it.</param>
/// <param name="ExactRequired">Cases with <c>exact: true</c> or a <c>tolerance_bytes</c>.</param>
public sealed record ValidationSummary(int Count, int Ok, int Unsupported, ErrorSummary Errors, int ExactMatches, int ExactRequired)
{
    public static ValidationSummary Of(IEnumerable<CaseResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        CaseResult[] all = results.ToArray();
        return new ValidationSummary(
            all.Length,
            all.Count(r => r.Status == CaseStatus.Ok),
            all.Count(r => r.Status == CaseStatus.Unsupported),
            ErrorSummary.Of(all.Where(r => r.InErrorStatistics).Select(r => r.RelativeError!.Value)),
            all.Count(r => r.ExactMatch == true),
            all.Count(r => r.ExactRequired));
    }
}

/// <summary>Median, p90 (nearest rank) and maximum of |relative error| over <paramref name="Count"/> cases; null when there are none.</summary>
public sealed record ErrorSummary(int Count, double? Median, double? P90, double? Max)
{
    /// <summary>Summarizes signed relative errors by their absolute values (<see cref="ErrorStatistics"/>).</summary>
    public static ErrorSummary Of(IEnumerable<double> relativeErrors)
    {
        double[] absolute = relativeErrors.Select(Math.Abs).ToArray();
        return new ErrorSummary(absolute.Length, ErrorStatistics.Median(absolute), ErrorStatistics.Percentile(absolute, 90),
            ErrorStatistics.Max(absolute));
    }
}
