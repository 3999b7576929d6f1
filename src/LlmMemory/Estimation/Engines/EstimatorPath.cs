using LlmMemory.Hardware;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Engines;

/// <summary>One estimator behind the seam, with the scenario fields it reads.</summary>
/// <param name="Name">What it models, for messages ("transformers inference (a replay of PyTorch's allocator)").</param>
/// <param name="Reads">The scenario fields (JSON paths) it uses; a field the input names outside this set is refused, unless
/// its value is the default. <c>model</c>, <c>mode</c>, <c>engine</c> and <c>gpu</c> are read by every path.</param>
/// <param name="Run">The estimate; a replay checks the token between layers, a closed form (microseconds) does not.</param>
internal sealed record EstimatorPath(string Name, IReadOnlySet<string> Reads, Func<ResolvedModel, Scenario, Gpu?, CancellationToken, MemoryEstimate> Run)
{
    /// <summary>Fields every path reads.</summary>
    public static readonly string[] Always = ["model", "mode", "engine", "gpu"];

    public static EstimatorPath Of(string name, IEnumerable<string> reads, Func<ResolvedModel, Scenario, Gpu?, CancellationToken, MemoryEstimate> run) =>
        new(name, new HashSet<string>([.. Always, .. reads], StringComparer.Ordinal), run);

    /// <summary>A path that answers in microseconds: cancellation is checked before it runs, never inside.</summary>
    public static EstimatorPath Of(string name, IEnumerable<string> reads, Func<ResolvedModel, Scenario, Gpu?, MemoryEstimate> run) =>
        Of(name, reads, (model, scenario, gpu, _) => run(model, scenario, gpu));

    /// <summary>
    /// Whether the run certainly does not fit its device, answered more cheaply than <see cref="Run"/> where the path can
    /// (a replay that runs out of the device's memory); null on paths where the estimate itself is the cheap answer.
    /// False means "not known to run out": the estimate decides.
    /// </summary>
    public Func<ResolvedModel, Scenario, Gpu?, CancellationToken, bool>? RunsOutOfMemory { get; init; }

    /// <summary>Whether the path reads <paramref name="field"/> (or its whole parent object, as <c>lora</c> covers <c>lora.r</c>).</summary>
    public bool ReadsField(string field) =>
        Reads.Contains(field) || (field.IndexOf('.', StringComparison.Ordinal) is int dot and > 0 && Reads.Contains(field[..dot]));
}
