namespace LlmMemory.Planning;

/// <summary>
/// Finds the boundary of a yes/no question over whole numbers in O(log n) questions: exponential search for a bracket,
/// then bisection inside it.
/// </summary>
/// <remarks>
/// <para>
/// What it relies on: the question is monotone. For "the largest value that fits" every value below a fitting value
/// fits (memory never falls when the batch or the sequence grows); for "the smallest value that fits" every candidate
/// above a fitting one fits (memory per device never rises when the same work is spread over more GPUs).
/// Every estimator component is built that way: weights do not depend on batch or sequence; KV cache, activations,
/// logits and transients are products of batch × tokens (or of batch × min(tokens, window) for sliding layers, or of
/// tokens² for eager attention); the allocator's cache is a fixed share of them; serving engines size their pool from
/// the GPU alone.
/// </para>
/// <para>
/// The guard: bisection alone cannot see a violation (every point it asks lands on the right side by construction), so
/// after it finds a boundary it asks again further out — two above, halfway to the failing bracket, past it, at the
/// cap. If one of those fits, the question was not monotone there; the search restarts from that point and the result
/// says so. Either way the answer keeps its defining property: it fits and the next value does not.
/// </para>
/// </remarks>
internal static class BoundarySearch
{
    /// <summary>The largest n in [1, <paramref name="cap"/>] for which <paramref name="fits"/> holds.</summary>
    public static Boundary Largest(Func<int, bool> fits, int cap)
    {
        ArgumentNullException.ThrowIfNull(fits);
        ArgumentOutOfRangeException.ThrowIfLessThan(cap, 1);
        var counted = new Counter(fits);
        if (!counted.Ask(1))
        {
            return new Boundary(null, false, true, counted.Questions);
        }

        int from = 1;
        bool monotone = true;
        while (true)
        {
            (int answer, int failedAt) = Climb(counted, from, cap);
            if (answer == cap)
            {
                return new Boundary(cap, true, monotone, counted.Questions);
            }

            int? further = FurtherFit(counted, answer, failedAt, cap);
            if (further is not int restart)
            {
                return new Boundary(answer, false, monotone, counted.Questions);
            }

            monotone = false;
            from = restart;
        }
    }

    /// <summary>The first of <paramref name="candidates"/> (ascending) for which <paramref name="fits"/> holds.</summary>
    public static Boundary Smallest(IReadOnlyList<int> candidates, Func<int, bool> fits)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(fits);
        if (candidates.Count == 0)
        {
            return new Boundary(null, false, true, 0);
        }

        // "Candidate i fails" is monotone in i exactly when "candidate i fits" is monotone the other way, so the largest
        // failing index, plus one, is the smallest fitting one.
        Boundary lastFailing = Largest(i => !fits(candidates[i - 1]), candidates.Count);
        return lastFailing switch
        {
            { Value: null } => lastFailing with { Value = candidates[0] },
            { AtCap: true } => lastFailing with { Value = null },
            _ => lastFailing with { Value = candidates[lastFailing.Value.Value] },
        };
    }

    /// <summary>From a fitting <paramref name="from"/>: doubles until a value fails (or the cap fits), then bisects.</summary>
    private static (int Answer, int FailedAt) Climb(Counter fits, int from, int cap)
    {
        long low = from;
        long high = Math.Min((long)cap, Math.Max(2L * from, from + 1L));
        while (fits.Ask((int)high))
        {
            if (high == cap)
            {
                return (cap, cap);
            }

            low = high;
            high = Math.Min(cap, 2 * high);
        }

        long failedAt = high;
        while (high - low > 1)
        {
            long middle = low + ((high - low) / 2);
            if (fits.Ask((int)middle))
            {
                low = middle;
            }
            else
            {
                high = middle;
            }
        }

        return ((int)low, (int)failedAt);
    }

    /// <summary>The first of a few values beyond the boundary that fits, if any (the monotonicity guard).</summary>
    private static int? FurtherFit(Counter fits, int answer, int failedAt, int cap)
    {
        long[] probes = [answer + 2L, answer + ((failedAt - (long)answer) / 2), failedAt + 1L, 2L * failedAt, cap];
        foreach (long probe in probes.Where(p => p > answer + 1L && p <= cap).Distinct().Order())
        {
            if (fits.Ask((int)probe))
            {
                return (int)probe;
            }
        }

        return null;
    }

    /// <summary>Counts the questions asked (for reporting; the solvers' speed is measured in bench/).</summary>
    private sealed class Counter(Func<int, bool> question)
    {
        public int Questions { get; private set; }

        public bool Ask(int value)
        {
            Questions++;
            return question(value);
        }
    }
}

/// <summary>The result of a boundary search.</summary>
/// <param name="Value">The boundary; null when even the first candidate fails (largest) or none fits (smallest).</param>
/// <param name="AtCap">True when the search stopped at its cap, not at a boundary: the true answer is the cap or beyond.</param>
/// <param name="Monotone">False when the guard found a fitting value beyond a boundary and had to search on.</param>
/// <param name="Questions">How many times the question was asked.</param>
internal sealed record Boundary(int? Value, bool AtCap, bool Monotone, int Questions);
