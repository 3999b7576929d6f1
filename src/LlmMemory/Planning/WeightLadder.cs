using LlmMemory.Estimation;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>The weight formats each inference engine can run, for "which format is needed to fit at all".</summary>
/// <remarks>
/// Formats a user of the engine would reach for, not every format the estimator knows: transformers loads bitsandbytes
/// int8/NF4, GPTQ, AWQ and fp8 checkpoints; vLLM and SGLang serve fp8, GPTQ, AWQ and bitsandbytes 4-bit; llama.cpp runs
/// GGUF mixes (llama-quant.cpp's presets from Q8_0 down to Q2_K). The ladder is ordered by the weight bytes the estimator
/// computes for the model at hand, most first, so "most bits" means what it means for this model's tensors.
/// </remarks>
internal static class WeightLadder
{
    private static readonly WeightFormat[] Transformers = Formats("bf16", "fp8", "int8", "gptq-int4", "awq-int4", "nf4");

    private static readonly WeightFormat[] Serving = Formats("bf16", "fp8", "gptq-int4", "awq-int4", "nf4");

    private static readonly WeightFormat[] LlamaCpp = Formats("f16", "q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k");

    /// <summary>
    /// The formats of <paramref name="engine"/>, plus the scenario's own — the format it names, or the one the model is
    /// published in (a quantized checkpoint such as gpt-oss's MXFP4) — when it is not one of them.
    /// </summary>
    public static IReadOnlyList<WeightFormat> For(Engine engine, Scenario scenario, Models.ModelArchitecture? model)
    {
        WeightFormat[] ladder = engine switch
        {
            Engine.Vllm or Engine.Sglang => Serving,
            Engine.LlamaCpp => LlamaCpp,
            _ => Transformers,
        };
        WeightFormat? own = scenario.Weights;
        if (own is null && model is not null)
        {
            Estimation.Weights.WeightChoice.Layout(model, scenario, out string published);
            own = WeightFormats.TryParse(published, out WeightFormat format) ? format : null;
        }

        return own is WeightFormat given && !ladder.Contains(given) ? [given, .. ladder] : ladder;
    }

    /// <summary>The GGUF ladder, tried when nothing the scenario's engine runs fits.</summary>
    public static IReadOnlyList<WeightFormat> Gguf => LlamaCpp;

    /// <summary>Estimates each format at the scenario's batch and context; most weight bytes first.</summary>
    /// <remarks>The order comes from a plain single-GPU transformers estimate of each format, which never refuses for lack of
    /// room, so a format the scenario's engine refuses still sorts by its size.</remarks>
    public static IReadOnlyList<PlanOption> Estimate(FitProbe probe, Scenario scenario, IReadOnlyList<WeightFormat> formats) =>
        formats.Select(format => probe.Option(format.Name, format.Description, scenario with { Weights = format }))
            .Select(o => o with { Weights = WeightBytes(probe, o.Scenario) is long bytes ? new ByteSize(bytes) : null })
            .OrderByDescending(o => o.Weights?.Bytes ?? long.MaxValue)
            .ToArray();

    private static long? WeightBytes(FitProbe probe, Scenario scenario) =>
        probe.Try(scenario with { Mode = Mode.Inference, Engine = Engine.Transformers, Parallel = new ParallelSettings(), Gpu = null })
            .Estimate?.Components.Where(c => c.Kind == ComponentKind.Weights).Sum(c => c.Bytes.Bytes);

    private static WeightFormat[] Formats(params string[] names) => [.. names.Select(WeightFormats.Parse)];
}
