using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>Inference memory following the chosen engine's own accounting.</summary>
internal static class InferenceEstimator
{
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario, Gpu? gpu) => scenario.Engine switch
    {
        Engine.Vllm or Engine.Sglang => ServingEngines.Estimate(model, scenario, gpu),
        Engine.LlamaCpp => LlamaCpp.LlamaCppEstimator.Estimate(model, scenario, gpu),
        _ => TransformersInference.Estimate(model, scenario, gpu),
    };
}
