using LlmMemory.Reporting;

namespace LlmMemory.Cli.Rendering;

/// <summary>The walk-through as text: a heading per section, its paragraphs wrapped, its formulas aligned, then the timeline.</summary>
internal static class ExplanationText
{
    private const int Width = 110;

    public static void Write(CliOutput io, Explanation explanation)
    {
        io.Out.WriteLine($"How much memory does {explanation.Model.Name} need? Decimal GB as the essay writes them (1 GB = 10^9 bytes), binary GiB beside them.");
        foreach (ExplanationSection section in explanation.Sections)
        {
            io.Out.WriteLine();
            io.Out.WriteLine(section.Title);
            io.Out.WriteLine(new string('─', section.Title.Length));
            foreach (string paragraph in section.Text)
            {
                foreach (string line in Wrap(paragraph, Width))
                {
                    io.Out.WriteLine(line);
                }
            }

            if (section.Steps.Count == 0)
            {
                continue;
            }

            int label = Math.Min(30, section.Steps.Max(s => s.Label.Length));
            foreach (ExplanationStep step in section.Steps)
            {
                string name = step.Label.Length > label ? step.Label : step.Label.PadRight(label);
                io.Out.WriteLine($"  {name}  {step.Formula} = {step.Result}");
            }
        }

        io.Out.WriteLine();
        TimelineChart.Write(io, explanation.Estimate);
    }

    private static IEnumerable<string> Wrap(string text, int width)
    {
        var line = new System.Text.StringBuilder();
        foreach (string word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.Length > 0 && line.Length + 1 + word.Length > width)
            {
                yield return line.ToString();
                line.Clear();
            }

            line.Append(line.Length > 0 ? " " : "").Append(word);
        }

        if (line.Length > 0)
        {
            yield return line.ToString();
        }
    }
}
