using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// A printed formula is its number: over the catalog × engines × modes, every component's formula, evaluated as printed
/// (<see cref="PrintedFormula"/>), gives the bytes printed beside it, within the rounding of its printed terms.
/// </summary>
public sealed class FormulasAreTheirNumbersTests
{
    private static readonly string[] Workloads =
    [
        """ "seq": 512 """,
        """ "seq": 512, "mode": "training" """,
        """ "seq": 512, "mode": "lora" """,
        """ "seq": 512, "mode": "qlora" """,
        """ "seq": 512, "mode": "training", "parallel": {"gpus": 8, "fsdp": "full_shard"} """,
        """ "seq": 512, "mode": "lora", "engine": "deepspeed", "parallel": {"gpus": 4, "zero": 3} """,
        """ "engine": "vllm", "gpu": "h100-80gb", "parallel": {"gpus": 8, "tp": 8} """,
        """ "engine": "sglang", "gpu": "h100-80gb", "parallel": {"gpus": 8, "tp": 8} """,
        """ "seq": 4096, "engine": "llama.cpp", "weights": "q4_k_m", "gpu": "rtx-4090" """,
        """ "seq": 4096, "engine": "llama.cpp", "gpu": "cpu" """,
    ];

    public static TheoryData<string> Models => [.. ModelCatalog.All.Select(m => m.Alias)];

    [Theory]
    [MemberData(nameof(Models))]
    public void Every_printed_formula_evaluates_to_the_bytes_beside_it(string model)
    {
        var wrong = new List<string>();
        foreach (string workload in Workloads)
        {
            MemoryEstimate estimate;
            try
            {
                using JsonDocument document = JsonDocument.Parse($$"""{"model": "{{model}}", {{workload}}}""");
                estimate = MemoryEstimator.Estimate(ScenarioDraft.FromJson(document.RootElement, "test").Read());
            }
            catch (ModelFormatException)
            {
                continue; // refused (an engine that does not run this architecture, a model too large for the device): no formula
            }

            foreach (MemoryComponent c in estimate.Components.Concat(estimate.Comparisons))
            {
                string? problem = Check(c);
                if (problem is not null)
                {
                    wrong.Add($"{workload.Trim()} {c.Name}: {problem}\n      {c.Formula}");
                }
            }
        }

        Assert.True(wrong.Count == 0, $"{model}:\n  " + string.Join("\n  ", wrong));
    }

    private static string? Check(MemoryComponent c)
    {
        if (c.Formula.Contains("Constants.", StringComparison.Ordinal))
        {
            return "names an internal constant";
        }

        IReadOnlyList<PrintedFormula.Interval> sides;
        try
        {
            sides = PrintedFormula.Sides(c.Formula);
        }
        catch (FormatException error)
        {
            return $"does not parse ({error.Message})";
        }

        if (sides.Count == 0)
        {
            return "prints no number";
        }

        double bytes = c.Bytes.Bytes;
        double slack = Math.Max(1, bytes * 1e-9);
        foreach (PrintedFormula.Interval side in sides)
        {
            if (!side.Contains(bytes, slack))
            {
                return $"evaluates to {side.Value:N0} (± {side.Error:N0}), not {bytes:N0}";
            }
        }

        return null;
    }
}
