namespace LlmMemory.Validation;

/// <summary>The statistics of estimation errors, in one place: relative error, median and nearest-rank percentiles.</summary>
public static class ErrorStatistics
{
    /// <summary>(estimated − measured) / measured, as docs/scenario.md defines <c>relative_error</c>.</summary>
    public static double RelativeError(long estimated, long measured)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(measured);
        return ((double)estimated - measured) / measured;
    }

    /// <summary>The median: the middle value, or the mean of the two middle values for an even count; null when empty.</summary>
    public static double? Median(IEnumerable<double> values)
    {
        double[] sorted = Sorted(values);
        int n = sorted.Length;
        return n == 0 ? null : n % 2 == 1 ? sorted[n / 2] : (sorted[(n / 2) - 1] + sorted[n / 2]) / 2;
    }

    /// <summary>
    /// The nearest-rank percentile: the smallest value such that at least <paramref name="percent"/> % of the values are
    /// at or below it, i.e. the value of rank ⌈percent × n / 100⌉ in ascending order (rank 1 for percent 0); null when empty.
    /// </summary>
    /// <remarks>The rank is computed in integers so that 90 % of 30 values is rank 27, not 28 through rounding.</remarks>
    public static double? Percentile(IEnumerable<double> values, int percent)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(percent);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(percent, 100);
        double[] sorted = Sorted(values);
        if (sorted.Length == 0)
        {
            return null;
        }

        long rank = Math.Max(1, (((long)percent * sorted.Length) + 99) / 100);
        return sorted[rank - 1];
    }

    /// <summary>The largest value; null when empty.</summary>
    public static double? Max(IEnumerable<double> values)
    {
        double[] sorted = Sorted(values);
        return sorted.Length == 0 ? null : sorted[^1];
    }

    private static double[] Sorted(IEnumerable<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        double[] sorted = values.ToArray();
        if (sorted.Any(double.IsNaN))
        {
            throw new ArgumentException("Values must be numbers, not NaN.", nameof(values));
        }

        Array.Sort(sorted);
        return sorted;
    }
}
