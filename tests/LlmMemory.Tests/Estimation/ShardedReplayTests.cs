using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

public sealed class ShardedReplayTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void An_FSDP2_unit_gathers_a_flat_buffer_and_one_padded_tensor_per_parameter_in_the_param_dtype()
    {
        // One block of two fp32 parameters [4096, 256] and [10, 256] over 8 ranks, gathered in bf16.
        // Shards (FSDPParam._init_sharded_param): ⌈4096 / 8⌉ = 512 rows × 256 × 4 B = 524,288 B; ⌈10 / 8⌉ = 2 rows × 256 × 4 B
        // = 2,048 B. Gathered, padded to 8 × the shard rows: 4096 × 256 = 1,048,576 and 16 × 256 = 4,096 elements, 2 B each:
        // 2 MiB and 8,192 B per parameter (init_all_gather_outputs), and the flat all-gather output of their sum, 2 MiB + 8,192 B.
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var step = new ShardedStep(engine, new Sharding(8, ReshardAfterForward: true, ScalarType.BFloat16, ScalarType.Float32, Offload: false, UntiedHead: false));
        engine.Sharded = step;
        step.Add(0, [4096, 256], new StoredWeight(4096L * 256 * 4, ScalarType.Float32), trainable: true, TensorRole.Attention);
        step.Add(0, [10, 256], new StoredWeight(10L * 256 * 4, ScalarType.Float32), trainable: true, TensorRole.Attention);
        long shards = engine.Allocator.Allocated;
        Assert.Equal(524_288 + 2_048, shards);

        engine.Layer = 0; // block 0's pre-forward
        long gathered = (2 * MiB) + 8_192;
        Assert.Equal(shards + (2 * gathered), engine.Allocator.Allocated);

        engine.Layer = ReplayEngine.HeadLayer; // its post-forward reshards it; the flat output waits for the next all-gather
        Assert.Equal(shards + gathered, engine.Allocator.Allocated);
    }

    [Fact]
    public void The_flat_all_gather_output_lives_in_segments_of_the_all_gather_stream()
    {
        // One fp32 parameter [4096, 256] over 8 ranks: the shard is 512 × 256 × 4 B = 512 KiB, a small block in a 2 MiB segment.
        // Block 0's pre-forward gathers 4096 × 256 × 2 B = 2 MiB (bf16) twice: the flat output under all_gather_copy_in_stream
        // (foreach_all_gather), the parameter on the default stream (init_all_gather_outputs). A 2 MiB request is a cache miss
        // between 1 and 10 MiB: a 20 MiB segment. The default stream cannot carve its 2 MiB from the other stream's segment
        // (get_free_block compares the stream first), so it makes one of its own: 2 + 20 + 20 = 42 MiB reserved, where one
        // stream would have split the first 20 MiB segment (22 MiB).
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var step = new ShardedStep(engine, new Sharding(8, ReshardAfterForward: true, ScalarType.BFloat16, ScalarType.Float32, Offload: false, UntiedHead: false));
        engine.Sharded = step;
        step.Add(0, [4096, 256], new StoredWeight(4096L * 256 * 4, ScalarType.Float32), trainable: true, TensorRole.Attention);
        Assert.Equal(2 * MiB, engine.Allocator.Reserved);

        engine.Layer = 0;
        Assert.Equal((512 * 1024) + (2 * 2 * MiB), engine.Allocator.Allocated);
        Assert.Equal(42 * MiB, engine.Allocator.Reserved);
    }

    [Fact]
    public void A_parameter_split_unevenly_gives_rank_0_the_full_chunk()
    {
        // torch.chunk gives the first ranks ⌈rows ÷ N⌉ rows: 10 rows over 4 ranks are 3, 3, 3, 1; every rank pads to 3.
        Assert.Equal(3, ShardedStep.ShardRows(10, 4));
        Assert.Equal([3L, 7L], ShardedStep.ShardShape([10, 7], 4));
        Assert.Equal(3 * 7 * 2, ShardedStep.ShardBytes([10, 7], 10 * 7 * 2, 4));
    }

    [Fact]
    public void FSDP_mixed_precision_holds_sixteen_bytes_per_parameter_over_the_ranks_at_the_optimizer_step()
    {
        // FSDP2 with MixedPrecisionPolicy(param_dtype=bf16, reduce_dtype=fp32) shards fp32 parameters (the master, 4 B),
        // reduce-scatters fp32 gradients into fp32 shards (4 B), and AdamW keeps two moments of the fp32 shard (8 B):
        // 16 B per parameter ÷ N. Mistral-7B-v0.3 (hidden 4,096, 32 layers, 8 KV heads of 128, FFN 14,336, vocabulary 32,768,
        // untied): per layer q and o 4,096² each, k and v 1,024 × 4,096 each, 3 × 4,096 × 14,336 MLP and two norms of 4,096
        // = 218,112,000; × 32 = 6,979,584,000, plus 2 × 32,768 × 4,096 embedding and head and the final norm 4,096
        // = 7,248,023,552 parameters; every dim 0 divides by 8, so 16 × 7,248,023,552 / 8 = 14,496,047,104 B on rank 0.
        // With one 16-token sequence the peak is the optimizer step, where all three are live; the allocator rounds each
        // block up to 512 B: 33 gradient blocks (one reduce-scatter output per unit) and 2 × 291 state tensors, < 512 B each.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("mistral-7b-v0.3"), Mode = Mode.Training, Precision = Precision.MixedBf16, Seq = 16,
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
        });

        long states = estimate.Components.Where(c => c.Name is "weights" or "gradients" or "optimizer_states").Sum(c => c.Bytes.Bytes);
        Assert.InRange(states, 14_496_047_104, 14_496_047_104 + (512 * (33 + (2 * 291))));
        Assert.Equal(14_496_047_104 / 4, estimate.Components.Single(c => c.Name == "weights").Bytes.Bytes);
        Assert.Contains("optimizer", estimate.PeakPhase, StringComparison.Ordinal);
        Assert.StartsWith("rank 0 of 8", estimate.Device, StringComparison.Ordinal);
    }

    [Fact]
    public void Pure_bf16_FSDP_keeps_AdamW_moments_in_bf16()
    {
        // Without a mixed-precision policy the shards are bf16 and torch.optim.AdamW creates its moments with zeros_like of
        // them: 2 × 2 B per parameter, half the fp32 figure. Mistral-7B-v0.3 over 8 ranks (7,248,023,552 parameters, above):
        // 2 × 2 × 7,248,023,552 / 8 = 3,624,011,776 B, each of the 291 tensors' two moments rounded up to 512 B.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("mistral-7b-v0.3"), Mode = Mode.Training, Precision = Precision.Bf16, Seq = 16,
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
        });

        long moments = estimate.Components.Single(c => c.Name == "optimizer_states").Bytes.Bytes;
        Assert.InRange(moments, 3_624_011_776, 3_624_011_776 + (512 * 2 * 291));
    }

    [Fact]
    public void Plain_PyTorch_FSDP2_unties_a_tied_head_and_transformers_does_not()
    {
        // PyTorch's FSDP2 recipe builds on the meta device, shards, then calls to_empty(), which gives every parameter fresh
        // storage: a tied lm_head stops aliasing the embedding (verl-project/verl PR 7835). Llama-3.2-1B (tied, 1,235,814,400
        // parameters, embedding 128,256 × 2,048 = 262,668,288) in bf16 over 8 ranks, every dim 0 divisible by 8:
        // transformers (which ties again) holds 1,235,814,400 × 2 / 8 = 308,953,600 B of shards; plain PyTorch adds the head,
        // (1,235,814,400 + 262,668,288) × 2 / 8 = 374,620,672 B, which the H200 fake-process-group run measured to within the
        // 1,024 B of its rotary buffer (case h200-llama-3.2-1b-fsdp8-bf16-b2-s2048-weights: 374,621,696 B).
        Scenario scenario = new()
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Mode = Mode.Training, Precision = Precision.Bf16, Seq = 64,
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
        };

        long Shards(Engine engine) => MemoryEstimator.Estimate(scenario with { Engine = engine }).Components.Single(c => c.Name == "weights").Bytes.Bytes;
        Assert.Equal(308_953_600, Shards(Engine.Transformers));
        Assert.Equal(374_620_672, Shards(Engine.Pytorch));
    }

    [Fact]
    public void FSDP_CPU_offload_moves_shards_gradients_and_the_optimizer_off_the_GPU()
    {
        // CPUOffloadPolicy: the sharded parameters, their gradients and the optimizer step live in host memory; the GPU holds
        // only the gathered units, the collectives and the activations.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("mistral-7b-v0.3"), Mode = Mode.Training, Precision = Precision.Bf16, Seq = 256,
            Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard, Offload = OffloadMode.OptimizerAndParams },
        });

        Assert.Equal(Residence.Host, estimate.Components.Single(c => c.Name == "weights").Residence);
        Assert.DoesNotContain(estimate.Components, c => c.Name is "optimizer_states" or "optimizer_temporaries");
        Assert.Contains(estimate.Components, c => c.Name == "gathered_parameters");
    }

    [Fact]
    public void Custom_sharded_embedding_and_head_are_gathered_only_around_their_own_forward_and_backward()
    {
        // torchtune's shard_model calls fully_shard on each module get_shard_conditions names (custom_sharded_layers), then on
        // the root. Three bf16 parameters over 4 ranks, no mixed precision: an embedding [64, 32] and a head [64, 32] (4,096 B
        // gathered each, 1,024 B shards) and a block-0 weight [32, 32] (2,048 B gathered, 512 B shard). Every request is rounded
        // up to 512 B; the flat all-gather output of each unit has the bytes of its parameters.
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var step = new ShardedStep(engine, new Sharding(4, ReshardAfterForward: true, null, null, Offload: false, UntiedHead: false,
            OwnUnits: CustomShardedLayers.TokEmbeddings | CustomShardedLayers.Output));
        engine.Sharded = step;
        step.Add(null, [64, 32], new StoredWeight(64L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.TokenEmbedding);
        step.Add(0, [32, 32], new StoredWeight(32L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.Attention);
        step.Add(null, [64, 32], new StoredWeight(64L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.OutputHead);
        long shards = 1_024 + 512 + 1_024;
        Assert.Equal(shards, engine.Allocator.Allocated);

        // The root's pre-forward gathers nothing of its own (no parameter left in it); the embedding's gathers it: parameter
        // and flat output, 2 × 4,096 B.
        step.BeginForward();
        Assert.Equal(shards + (2 * 4_096), engine.Allocator.Allocated);

        // Block 0's pre-forward: the embedding's post-forward resharded it (its flat output waits for this all-gather, which
        // frees it), block 0 gathered: 2 × 2,048 B.
        engine.Layer = 0;
        Assert.Equal(shards + (2 * 2_048), engine.Allocator.Allocated);

        // The head: block 0 resharded, the head gathered (2 × 4,096 B, its flat output freed at the next all-gather).
        engine.Layer = ReplayEngine.HeadLayer;
        Assert.Equal(shards + (2 * 4_096), engine.Allocator.Allocated);

        // Where the root keeps both (no custom_sharded_layers), its pre-forward gathers them together (8,192 B of parameters
        // and an 8,192 B flat output) and they stay through block 0: there it holds 8,192 B more than above.
        var rootEngine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var rootStep = new ShardedStep(rootEngine, new Sharding(4, ReshardAfterForward: true, null, null, Offload: false, UntiedHead: false));
        rootEngine.Sharded = rootStep;
        rootStep.Add(null, [64, 32], new StoredWeight(64L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.TokenEmbedding);
        rootStep.Add(0, [32, 32], new StoredWeight(32L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.Attention);
        rootStep.Add(null, [64, 32], new StoredWeight(64L * 32 * 2, ScalarType.BFloat16), trainable: true, TensorRole.OutputHead);
        rootStep.BeginForward();
        Assert.Equal(shards + (2 * 8_192), rootEngine.Allocator.Allocated);
        rootEngine.Layer = 0;
        Assert.Equal(shards + 8_192 + (2 * 2_048), rootEngine.Allocator.Allocated);
    }

    [Fact]
    public void Custom_sharded_layers_are_torchtune_FSDP_module_names_and_refused_elsewhere()
    {
        // torchtune names its modules tok_embeddings and output; a transformers FSDP run or a tied head has nothing to match.
        Scenario fsdp = new()
        {
            Model = new ModelReference.Named("mistral-7b-v0.3"), Mode = Mode.Training, Precision = Precision.Bf16, Seq = 64,
            Engine = Engine.Torchtune, Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
            CustomShardedLayers = CustomShardedLayers.TokEmbeddings | CustomShardedLayers.Output,
        };
        Assert.Contains(MemoryEstimator.Estimate(fsdp).Notes, n => n.Contains("tok_embeddings, output (custom_sharded_layers)", StringComparison.Ordinal));
        ModelFormatException other = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(fsdp with { Engine = Engine.Transformers }));
        Assert.Equal("custom_sharded_layers", other.Key);
        ModelFormatException tied = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(fsdp with { Model = new ModelReference.Named("llama-3.2-1b") }));
        Assert.Equal("custom_sharded_layers", tied.Key);
    }
}
