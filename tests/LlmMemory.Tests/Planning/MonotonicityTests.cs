using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>
/// What the solvers rely on (BoundarySearch's remarks): an estimate never shrinks when the batch or the sequence grows,
/// for any catalog model, in any mode. A refusal (more than 2^63 bytes) counts as infinitely large, so once refused,
/// every larger value must be refused too. The transformers/PyTorch estimates replay PyTorch's caching allocator, whose
/// cache and block tails depend on exact sizes (one more token can change which freed block a request reuses, and a
/// block is not split when at most 1 MiB would remain), so there a fall is allowed up to the previous estimate's
/// allocator cache plus 1 % for block tails; BoundarySearch's guard catches what remains.
/// </summary>
public sealed class MonotonicityTests
{
    /// <summary>Powers of two, their neighbours (where padding and windows switch) and the window sizes of the catalog.</summary>
    private static readonly int[] Lengths = [1, 2, 3, 63, 64, 65, 511, 512, 1000, 2047, 2048, 2049, 4095, 4096, 4097, 8192, 32_767, 32_768, 131_072, 1 << 20, 1 << 24];

    private static readonly int[] Batches = [1, 2, 3, 4, 7, 8, 16, 64, 1000, 1 << 16, 1 << 20];

    /// <summary>One model per model type: every program the estimators run (the sweep replays each scenario ~20 times).</summary>
    public static TheoryData<string> Models => new(Support.RepresentativeModels.Aliases);

    [Theory]
    [MemberData(nameof(Models))]
    public void Memory_never_falls_as_the_sequence_grows(string model)
    {
        foreach (Scenario scenario in Workloads(model))
        {
            AssertNonDecreasing(Lengths.Select(n => scenario with { Seq = n }), $"{model} {Names.Of(scenario.Mode)} {Names.Of(scenario.Attention)} seq");
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Memory_never_falls_as_the_batch_grows(string model)
    {
        foreach (Scenario scenario in Workloads(model))
        {
            AssertNonDecreasing(Batches.Select(n => scenario with { Batch = n }), $"{model} {Names.Of(scenario.Mode)} {Names.Of(scenario.Attention)} batch");
        }
    }

    private static IEnumerable<Scenario> Workloads(string model)
    {
        var named = new ModelReference.Named(model);
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb") };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Attention = AttentionKernel.Eager };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Weights = WeightFormats.Parse("q4_k_m") };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Mode = Mode.Training };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Mode = Mode.Training, GradientCheckpointing = Checkpointing.Full };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Mode = Mode.Lora, Lora = LoraSettings.Default };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Mode = Mode.Qlora, Lora = LoraSettings.Default };
        yield return new Scenario { Model = named, Gpu = GpuCatalog.Find("h100-80gb"), Mode = Mode.Training, Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard } };
    }

    [Theory]
    [InlineData("llama-3.1-8b", "full_shard", 0)]
    [InlineData("qwen3-30b-a3b", "none", 3)]
    [InlineData("llama-3.1-70b", "full_shard", 0)]
    [InlineData("gpt2", "none", 3)]
    public void Memory_per_device_never_rises_as_sharding_spreads_over_more_gpus(string model, string fsdp, int zero)
    {
        Assert.True(Names.TryParse(fsdp, out FsdpMode mode));
        var scenario = new Scenario { Model = new ModelReference.Named(model), Mode = Mode.Training, Gpu = GpuCatalog.Find("h100-80gb"), Engine = zero > 0 ? Engine.Deepspeed : Engine.Transformers };
        long previous = long.MaxValue;
        // FSDP2 pads every parameter's dim 0 to a multiple of N and gathers the padded size (FSDPParam._init_sharded_param,
        // init_all_gather_outputs): once N passes a parameter's rows (k_proj's 1,024 for Llama-3.1-8B and 70B) its gathered
        // copy grows with N, so past 1,000 GPUs a replayed FSDP rank legitimately needs more; the sweep stops there for FSDP.
        int[] counts = mode == FsdpMode.None ? [1, 2, 3, 4, 7, 8, 16, 64, 1000, 16_384] : [1, 2, 3, 4, 7, 8, 16, 64, 1000];
        foreach (int gpus in counts)
        {
            long bytes = Bytes(scenario with { Parallel = new ParallelSettings { Gpus = gpus, Fsdp = mode, Zero = zero } }, out bool unsupported);
            Assert.False(unsupported);
            Assert.True(bytes <= previous, $"{model} on {gpus} GPUs needs {bytes:N0} B per device, more than with fewer GPUs ({previous:N0} B)");
            previous = bytes;
        }
    }

    private static void AssertNonDecreasing(IEnumerable<Scenario> scenarios, string what)
    {
        long previous = 0;
        long previousSlack = 0;
        string previousAt = "start";
        foreach (Scenario scenario in scenarios)
        {
            long bytes = Bytes(scenario, out bool unsupported, out long allocatorSlack);
            if (unsupported)
            {
                // A mode this model's estimator does not handle at all (checked at the smallest value) has nothing to order.
                Assert.Equal("start", previousAt);
                return;
            }

            string at = $"{scenario.Seq} tokens × {scenario.Batch}";
            Assert.True(bytes >= previous - previousSlack, $"{what}: {previousAt} needs {previous:N0} B but {at} needs {bytes:N0} B");
            previous = bytes;
            previousSlack = allocatorSlack;
            previousAt = at;
        }
    }

    private static long Bytes(Scenario scenario, out bool unsupported) => Bytes(scenario, out unsupported, out _);

    /// <param name="allocatorSlack">What a replayed caching allocator may give back at a larger size: its cache and 1 % tails.</param>
    private static long Bytes(Scenario scenario, out bool unsupported, out long allocatorSlack)
    {
        unsupported = false;
        allocatorSlack = 0;
        try
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(scenario);
            if (estimate.Components.SingleOrDefault(c => c.Name == "allocator_cache" && c.Kind == ComponentKind.AllocatorReserve) is { } cache
                && estimate.Components.Any(c => c.Name == "weight_blocks" || c.Name == "cublas_workspaces"))
            {
                allocatorSlack = cache.Bytes.Bytes + (estimate.DeviceTotal.Bytes / 100);
            }

            return estimate.DeviceTotal.Bytes;
        }
        catch (OverflowException)
        {
            return long.MaxValue;
        }
        catch (Exception error) when (error is NotSupportedException or FormatException)
        {
            unsupported = true;
            return 0;
        }
    }
}
