using LlmMemory.Estimation;

namespace LlmMemory.Cli.Rendering;

/// <summary>
/// Memory in use over one step (live tensors plus what lies outside the allocator: the CUDA context, NCCL) as a horizontal
/// text bar chart, one row per moment, scaled to the output's width, with the GPU's budget drawn as a dotted column: bars
/// that cross it (drawn ▓ past the line) would not fit. The table's total is device memory at the peak, which adds the
/// blocks the caching allocator holds beyond the live tensors; the header gives both when they differ. Plain characters,
/// so it reads the same piped.
/// </summary>
internal static class TimelineChart
{
    /// <summary>Rows shown at most; longer timelines keep the first, last and peak moments and evenly spaced others.</summary>
    private const int MaxRows = 40;

    /// <summary>Columns of a row beside its label and bar: two of indent, three spaces, the size (10) and the peak marker (8).</summary>
    private const int RowExtras = 2 + 3 + 10 + 8;

    private static readonly char[] Eighths = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];

    public static void Write(CliOutput io, MemoryEstimate estimate)
    {
        IReadOnlyList<TimelinePoint> points = estimate.Timeline;
        if (points.Count == 0)
        {
            io.WriteWrapped("Timeline: this estimator does not model memory over a step yet, so only the peak is known "
                + $"({estimate.DeviceTotal} at {estimate.PeakPhase}).");
            return;
        }

        ByteSize? budget = estimate.Gpu?.Budget;
        TimelinePoint peak = points.MaxBy(p => p.Bytes.Bytes)!;
        long scale = Math.Max(1, Math.Max(peak.Bytes.Bytes, budget?.Bytes ?? 0));
        IReadOnlyList<TimelinePoint> shown = Sample(points, peak);
        int labelWidth = Math.Min(Math.Min(28, io.Width / 4), shown.Max(p => p.Phase.Length));
        int barWidth = Math.Max(8, io.Width - labelWidth - RowExtras - 1);
        int budgetColumn = budget is ByteSize b ? (int)Math.Round(b.Bytes * (double)barWidth / scale) : -1;

        string at = peak.Phase == "peak" ? "" : $" at {peak.Phase}";
        string device = peak.Bytes == estimate.DeviceTotal ? ""
            : $"; the table's total, {estimate.DeviceTotal} of device memory, adds the blocks the caching allocator keeps";
        io.WriteWrapped($"Memory in use over one step (live tensors and memory outside the allocator): peak {peak.Bytes}{at}{device}"
            + (budget is ByteSize limit ? $"; ┆ marks the {limit} usable on {estimate.Gpu!.Name}." : "."));
        foreach (TimelinePoint point in shown)
        {
            string label = point.Phase.Length > labelWidth ? point.Phase[..(labelWidth - 1)] + "…" : point.Phase.PadRight(labelWidth);
            string marker = ReferenceEquals(point, peak) ? "  ◀ peak" : "";
            io.Out.WriteLine($"  {label} {Bar(point.Bytes.Bytes, scale, barWidth, budgetColumn)} {point.Bytes,10}{marker}");
        }

        if (shown.Count < points.Count)
        {
            io.WriteWrapped($"  ({shown.Count} of {points.Count} moments shown; --json lists every one.)", 3);
        }
    }

    private static string Bar(long bytes, long scale, int barWidth, int budgetColumn)
    {
        double eighths = Math.Round(bytes * (double)barWidth * 8 / scale);
        int full = (int)(eighths / 8);
        var bar = new char[barWidth + 1];
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
