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
        long zero2 = offload ? 2 * psi : 4 * psi + 16 * psi / g;
        long zero3 = 4 * largest + (offloadParams ? 0 : offload ? 2 * psi / g : 18 * psi / g);
        return
        [
            new("deepspeed_zero2_estimate", ComponentKind.Weights, new ByteSize(zero2),
                offload ? $"estimate_zero2_model_states_mem_needs, cpu_offload: 2 × {Text.N(psi)} params" : $"estimate_zero2_model_states_mem_needs: 4 × {Text.N(psi)} + 16 × {Text.N(psi)} ÷ {g} GPUs"),
            new("deepspeed_zero3_estimate", ComponentKind.Weights, new ByteSize(zero3),
                $"estimate_zero3_model_states_mem_needs: 4 × {Text.N(largest)} largest-layer params" + (offloadParams ? "" : offload ? $" + 2 × {Text.N(psi)} ÷ {g}" : $" + 18 × {Text.N(psi)} ÷ {g}")),
        ];
    }
}
