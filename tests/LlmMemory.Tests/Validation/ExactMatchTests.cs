using LlmMemory.Estimation;
using LlmMemory.Validation;
using LlmMemory.Workloads;

using static LlmMemory.Tests.Validation.Cases;

namespace LlmMemory.Tests.Validation;

public sealed class ExactMatchTests
{
    [Fact]
    public void An_exact_case_matches_only_when_equal_to_the_byte()
    {
        ValidationCase c = Case("kv", MeasuredQuantity.KvCache, 671_088_640, exact: true);
        Assert.True(Ok(c, 671_088_640).ExactMatch);
        Assert.False(Ok(c, 671_088_641).ExactMatch);
        Assert.False(Ok(c, 671_088_639).ExactMatch);
    }

    [Fact]
    public void A_tolerance_case_matches_within_its_tolerance_inclusive()
    {
        // A MiB figure printed with two decimals is good to ±0.005 MiB = 5242.88 bytes, rounded up to 5243 (data/validation/README.md).
        ValidationCase c = Case("buf", MeasuredQuantity.ComputeBuffer, 104_203_387, tolerance: 5243);
        Assert.True(Ok(c, 104_203_387 + 5243).ExactMatch);
        Assert.True(Ok(c, 104_203_387 - 5243).ExactMatch);
        Assert.False(Ok(c, 104_203_387 + 5244).ExactMatch);
        Assert.False(Ok(c, 104_203_387 - 5244).ExactMatch);
    }

    [Fact]
    public void Exact_with_a_tolerance_uses_the_tolerance()
    {
        ValidationCase c = Case("both", MeasuredQuantity.Weights, 1_000_000, exact: true, tolerance: 10);
        Assert.True(Ok(c, 1_000_010).ExactMatch);
    }

    [Fact]
    public void A_case_without_an_exact_requirement_has_no_match_verdict()
    {
        Assert.Null(Ok(Case("peak"), 1000).ExactMatch);
        Assert.False(Ok(Case("peak"), 1000).ExactRequired);
    }

    [Fact]
    public void An_unsupported_exact_case_counts_as_required_and_not_matched()
    {
        ValidationSummary summary = ValidationSummary.Of([Unsupported(Case("p", MeasuredQuantity.Parameters, 7, exact: true)),
            Ok(Case("q", MeasuredQuantity.Parameters, 7, exact: true), 7)]);
        Assert.Equal(2, summary.ExactRequired);
        Assert.Equal(1, summary.ExactMatches);
        Assert.Equal(1, summary.Unsupported);
    }
}
