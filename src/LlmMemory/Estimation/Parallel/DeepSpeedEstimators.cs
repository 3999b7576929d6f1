using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Parallel;

/// <summary>
/// DeepSpeed's own model-state estimators, shown beside ours so users see why the numbers differ (they count model
/// states only, no activations, buffers or context). Source: deepspeed/runtime/zero/stage_1_and_2.py
/// <c>estimate_zero2_model_states_mem_needs</c> and stage3.py <c>estimate_zero3_model_states_mem_needs</c>
/// (docs/memory-model.md §7.2), GPU side, with G GPUs in total.
/// </summary>
internal static class DeepSpeedEstimators
{
    public static IReadOnlyList<MemoryComponent> Lines(ModelArchitecture m, ShardPlan plan, Scenario scenario)
    {
        long psi = m.ParameterCount;
        long g = plan.Gpus;
        bool offload = plan.Offload != OffloadMode.None;
        bool offloadParams = plan.Offload == OffloadMode.OptimizerAndParams;
        // "Largest layer" = parameters owned directly by one module: for LLMs the embedding or head, V × h.
        long largest = Math.Max(m.Tensors.Tensors.Max(t => t.Elements), 1);
        Formula Psi(double bytes) => Formula.Count(bytes) * Formula.Count(psi, "params");
        Formula Largest() => Formula.Count(4) * Formula.Count(largest, "largest-layer params");
        Formula zero2 = offload ? Psi(2) : Psi(4) + Psi(16) / Formula.Count(g, "GPUs");
        Formula zero3 = offloadParams ? Largest() : Largest() + Psi(offload ? 2 : 18) / Formula.Count(g, "GPUs");
        return
        [
            MemoryComponent.Of("deepspeed_zero2_estimate", ComponentKind.Weights, zero2.After("estimate_zero2_model_states_mem_needs:").Adjusted(
                offload ? 2 * psi : (4 * psi) + (16 * psi / g), "rounded down")),
            MemoryComponent.Of("deepspeed_zero3_estimate", ComponentKind.Weights, zero3.After("estimate_zero3_model_states_mem_needs:").Adjusted(
                (4 * largest) + (offloadParams ? 0 : offload ? 2 * psi / g : 18 * psi / g), "rounded down")),
        ];
    }
}
