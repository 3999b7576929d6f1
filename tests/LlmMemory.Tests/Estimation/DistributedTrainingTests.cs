using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
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
    public void An_fp32_ZeRO_3_run_gathers_its_blocks_and_saves_its_activations_in_fp32()
    {
        // DeepSpeed without an fp16/bf16 section keeps and all-gathers the parameters in their own type: the PEFT README's
        // bloomz-7b1 LoRA under ZeRO-3 with CPU offload runs in fp32 (accelerate mixed_precision 'no'). A BLOOM block
        // (hidden 4,096): query_key_value 3h² + 3h, dense h² + h, dense_h_to_4h 4h² + 4h, dense_4h_to_h 4h² + h, two
        // LayerNorms 4h = 12h² + 13h = 201,379,840 params; the block computed and the one prefetched, × 4 B. Its activations
        // are Korthikanti et al.'s 34h bytes per token per layer (16-bit, no attention scores without eager attention) doubled
        // for fp32: 30 layers × 8 · 64 tokens × 2 × 34 · 4,096 B.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("bigscience/bloomz-7b1"), Mode = Mode.Lora, Engine = Engine.Deepspeed, Weights = WeightFormats.Fp32,
            Precision = Precision.Fp32, Batch = 8, Seq = 64, Lora = new LoraSettings(8, 32, new LoraTargets(null, ["query_key_value"]), false),
            Parallel = new ParallelSettings { Gpus = 1, Zero = 3, Offload = OffloadMode.OptimizerAndParams },
        });
        Assert.Equal(2L * 201_379_840 * 4, estimate.Components.Single(c => c.Name == "gathered_parameters").Bytes.Bytes);
        Assert.Equal(30L * 8 * 64 * 2 * 34 * 4096, estimate.Components.Single(c => c.Name == "activations").Bytes.Bytes);
    }

    [Fact]
    public void A_sharded_run_draws_its_step_from_the_same_parts_and_peaks_at_the_start_of_backward()
    {
        // The closed form's timeline is its own components at four moments; the peak is every allocated part at once, the
        // total less the allocator's cached blocks (which the replay's timeline leaves out too). Tensor parallelism keeps
        // ZeRO-3 on the closed form (data-parallel ZeRO alone is replayed: ZeroReplayTests).
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Training, Seq = 4096,
            GradientCheckpointing = Checkpointing.Full, Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = 8, Zero = 3, Tp = 2 },
        });
        long cached = estimate.Components.Single(c => c.Name == "allocator_cache").Bytes.Bytes;

        Assert.Equal(["load", "end of forward", "start of backward", "optimizer step"], estimate.Timeline.Select(p => p.Phase));
        Assert.Equal(estimate.DeviceTotal.Bytes - cached, estimate.Timeline.Max(p => p.Bytes.Bytes));
        Assert.Equal("start of backward", estimate.Timeline.MaxBy(p => p.Bytes.Bytes)!.Phase);
    }

    [Theory]
    [InlineData(CrossEntropyKind.Standard, 12)] // eager: fp32 log-softmax (4 B) saved, the loss backward's two fp32 gradients (4 + 4 B)
    [InlineData(CrossEntropyKind.Fused, 4)]     // a compiled kernel saves the bf16 logits (2 B); its backward writes their bf16 gradient (2 B)
    [InlineData(CrossEntropyKind.Chunked, 2)]   // one bf16 logits copy; the fp32 work is one chunk's
    public void The_closed_form_loss_region_follows_the_cross_entropy_kernel(CrossEntropyKind kind, long bytesPerLogit)
    {
        // torchtitan float8 (closed form), Llama-3.1-8B (vocabulary 128,256), 2 sequences of 8,192 tokens on each of 32
        // FSDP ranks: 16,384 tokens × 128,256 logits × the bytes per logit of the kernel.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Training, Engine = Engine.Torchtitan, Precision = Precision.Fp8,
            Batch = 2, Seq = 8192, GradientCheckpointing = Checkpointing.Full, CrossEntropy = kind,
            Parallel = new ParallelSettings { Gpus = 32, Fsdp = FsdpMode.FullShard },
        });

        Assert.Equal(16_384L * 128_256 * bytesPerLogit, estimate.Components.Single(c => c.Name == "logits_and_loss").Bytes.Bytes);
    }

    [Fact]
    public void A_torchtitan_pipeline_splits_the_local_batch_into_as_many_micro_batches_as_stages()
    {
        // torchtitan's build_pipeline_schedule: pipeline_parallel_microbatches unset gives n_microbatches = the pipeline
        // degree, so a local batch of 8 sequences over 4 stages runs 4 micro-batches of 2 × 1,024 = 2,048 tokens, all 4 in
        // flight on the first stage under 1F1B. A plain PyTorch pipeline is still taken as one sequence per micro-batch.
        Scenario Run(Engine engine) => new()
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Training, Engine = engine, Batch = 8, Seq = 1024,
            GradientCheckpointing = Checkpointing.Full, Parallel = new ParallelSettings { Gpus = 4, Pp = 4 },
        };
        string Activations(Engine engine) => MemoryEstimator.Estimate(Run(engine)).Components.Single(c => c.Name == "activations").Formula;

        Assert.Contains("4 micro-batches × 2,048 tokens", Activations(Engine.Torchtitan), StringComparison.Ordinal);
        Assert.Contains("4 micro-batches × 1,024 tokens", Activations(Engine.Pytorch), StringComparison.Ordinal);
    }

    [Fact]
    public void Torchtitan_sequence_parallel_linears_keep_their_all_gathered_inputs_whole()
    {
        // torchtitan's parallelize_llama all-gathers the attention's and the feed-forward's sequence-sharded input
        // (PrepareModuleInput to Replicate) before wq/wk/wv and w1/w3 (ColwiseParallel); the matmul saves that gathered input.
        // Llama-3.1-8B (hidden 4,096), full checkpointing, 2 sequences of 1,024 tokens = 2,048 tokens over tp 4: the one
        // recomputed block keeps the two inputs, 2 × 2 B × 4,096 = 16,384 B per token, whole, where the rest is ÷ 4, so it
        // holds 2,048 × 16,384 × (1 − 1/4) = 25,165,824 B more than the same run under another engine's tensor parallelism.
        Scenario Run(Engine engine) => new()
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Training, Engine = engine, Batch = 2, Seq = 1024,
            GradientCheckpointing = Checkpointing.Full, Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard, Tp = 4 },
        };
        long Activations(Engine engine) => MemoryEstimator.Estimate(Run(engine)).Components.Single(c => c.Name == "activations").Bytes.Bytes;

        Assert.Equal(25_165_824, Activations(Engine.Torchtitan) - Activations(Engine.Pytorch));
    }

    [Fact]
    public void Sharded_optimizer_states_come_from_the_one_table_not_a_fixed_AdamW_figure()
    {
        // Llama-3.2-1B, Adafactor, ZeRO-1 over 2 GPUs (DeepSpeed mixed precision: the states are over the fp32 master).
        // transformers' Adafactor keeps a factored fp32 second moment: rows + columns (4·(r + c) B) per matrix, a full fp32
        // one (4·n B) per vector. The tied 128,256 × 2048 embedding: 4 × (128,256 + 2,048) = 521,216 B; per layer q/o
        // [2048, 2048]: 4 × 4,096 each, k/v [512, 2048]: 4 × 2,560 each, gate/up [8192, 2048] and down [2048, 8192]:
        // 4 × 10,240 each, two norms of 2,048: 4 × 2,048 each = 16,384 + 16,384 + 10,240 + 10,240 + 3 × 40,960 + 16,384
        // = 192,512 B; 16 layers = 3,080,192 B; the final norm 8,192 B. Total 3,609,600 B, ÷ 2 ranks ÷ 2 tensor-parallel
        // GPUs = 902,400 B. (Tensor parallelism keeps it on the closed form; the replay flattens ZeRO's partition, which
        // Adafactor cannot factor: ZeroReplayTests.)
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"),
            Mode = Mode.Training,
            Optimizer = OptimizerKind.Adafactor,
            Parallel = new ParallelSettings { Gpus = 4, Zero = 1, Tp = 2 },
        });

        MemoryComponent states = Assert.Single(estimate.Components, c => c.Name == "optimizer_states");
        Assert.InRange(states.Bytes.Bytes, 902_400 - 2, 902_400 + 2);
        Assert.DoesNotContain("AdamW", states.Formula, StringComparison.Ordinal);
    }

    [Fact]
    public void Mixed_precision_sharding_holds_the_fp32_master_sixteen_bytes_per_parameter_over_the_ranks()
    {
        // ZeRO paper (arXiv:1910.02054) §3: mixed-precision AdamW holds 2 + 2 + 12 = 16 B per parameter, and ZeRO-3 over
        // N_d ranks holds 16Ψ / N_d (FSDP's replayed 4 + 4 + 8: ShardedReplayTests). Mistral-7B-v0.3 (hidden 4,096, 32 layers,
        // 8 KV heads of 128, FFN 14,336, vocabulary 32,768, untied): per layer q and o 4,096² each, k and v 1,024 × 4,096 each,
        // 3 × 4,096 × 14,336 MLP and two norms of 4,096 = 218,112,000; × 32 = 6,979,584,000, plus 2 × 32,768 × 4,096 embedding
        // and head and the final norm 4,096 = 7,248,023,552 parameters; over 8 data-parallel ranks 16 × 7,248,023,552 / 8
        // = 14,496,047,104 B, and tensor parallelism over 2 (the closed form; data-parallel ZeRO alone is replayed and checked
        // in ZeroReplayTests) halves it: 7,248,023,552 B.
        foreach (ParallelSettings layout in new[] { new ParallelSettings { Gpus = 16, Zero = 3, Tp = 2 } })
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
            {
                Model = new ModelReference.Named("mistral-7b-v0.3"),
                Mode = Mode.Training,
                Precision = Precision.MixedBf16,
                Parallel = layout,
            });

            long states = estimate.Components.Where(c => c.Kind is ComponentKind.Weights or ComponentKind.MasterWeights or ComponentKind.Gradients or ComponentKind.OptimizerStates
                && c.Name is not ("gathered_parameters" or "gathered_head")).Sum(c => c.Bytes.Bytes);
            Assert.InRange(states, 7_248_023_552 - 8, 7_248_023_552 + 8);
        }
    }
    [Fact]
    public void Accelerate_FSDP_keeps_the_root_unit_gathered_from_forward_through_backward()
    {
        // FSDP1 frees a unit's unsharded flat parameter after forward only `if not state._is_root` (torch/distributed/fsdp/
        // _runtime_utils.py _post_forward_reshard); FSDP2's _lazy_init sets the root's post_forward_mesh_info = None. Under
        // accelerate's TRANSFORMER_BASED_WRAP the decoder layers are units and the root holds the rest. Llama-2-70B
        // (data/models/llama-2-70b.json): embedding 32,000 × 8,192 + untied head 32,000 × 8,192 + final norm 8,192
        // = 524,296,192 parameters, gathered in bf16: × 2 B = 1,048,592,384 B on each GPU, whatever the number of shards, and
        // the same in QLoRA (bitsandbytes leaves the embedding and head in bf16).
        foreach (Mode mode in new[] { Mode.Lora, Mode.Qlora })
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
            {
                Model = new ModelReference.Named("llama-2-70b"), Mode = mode, Engine = Engine.Transformers, Precision = Precision.Bf16,
                Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
                Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard },
            });

            MemoryComponent root = Assert.Single(estimate.Components, c => c.Name == "gathered_root_unit");
            Assert.Equal(1_048_592_384, root.Bytes.Bytes);
            long forward = estimate.Timeline.Single(p => p.Phase == "start of backward").Bytes.Bytes;
            long step = estimate.Timeline.Single(p => p.Phase == "optimizer step").Bytes.Bytes;
            Assert.True(forward > step + root.Bytes.Bytes, "the root unit is live in backward, resharded by the optimizer step");
        }

        // DeepSpeed ZeRO-3 releases the embedding after use (its partitioned parameters are fetched per module), and
        // torchtune/torchtitan wrap embedding and head as their own units in some configs: no root term there.
        foreach (Scenario other in new[]
        {
            new Scenario { Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Lora, Engine = Engine.Deepspeed,
                Parallel = new ParallelSettings { Gpus = 8, Zero = 3 } },
            new Scenario { Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Lora, Engine = Engine.Torchtune,
                Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard } },
        })
        {
            Assert.DoesNotContain(MemoryEstimator.Estimate(other).Components, c => c.Name == "gathered_root_unit");
        }
    }

    [Fact]
    public void Bitsandbytes_quant_state_stays_whole_on_every_rank_while_the_4bit_codes_shard()
    {
        // bitsandbytes keeps each 4-bit weight's absmax in the module's QuantState, not in the Params4bit parameter (nn/modules.py
        // fix_4bit_weight_quant_state_from_module restores it after FSDP converts the parameter), and FSDP shards parameters only.
        // NF4 with double quantization (QLoRA paper): per weight of n elements, b = ⌈n / 64⌉ uint8 absmax + fp32 per 256 blocks
        // (4·⌈b / 256⌉) + one fp32 offset (4). Llama-2-70B (hidden 8192, 8 KV heads × 128, FFN 28672, 80 layers):
        // q and o 8192 × 8192: b = 1,048,576 → 1,048,576 + 4 × 4,096 + 4 = 1,064,964 B each;
        // k and v 1024 × 8192: b = 131,072 → 131,072 + 4 × 512 + 4 = 133,124 B each;
        // gate, up, down 28672 × 8192: b = 3,670,016 → 3,670,016 + 4 × 14,336 + 4 = 3,727,364 B each;
        // per layer 2 × 1,064,964 + 2 × 133,124 + 3 × 3,727,364 = 13,578,268 B, × 80 = 1,086,261,440 B on each GPU, for 2 GPUs
        // as for 8; the embedding, norms and head stay bf16 and have none.
        foreach (int gpus in new[] { 2, 8 })
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
            {
                Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Qlora, Engine = Engine.Transformers, Precision = Precision.Bf16,
                Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
                Parallel = new ParallelSettings { Gpus = gpus, Fsdp = FsdpMode.FullShard },
            });

            Assert.Equal(1_086_261_440, Assert.Single(estimate.Components, c => c.Name == "quant_state").Bytes.Bytes);
        }

        // torchtune's NF4 is torchao's NF4Tensor: its scalers are inner tensors FSDP2 splits with the codes (nf4tensor.py
        // _INNER_TENSOR_NAMES_FOR_SHARDING), so nothing stays whole; a bf16 base has no quant state.
        foreach (Scenario other in new[]
        {
            new Scenario { Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Qlora, Engine = Engine.Torchtune,
                Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard } },
            new Scenario { Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Lora, Engine = Engine.Transformers,
                Parallel = new ParallelSettings { Gpus = 8, Fsdp = FsdpMode.FullShard } },
        })
        {
            Assert.DoesNotContain(MemoryEstimator.Estimate(other).Components, c => c.Name == "quant_state");
        }
    }

    [Theory]
    [InlineData(3, Precision.MixedBf16, 1_000_000_000L)] // 500,000,000 elements × 2 B (bf16)
    [InlineData(2, Precision.MixedBf16, 1_000_000_000L)]
    [InlineData(3, Precision.Fp32, 2_000_000_000L)]      // an fp32 engine: × 4 B
    public void DeepSpeed_holds_its_contiguous_gradient_bucket_however_few_parameters_train(int stage, Precision precision, long bytes)
    {
        // DeepSpeedZeroConfig's reduce_bucket_size default is 5e8 elements and contiguous_gradients True; ZeRO-3 allocates the
        // bucket in _setup_for_real_optimizer (stage3.py: torch.empty(self.reduce_bucket_size, dtype=self.dtype)), ZeRO-1/2 in
        // each backward (stage_1_and_2.py: ipg_buffer). A LoRA run trains 103,546,880 parameters and still holds all of it.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-2-70b"), Mode = Mode.Lora, Engine = Engine.Deepspeed, Precision = precision,
            Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
            Parallel = new ParallelSettings { Gpus = 8, Zero = stage },
        });

        MemoryComponent bucket = Assert.Single(estimate.Components, c => c.Name == "zero_gradient_bucket");
        Assert.Equal(bytes, bucket.Bytes.Bytes);
        long forward = estimate.Timeline.Single(p => p.Phase == "end of forward").Bytes.Bytes;
        long backward = estimate.Timeline.Single(p => p.Phase == "start of backward").Bytes.Bytes;
        long loss = estimate.Components.Single(c => c.Name == "logits_and_loss").Bytes.Bytes;
        long gradients = estimate.Components.Single(c => c.Name == "gradients").Bytes.Bytes;
        // ZeRO-3's bucket is already there at the end of forward; ZeRO-1/2's arrives with backward.
        Assert.Equal(stage == 3 ? 0 : bytes, backward - forward - loss - gradients);
    }

    [Theory]
    [InlineData("llama-2-70b", Precision.MixedBf16, 1, 524_288_000L)]   // untied head 32,000 × 8,192 × 2 B
    [InlineData("llama-2-70b", Precision.Fp32, 1, 1_048_576_000L)]      // an fp32 engine gathers fp32: × 4 B
    [InlineData("llama-2-70b", Precision.MixedBf16, 2, 262_144_000L)]   // vocabulary-parallel over 2 tensor-parallel GPUs
    [InlineData("llama-3.2-1b", Precision.MixedBf16, 1, 525_336_576L)]  // tied: the embedding 128,256 × 2,048 × 2 B is the head
    public void ZeRO3_keeps_the_output_head_gathered_from_its_forward_through_its_backward(string model, Precision precision, int tp, long bytes)
    {
        // DeepSpeed ZeRO-3 fetches a module's parameters before its backward (parameter_offload.py
        // pre_sub_module_backward_function -> fetch_sub_module) and releases them after the forward only when their next use
        // is more than stage3_max_reuse_distance (1e9 elements) away; the head's backward comes right after its forward.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named(model), Mode = Mode.Lora, Engine = Engine.Deepspeed, Precision = precision,
            Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
            Parallel = new ParallelSettings { Gpus = 8, Zero = 3, Tp = tp },
        });

        Assert.Equal(bytes, Assert.Single(estimate.Components, c => c.Name == "gathered_head").Bytes.Bytes);
        Assert.DoesNotContain(MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named(model), Mode = Mode.Lora, Engine = Engine.Deepspeed, Precision = precision,
            Lora = new LoraSettings(8, 16, LoraTargets.AllLinear, false),
            Parallel = new ParallelSettings { Gpus = 8, Zero = 2, Tp = tp },
        }).Components, c => c.Name == "gathered_head");
    }

    [Fact]
    public void A_torchtitan_interleaved_pipeline_holds_the_warm_up_stage_forwards_of_its_smaller_micro_batches()
    {
        // torchtitan's interleaved 1F1B: two stages per rank (generate_split_points), so pp 4 gives 8 stages of
        // 32 ÷ 8 = 4 Llama-3.1-8B layers, and the local batch of 8 splits into 8 micro-batches (n_microbatches =
        // num_total_stages) of 1 × 1,024 tokens. PyTorch's ScheduleInterleaved1F1B on rank 0: warm-up forwards
        // (2 − 1) × 4 + 2 × (4 − 1) = 10, capped at 8 × 2 = 16, then the first 1F1B step's forward before its backward:
        // 11 stage forwards held. 1F1B instead holds 4 micro-batches of 2 × 1,024 tokens over 8 layers.
        Scenario Run(PipelineSchedule schedule, Engine engine) => new()
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Mode = Mode.Training, Engine = engine, Batch = 8, Seq = 1024,
            GradientCheckpointing = Checkpointing.Full, Parallel = new ParallelSettings { Gpus = 4, Pp = 4, Schedule = schedule },
        };
        string Activations(PipelineSchedule schedule) =>
            MemoryEstimator.Estimate(Run(schedule, Engine.Torchtitan)).Components.Single(c => c.Name == "activations").Formula;

        Assert.Contains("4 layers × 11 stage forwards of a micro-batch × 1,024 tokens", Activations(PipelineSchedule.Interleaved), StringComparison.Ordinal);
        Assert.Contains("8 layers × 4 micro-batches × 2,048 tokens", Activations(PipelineSchedule.OneForwardOneBackward), StringComparison.Ordinal);

        // Another engine's micro-batch count is not known, so its interleaved schedule is refused, naming the field.
        ModelFormatException refused = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Run(PipelineSchedule.Interleaved, Engine.Pytorch)));
        Assert.Equal("parallel.schedule", refused.Key);
    }
}
