using LlmMemory.Estimation;
using LlmMemory.Validation;
using LlmMemory.Workloads;

using static LlmMemory.Tests.Validation.Cases;

namespace LlmMemory.Tests.Validation;

public sealed class AccuracyTargetsTests
{
    private static TargetCheck Target(ValidationReport report, string startsWith) =>
        AccuracyTargets.Check(report).Single(t => t.Target.StartsWith(startsWith, StringComparison.Ordinal));

    [Fact]
    public void Median_and_p90_targets_are_5_and_12_percent()
    {
        // Ten cases at 1..10 %: median 5.5 % misses 5 %; p90 (rank 9) 9 % meets 12 %.
        var report = new ValidationReport(Enumerable.Range(1, 10).Select(i => Off($"c{i}", i)).ToArray());
        Assert.False(Target(report, "median").Met);
        Assert.True(Target(report, "p90").Met);
    }

    [Fact]
    public void A_p90_above_12_percent_misses_the_target()
    {
        // Ten cases: eight at 1 %, two at 13 %: p90 is rank 9 = 13 %.
        CaseResult[] results = [.. Enumerable.Range(0, 8).Select(i => Off($"ok{i}", 1)), Off("x", 13), Off("y", -13)];
        var report = new ValidationReport(results);
        Assert.True(Target(report, "median").Met);
        Assert.False(Target(report, "p90").Met);
    }

    [Fact]
    public void Low_confidence_cases_may_be_unsupported_or_far_off_without_missing_a_target()
    {
        var report = new ValidationReport([Off("a", 1), Off("far", 500, low: true), Unsupported(Case("u", low: true))]);
        Assert.All(AccuracyTargets.Check(report), t => Assert.True(t.Met, t.Target));
    }

    [Fact]
    public void An_unsupported_case_that_is_not_low_confidence_misses_the_target_and_is_named()
    {
        var report = new ValidationReport([Off("a", 1), Unsupported(Case("gap"))]);
        TargetCheck check = Target(report, "every case");
        Assert.False(check.Met);
        Assert.Contains(check.Missing, m => m.Contains("gap", StringComparison.Ordinal));
    }

    [Fact]
    public void Parameter_counts_must_be_equal_even_without_the_exact_flag()
    {
        var report = new ValidationReport([Ok(Case("p", MeasuredQuantity.Parameters, 7_000, exact: false), 7_001)]);
        Assert.False(Target(report, "parameter counts").Met);
    }

    [Fact]
    public void Tolerance_cases_must_lie_within_their_tolerance()
    {
        ValidationCase c = Case("buf", MeasuredQuantity.ComputeBuffer, 1_000_000, tolerance: 5243);
        Assert.True(Target(new ValidationReport([Ok(c, 1_005_243)]), "tolerance").Met);
        Assert.False(Target(new ValidationReport([Ok(c, 1_005_244)]), "tolerance").Met);
    }
}
