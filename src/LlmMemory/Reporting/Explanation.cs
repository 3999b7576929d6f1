using System.Globalization;
using LlmMemory.Estimation;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Reporting;

/// <summary>A walk through a model's memory in the order the essay teaches it, each step with its numbers.</summary>
/// <param name="Model">The model explained.</param>
/// <param name="Scenario">The workload explained.</param>
/// <param name="Estimate">The estimate of the workload as given (its breakdown and timeline close the walk).</param>
/// <param name="Sections">Weights, precision, quantization, training states, activations, LoRA, effective batch, KV cache, the workload.</param>
public sealed record Explanation(ResolvedModel Model, Scenario Scenario, MemoryEstimate Estimate, IReadOnlyList<ExplanationSection> Sections);

/// <summary>One topic of the walk.</summary>
/// <param name="Key">Stable snake_case key (<c>weights</c>, <c>training_states</c>, <c>kv_cache</c>).</param>
/// <param name="Title">Heading.</param>
/// <param name="Text">Paragraphs in plain words.</param>
/// <param name="Steps">Formulas with the numbers substituted.</param>
public sealed record ExplanationSection(string Key, string Title, IReadOnlyList<string> Text, IReadOnlyList<ExplanationStep> Steps);

/// <summary>One formula: what it computes, the arithmetic, the result.</summary>
/// <param name="Label">What is computed ("bf16 weights").</param>
/// <param name="Formula">The arithmetic with numbers ("7B × 2 B").</param>
/// <param name="Result">The result ("14 GB (13.04 GiB)").</param>
public sealed record ExplanationStep(string Label, string Formula, string Result);

/// <summary>Number styles of the walk: the essay's decimal GB with binary GiB beside, and short parameter counts.</summary>
public static class EssayNumbers
{
    /// <summary>"112 GB (104.31 GiB)": decimal gigabytes as the essay writes them, and the binary figure GPU tools print.</summary>
    public static string Gigabytes(ByteSize size) =>
        string.Create(CultureInfo.InvariantCulture, $"{Trimmed(size.Bytes / 1e9)} GB ({size.Gibibytes:0.00} GiB)");

    /// <summary>"7B", "8.03B", "135M", "1.5T": a parameter count the way people say it.</summary>
    public static string Count(long parameters) => parameters switch
    {
        >= 1_000_000_000_000 => Trimmed(parameters / 1e12) + "T",
        >= 1_000_000_000 => Trimmed(parameters / 1e9) + "B",
        >= 1_000_000 => Trimmed(parameters / 1e6) + "M",
        >= 1_000 => Trimmed(parameters / 1e3) + "K",
        _ => parameters.ToString(CultureInfo.InvariantCulture),
    };

    /// <summary>At most two decimals, trailing zeros dropped: 112, 16.06, 0.5.</summary>
    public static string Trimmed(double value) => value.ToString(value >= 100 ? "0.#" : "0.##", CultureInfo.InvariantCulture);
}
