using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Rendering;

/// <summary>The human form of <c>validate</c>: a table worst first, the reasons for unsupported cases, the summary last.</summary>
internal static class ValidationTable
{
    public static void Write(CliOutput io, ValidationReport report)
    {
        IEnumerable<string[]> rows = report.WorstFirst().Select(r => new[]
        {
            r.Case.Id, What(r), ValidationCells.Measured(r), ValidationCells.Estimated(r), ValidationCells.Error(r.RelativeError),
            string.Join("; ", new[] { ValidationCells.Check(r), r.Case.LowConfidence ? "low confidence" : "" }.Where(s => s.Length > 0)),
        });
        Output.Table(io, ["Case", "What", "Measured", "Estimated", "Error", "Exact / note"], rows, rightAligned: [2, 3, 4],
            caption: "Worst first: unsupported, then missed exact requirements, then by |error|. Error = (estimated − measured) / measured.");
        foreach (IGrouping<string, CaseResult> reason in report.Results.Where(r => r.Reason is not null).GroupBy(r => r.Reason!, StringComparer.Ordinal))
        {
            string cases = reason.Count() == 1 ? reason.First().Case.Id : $"{reason.Count()} cases ({reason.First().Case.Id}, …)";
            io.WriteWrapped($"Unsupported, {cases}: {reason.Key}");
        }

        foreach (string line in SummaryLines(report.Summary))
        {
            io.WriteWrapped(line);
        }
    }

    public static IEnumerable<string> SummaryLines(ValidationSummary summary)
    {
        yield return $"{Cases(summary.Count)}: {summary.Ok} ok, {summary.Unsupported} unsupported.";
        ErrorSummary e = summary.Errors;
        yield return e.Count == 0
            ? "|error|: no case in the error statistics (estimated, no exact requirement, not low-confidence)."
            : $"|error| over {Cases(e.Count)} (estimated, no exact requirement, not low-confidence): median {ValidationCells.Percent(e.Median)}, "
                + $"p90 {ValidationCells.Percent(e.P90)} (nearest rank), max {ValidationCells.Percent(e.Max)}.";
        yield return $"Exact: {summary.ExactMatches} of {Cases(summary.ExactRequired)} with exact: true or tolerance_bytes match.";
    }

    private static string Cases(int count) => count == 1 ? "1 case" : $"{count} cases";

    private static string What(CaseResult result) =>
        Names.Of(result.Case.Measured.What) + (result.Case.Measured.Scope == MeasurementScope.Total ? " (total)" : "");
}
