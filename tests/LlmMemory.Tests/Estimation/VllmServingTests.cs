using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Inference;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>vLLM by release and GPU, and its pipeline stages, each rule derived from vLLM's source and the logs it prints.</summary>
public sealed class VllmServingTests
{
    private const long GiB = 1L << 30;

    private static MemoryEstimate Vllm(string model, string gpu, string? version, int pp = 1, int maxModelLen = 8192) =>
        MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named(model), Engine = Engine.Vllm, Gpu = GpuCatalog.Find(gpu),
            Parallel = new ParallelSettings { Gpus = pp, Pp = pp },
            EngineOptions = new EngineOptions { MaxModelLen = maxModelLen, Version = version },
        });

    private static long Bytes(MemoryEstimate estimate, string component) => estimate.Components.Single(c => c.Name == component).Bytes.Bytes;

    private static long Fact(MemoryEstimate estimate, string key) => estimate.Facts.Single(f => f.Key == key).Value;

    [Theory]
    // vllm/engine/arg_utils.py: PR 12369 (0.7/0.8) gave H100 and H200 the large defaults by name; PR 17073 (0.8.5) every GPU
    // of at least 70 GiB (the A100 80GB reports 79.15 GiB, the MI300X 191.5); PR 17885 (0.9.0) took the A100 back out, which
    // tests/engine/test_arg_utils.py test_defaults_with_usage_context still pins ("a100" not in device_name).
    [InlineData(null, "h100-80gb", true)]
    [InlineData(null, "h200", true)]
    [InlineData(null, "a100-80gb", false)]
    [InlineData(null, "l40s", false)]
    [InlineData("0.8.4", "h100-80gb", true)]
    [InlineData("0.8.4", "mi300x", false)]
    [InlineData("0.8.4", "a100-80gb", false)]
    [InlineData("0.8.5", "a100-80gb", true)]
    [InlineData("0.8.5", "mi300x", true)]
    [InlineData("0.9.0", "a100-80gb", false)]
    [InlineData("0.9.0", "mi300x", true)]
    public void The_large_scheduler_defaults_go_to_the_gpus_arg_utils_names_in_each_release(string? version, string gpu, bool large)
    {
        Gpu device = GpuCatalog.Find(gpu);
        Assert.Equal(large, ServingSettings.LargeDefaults(version is null ? null : Version.Parse(version), device.Name, device.Usable!.Value));
    }

    [Fact]
    public void An_a100_profiles_256_sequences_over_2048_tokens_while_an_h100_profiles_1024_over_8192()
    {
        // Llama-3.1-8B, current vLLM (Triton top-k/top-p, 15 B per logit). The profile peak is the larger of the forward's widest
        // moment, tokens × (2 × 4,096 + 3 × 14,336) × 2 B, and its [tokens, 4,096] bf16 output plus the sampler's
        // min(max_num_seqs, tokens) × 128,256 × 15 B:
        //   A100 (256 seqs, 2,048 tokens): forward 2,048 × 102,400 = 209,715,200; sampler 2,048 × 8,192 + 256 × 1,923,840 = 509,280,256.
        //   H100 (1,024 seqs, 8,192 tokens): forward 838,860,800; sampler 8,192 × 8,192 + 1,024 × 1,923,840 = 2,037,121,024.
        Assert.Equal(509_280_256, Bytes(Vllm("llama-3.1-8b", "a100-80gb", null), "profiled_activations"));
        Assert.Equal(2_037_121_024, Bytes(Vllm("llama-3.1-8b", "h100-80gb", null), "profiled_activations"));
    }

    [Theory]
    // llm-d-planner's version sweep (accuracy/accuracy_report.md Part 2), Qwen3-14B on an H100 at 8,192 tokens and 1,024
    // sequences: activation 5.64 GiB up to v0.16.0, 2.23 GiB from v0.17.0 (vLLM PR 33538 masks top-k/top-p with a Triton
    // kernel instead of sorting). Derived: 8,192 × 5,120 × 2 B = 83,886,080 plus 1,024 × 151,936 × 38 B = 5,912,133,632
    // (5.58 GiB) at 0.16, × 15 B = 2,333,736,960 (2.25 GiB) at 0.17; the log prints two decimals.
    [InlineData("0.16.0", 5.64)]
    [InlineData("0.17.0", 2.23)]
    public void The_profiled_activation_falls_at_0_17_as_the_sampler_stops_sorting(string version, double loggedGiB)
    {
        long derived = 83_886_080 + (1_024L * 151_936 * (version == "0.16.0" ? 38 : 15));
        long estimated = Bytes(Vllm("qwen3-14b", "h100-80gb", version), "profiled_activations");

        Assert.Equal(derived, estimated);
        Assert.InRange(Math.Abs(estimated - (loggedGiB * GiB)), 0, 0.1 * GiB);
    }

    [Theory]
    // The same sweep: non-torch memory on one GPU 0.13 GiB up to v0.17.0, 0.25 GiB from v0.18.0. With tensor parallelism
    // llm-d's older table reads 0.55 GiB at TP 2 and llm-d-planner's v0.19.0 logs 2.06–2.13 GiB at TP 2 and 4 (mean 2.1).
    [InlineData("0.17.0", 1, 0.13)]
    [InlineData("0.18.0", 1, 0.25)]
    [InlineData(null, 1, 0.25)]
    [InlineData("0.18.0", 2, 0.55)]
    [InlineData("0.19.0", 2, 2.1)]
    [InlineData(null, 4, 2.1)]
    public void Non_torch_memory_follows_the_release_and_tensor_parallelism(string? version, int tp, double gib)
    {
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("qwen3-14b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = tp, Tp = tp },
            EngineOptions = new EngineOptions { MaxModelLen = 8192, Version = version },
        });
        Assert.Equal(ByteSize.FromGibibytes(gib).Bytes, Bytes(estimate, "non_torch"));
    }

    [Fact]
    public void A_two_part_release_is_the_release_with_patch_zero()
    {
        // "0.10" is 0.10.0, which has the hybrid KV manager; parsed as a bare 0.10 it would sort before 0.10.0.
        Assert.Equal(Fact(Vllm("gpt-oss-20b", "h100-80gb", "0.10.0"), "kv_tokens"), Fact(Vllm("gpt-oss-20b", "h100-80gb", "0.10"), "kv_tokens"));
    }

    [Fact]
    public void A_release_newer_than_the_modelled_ones_is_refused_rather_than_estimated_with_old_rules()
    {
        // vllm/config/cache.py of v0.25.0 defaults gpu_memory_utilization to 0.92 (0.9 through 0.19): a later release's
        // defaults are not 0.19's, so the estimate says so instead of answering with them.
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => Vllm("llama-3.1-8b", "h100-80gb", "0.25.0"));
        Assert.Contains("engine_options.version", error.Message, StringComparison.Ordinal);
        Assert.Contains("up to 0.19", error.Message, StringComparison.Ordinal);
        Assert.Equal(Fact(Vllm("llama-3.1-8b", "h100-80gb", null), "kv_blocks"), Fact(Vllm("llama-3.1-8b", "h100-80gb", "0.19.1"), "kv_blocks"));
    }

    [Theory]
    // vllm/distributed/utils.py get_pp_indices: an even share, the remainder one apiece to the stages before the last, from the
    // second to last backwards; tests/distributed/test_pipeline_partition.py test_uneven_auto_partition pins 3 over 2, 4 and
    // 5 over 3; 61 layers over 4 stages is 15 r 1, so the third stage takes the extra one.
    [InlineData(3, 2, new[] { 2, 1 })]
    [InlineData(4, 3, new[] { 1, 2, 1 })]
    [InlineData(5, 3, new[] { 2, 2, 1 })]
    [InlineData(61, 4, new[] { 15, 15, 16, 15 })]
    [InlineData(32, 4, new[] { 8, 8, 8, 8 })]
    public void Layers_are_split_over_pipeline_stages_as_get_pp_indices_splits_them(int layers, int pp, int[] split) =>
        Assert.Equal(split, PipelineStages.Split(layers, pp));

    [Fact]
    public void Pipeline_parallelism_before_vllm_0_5_1_is_refused()
    {
        // vLLM issue 6054 (2024-07): --pipeline-parallel-size is "supported in the latest main (and incoming 0.5.1 release)".
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => Vllm("llama-3.1-8b", "h100-80gb", "0.5.0", pp: 2));
        Assert.Contains("parallel.pp", error.Message, StringComparison.Ordinal);
        Assert.Single(Vllm("llama-3.1-8b", "h100-80gb", "0.5.1", pp: 2).Notes, n => n.StartsWith("Pipeline parallel over 2 stages", StringComparison.Ordinal));
    }

    [Fact]
    public void A_given_partition_moves_layers_between_stages_as_vllm_pp_layer_partition_does()
    {
        // VLLM_PP_LAYER_PARTITION "20,12" puts 20 of Llama-3.1-8B's 32 layers on the first stage (get_pp_indices); the first
        // stage then holds 20 × 436,224,000 + the embedding 1,050,673,152 + rotary 33,554,432 = 9,808,707,584 B, more than the
        // last (12 layers + head + norm + rotary = 6,318,923,776 B), so it is the stage shown.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = 2, Pp = 2 },
            EngineOptions = new EngineOptions { MaxModelLen = 8192, PpLayerPartition = "20,12" },
        });

        Assert.Equal(9_808_707_584, Bytes(estimate, "weights"));
        Assert.Contains("stage 1 of 2", estimate.Device, StringComparison.Ordinal);
    }

    [Theory]
    // get_pp_indices refuses a partition whose count is not pp or whose sum is not the layer count.
    [InlineData("16,16,16", "3 stages for parallel.pp 2")]
    [InlineData("16,15", "31 layers, not the model's 32")]
    [InlineData("16,a", "not a list of positive layer counts")]
    public void A_partition_vllm_would_refuse_is_refused_with_its_reason(string partition, string reason)
    {
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
            Parallel = new ParallelSettings { Gpus = 2, Pp = 2 },
            EngineOptions = new EngineOptions { MaxModelLen = 8192, PpLayerPartition = partition },
        }));
        Assert.Contains("engine_options.pp_layer_partition", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Pipeline_parallel_2_puts_half_the_weights_on_each_gpu()
    {
        // Llama-3.1-8B in bf16: a layer is q, o 2 × 4,096² + k, v 2 × 1,024 × 4,096 + MLP 3 × 4,096 × 14,336 + 2 norms × 4,096
        // = 218,112,000 params = 436,224,000 B; embedding and lm_head 128,256 × 4,096 × 2 B = 1,050,673,152 B each; final norm
        // 8,192 B; rotary cos/sin cache 131,072 × 128 × 2 B = 33,554,432 B on every stage.
        //   PP 1: 32 layers + embedding + head + norm + rotary = 16,094,076,928 B.
        //   PP 2, the last stage: 16 layers + head + norm + rotary = 8,063,819,776 B; the first holds 8 KiB less (no norm).
        // llm-d-planner's log (data/validation/serving-published-cases.jsonl) prints 7.51 GiB on rank 0 = 8,063,801,098 B.
        long whole = Bytes(Vllm("llama-3.1-8b", "h100-80gb", null), "weights");
        long stage = Bytes(Vllm("llama-3.1-8b", "h100-80gb", null, pp: 2), "weights");

        Assert.Equal(16_094_076_928, whole);
        Assert.Equal(8_063_819_776, stage);
        Assert.InRange(Math.Abs(stage - 8_063_801_098), 0, 0.005 * GiB);
    }

    [Fact]
    public void The_stage_with_the_least_room_sets_every_stages_blocks()
    {
        // Llama-3.1-8B, PP 2 on an H100 (85,045,477,376 B reported), current vLLM: budget ⌊0.9 × total⌋ = 76,540,929,638 B;
        // non-torch 0.25 GiB = 268,435,456 B. A block is 16 tokens × 2 × 8 heads × 128 × 2 B = 65,536 B per layer, 16 layers a
        // stage = 1,048,576 B (vllm/v1/core/kv_cache_utils.py: the smallest num_blocks of all ranks wins).
        //   Stage 1: weights 8,063,811,584, forward only 838,860,800 → ⌊67,369,821,798 / 1,048,576⌋ = 64,248 blocks.
        //   Stage 2: weights 8,063,819,776, forward output and sampler 2,037,121,024 → ⌊66,171,553,382 / 1,048,576⌋ = 63,106.
        MemoryEstimate estimate = Vllm("llama-3.1-8b", "h100-80gb", null, pp: 2);

        Assert.Equal(63_106, Fact(estimate, "kv_blocks"));
        Assert.Equal(63_106L * 1_048_576, Bytes(estimate, "kv_cache"));
        Assert.Contains("stage 2 of 2", estimate.Device, StringComparison.Ordinal);
    }

    [Fact]
    public void With_tied_embeddings_the_last_stage_builds_its_own_table_for_the_head()
    {
        // Llama-3.2-1B ties lm_head to embed_tokens; under PP vLLM's last rank builds embed_tokens too (llama.py: the first rank,
        // or the last when tie_word_embeddings). A layer: q, o 2 × 2,048² + k, v 2 × 512 × 2,048 + MLP 3 × 2,048 × 8,192 +
        // 2 × 2,048 norms = 60,821,504 params; the last of 2 stages: 8 layers + table 128,256 × 2,048 + final norm 2,048 =
        // 749,242,368 params × 2 B = 1,498,484,736 B, + rotary 131,072 × 64 × 2 B = 16,777,216 B.
        Assert.Equal(1_515_261_952, Bytes(Vllm("llama-3.2-1b", "l4-24gb", null, pp: 2), "weights"));
    }

    [Theory]
    [InlineData("sglang", "smollm2-135m", 32, "more pipeline stages than the model's 30 layers")]
    [InlineData("vllm", "gpt-oss-20b", 2, "hybrid KV cache manager")]
    [InlineData("vllm", "smollm2-135m", 32, "more pipeline stages than the model's 30 layers")]
    public void Pipeline_layouts_that_are_not_modelled_are_refused_naming_the_field(string engine, string model, int pp, string reason)
    {
        using JsonDocument document = JsonDocument.Parse(
            $$$"""{"model": "{{{model}}}", "engine": "{{{engine}}}", "gpu": "h100-80gb", "parallel": {"gpus": {{{pp}}}, "pp": {{{pp}}}}}""");
        Scenario scenario = ScenarioDraft.FromJson(document.RootElement, "test").Read();

        ModelFormatException error = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(scenario));
        Assert.Contains("parallel.pp", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Marlin_pads_gpt_oss_mxfp4_experts_on_an_a100_and_the_h100_triton_path_does_not()
    {
        // vllm/model_executor/layers/quantization/mxfp4.py: compute capability 8.0 has neither FlashInfer nor the Triton MoE
        // kernels (9.0 to 10.x), so Marlin serves the experts, with the intermediate size rounded up to 128 and the hidden size to
        // 256. gpt-oss-20b: 24 layers of 32 experts, hidden 2880, expert width 2880 → 3072 and 2944. MXFP4 is 16 B of codes and
        // one scale byte per 32 weights (17/32 B a weight); biases are bf16.
        //   unpadded per layer: gate_up 32 × 5760 × 2880 × 17/32 = 282,009,600 + bias 32 × 5760 × 2 = 368,640
        //                       down    32 × 2880 × 2880 × 17/32 = 141,004,800 + bias 32 × 2880 × 2 = 184,320  → 423,567,360
        //   Marlin per layer:   gate_up 32 × 5888 × 3072 × 17/32 = 307,494,912 + bias 32 × 5888 × 2 = 376,832
        //                       down    32 × 3072 × 2944 × 17/32 = 153,747,456 + bias 32 × 3072 × 2 = 196,608  → 461,815,808
        // Everything else (attention, embeddings, the rope cache) is the same on both GPUs.
        long padding = 24 * (461_815_808L - 423_567_360);
        Assert.Equal(917_962_752, padding);
        long a100 = Bytes(Vllm("gpt-oss-20b", "a100-80gb", null), "weights");
        long h100 = Bytes(Vllm("gpt-oss-20b", "h100-80gb", null), "weights");
        Assert.Equal(padding, a100 - h100);
        Assert.Equal(a100, Bytes(Vllm("gpt-oss-20b", "rtx-5090", null), "weights"));      // 12.0: outside 9.0–10.x, Marlin too
    }

    [Fact]
    public void Kv_cache_memory_is_the_pool_and_replaces_the_utilization_sizing()
    {
        // vLLM PR 21489: gpu_worker.determine_available_memory returns kv_cache_memory_bytes as the pool. Llama-3.1-8B in bf16:
        // a 16-token block takes 16 × 2 (K, V) × 32 layers × 8 KV heads × 128 × 2 B = 2,097,152 B, so 10 GiB is
        // 10,737,418,240 ÷ 2,097,152 = 5,120 whole blocks, 81,920 tokens, on an H100 or an L4 alike.
        Scenario scenario = new()
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
            EngineOptions = new EngineOptions { MaxModelLen = 8192, KvCacheMemory = 10 * GiB },
        };
        MemoryEstimate h100 = MemoryEstimator.Estimate(scenario);
        Assert.Equal(10 * GiB, Bytes(h100, "kv_cache"));
        Assert.Equal(5_120, Fact(h100, "kv_blocks"));
        Assert.Equal(81_920, Fact(h100, "kv_tokens"));
        Assert.Equal(10 * GiB, Bytes(MemoryEstimator.Estimate(scenario with { Gpu = GpuCatalog.Find("l4-24gb") }), "kv_cache"));

        // Both knobs given: vLLM ignores gpu_memory_utilization, so the estimate refuses rather than ignore one.
        var both = Assert.Throws<LlmMemory.ModelFormatException>(() => MemoryEstimator.Estimate(scenario with
        {
            EngineOptions = scenario.EngineOptions with { GpuMemoryUtilization = 0.5 },
        }));
        Assert.Contains("engine_options.gpu_memory_utilization", both.Message, StringComparison.Ordinal);

        // A release before the option refuses it.
        var old = Assert.Throws<LlmMemory.ModelFormatException>(() => MemoryEstimator.Estimate(scenario with
        {
            EngineOptions = scenario.EngineOptions with { Version = "0.9.2" },
        }));
        Assert.Contains("engine_options.kv_cache_memory", old.Message, StringComparison.Ordinal);
    }
}

/// <summary>vLLM's data parallelism for mixture-of-experts models: the routed experts are sharded over every replica's GPUs.</summary>
public sealed class VllmExpertShardingTests
{
    private static MemoryEstimate Mixtral(int gpus) => MemoryEstimator.Estimate(new Scenario
    {
        Model = new ModelReference.Named("mixtral-8x7b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
        Parallel = new ParallelSettings { Gpus = gpus, Tp = 2 }, EngineOptions = new EngineOptions { MaxModelLen = 8192 },
    });

    [Fact]
    public void Two_replicas_at_tp_2_hold_a_quarter_of_the_experts_and_half_of_the_rest()
    {
        // vllm/model_executor/layers/fused_moe/config.py FusedMoEParallelConfig.make: flatten_tp_across_dp sets the MoE layers'
        // tp size to dp × tp, with or without --enable-expert-parallel; attention, embeddings and head keep tp 2 in each replica.
        // Mixtral-8x7B (32 layers, hidden 4096, 8 experts of width 14,336) in bf16: routed experts 32 × 8 × 3 × 4096 × 14,336 × 2 B
        // = 90,194,313,216 B; all weights 46,702,792,704 × 2 = 93,405,585,408 B, of which 532,480 B of 1-D norms (65 × 4096 × 2)
        // every GPU holds whole; the rest, 3,210,739,712 B, is split by tp. Per GPU at 4 GPUs (dp 2): 3,210,739,712 ÷ 2 +
        // 90,194,313,216 ÷ 4 + 532,480 = 24,154,480,640 B, plus the rotary cos/sin cache of 32,768 positions × 128 × 2 B.
        Assert.Equal(24_154_480_640 + (32_768L * 128 * 2), Mixtral(4).Components.Single(c => c.Name == "weights").Bytes.Bytes);
        // One replica (2 GPUs): everything ÷ 2 but the norms.
        Assert.Equal(((93_405_585_408 - 532_480) / 2) + 532_480 + (32_768L * 128 * 2), Mixtral(2).Components.Single(c => c.Name == "weights").Bytes.Bytes);
    }
}
