namespace LlmMemory.Planning;

/// <summary>
/// Finds the boundary of a yes/no question over whole numbers in O(log n) questions: a search outward for a bracket,
/// then a narrowing inside it. Where the answers say by how much they miss (bytes over the budget), the steps
/// interpolate: the estimate is linear in batch and sequence length between the allocator's rounding steps, so the line
/// through two answers lands on or next to the boundary and a search takes a handful of estimates instead of thirty.
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
    /// <summary>
    /// Restarts the guard may make. Where fitting and failing values alternate over a range (the allocator's rounding
    /// near a cliff: a 63-layer toy model fits at 571,601 tokens, not at 571,602, again at 571,603, … up to 602,112), each
    /// restart climbs two values, and a fit asked 4,445 questions. After these the answer stands, still one that fits
    /// with its next value failing, and marked not monotone.
    /// </summary>
    public const int MaxRestarts = 8;

    /// <summary>The largest n in [1, <paramref name="cap"/>] for which <paramref name="fits"/> holds.</summary>
    public static Boundary Largest(Func<int, bool> fits, int cap)
    {
        ArgumentNullException.ThrowIfNull(fits);
        return Largest(n => new Reading(fits(n), null), cap);
    }

    /// <summary>The largest n in [1, <paramref name="cap"/>] whose reading fits, interpolating where readings say how far they are.</summary>
    /// <param name="ask">The reading of a value: whether it fits and by how much it misses.</param>
    /// <param name="cap">The largest value asked.</param>
    /// <param name="fits">
    /// <c>ask(n).Fits</c> where it can be answered more cheaply (a replay that runs out of memory needs no second replay
    /// for its figures); the guard's values beyond the boundary only need that. A value it says fits is then read with
    /// <paramref name="ask"/>, and so is one that does not where a later step needs its distance, so every step is the one
    /// <paramref name="ask"/> alone would take. Null: every value is read with <paramref name="ask"/>.
    /// </param>
    public static Boundary Largest(Func<int, Reading> ask, int cap, Func<int, bool>? fits = null)
    {
        ArgumentNullException.ThrowIfNull(ask);
        ArgumentOutOfRangeException.ThrowIfLessThan(cap, 1);
        var counted = new Counter(ask, fits);
        if (!counted.Ask(1))
        {
            return new Boundary(null, false, true, counted.Questions);
        }

        int from = 1;
        bool monotone = true;
        for (int round = 0; ; round++)
        {
            (int answer, int failedAt) = Climb(counted, from, cap);
            if (answer == cap)
            {
                return new Boundary(cap, true, monotone, counted.Questions);
            }

            int? further = round < MaxRestarts ? FurtherFit(counted, answer, failedAt, cap) : null;
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
        ArgumentNullException.ThrowIfNull(fits);
        return Smallest(candidates, n => new Reading(fits(n), null));
    }

    /// <summary>
    /// The first of <paramref name="candidates"/> (ascending) whose reading fits, for a quantity that falls as the
    /// candidate grows: every candidate below the answer fails and every one from it on fits.
    /// </summary>
    /// <remarks>
    /// Where readings say how far over the limit they are, each step fits <c>over(n) = a + b / n</c> through the two
    /// readings nearest the bracket and asks the first candidate at or past where that curve meets the limit. That is the
    /// shape of memory per device when the same work is spread over n GPUs (sharded weights, gradients and optimizer
    /// states fall as 1/n; activations, buffers and the CUDA context stay), so a fewest-GPU search takes a handful of
    /// estimates instead of doubling to thousands and bisecting back. A step that does not halve the bracket is followed
    /// by a plain one (doubling while nothing fits yet, else bisection), so the search never takes more than about twice
    /// the questions of bisection. A fitting value beyond the answer is never asked about: only what lies below matters.
    /// </remarks>
    public static Boundary Smallest(IReadOnlyList<int> candidates, Func<int, Reading> ask)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(ask);
        var readings = new SortedList<int, Reading>();
        Reading At(int index)
        {
            if (!readings.TryGetValue(index, out Reading reading))
            {
                reading = ask(candidates[index]);
                readings.Add(index, reading);
            }

            return reading;
        }

        // Every index up to failing fails and every index from fitting on fits; Count stands for "none known yet".
        int failing = -1;
        int fitting = candidates.Count;
        bool plain = false;
        while (fitting - failing > 1)
        {
            int width = fitting - failing;
            int next = failing < 0 ? 0
                : (plain ? null : Predicted(candidates, readings, failing, fitting))
                    ?? (fitting == candidates.Count ? (2 * failing) + 1 : failing + (width / 2));
            next = Math.Clamp(next, failing + 1, fitting - 1);
            if (At(next).Fits)
            {
                fitting = next;
            }
            else
            {
                failing = next;
            }

            plain = !plain && fitting - failing > width / 2;
        }

        return fitting == candidates.Count
            ? new Boundary(null, true, true, readings.Count)
            : new Boundary(candidates[fitting], false, true, readings.Count);
    }

    /// <summary>
    /// The index of the first candidate at or past where <c>a + b / n</c> through two readings meets the limit: the failing
    /// and fitting bounds when both are known, else the two largest failing ones; null without two such readings or when
    /// the line does not fall.
    /// </summary>
    private static int? Predicted(IReadOnlyList<int> candidates, SortedList<int, Reading> readings, int failing, int fitting)
    {
        int second = fitting < candidates.Count ? fitting : failing;
        int first = fitting < candidates.Count ? failing : readings.Keys.LastOrDefault(i => i < failing && readings[i].Over is not null, -1);
        if (first < 0 || readings[first].Over is not double over1 || readings[second].Over is not double over2)
        {
            return null;
        }

        double inverse1 = 1.0 / candidates[first];
        double inverse2 = 1.0 / candidates[second];
        double b = (over1 - over2) / (inverse1 - inverse2);
        double a = over1 - (b * inverse1);
        if (!(b > 0) || double.IsInfinity(b))
        {
            return null;
        }

        if (a >= 0)
        {
            return candidates.Count - 1; // the curve stays over the limit: only the last candidate can tell
        }

        double crossing = -b / a;
        int index = 0;
        int end = candidates.Count - 1;
        while (index < end)
        {
            int middle = (index + end) >>> 1;
            if (candidates[middle] >= crossing)
            {
                end = middle;
            }
            else
            {
                index = middle + 1;
            }
        }

        return index;
    }

    /// <summary>
    /// From a fitting <paramref name="from"/>: steps out until a value fails (or the cap fits), then narrows the bracket.
    /// Each step goes where the line through the two nearest readings crosses the budget, or doubles (outward) or
    /// bisects (inward) where there is no such line or the last line did not halve the bracket.
    /// </summary>
    private static (int Answer, int FailedAt) Climb(Counter fits, int from, int cap)
    {
        if (from == cap)
        {
            return (cap, cap);
        }

        long low = from;
        long high;
        while (true)
        {
            long next = Math.Clamp(fits.Crossing(fits.FitBelow(low), low) ?? (2L * low), low + 1L, cap);
            if (!fits.Ask((int)next))
            {
                high = next;
                break;
            }

            if (next == cap)
            {
                return (cap, cap);
            }

            low = next;
        }

        long failedAt = high;
        bool bisect = false;
        while (high - low > 1)
        {
            long width = high - low;
            long middle = low + (width / 2);
            long next = bisect ? middle : Math.Clamp(fits.Crossing(low, high) ?? middle, low + 1L, high - 1L);
            if (fits.Ask((int)next))
            {
                low = next;
            }
            else
            {
                high = next;
            }

            bisect = !bisect && high - low > width / 2;
        }

        return ((int)low, (int)failedAt);
    }

    /// <summary>The first of a few values beyond the boundary that fits, if any (the monotonicity guard).</summary>
    private static int? FurtherFit(Counter fits, int answer, int failedAt, int cap)
    {
        long[] probes = [answer + 2L, answer + ((failedAt - (long)answer) / 2), failedAt + 1L, 2L * failedAt, cap];
        foreach (long probe in probes.Where(p => p > answer + 1L && p <= cap).Distinct().Order())
        {
            if (fits.Fits((int)probe))
            {
                return (int)probe;
            }
        }

        return null;
    }

    /// <summary>Asks each question once, keeps the readings for the interpolation, and counts the questions (for reporting).</summary>
    private sealed class Counter(Func<int, Reading> question, Func<int, bool>? fitsOnly)
    {
        private readonly SortedList<long, Reading> _readings = [];

        /// <summary>Values <c>fitsOnly</c> said do not fit and that have no reading (yet).</summary>
        private readonly HashSet<int> _failing = [];

        public int Questions => _readings.Count + _failing.Count;

        /// <summary>Whether <paramref name="value"/> fits, from its reading when there is one, else from <c>fitsOnly</c>.</summary>
        public bool Fits(int value)
        {
            if (fitsOnly is null || _readings.ContainsKey(value))
            {
                return Ask(value);
            }

            if (_failing.Contains(value))
            {
                return false;
            }

            if (fitsOnly(value))
            {
                return Ask(value); // a fitting value may start the next climb, which interpolates from its reading
            }

            _failing.Add(value);
            return false;
        }

        public bool Ask(int value)
        {
            if (!_readings.TryGetValue(value, out Reading reading))
            {
                reading = question(value);
                _readings.Add(value, reading);
                _failing.Remove(value);
            }

            return reading.Fits;
        }

        /// <summary>The largest value below <paramref name="value"/> asked and fitting; null when none.</summary>
        public long? FitBelow(long value)
        {
            long? below = null;
            foreach ((long asked, Reading reading) in _readings)
            {
                if (asked >= value)
                {
                    break;
                }

                if (reading.Fits)
                {
                    below = asked;
                }
            }

            return below;
        }

        /// <summary>
        /// The largest value at or under the budget on the line through the readings at <paramref name="a"/> and
        /// <paramref name="b"/> (a &lt; b); null when either has no distance or the line does not rise.
        /// </summary>
        public long? Crossing(long? a, long b)
        {
            if (a is not long left || _readings[left].Over is not double overA || _readings[b].Over is not double overB || overB <= overA)
            {
                return null;
            }

            double crossing = left + (-overA * (b - left) / (overB - overA));
            return crossing is > long.MaxValue / 2 or < long.MinValue / 2 || double.IsNaN(crossing) ? null : (long)Math.Floor(crossing);
        }
    }
}

/// <summary>One answer of a boundary search: whether the value fits and, where known, how far it is from the limit.</summary>
/// <param name="Fits">Whether the value fits.</param>
/// <param name="Over">How far over the limit the value is (bytes over the budget; negative under it); null when not known (a refusal).</param>
internal readonly record struct Reading(bool Fits, double? Over);

/// <summary>The result of a boundary search.</summary>
/// <param name="Value">The boundary; null when even the first candidate fails (largest) or none fits (smallest).</param>
/// <param name="AtCap">True when the search stopped at its cap, not at a boundary: the true answer is the cap or beyond.</param>
/// <param name="Monotone">False when the guard found a fitting value beyond a boundary and had to search on.</param>
/// <param name="Questions">How many values were asked about (each once).</param>
internal sealed record Boundary(int? Value, bool AtCap, bool Monotone, int Questions);
