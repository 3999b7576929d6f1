using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// DeepSpeed ZeRO replayed for rank 0. The model-state figures follow the ZeRO paper (Rajbhandari et al. 2020,
/// arXiv:1910.02054, §3 and §5): mixed-precision AdamW holds 2Ψ (16-bit parameters) + 2Ψ (16-bit gradients) + 12Ψ (fp32
/// master, momentum and variance); ZeRO-1 (P_os) divides the 12Ψ by N, ZeRO-2 (P_os+g) the gradients too, ZeRO-3
/// (P_os+g+p) everything: 2Ψ + 2Ψ + 12Ψ/N, 2Ψ + 14Ψ/N, 16Ψ/N.
/// </summary>
public sealed class ZeroReplayTests
{
    /// <summary>
    /// Mistral-7B-v0.3 (hidden 4,096, 32 layers, 8 KV heads of 128, FFN 14,336, vocabulary 32,768, untied): per layer q and o
    /// 4,096² each, k and v 1,024 × 4,096 each, 3 × 4,096 × 14,336 MLP and two norms of 4,096 = 218,112,000; × 32 =
    /// 6,979,584,000, plus 2 × 32,768 × 4,096 embedding and head and the final norm 4,096 = 7,248,023,552 parameters (Ψ).
    /// </summary>
    private const long Psi = 7_248_023_552;

    /// <summary>Ψ ÷ 8: every tensor's element count divides by 8, and Ψ by 2 × 8, so no padding anywhere.</summary>
    private const long PsiOver8 = 906_002_944;

    /// <summary>The 65 norm vectors of 4,096 (two per layer and the final one), at most 100,000 elements: never partitioned.</summary>
    private const long Persistent = 65 * 4_096;

    private static MemoryEstimate Estimate(int zero, Engine engine = Engine.Transformers, OffloadMode offload = OffloadMode.None, int seq = 16) =>
        MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("mistral-7b-v0.3"), Mode = Mode.Training, Precision = Precision.MixedBf16, Seq = seq, Engine = engine,
            Parallel = new ParallelSettings { Gpus = 8, Zero = zero, Offload = offload },
        });

    private static long Bytes(MemoryEstimate estimate, string name) => estimate.Components.Single(c => c.Name == name).Bytes.Bytes;

    [Fact]
    public void ZeRO_3_in_mixed_bf16_holds_sixteen_bytes_per_parameter_over_the_ranks_with_or_without_the_deepspeed_engine()
    {
        // ZeRO-3 over 8 ranks: 16Ψ/8 = 14,496,047,104 B of model states on each rank, in DeepSpeed's tensors: the 16-bit
        // partitions 2 × Ψ/8 (plus the 65 persistent norms, whole, 2 × 266,240 B), the fp32 master 4 × Ψ/8, AdamW's two fp32
        // moments 8 × Ψ/8, and the 16-bit gradient partition 2 × Ψ/8 (grad_partitions_flat_buffer, held from initialization).
        // Each is one tensor whose size divides by 512 B, so the allocator adds nothing.
        foreach (Engine engine in new[] { Engine.Transformers, Engine.Deepspeed })
        {
            MemoryEstimate estimate = Estimate(3, engine);
            Assert.Equal((2 * PsiOver8) + (2 * Persistent), Bytes(estimate, "weights"));
            Assert.Equal(4 * PsiOver8, Bytes(estimate, "master_weights"));
            Assert.Equal(8 * PsiOver8, Bytes(estimate, "optimizer_states"));
            Assert.True(Bytes(estimate, "gradients") >= 2 * PsiOver8);
            Assert.Equal(16 * Psi / 8, (2 + 4 + 8 + 2) * PsiOver8);
            Assert.StartsWith("rank 0 of 8", estimate.Device, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ZeRO_1_keeps_every_16_bit_gradient_until_backward_ends_and_ZeRO_2_partitions_them()
    {
        // Stages 1 and 2 keep the whole flat 16-bit buffer (2Ψ, Ψ divides by 2 × 8 so no padding) and the fp32 master and
        // moments of 1/8 of it (12Ψ/8). ZeRO-1 reduces after backward (reduce_gradients), so at its peak every parameter's
        // 16-bit gradient is live: 2Ψ = 14,496,047,104 B, the paper's 2Ψ + 2Ψ + 12Ψ/N. ZeRO-2 copies each gradient into the
        // bucket as it arrives and frees it, so it never holds them all.
        MemoryEstimate one = Estimate(1);
        MemoryEstimate two = Estimate(2);
        foreach (MemoryEstimate estimate in new[] { one, two })
        {
            Assert.Equal(2 * Psi, Bytes(estimate, "weights"));
            Assert.Equal(4 * PsiOver8, Bytes(estimate, "master_weights"));
            Assert.Equal(8 * PsiOver8, Bytes(estimate, "optimizer_states"));
        }

        Assert.True(Bytes(one, "gradients") >= 2 * Psi);
        Assert.True(Bytes(two, "gradients") < 2 * Psi / 2);
    }

    [Fact]
    public void Optimizer_offload_moves_the_master_and_moments_to_host_memory()
    {
        // offload_optimizer: the fp32 master, its moments and the fp32 gradients live in host memory; ZeRO-3 with
        // offload_param keeps its 16-bit partitions there too (the GPU keeps the persistent norms and what it gathers).
        MemoryEstimate optimizer = Estimate(2, offload: OffloadMode.Optimizer);
        Assert.Equal(Residence.Host, optimizer.Components.Single(c => c.Name == "master_weights").Residence);
        Assert.DoesNotContain(optimizer.Components, c => c.Name == "optimizer_states");

        MemoryEstimate both = Estimate(3, offload: OffloadMode.OptimizerAndParams);
        Assert.Equal(Residence.Host, both.Components.Single(c => c.Name == "weights").Residence);
        Assert.Equal(2 * Persistent, Bytes(both, "persistent_parameters"));
    }

    [Fact]
    public void Parameter_offload_below_stage_3_is_refused()
    {
        // DeepSpeed's offload_param is "valid only with stage 3" (DeepSpeedZeroConfig.offload_param).
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => Estimate(2, offload: OffloadMode.OptimizerAndParams));
        Assert.Contains("stage 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Stage_1_and_2_pad_the_flat_buffer_to_twice_the_ranks_and_stage_3_each_parameter_to_the_ranks()
    {
        // stage_1_and_2.py flattens with alignment nccl_start_alignment_factor (2) × N: 10 elements over 4 ranks pad to 16.
        // partition_parameters.py gives every rank ⌈n ÷ N⌉ elements of a parameter: 10 over 4 is 3.
        Assert.Equal(16, ZeroStep.PaddedElements(10, 4));
        Assert.Equal(16, ZeroStep.PaddedElements(16, 4));
        Assert.Equal(3, ZeroStep.PartitionElements(10, 4));
    }

    [Fact]
    public void A_ZeRO_3_block_is_gathered_into_a_flat_output_then_one_tensor_per_parameter_and_the_output_is_freed()
    {
        // One block with a [4096, 256] bf16 parameter over 8 ranks. AllGatherCoalescedHandle: a flat output of
        // ⌈1,048,576 ÷ 8⌉ × 8 = 1,048,576 elements (2 MiB), the parameter copied out of it (torch.cat of its 8 pieces, another
        // 2 MiB), then the output freed: 2 MiB more allocated, 4 MiB at the moment of the copy. In the first step nothing is
        // traced, so the block is released after its forward.
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var step = new ZeroStep(engine, new Sharding(8, true, ScalarType.BFloat16, ScalarType.BFloat16, false, false, new ZeroSettings(3, false, false)));
        engine.Sharded = step;
        step.Add(0, [4096, 256], new StoredWeight(4096L * 256 * 2, ScalarType.BFloat16), trainable: true, TensorRole.Attention);
        step.Loaded();
        long loaded = engine.Allocator.Allocated;
        engine.Allocator.ResetPeaks();

        engine.Layer = 0;
        Assert.Equal(loaded + (2L << 20), engine.Allocator.Allocated);
        Assert.Equal(loaded + (4L << 20), engine.Allocator.PeakAllocated);

        engine.Layer = ReplayEngine.HeadLayer;
        Assert.Equal(loaded, engine.Allocator.Allocated);
    }

    [Fact]
    public void ZeRO_3_initialization_holds_the_partition_master_gradient_partition_and_bucket()
    {
        // The same [4096, 256] parameter: its 16-bit partition 131,072 × 2 = 262,144 B, the fp32 master 131,072 × 4 =
        // 524,288 B, the 16-bit gradient partition 262,144 B and the reduce bucket of 500,000,000 16-bit elements
        // (1,000,000,000 B). The small ones are 512-B multiples; the bucket's segment is rounded up to 2 MiB (kRoundLarge):
        // 477 × 2,097,152 = 1,000,341,504 B, and its 341,504-B tail, under 1 MiB (kSmallSize), is not split off, so the
        // block is the whole segment.
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var step = new ZeroStep(engine, new Sharding(8, true, ScalarType.BFloat16, ScalarType.BFloat16, false, false, new ZeroSettings(3, false, false)));
        engine.Sharded = step;
        step.Add(0, [4096, 256], new StoredWeight(4096L * 256 * 2, ScalarType.BFloat16), trainable: true, TensorRole.Attention);
        step.Loaded();
        Assert.Equal(262_144 + 524_288 + 262_144 + 1_000_341_504, engine.Allocator.Allocated);
        Assert.Single(step.Stepped);
    }

    [Fact]
    public void ZeRO_flattens_the_partition_so_Adafactor_keeps_a_full_second_moment()
    {
        // DeepSpeed's ZeRO optimizer hands the optimizer one flat fp32 partition per group, a vector, so transformers'
        // Adafactor cannot factor its second moment: 4 B per element of the partition. Llama-3.2-1B (tied, 1,235,814,400
        // parameters) over 2 ranks: padded to a multiple of 2 × 2, already one, so 617,907,200 elements × 4 B = 2,471,628,800 B,
        // whose segment the allocator rounds up to 2 MiB (1,179 × 2,097,152 = 2,472,542,208 B) without splitting off the
        // 913,408-B tail (under 1 MiB).
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Mode = Mode.Training, Optimizer = OptimizerKind.Adafactor, Seq = 16,
            Parallel = new ParallelSettings { Gpus = 2, Zero = 1 },
        });

        Assert.Equal(2_472_542_208, Bytes(estimate, "optimizer_states"));
    }
}
