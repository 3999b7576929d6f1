using LlmMemory.Estimation;
using LlmMemory.Estimation.Counts;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

public sealed class RuleOfThumbTests
{
    [Fact]
    public void A_bare_count_QLoRA_estimate_is_its_frozen_base_in_four_bits()
    {
        // The essay: QLoRA quantizes the frozen weights to 4 bits, a quarter of bf16: 70B × 0.5 B = 35 GB. A bare count has no
        // layer shapes, so the adapters (and their gradients and AdamW states) are left out and said to be.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario { Model = new ModelReference.ParameterCount(70_000_000_000), Mode = Mode.Qlora });

        Assert.Equal(35_000_000_000, estimate.DeviceTotal.Bytes);
        Assert.DoesNotContain(estimate.Components, c => c.Name is "gradients" or "optimizer_states");
        Assert.Contains(estimate.Notes, n => n.Contains("adapters", StringComparison.Ordinal));
    }
}
