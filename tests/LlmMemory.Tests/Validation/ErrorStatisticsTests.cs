using LlmMemory.Validation;

namespace LlmMemory.Tests.Validation;

public sealed class ErrorStatisticsTests
{
    [Fact]
    public void Relative_error_is_estimated_minus_measured_over_measured()
    {
        // docs/scenario.md: relative_error = (estimated − measured) / measured.
        Assert.Equal(0.25, ErrorStatistics.RelativeError(125, 100));
        Assert.Equal(-0.5, ErrorStatistics.RelativeError(50, 100));
        Assert.Equal(0, ErrorStatistics.RelativeError(7, 7));
    }

    [Fact]
    public void Median_of_an_odd_count_is_the_middle_value()
    {
        Assert.Equal(3, ErrorStatistics.Median([5, 1, 3, 4, 2]));
    }

    [Fact]
    public void Median_of_an_even_count_is_the_mean_of_the_two_middle_values()
    {
        Assert.Equal(2.5, ErrorStatistics.Median([4, 1, 3, 2]));
    }

    [Fact]
    public void P90_is_the_nearest_rank_value()
    {
        // Nearest rank: rank ⌈0.9 n⌉ in ascending order. 1..10 → rank 9 → 9; 1..20 → rank 18 → 18; 1..11 → rank ⌈9.9⌉ = 10 → 10.
        Assert.Equal(9, ErrorStatistics.Percentile(Enumerable.Range(1, 10).Select(i => (double)i), 90));
        Assert.Equal(18, ErrorStatistics.Percentile(Enumerable.Range(1, 20).Select(i => (double)i).Reverse(), 90));
        Assert.Equal(10, ErrorStatistics.Percentile(Enumerable.Range(1, 11).Select(i => (double)i), 90));
    }

    [Fact]
    public void P90_rank_is_computed_without_floating_point_rounding()
    {
        // 0.9 × 30 = 27 exactly, so rank 27; computing 0.9 * 30 in doubles gives 27.000000000000004, whose ceiling is 28.
        Assert.Equal(27, ErrorStatistics.Percentile(Enumerable.Range(1, 30).Select(i => (double)i), 90));
    }

    [Fact]
    public void P90_of_one_value_is_that_value_and_p0_is_the_smallest()
    {
        Assert.Equal(0.3, ErrorStatistics.Percentile([0.3], 90));
        Assert.Equal(1, ErrorStatistics.Percentile([3, 1, 2], 0));
        Assert.Equal(3, ErrorStatistics.Percentile([3, 1, 2], 100));
    }

    [Fact]
    public void Statistics_of_no_values_are_null()
    {
        Assert.Null(ErrorStatistics.Median([]));
        Assert.Null(ErrorStatistics.Percentile([], 90));
        Assert.Null(ErrorStatistics.Max([]));
    }

    [Fact]
    public void Error_summary_uses_absolute_values()
    {
        ErrorSummary summary = ErrorSummary.Of([-0.5, 0.1, -0.2]);
        Assert.Equal(3, summary.Count);
        Assert.Equal(0.2, summary.Median);
        Assert.Equal(0.5, summary.P90);
        Assert.Equal(0.5, summary.Max);
    }

    [Fact]
    public void A_percent_outside_0_to_100_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => ErrorStatistics.Percentile([1], 101));
        Assert.Throws<ArgumentOutOfRangeException>(() => ErrorStatistics.Percentile([1], -1));
    }
}
