using LlmMemory.Estimation;

namespace LlmMemory.Cli.Rendering;

/// <summary>
/// Device memory over one step as a horizontal text bar chart, one row per moment, with the GPU's budget drawn as a
/// dotted column: bars that cross it (drawn ▓ past the line) would not fit. Plain characters, so it reads the same piped.
/// </summary>
internal static class TimelineChart
{
    /// <summary>Rows shown at most; longer timelines keep the first, last and peak moments and evenly spaced others.</summary>
    private const int MaxRows = 40;

    private const int BarWidth = 56;

    private static readonly char[] Eighths = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

    public static void Write(CliOutput io, MemoryEstimate estimate)
    {
        IReadOnlyList<TimelinePoint> points = estimate.Timeline;
        if (points.Count == 0)
        {
            io.Out.WriteLine("Timeline: this estimator does not model memory over a step yet, so only the peak is known "
                + $"({estimate.DeviceTotal} at {estimate.PeakPhase}).");
            return;
        }

        ByteSize? budget = estimate.Gpu?.Budget;
        TimelinePoint peak = points.MaxBy(p => p.Bytes.Bytes)!;
        long scale = Math.Max(1, Math.Max(peak.Bytes.Bytes, budget?.Bytes ?? 0));
        int budgetColumn = budget is ByteSize b ? (int)Math.Round(b.Bytes * (double)BarWidth / scale) : -1;
        IReadOnlyList<TimelinePoint> shown = Sample(points, peak);
        int labelWidth = Math.Min(28, shown.Max(p => p.Phase.Length));

        io.Out.WriteLine($"Device memory over one step: peak {peak.Bytes} at {peak.Phase}"
            + (budget is ByteSize limit ? $"; ┆ marks the {limit} usable on {estimate.Gpu!.Name}." : "."));
        foreach (TimelinePoint point in shown)
        {
            string label = point.Phase.Length > labelWidth ? point.Phase[..(labelWidth - 1)] + "…" : point.Phase.PadRight(labelWidth);
            string marker = ReferenceEquals(point, peak) ? "  ◀ peak" : "";
            io.Out.WriteLine($"  {label} {Bar(point.Bytes.Bytes, scale, budgetColumn)} {point.Bytes,10}{marker}");
        }

        if (shown.Count < points.Count)
        {
            io.Out.WriteLine($"  ({shown.Count} of {points.Count} moments shown; --json lists every one.)");
        }
    }

    private static string Bar(long bytes, long scale, int budgetColumn)
    {
        double eighths = Math.Round(bytes * (double)BarWidth * 8 / scale);
        int full = (int)(eighths / 8);
        var bar = new char[BarWidth + 1];
        for (int i = 0; i < bar.Length; i++)
        {
            bar[i] = i < full ? (budgetColumn >= 0 && i >= budgetColumn ? '▓' : '█') : ' ';
        }

        if (full < bar.Length)
        {
            bar[full] = Eighths[(int)(eighths % 8)];
        }

        if (budgetColumn >= 0 && budgetColumn < bar.Length && bar[budgetColumn] == ' ')
        {
            bar[budgetColumn] = '┆';
        }

        return new string(bar);
    }

    private static IReadOnlyList<TimelinePoint> Sample(IReadOnlyList<TimelinePoint> points, TimelinePoint peak)
    {
        if (points.Count <= MaxRows)
        {
            return points;
        }

        var keep = new SortedSet<int> { 0, points.Count - 1 };
        for (int i = 0; i < points.Count; i++)
        {
            if (ReferenceEquals(points[i], peak))
            {
                keep.Add(i);
            }
        }

        for (int k = 1; keep.Count < MaxRows && k < MaxRows; k++)
        {
            keep.Add((int)((long)k * (points.Count - 1) / (MaxRows - 1)));
        }

        return keep.Select(i => points[i]).ToArray();
    }
}
