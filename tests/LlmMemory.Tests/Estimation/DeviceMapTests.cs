using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// transformers inference over several GPUs with <c>device_map="auto"</c>: the placement of transformers'
/// <c>get_balanced_memory</c> and accelerate's <c>infer_auto_device_map</c> done by hand, and each GPU's share replayed.
/// </summary>
public sealed class DeviceMapTests
{
    // Llama-3.1-70B in bf16 (config.json: hidden 8192, intermediate 28672, 80 layers, 64 heads of 128, 8 KV heads, vocab
    // 128,256, untied head). A decoder layer: q and o 8192², k and v 8192 × 1024, gate/up/down 3 × 8192 × 28672, two norms
    // of 8192 = 855,654,400 params = 1,711,308,800 B. Embedding and head: 128,256 × 8192 × 2 = 2,101,346,304 B each. The
    // final norm 16,384 B; the rotary inv_freq 64 fp32 = 256 B.
    private const long Layer70B = 1_711_308_800;
    private const long Table70B = 2_101_346_304;

    [Fact]
    public void Llama_70B_on_two_GPUs_puts_40_layers_beside_the_embedding_and_the_rest_with_the_head()
    {
        // get_balanced_memory: total = 2 × 2,101,346,304 + 80 × 1,711,308,800 + 16,384 + 256 = 141,107,413,248;
        // leaf modules 1 + 80 × 9 + 3 = 724, mean 194,899,742 < layer 0, so buffer = int(1.25 × 1,711,308,800) = 2,139,136,000
        // and GPU 0's cap = 141,107,413,248 // 2 + 2,139,136,000 = 72,692,842,624 (the last GPU keeps its free memory).
        // infer_auto_device_map: GPU 0 keeps the largest layer free (the embedding and the head tie at 2,101,346,304), so it
        // takes the embedding and ⌊(72,692,842,624 − 2,101,346,304 − 2,101,346,304) / 1,711,308,800⌋ = 40 layers (0–39);
        // layer 40 does not fit, so GPU 1 takes layers 40–79, the norm, the rotary module and the head.
        var sizes = new ModuleSizes(Table70B, [.. Enumerable.Repeat(Layer70B, 80)], 16_384, 256, Table70B, 724, Tied: false);
        DeviceMap map = DeviceMap.Auto(sizes, gpus: 2, DeviceMap.Unbounded);

        Assert.Equal(72_692_842_624, map.MaxMemory[0]);
        Assert.Equal(0, map.Embedding);
        Assert.Equal(40, map.Layers.Count(d => d == 0));
        Assert.All(map.Layers.Skip(40), d => Assert.Equal(1, d));
        Assert.Equal((1, 1, 1), (map.Norm, map.Rotary, map.Head));
    }

    [Fact]
    public void A_tied_head_stays_with_the_embedding_on_GPU_0()
    {
        // Llama-3.2-1B in bf16 (hidden 2048, intermediate 8192, 16 layers, 8 KV heads of 64, vocab 128,256, tied): a layer is
        // 2 × 2048² + 2 × 2048 × 512 + 3 × 2048 × 8192 + 2 × 2048 = 60,821,504 params = 121,643,008 B; the embedding
        // 128,256 × 2048 × 2 = 525,336,576 B; norm 4,096 B; inv_freq 32 fp32 = 128 B; the tied lm_head counts 0.
        // Total 2,471,628,928; cap = 1,235,814,464 + int(1.25 × 121,643,008) = 1,387,868,224. While the embedding is placed the
        // largest remaining layer is a decoder layer (121,643,008), so GPU 0 takes the embedding, its tied head, and
        // ⌊(1,387,868,224 − 121,643,008 − 525,336,576) / 121,643,008⌋ = 6 layers; GPU 1 takes layers 6–15 and the norm.
        var sizes = new ModuleSizes(525_336_576, [.. Enumerable.Repeat(121_643_008L, 16)], 4_096, 128, 0, 147, Tied: true);
        DeviceMap map = DeviceMap.Auto(sizes, gpus: 2, DeviceMap.Unbounded);

        Assert.Equal((0, 0), (map.Embedding, map.Head));
        Assert.Equal(6, map.Layers.Count(d => d == 0));
        Assert.Equal(1, map.Norm);
    }

    [Fact]
    public void Each_GPU_of_the_spread_model_holds_its_layers_weights_and_cache()
    {
        // Llama-3.2-1B as above over 2 GPUs, a prompt of 2048 tokens. GPU 0 holds the embedding, the tied head and layers
        // 0–5: 525,336,576 + 6 × 121,643,008 = 1,255,194,624 B of weights, the KV of its 6 layers (6 × 2 × 2048 tokens × 512 ×
        // 2 B) and the logits of every position (2048 × 128,256 × 2 B), which lm_head computes there: it is the most loaded.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.2-1b"), Weights = WeightFormats.Parse("bf16"), Batch = 1, Seq = 2048,
            Parallel = new ParallelSettings { Gpus = 2 },
        });

        Assert.Equal(2, estimate.DeviceCount);
        Assert.StartsWith("GPU 0 of 2", estimate.Device, StringComparison.Ordinal);
        Assert.Equal(1_255_194_624, estimate.Components.Single(c => c.Name == "weights").Bytes.Bytes);
        Assert.Equal(6L * 2 * 2048 * 512 * 2, estimate.Quantity(MeasuredQuantity.KvCache));
        Assert.True(estimate.Components.Single(c => c.Name == "logits").Bytes.Bytes >= 2048L * 128_256 * 2);
    }

    [Fact]
    public void Two_GPUs_hold_less_than_one_GPU_of_the_same_run()
    {
        var one = new Scenario { Model = new ModelReference.Named("llama-3.1-8b"), Weights = WeightFormats.Parse("bf16"), Batch = 1, Seq = 1024 };
        MemoryEstimate single = MemoryEstimator.Estimate(one);
        MemoryEstimate spread = MemoryEstimator.Estimate(one with { Parallel = new ParallelSettings { Gpus = 2 } });
        Assert.True(spread.DeviceTotal.Bytes < single.DeviceTotal.Bytes * 0.6, $"{spread.DeviceTotal} against {single.DeviceTotal}");
    }

    [Fact]
    public void A_model_that_would_spill_to_the_CPU_is_refused()
    {
        // 141 GB of bf16 weights on two 24 GB GPUs: accelerate would offload most layers to the CPU.
        var refused = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-70b"), Weights = WeightFormats.Parse("bf16"), Gpu = GpuCatalog.Find("rtx-4090"),
            Parallel = new ParallelSettings { Gpus = 2 },
        }));
        Assert.Equal("parallel.gpus", refused.Key);
        Assert.Contains("CPU", refused.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama-3.1-8b", "nf4")]
    [InlineData("gpt2", "fp32")]
    public void Quantized_weights_and_other_families_are_refused_with_the_reason(string model, string weights)
    {
        var refused = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named(model), Weights = WeightFormats.Parse(weights), Parallel = new ParallelSettings { Gpus = 2 },
        }));
        Assert.Equal("parallel.gpus", refused.Key);
    }
}
