using LlmMemory.Estimation;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Validation;

public sealed class NaiveRulesTests
{
    private static readonly ResolvedModel SevenB = new("7B", null, "parameter count", null, 7_000_000_000);

    private static Measurement Measured(MeasuredQuantity what, MeasurementScope scope = MeasurementScope.Gpu) => new(what, 1, scope, false, null);

    [Fact]
    public void Training_is_16_bytes_per_parameter_as_the_essay_says()
    {
        // Essay, "Model states": a 7B parameter model would require 7 × 16 = 112 GB to train.
        var scenario = new Scenario { Model = new ModelReference.ParameterCount(7_000_000_000), Mode = Mode.Training };
        Assert.Equal(112_000_000_000, NaiveRules.Estimate(SevenB, scenario, Measured(MeasuredQuantity.PeakReserved))!.Value);
    }

    [Fact]
    public void Inference_is_the_weights_plus_20_percent()
    {
        // 7e9 × 2 B (bf16, the essay's table) × 1.2 (accelerate docs: "up to an additional 20%") = 16.8e9.
        var scenario = new Scenario { Model = new ModelReference.ParameterCount(7_000_000_000), Weights = WeightFormats.Parse("bf16") };
        Assert.Equal(16_800_000_000, NaiveRules.Estimate(SevenB, scenario, Measured(MeasuredQuantity.DeviceUsed))!.Value);
    }

    [Fact]
    public void Weights_are_parameters_times_bytes_of_the_format()
    {
        // Essay table: float32 4 GB per billion parameters.
        var scenario = new Scenario { Model = new ModelReference.ParameterCount(7_000_000_000), Weights = WeightFormats.Parse("fp32") };
        Assert.Equal(28_000_000_000, NaiveRules.Estimate(SevenB, scenario, Measured(MeasuredQuantity.Weights))!.Value);
    }

    [Fact]
    public void A_per_gpu_figure_of_a_multi_gpu_run_divides_the_total_by_the_gpu_count()
    {
        var scenario = new Scenario
        {
            Model = new ModelReference.ParameterCount(7_000_000_000), Mode = Mode.Training, Parallel = new ParallelSettings { Gpus = 8, Zero = 3 },
        };
        Assert.Equal(14_000_000_000, NaiveRules.Estimate(SevenB, scenario, Measured(MeasuredQuantity.PeakAllocated))!.Value);
        Assert.Equal(112_000_000_000, NaiveRules.Estimate(SevenB, scenario, Measured(MeasuredQuantity.PeakAllocated, MeasurementScope.Total))!.Value);
    }

    [Theory]
    [InlineData(MeasuredQuantity.KvCache, Mode.Inference)]
    [InlineData(MeasuredQuantity.ComputeBuffer, Mode.Inference)]
    [InlineData(MeasuredQuantity.Parameters, Mode.Inference)]
    [InlineData(MeasuredQuantity.PeakAllocated, Mode.Lora)]
    [InlineData(MeasuredQuantity.PeakAllocated, Mode.Qlora)]
    public void Quantities_and_modes_without_a_rule_get_none(MeasuredQuantity what, Mode mode)
    {
        var scenario = new Scenario { Model = new ModelReference.ParameterCount(7_000_000_000), Mode = mode };
        Assert.Null(NaiveRules.Estimate(SevenB, scenario, Measured(what)));
    }
}
