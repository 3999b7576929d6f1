using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// A GPU without bf16 (data/gpus.json: the T4 is compute capability 7.5, the V100 7.0; NVIDIA's bf16 tensor cores start at
/// 8.0, Ampere) runs a bf16 checkpoint in fp16, the same 2 bytes per value; a bf16 training precision asked for is refused.
/// </summary>
public sealed class Bf16FallbackTests
{
    [Fact]
    public void A_bf16_checkpoint_on_a_t4_is_estimated_in_fp16_with_the_same_bytes_and_a_note()
    {
        // data/models/llama-3.2-1b.json: torch_dtype bfloat16, 1,235,814,400 parameters (ParameterCountTests). fp16 and bf16
        // are both 2 bytes, so the weights are 1,235,814,400 × 2 B and every allocation is the one of the bf16 run on an A10
        // (Ampere, bf16; not Hopper, so torch gives it the T4's cuBLAS workspace size: 4 MiB × 2 + 16 KiB × 8).
        var scenario = new Scenario { Model = new ModelReference.Named("llama-3.2-1b"), Seq = 1024 };
        MemoryEstimate onT4 = MemoryEstimator.Estimate(scenario with { Gpu = GpuCatalog.Find("t4") });
        MemoryEstimate anywhere = MemoryEstimator.Estimate(scenario with { Gpu = GpuCatalog.Find("a10") });

        Assert.Equal(1_235_814_400L * 2, Weights(onT4));
        Assert.Equal(anywhere.Quantity(MeasuredQuantity.PeakAllocated), onT4.Quantity(MeasuredQuantity.PeakAllocated));
        Assert.Contains(onT4.Notes, n => n.Contains("NVIDIA T4 16GB has no bf16", StringComparison.Ordinal) && n.Contains("in fp16", StringComparison.Ordinal));
        Assert.Contains("(f16)", onT4.Components.Single(c => c.Name == "weights").Formula, StringComparison.Ordinal);
        Assert.DoesNotContain(anywhere.Notes, n => n.Contains("no bf16", StringComparison.Ordinal));
    }

    [Fact]
    public void Bf16_weights_asked_for_on_a_v100_are_estimated_in_fp16()
    {
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Seq = 1024, Weights = WeightFormats.Bf16, Gpu = GpuCatalog.Find("v100-32gb"),
        });

        Assert.Equal(1_235_814_400L * 2, Weights(estimate));
        Assert.Contains(estimate.Notes, n => n.Contains("NVIDIA Tesla V100 32GB (SXM2/PCIe) has no bf16", StringComparison.Ordinal));
    }

    [Fact]
    public void A_gpu_with_bf16_keeps_bf16()
    {
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario { Model = new ModelReference.Named("llama-3.2-1b"), Seq = 1024, Gpu = GpuCatalog.Find("a10") });
        Assert.DoesNotContain(estimate.Notes, n => n.Contains("no bf16", StringComparison.Ordinal));
        Assert.Contains("(bf16)", estimate.Components.Single(c => c.Name == "weights").Formula, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(Precision.MixedBf16, "mixed-bf16")]
    [InlineData(Precision.Bf16, "bf16")]
    public void Bf16_training_asked_for_on_a_t4_is_refused_naming_the_option_and_the_gpu(Precision precision, string name)
    {
        var error = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Mode = Mode.Training, Precision = precision, Seq = 512, Gpu = GpuCatalog.Find("t4"),
        }));

        Assert.Equal("precision", error.Key);
        Assert.Contains($"is \"{name}\", but the NVIDIA T4 16GB has no bf16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Training_without_a_precision_on_a_t4_uses_mixed_fp16_and_says_so()
    {
        // Mixed precision holds fp32 weights whichever 16-bit type autocast uses: 1,235,814,400 × 4 B.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Mode = Mode.Training, Seq = 512, Gpu = GpuCatalog.Find("t4"),
        });

        Assert.Equal(1_235_814_400L * 4, Weights(estimate));
        Assert.Contains(estimate.Notes, n => n.Contains("mixed-fp16 instead of the usual mixed-bf16", StringComparison.Ordinal));
    }

    /// <summary>The weights row: the weights' own bytes (the allocator's rounding is a row of its own).</summary>
    private static long Weights(MemoryEstimate estimate) => estimate.Components.Single(c => c.Name == "weights").Bytes.Bytes;
}
