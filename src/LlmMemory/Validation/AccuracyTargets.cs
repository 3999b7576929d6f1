using System.Globalization;
using LlmMemory.Estimation;
using LlmMemory.Workloads;

namespace LlmMemory.Validation;

/// <summary>One accuracy target and whether a run meets it.</summary>
/// <param name="Target">The target in words.</param>
/// <param name="Met">Whether it is met.</param>
/// <param name="Figures">The figures behind the verdict ("34 of 38", "3.10 % over 120 cases").</param>
/// <param name="Missing">The cases that miss it (for a statistic: those beyond its limit), worst first, each with its estimate or reason.</param>
public sealed record TargetCheck(string Target, bool Met, string Figures, IReadOnlyList<string> Missing);

/// <summary>The accuracy targets on the public corpus (issue "Accuracy you can see"), checked on a validation run.</summary>
/// <remarks>
/// Parameter counts and <c>exact: true</c> cases must equal the measurement, and <c>tolerance_bytes</c> cases lie within
/// it, whatever their confidence. Every other case that is not low-confidence must be estimated, with median
/// |relative error| at most 5 % and p90 (nearest rank) at most 12 % (<see cref="CaseResult.InErrorStatistics"/>).
/// </remarks>
public static class AccuracyTargets
{
    /// <summary>Largest median |relative error| allowed.</summary>
    public const double MaxMedian = 0.05;

    /// <summary>Largest p90 |relative error| allowed (nearest rank).</summary>
    public const double MaxP90 = 0.12;

    public static IReadOnlyList<TargetCheck> Check(ValidationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        IReadOnlyList<CaseResult> worstFirst = report.WorstFirst();
        CaseResult[] exact = worstFirst.Where(r => IsCount(r) || (r.Case.Measured.Exact && r.Case.Measured.ToleranceBytes is null)).ToArray();
        CaseResult[] tolerance = worstFirst.Where(r => r.Case.Measured.ToleranceBytes is not null && !IsCount(r)).ToArray();
        CaseResult[] required = worstFirst.Where(r => !r.Case.LowConfidence).ToArray();
        ErrorSummary errors = report.Summary.Errors;
        return
        [
            Cases("parameter counts and exact: true cases equal the measurement", exact, r => r.Estimated == r.Case.Measured.Value),
            Cases("tolerance_bytes cases lie within their tolerance", tolerance, r => r.ExactMatch == true),
            Cases("every case that is not low-confidence is estimated", required, r => r.Status == CaseStatus.Ok),
            Statistic("median |relative error|", errors.Median, MaxMedian, errors.Count, worstFirst),
            Statistic("p90 |relative error|", errors.P90, MaxP90, errors.Count, worstFirst),
        ];
    }

    private static bool IsCount(CaseResult result) =>
        result.Case.Measured.What is MeasuredQuantity.Parameters or MeasuredQuantity.TrainableParameters;

    private static TargetCheck Cases(string target, CaseResult[] cases, Func<CaseResult, bool> meets)
    {
        string[] missing = cases.Where(r => !meets(r)).Select(Describe).ToArray();
        return new TargetCheck(target, missing.Length == 0, $"{cases.Length - missing.Length} of {cases.Length}", missing);
    }

    /// <summary>A statistic's check; <see cref="TargetCheck.Missing"/> lists the cases beyond the limit, which pull the statistic up.</summary>
    private static TargetCheck Statistic(string name, double? value, double limit, int count, IEnumerable<CaseResult> worstFirst) =>
        new($"{name} ≤ {Percent(limit)}", value is double v && v <= limit,
            value is double x ? $"{Percent(x)} over {count} cases" : "no case in the error statistics",
            worstFirst.Where(r => r.InErrorStatistics && Math.Abs(r.RelativeError!.Value) > limit)
                .Select(r => string.Create(CultureInfo.InvariantCulture, $"{r.Case.Id} ({r.RelativeError:+0.0%;-0.0%})")).ToArray());

    private static string Describe(CaseResult result) => result switch
    {
        { Status: CaseStatus.Unsupported } => $"{result.Case.Id} (unsupported: {result.Reason})",
        _ => string.Create(CultureInfo.InvariantCulture,
            $"{result.Case.Id} (estimated {result.Estimated:N0}, measured {result.Case.Measured.Value:N0})"),
    };

    /// <summary>A ratio as a percentage with two decimals ("3.10 %").</summary>
    private static string Percent(double ratio) => string.Create(CultureInfo.InvariantCulture, $"{ratio * 100:0.00} %");
}
