using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

public sealed class DistributedTrainingTests
{
    [Fact]
    public void FSDP_LoRA_shards_the_fp32_adapter_weights_with_the_parameters()
    {
        // Llama-2-70B (hidden 8192, 8 KV heads × 128, FFN 28672, 80 layers; data/models/llama-2-70b.json), LoRA r = 8 on all
        // linear layers: per layer r × [(8192 + 8192) q + 2 × (8192 + 1024) k, v + (8192 + 8192) o + 2 × (8192 + 28672) gate, up
        // + (28672 + 8192) down] = 8 × 161,792 = 1,294,336, × 80 layers = 103,546,880 adapter parameters. PEFT creates them in
        // fp32 (4 B) and FSDP full-shard splits them over the 8 GPUs like every other parameter.
        var scenario = new Scenario
        {
            Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Lora, Precision = Precision.Bf16,
            Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
        };
        MemoryEstimate estimate = MemoryEstimator.Estimate(scenario);

        Assert.Equal(103_546_880, estimate.Parameters.Trainable);
        Assert.Equal(103_546_880L * 4 / 8, estimate.Components.Single(c => c.Name == "lora_adapters").Bytes.Bytes);
    }

    [Fact]
    public void A_sharded_run_draws_its_step_from_the_same_parts_and_peaks_at_the_start_of_backward()
    {
        // The closed form's timeline is its own components at four moments; the peak is every allocated part at once, the
        // total less the allocator's cached blocks (which the replay's timeline leaves out too).
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Training, Seq = 4096,
            GradientCheckpointing = Checkpointing.Full, Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
        });
        long cached = estimate.Components.Single(c => c.Name == "allocator_cache").Bytes.Bytes;

        Assert.Equal(["load", "end of forward", "start of backward", "optimizer step"], estimate.Timeline.Select(p => p.Phase));
        Assert.Equal(estimate.DeviceTotal.Bytes - cached, estimate.Timeline.Max(p => p.Bytes.Bytes));
        Assert.Equal("start of backward", estimate.Timeline.MaxBy(p => p.Bytes.Bytes)!.Phase);
    }
}
