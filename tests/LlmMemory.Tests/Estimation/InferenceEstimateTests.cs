using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>transformers prefill estimates against research/torch SPEC §3 and this project's H100 measurements.</summary>
public sealed class InferenceEstimateTests
{
    [Fact]
    public void Llama_3_1_8B_prefill_peaks_at_the_logits_of_every_position()
    {
        // SPEC §3: transformers 5 computes logits for all positions without logits_to_keep, so at the head
        //   P_head = W + WS + KV + T·h·β (final normed hidden) + T·V·β
        //   W  = 16,060,523,008 B (the measured `weights` of the run), WS = 32 MiB (one GEMM thread),
        //   KV = 32 layers × 2 × 4096 tokens × 1024 × 2 B = 536,870,912, T·h·β = 4096 · 4096 · 2, T·V·β = 4096 · 128,256 · 2.
        long weights = Measured("gpu-llama-3.1-8b-inf-b1-s4096-weights");
        long derived = weights + (32L << 20) + 536_870_912 + (4096L * 4096 * 2) + (4096L * 128_256 * 2);
        long measured = Measured("gpu-llama-3.1-8b-inf-b1-s4096-peak_allocated");
        Assert.InRange(derived, measured * 0.999, measured * 1.001);

        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Weights = WeightFormats.Parse("bf16"), Batch = 1, Seq = 4096, Gpu = GpuCatalog.Find("h100-80gb"),
        });
        Assert.Equal("prefill: head (logits)", estimate.PeakPhase);
        Assert.InRange(estimate.Quantity(MeasuredQuantity.Weights), weights - 4096, weights); // allocator blocks of every tensor (two 512-B buffers short)
        Assert.Equal(536_870_912, estimate.Quantity(MeasuredQuantity.KvCache));
        Assert.InRange(estimate.Quantity(MeasuredQuantity.PeakAllocated), derived * 0.999, derived * 1.001);
    }

    [Fact]
    public void A_sliding_window_layer_still_holds_the_whole_prefill()
    {
        // SPEC §3: DynamicSlidingWindowLayer keeps a view of the full cat copy, so after a prefill longer than the window the
        // sliding layers hold every token: Mistral-7B-v0.1 (window 4096) at 8192 tokens, 32 × 2 × 8192 × 1024 × 2 B.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("mistral-7b-v0.1"), Weights = WeightFormats.Parse("bf16"), Batch = 1, Seq = 8192,
        });
        Assert.Equal(32L * 2 * 8192 * 1024 * 2, estimate.Quantity(MeasuredQuantity.KvCache));
    }

    private static long Measured(string id) =>
        Corpus.Cases("gpu-h100-cases.jsonl").Single(c => c.GetProperty("id").GetString() == id).GetProperty("measured").GetProperty("bytes").GetInt64();

    [Fact]
    public void Vllm_shares_its_pool_between_full_and_sliding_layer_groups_as_the_hybrid_manager_does()
    {
        // gpt-oss-20b (data/models/gpt-oss-20b.json): 24 layers, 12 full-attention and 12 sliding (window 128), 8 KV heads of
        // 64 in bf16. vLLM V1 (kv_cache_utils.py): one group per kind, 12 layers each, so a 16-token block costs a page of
        // 16 × 2 × 8 × 64 × 2 = 32,768 B in each of 12 layers; the printed capacity is blocks ÷ 2 groups × 16; a request of
        // 131,072 tokens takes 131,072 / 16 = 8,192 blocks in the full group and ⌈(128 − 1 + 8,192) / 16⌉ + 1 = 521 in the
        // sliding group (kv_cache_interface.py SlidingWindowSpec; 8,192 batched tokens on an 80 GB GPU).
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("gpt-oss-20b"), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("h100-80gb"),
        });
        long blocks = estimate.Facts.Single(f => f.Key == "kv_blocks").Value;

        Assert.True(blocks > 0);
        Assert.Equal(blocks * 32_768 * 12, estimate.Components.Single(c => c.Name == "kv_cache").Bytes.Bytes);
        Assert.Equal(blocks / 2 * 16, estimate.Facts.Single(f => f.Key == "kv_tokens").Value);
        Assert.Equal(blocks / (8_192 + 521), estimate.Facts.Single(f => f.Key == "max_concurrency").Value);
    }

    [Theory]
    // vLLM's dtype "auto" (vllm/config _get_and_verify_dtype): an fp32 checkpoint is served in fp16, Gemma 2 and 3 in bf16.
    // Gemma-2-9B (google/gemma-2-9b config, torch_dtype float32): tied embedding 256,000 × 3,584 = 917,504,000; per layer
    // q, o 2 × 3,584 × 4,096 + k, v 2 × 3,584 × 2,048 + MLP 3 × 3,584 × 14,336 + 4 norms × 3,584 = 198,195,200, × 42 layers;
    // + final norm 3,584 = 9,241,705,984. BLOOMZ-7B1 (float32): 7,069,016,064, BigScience's bloom-7b1 model card.
    [InlineData("gemma-2-9b", 9_241_705_984L, "bf16")]
    [InlineData("bloomz-7b1", 7_069_016_064L, "fp16")]
    public void Vllm_serves_an_fp32_checkpoint_in_16_bits(string model, long parameters, string format)
    {
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario { Model = new ModelReference.Named(model), Engine = Engine.Vllm, Gpu = GpuCatalog.Find("a100-80gb") });
        MemoryComponent weights = estimate.Components.Single(c => c.Name == "weights");

        Assert.InRange(weights.Bytes.Bytes - (parameters * 2), 0, 16 * 1024 * 1024); // + vLLM's rotary cos/sin cache, a few MiB
        Assert.Contains($"Weights in {format}.", estimate.Notes[0], StringComparison.Ordinal);
    }

    [Fact]
    public void Generate_holds_the_last_positions_logits_not_every_positions()
    {
        // One forward over 8,192 tokens keeps every position's logits: 8,192 × 128,256 vocab × 2 B = 2,101,346,304 B.
        // generate() asks for the last position only (transformers PR #31292, logits_to_keep=1): at most one row of
        // 128,256 logits per sequence in bf16 plus generate()'s two fp32 copies, 128,256 × (2 + 4 + 4) B = 1,282,560 B.
        Scenario forward = new() { Model = new ModelReference.Named("llama-3.1-8b"), Seq = 8192 };
        MemoryEstimate once = MemoryEstimator.Estimate(forward);
        MemoryEstimate generated = MemoryEstimator.Estimate(forward with { NewTokens = 256 });

        Assert.Equal(2_101_346_304, Assert.Single(once.Components, c => c.Kind == ComponentKind.Logits).Bytes.Bytes);
        Assert.All(generated.Components.Where(c => c.Kind == ComponentKind.Logits), c => Assert.InRange(c.Bytes.Bytes, 0, 1_282_560));
        Assert.True(generated.DeviceTotal < once.DeviceTotal);
        Assert.Contains(generated.Notes, n => n.Contains("generate()", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("llama-3.2-1b", "static", "cache")]
    [InlineData("gpt2", null, "new_tokens")]
    [InlineData("gemma-2-2b", null, "new_tokens")]
    public void Generate_paths_the_replay_does_not_model_are_refused_naming_the_field(string model, string? cache, string field)
    {
        Scenario scenario = new()
        {
            Model = new ModelReference.Named(model),
            Seq = 1024,
            NewTokens = 16,
            Cache = cache is null ? null : GenerationCache.Static,
        };

        ModelFormatException refused = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(scenario));
        Assert.Equal(field, refused.Key);
    }

    [Fact]
    public void A_long_generation_ends_with_the_whole_context_cached()
    {
        // Llama-3.2-1B caches 2 × 16 layers × 8 KV heads × 64 × 2 B = 32,768 B per token. A prompt of 96 tokens and 4,000
        // new ones end with 4,095 tokens cached (the last token is sampled, never fed back): 4,095 × 32,768 = 134,184,960 B,
        // where the prefill alone holds 96 × 32,768 = 3,145,728 B. At most, a cat holds one layer's old and new keys (or
        // values) at once, 4,094 × 8 × 64 × 2 B = 4,192,256 B more, and each of the 32 cached blocks may keep an unsplit
        // segment tail under 1 MiB (the caching allocator's rule): at most 134,184,960 + 4,192,256 + 32 × 1,048,576 B.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario { Model = new ModelReference.Named("llama-3.2-1b"), Seq = 4096, NewTokens = 4000 });

        Assert.InRange(Assert.Single(estimate.Components, c => c.Kind == ComponentKind.KvCache).Bytes.Bytes, 134_184_960, 134_184_960 + 4_192_256 + (32 * 1_048_576));
        Assert.Contains(estimate.Notes, n => n.Contains("replayed one by one", StringComparison.Ordinal));
    }
}
