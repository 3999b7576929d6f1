using LlmMemory.Estimation;
using LlmMemory.Validation;
using LlmMemory.Workloads;

using static LlmMemory.Tests.Validation.Cases;

namespace LlmMemory.Tests.Validation;

public sealed class SummaryTests
{
    [Fact]
    public void Error_statistics_leave_out_low_confidence_exact_and_unsupported_cases()
    {
        CaseResult[] results =
        [
            Off("a", 2), Off("b", -4), Off("c", 10),
            Off("low", 300, low: true),
            Ok(Case("exact", MeasuredQuantity.Parameters, 1000, exact: true), 5000),
            Unsupported(Case("u")),
        ];
        ValidationSummary summary = ValidationSummary.Of(results);
        Assert.Equal(6, summary.Count);
        Assert.Equal(5, summary.Ok);
        Assert.Equal(1, summary.Unsupported);
        Assert.Equal(3, summary.Errors.Count);
        Assert.Equal(0.04, summary.Errors.Median!.Value, 12);
        Assert.Equal(0.10, summary.Errors.P90!.Value, 12);
        Assert.Equal(0.10, summary.Errors.Max!.Value, 12);
        Assert.Equal(1, summary.ExactRequired);
        Assert.Equal(0, summary.ExactMatches);
    }

    [Fact]
    public void Low_confidence_cases_are_still_reported_with_their_error()
    {
        CaseResult low = Off("low", 300, low: true);
        var report = new ValidationReport([Off("a", 1), low]);
        Assert.Equal(3.0, low.RelativeError!.Value, 12);
        Assert.False(low.InErrorStatistics);
        Assert.Equal("low", report.WorstFirst()[0].Case.Id);
    }

    [Fact]
    public void Worst_first_puts_unsupported_then_missed_exact_requirements_then_the_largest_errors()
    {
        var report = new ValidationReport(
        [
            Off("small", 1),
            Ok(Case("missed", MeasuredQuantity.KvCache, 1000, exact: true), 1001),
            Off("large", -30),
            Unsupported(Case("unsupported")),
            Off("medium", 12),
        ]);
        Assert.Equal(["unsupported", "missed", "large", "medium", "small"], report.WorstFirst().Select(r => r.Case.Id));
    }

    [Fact]
    public void Groups_keep_first_appearance_order_and_their_own_summaries()
    {
        var report = new ValidationReport([Off("a", 5), Unsupported(Case("b", MeasuredQuantity.Weights)), Off("c", 7)]);
        IReadOnlyList<ReportGroup> groups = report.GroupBy(r => r.Case.Measured.What.ToString());
        Assert.Equal(["PeakAllocated", "Weights"], groups.Select(g => g.Key));
        Assert.Equal(2, groups[0].Summary.Ok);
        Assert.Equal(1, groups[1].Summary.Unsupported);
    }
}
