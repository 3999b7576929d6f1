using LlmMemory.Cli;
using LlmMemory.Cli.Rendering;
using LlmMemory.Estimation;
using LlmMemory.Hardware;
using LlmMemory.Sources;

namespace LlmMemory.Tests.Cli;

public sealed class TimelineChartTests
{
    [Fact]
    public void The_chart_has_a_row_per_moment_marks_the_peak_and_draws_past_the_budget_differently()
    {
        // Given: a step that peaks at 30 GiB on a 24 GiB card.
        MemoryEstimate estimate = Estimate(
            [new("load", ByteSize.FromGibibytes(10)), new("forward", ByteSize.FromGibibytes(20)), new("loss", ByteSize.FromGibibytes(30)), new("optimizer step", ByteSize.FromGibibytes(12))],
            GpuCatalog.Find("rtx-4090"));

        // When
        string chart = Render(estimate);

        // Then
        string[] rows = chart.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, rows.Length);
        Assert.Contains("◀ peak", Row(rows, "loss"), StringComparison.Ordinal);
        Assert.Contains("▓", Row(rows, "loss"), StringComparison.Ordinal);
        Assert.DoesNotContain("▓", Row(rows, "load"), StringComparison.Ordinal);
        Assert.Contains("┆", Row(rows, "load"), StringComparison.Ordinal);
    }

    [Fact]
    public void A_long_timeline_is_sampled_but_keeps_the_peak_and_says_how_many_are_shown()
    {
        TimelinePoint[] points = Enumerable.Range(0, 100).Select(i => new TimelinePoint($"layer {i}", ByteSize.FromGibibytes(i == 57 ? 50 : 10 + (i % 7)))).ToArray();

        string chart = Render(Estimate(points, null));

        Assert.Contains("layer 57", chart, StringComparison.Ordinal);
        Assert.Contains("of 100 moments shown", chart, StringComparison.Ordinal);
    }

    [Fact]
    public void An_estimate_without_a_timeline_says_so_instead_of_drawing_nothing()
    {
        string chart = Render(Estimate([], null));

        Assert.Contains("does not model memory over a step", chart, StringComparison.Ordinal);
    }

    private static string Row(string[] rows, string phase) => rows.Single(r => r.TrimStart().StartsWith(phase, StringComparison.Ordinal));

    private static string Render(MemoryEstimate estimate)
    {
        using var output = new StringWriter();
        // Wide enough for the header to stay on one line, so each further line is a moment.
        TimelineChart.Write(new CliOutput(output, output) { Width = 400 }, estimate);
        return output.ToString();
    }

    private static MemoryEstimate Estimate(TimelinePoint[] timeline, Gpu? gpu) => new()
    {
        Model = new ResolvedModel("test", null, "test", null, 1),
        Parameters = new ParameterSummary(1, 0, 1),
        Components = [MemoryComponent.Of("weights", ComponentKind.Weights, Formula.Size(ByteSize.FromGibibytes(10)))],
        PeakPhase = "loss",
        Timeline = timeline,
        Gpu = gpu,
    };
}
