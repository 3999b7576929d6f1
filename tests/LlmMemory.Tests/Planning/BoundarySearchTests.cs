using LlmMemory.Planning;

namespace LlmMemory.Tests.Planning;

public sealed class BoundarySearchTests
{
    [Theory]
    // Thresholds at the edges (1, one below the cap) and arbitrary ones between: the search must return each exactly.
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(17)]
    [InlineData(1000)]
    [InlineData(19_343)]
    [InlineData(1_048_575)]
    public void Largest_finds_the_exact_threshold_of_a_monotone_question(int threshold)
    {
        Boundary found = BoundarySearch.Largest(n => n <= threshold, 1 << 20);

        Assert.Equal(threshold, found.Value);
        Assert.False(found.AtCap);
        Assert.True(found.Monotone);
    }

    [Fact]
    public void Largest_asks_a_logarithmic_number_of_questions()
    {
        // Doubling to 2^15 takes 16 questions and bisecting that bracket 15 more; the guard adds at most 5.
        Boundary found = BoundarySearch.Largest(n => n <= 19_343, FitPlanner.MaxSeq);

        Assert.InRange(found.Questions, 15, 2 * 16 + 5);
    }

    [Fact]
    public void Largest_is_null_when_even_one_does_not_fit()
    {
        Boundary found = BoundarySearch.Largest(_ => false, 100);

        Assert.Null(found.Value);
        Assert.Equal(1, found.Questions);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(64)]
    [InlineData(100)]
    public void Largest_stops_at_the_cap_and_says_so_when_everything_fits(int cap)
    {
        Boundary found = BoundarySearch.Largest(_ => true, cap);

        Assert.Equal(cap, found.Value);
        Assert.True(found.AtCap);
    }

    [Fact]
    public void Largest_one_below_the_cap_is_a_boundary_not_the_cap()
    {
        Boundary found = BoundarySearch.Largest(n => n < 100, 100);

        Assert.Equal(99, found.Value);
        Assert.False(found.AtCap);
    }

    [Fact]
    public void The_guard_finds_a_fitting_value_past_a_first_boundary_and_searches_on()
    {
        // Fits up to 10, not 11-16, again 17-40: doubling stops at 16 and bisection at 10; the guard's probe past the
        // failing bracket (17) fits, so the search climbs again and ends at 40.
        static bool Fits(int n) => n <= 10 || n is >= 17 and <= 40;

        Boundary found = BoundarySearch.Largest(Fits, 1000);

        Assert.Equal(40, found.Value);
        Assert.False(found.Monotone);
        Assert.True(Fits(found.Value!.Value));
        Assert.False(Fits(found.Value!.Value + 1));
    }

    [Fact]
    public void The_guard_gives_up_after_a_bounded_number_of_restarts_where_answers_alternate()
    {
        // Fits up to 100, then only odd values up to 100,000 (the allocator's rounding at a cliff does this): each restart
        // from the guard's nearest fitting probe climbs two values. Unbounded, the search would need about 50,000 rounds
        // of a few questions each; bounded, it makes MaxRestarts + 1 climbs of at most ~2 × log2(100,000) ≈ 34 questions
        // and a few guard probes each.
        static bool Fits(int n) => n <= 100 || (n <= 100_000 && n % 2 == 1);

        Boundary found = BoundarySearch.Largest(Fits, 1_000_000);

        Assert.False(found.Monotone);
        Assert.True(Fits(found.Value!.Value));
        Assert.False(Fits(found.Value!.Value + 1));
        Assert.InRange(found.Questions, 1, (BoundarySearch.MaxRestarts + 1) * (34 + 5));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(5, 8)]
    [InlineData(8, 8)]
    [InlineData(9, 16)]
    [InlineData(64, 64)]
    public void Smallest_returns_the_first_candidate_that_fits(int needed, int expected)
    {
        int[] candidates = [1, 2, 4, 8, 16, 32, 64];

        Boundary found = BoundarySearch.Smallest(candidates, n => n >= needed);

        Assert.Equal(expected, found.Value);
    }

    [Fact]
    public void Smallest_is_null_when_no_candidate_fits()
    {
        Boundary found = BoundarySearch.Smallest([1, 2, 4], _ => false);

        Assert.Null(found.Value);
        Assert.True(found.AtCap);
    }

    [Fact]
    public void Smallest_with_readings_finds_the_first_fitting_gpu_count_in_a_few_questions()
    {
        // Memory per GPU as sharding spreads it: 10 GB that do not shard plus 1,400 GB that do, against an 80 GB budget:
        // over(n) = 10e9 + 1400e9 / n − 80e9 crosses zero at n = 1400 / 70 = 20. Bisection over 1..16,384 asks ~14.
        int[] candidates = Enumerable.Range(1, 16_384).ToArray();
        static Reading Read(int n)
        {
            double over = 10e9 + (1400e9 / n) - 80e9;
            return new Reading(over <= 0, over);
        }

        Boundary found = BoundarySearch.Smallest(candidates, Read);

        Assert.Equal(20, found.Value);
        Assert.InRange(found.Questions, 1, 6);
    }
}
