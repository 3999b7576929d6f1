using LlmMemory.Planning;

namespace LlmMemory.Tests.Planning;

public sealed class AccumulationTests
{
    /// <summary>
    /// Derivations (effective batch = micro-batch × steps × replicas, Unsloth's LoRA hyper-parameter guide): the micro-batch
    /// is the largest divisor of ⌈target ÷ replicas⌉ that fits, so the target is met exactly when the replicas divide it.
    /// </summary>
    [Theory]
    [InlineData(16, 32, 1, 16, 1, 16)] // the whole target fits in one micro-batch
    [InlineData(16, 5, 1, 4, 4, 16)] // 5 fits, but 4 divides 16: 4 × 4, not 5 × 4 = 20
    [InlineData(16, 1, 1, 1, 16, 16)] // only one sequence fits: accumulate 16
    [InlineData(13, 5, 1, 1, 13, 13)] // 13 is prime: 1 × 13 is the only exact split under 5
    [InlineData(16, 3, 2, 2, 4, 16)] // two replicas: 8 each, 2 × 4 per replica
    [InlineData(10, 8, 4, 3, 1, 12)] // four replicas cannot split 10: ⌈10 ÷ 4⌉ = 3 each, 12 in all
    public void The_plan_reaches_the_target_with_the_largest_even_micro_batch(int target, int largest, int replicas, int micro, int steps, int effective)
    {
        AccumulationPlan plan = Accumulation.Plan(target, largest, replicas);

        Assert.Equal(micro, plan.MicroBatch);
        Assert.Equal(steps, plan.Steps);
        Assert.Equal(effective, plan.EffectiveBatch);
        Assert.True(plan.MicroBatch <= largest);
    }

    [Fact]
    public void The_default_target_is_the_top_of_the_essays_4_to_16_range()
    {
        // The essay: batch size and accumulation are tuned until the effective batch lands between 4 and 16.
        Assert.InRange(FitPlanner.DefaultTargetBatch, 4, 16);
    }
}
