using LlmMemory.Reporting;

namespace LlmMemory.Cli.Rendering;

/// <summary>The walk-through as text: a heading per section, its paragraphs wrapped, its formulas aligned, then the timeline.</summary>
internal static class ExplanationText
{
    public static void Write(CliOutput io, Explanation explanation)
    {
        io.WriteWrapped($"How much memory does {explanation.Model.Name} need? Decimal GB as the essay writes them (1 GB = 10^9 bytes), binary GiB beside them.", 0);
        foreach (ExplanationSection section in explanation.Sections)
        {
            io.Out.WriteLine();
            io.Out.WriteLine(section.Title);
            io.Out.WriteLine(new string('─', section.Title.Length));
            foreach (string paragraph in section.Text)
            {
                io.WriteWrapped(paragraph, 0);
            }

            if (section.Steps.Count == 0)
            {
                continue;
            }

            // Labels in a column, formulas beside them; a formula too long for the width wraps under itself.
            int label = Math.Min(Math.Min(30, io.Width / 3), section.Steps.Max(s => s.Label.Length));
            foreach (ExplanationStep step in section.Steps)
            {
                string name = step.Label.Length > label ? step.Label : step.Label.PadRight(label);
                io.WriteWrapped($"  {name}  {step.Formula} = {step.Result}", Math.Min(label + 4, 2 + io.Width / 3));
            }
        }

        io.Out.WriteLine();
        TimelineChart.Write(io, explanation.Estimate);
    }
}
