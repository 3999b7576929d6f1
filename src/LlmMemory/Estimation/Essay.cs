using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>The essay's first estimate for a known architecture: exact weights per tensor, plus the 16 B/param training states.</summary>
internal static class Essay
{
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario)
    {
        ModelArchitecture architecture = model.Architecture!;
        MemoryEstimate rough = RuleOfThumb.Estimate(model with { Architecture = null, BareParameterCount = architecture.ParameterCount }, scenario);
        return rough with
        {
            Model = model,
            Parameters = new ParameterSummary(architecture.ParameterCount, scenario.IsTraining ? architecture.ParameterCount : 0,
                architecture.ActiveParameterCount),
            Notes = ["Weights and training states only; activations, KV cache and runtime overheads come in later estimators."],
        };
    }
}
