using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

public sealed class ZeroShardingTests
{
    private static double ModelStatesGb(int zero, int gpus, long parameters = 7_500_000_000)
    {
        var scenario = new Scenario
        {
            Model = new ModelReference.ParameterCount(parameters),
            Mode = Mode.Training,
            Engine = Engine.Deepspeed,
            Parallel = new ParallelSettings { Gpus = gpus, Zero = zero },
        };
        return MemoryEstimator.Estimate(scenario).DeviceTotal.Bytes / 1e9;
    }

    [Theory]
    // ZeRO paper (Rajbhandari et al. 2020, arXiv:1910.02054) Figure 1: per-device model-state memory of a 7.5B model with
    // mixed-precision Adam (K = 12) over N_d = 64 GPUs: baseline (2 + 2 + K)Ψ = 120 GB, P_os 31.4 GB, P_os+g 16.6 GB,
    // P_os+g+p 1.9 GB.
    [InlineData(0, 120.0)]
    [InlineData(1, 31.4)]
    [InlineData(2, 16.6)]
    [InlineData(3, 1.9)]
    public void ZeRO_stages_reproduce_the_papers_figure_1(int stage, double gigabytes) =>
        Assert.Equal(gigabytes, ModelStatesGb(stage, 64), 1);

    [Fact]
    public void The_essays_7B_model_needs_112_GB_of_training_states_on_one_GPU() =>
        // The essay: 7B × 16 B/param = 112 GB.
        Assert.Equal(112.0, ModelStatesGb(0, 1, 7_000_000_000), 6);
}
