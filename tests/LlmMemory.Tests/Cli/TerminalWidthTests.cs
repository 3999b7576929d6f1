using System.Text;

namespace LlmMemory.Tests.Cli;

/// <summary>Every command fits an 80-column terminal: no printed line is wider than the width the output is given.</summary>
public sealed class TerminalWidthTests
{
    public static TheoryData<string[]> Commands => new()
    {
        { ["estimate", "llama-3.1-8b", "--context", "8192", "--timeline", "--gpu", "rtx-4090"] },
        { ["estimate", "llama-3.1-8b", "--mode", "qlora", "--gpu", "rtx-4090", "--seq", "2048", "--timeline"] },
        { ["estimate", "llama-3.1-8b", "--engine", "llama.cpp", "--weights", "q4_k_m", "--context", "8192", "--gpu", "rtx-4090", "--timeline"] },
        { ["estimate", "llama-3.2-1b", "--mode", "training", "--gpus", "2", "--fsdp", "full_shard", "--gpu", "h100-80gb", "--timeline"] },
        { ["fit", "llama-3.1-8b", "--gpu", "rtx-4090"] },
        { ["fit", "llama-3.2-1b", "--mode", "training", "--gpu", "t4"] },
        { ["explain", "llama-3.1-8b"] },
        { ["gpus"] },
        { ["models"] },
        { ["dtypes"] },
        { ["params", "meta-llama/Llama-3.1-8B-Instruct"] },
    };

    [Theory]
    [MemberData(nameof(Commands))]
    public void No_line_is_wider_than_80_columns(string[] args)
    {
        (int code, string output, string error) = CliTests.RunAt(80, args);

        Assert.True(code == 0, error);
        string widest = output.Split('\n').Select(l => l.TrimEnd('\r')).MaxBy(DisplayWidth)!;
        Assert.True(DisplayWidth(widest) <= 80, $"{DisplayWidth(widest)} columns: {widest}");
    }

    [Fact]
    public void A_narrower_width_narrows_the_table_and_the_chart()
    {
        (_, string output, _) = CliTests.RunAt(60, "estimate", "llama-3.1-8b", "--timeline");

        Assert.All(output.Split('\n'), line => Assert.True(DisplayWidth(line.TrimEnd('\r')) <= 60, line));
    }

    /// <summary>
    /// Terminal columns a line takes: one per character (box drawing, blocks and arrows included), two for the East Asian
    /// wide and fullwidth ranges of Unicode's EastAsianWidth.txt and emoji, none for combining marks.
    /// </summary>
    private static int DisplayWidth(string line)
    {
        int width = 0;
        foreach (Rune rune in line.EnumerateRunes())
        {
            int c = rune.Value;
            bool combining = Rune.GetUnicodeCategory(rune) is System.Globalization.UnicodeCategory.NonSpacingMark or System.Globalization.UnicodeCategory.EnclosingMark;
            bool wide = c is (>= 0x1100 and <= 0x115F) or (>= 0x2E80 and <= 0xA4CF) or (>= 0xAC00 and <= 0xD7A3) or (>= 0xF900 and <= 0xFAFF)
                or (>= 0xFE30 and <= 0xFE4F) or (>= 0xFF00 and <= 0xFF60) or (>= 0xFFE0 and <= 0xFFE6) or (>= 0x1F300 and <= 0x1FAFF);
            width += combining ? 0 : wide ? 2 : 1;
        }

        return width;
    }
}
