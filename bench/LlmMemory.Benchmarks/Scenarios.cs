using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>The scenarios timed by <see cref="EstimateBenchmarks"/>, one per kind of estimate, named as in docs/performance.md.</summary>
public static class Scenarios
{
    private static readonly ModelReference Llama8B = new ModelReference.Named("llama-3.1-8b");

    /// <summary>The baseline: a bare count, the essay's 16 bytes per parameter (no architecture, no inventory).</summary>
    public static Scenario RuleOfThumb { get; } = new() { Model = new ModelReference.Named("8B"), Mode = Mode.Training };

    /// <summary>Hugging Face transformers inference at an 8k context (the README's Quick start estimate).</summary>
    public static Scenario InferenceTransformers { get; } = new() { Model = Llama8B, Seq = 8192 };

    /// <summary>vLLM serving on one H100: the KV pool is what is left of the GPU after weights and profiling.</summary>
    public static Scenario InferenceVllm { get; } = new() { Model = Llama8B, Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"), Seq = 8192 };

    /// <summary>llama.cpp with the Q4_K_M mix at an 8k context.</summary>
    public static Scenario InferenceLlamaCpp { get; } = new() { Model = Llama8B, Engine = Engine.LlamaCpp, Weights = WeightFormats.Parse("q4_k_m"), Seq = 8192 };

    /// <summary>Full fine-tuning, mixed bf16 with AdamW, batch 1 × 2048.</summary>
    public static Scenario Training { get; } = new() { Model = Llama8B, Mode = Mode.Training };

    /// <summary>LoRA r = 16 on all linear layers.</summary>
    public static Scenario Lora { get; } = new()
    {
        Model = Llama8B, Mode = Mode.Lora, Lora = new LoraSettings(16, 32, LoraTargets.AllLinear, Dora: false),
    };

    /// <summary>Every scenario with its benchmark name, baseline first.</summary>
    public static IReadOnlyList<(string Name, Scenario Scenario)> All { get; } =
    [
        (nameof(RuleOfThumb), RuleOfThumb),
        (nameof(InferenceTransformers), InferenceTransformers),
        (nameof(InferenceVllm), InferenceVllm),
        (nameof(InferenceLlamaCpp), InferenceLlamaCpp),
        (nameof(Training), Training),
        (nameof(Lora), Lora),
    ];
}
