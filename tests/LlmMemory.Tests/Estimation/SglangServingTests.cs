using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Inference;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// SGLang's mem_fraction_static by release and GPU, each expected value worked out from python/sglang/srt/server_args.py
/// as the release computes it: gpu_mem is nvidia-smi's memory.total in MiB (get_nvgpu_memory_capacity), and the fraction
/// is round((gpu_mem − reserved_mem) ÷ gpu_mem, 3). The GPU totals are data/gpus.json's nvidia-smi readings
/// (H100 80GB 81,559 MiB, H200 143,771, B200 183,359, L40S 46,068, RTX 4090 24,564).
/// </summary>
public sealed class SglangServingTests
{
    private static MemoryEstimate Sglang(string gpu, string? version, int tp = 1, double? fraction = null) =>
        MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-8b"), Engine = Engine.Sglang, Gpu = GpuCatalog.Find(gpu),
            Parallel = new ParallelSettings { Gpus = tp, Tp = tp },
            EngineOptions = new EngineOptions { MaxModelLen = 8192, Version = version, GpuMemoryUtilization = fraction },
        });

    private static SglangDefaults Defaults(string gpu, string? version, int tp = 1)
    {
        var scenario = new Scenario { Model = new ModelReference.Named("llama-3.1-8b"), Engine = Engine.Sglang, EngineOptions = new EngineOptions { Version = version } };
        return SglangDefaults.For(SglangDefaults.Release(version, scenario), GpuCatalog.Find(gpu), tp, scenario);
    }

    [Theory]
    // 0.5.3 on (PR 10975, _handle_gpu_memory_settings): chunked_prefill_size and cuda_graph_max_bs by gpu_mem, then
    // reserved_mem = 512 + max(chunked, 2048) × 1.5 + cuda_graph_max_bs × 2 + tp × pp ÷ 8 × 1024, at least 10,240 above 60 GiB.
    //   H100, tp 1: 8,192 and 256 (61,440 ≤ 81,559 < 163,840; tp < 4): 512 + 12,288 + 512 + 128 = 13,440;
    //     (81,559 − 13,440) ÷ 81,559 = 68,119 ÷ 81,559 = 0.83521 → 0.835.
    [InlineData("h100-80gb", "0.5.3", 1, 8192, 256, 13440, 0.835)]
    //   H100, tp 8: 8,192 and 512 (tp ≥ 4): 512 + 12,288 + 1,024 + 1,024 = 14,848; 66,711 ÷ 81,559 = 0.81795 → 0.818.
    [InlineData("h100-80gb", "0.5.4", 8, 8192, 512, 14848, 0.818)]
    //   L40S, tp 1: 4,096 and 32 (35,840 ≤ 46,068 < 61,440): 512 + 6,144 + 64 + 128 = 6,848, no floor (not above 60 GiB);
    //     39,220 ÷ 46,068 = 0.85135 → 0.851.
    [InlineData("l40s", "0.5.3", 1, 4096, 32, 6848, 0.851)]
    //   RTX 4090, tp 1: 2,048 and 24 (20,480 ≤ 24,564 < 35,840): 512 + 3,072 + 48 + 128 = 3,760; 20,804 ÷ 24,564 = 0.84693 → 0.847.
    [InlineData("rtx-4090", "0.5.3", 1, 2048, 24, 3760, 0.847)]
    //   B200, tp 1: 16,384 and 512 (≥ 163,840): 512 + 24,576 + 1,024 + 128 = 26,240; 157,119 ÷ 183,359 = 0.85689 → 0.857.
    [InlineData("b200", null, 1, 16384, 512, 26240, 0.857)]
    //   A100 80GB, tp 1 (81,920 MiB): as the H100, 13,440 (above the 10,240 floor, which no default size falls under above
    //     60 GiB); 68,480 ÷ 81,920 = 0.8359375 → 0.836.
    [InlineData("a100-80gb", "0.5.3", 1, 8192, 256, 13440, 0.836)]
    public void From_0_5_3_the_fraction_follows_chunked_prefill_and_cuda_graph_sizes(string gpu, string? version, int tp, int chunked, int graphs, double reserved, double fraction)
    {
        SglangDefaults d = Defaults(gpu, version, tp);
        Assert.Equal(chunked, d.ChunkedPrefillSize);
        Assert.Equal(graphs, d.CudaGraphMaxBs);
        Assert.Equal(reserved, d.ReservedMib);
        Assert.Equal(fraction, d.MemFractionStatic);
    }

    [Theory]
    // 0.4.7.post1 to 0.5.2 (PR 7054, __post_init__): reserved_mem by gpu_mem tier with parallel_size = tp × pp, no
    // chunked-prefill or CUDA-graph term.
    //   H100 tp 1 (< 90 GiB): (9.5 + 1 ÷ 2) × 1024 = 10,240; 71,319 ÷ 81,559 = 0.87445 → 0.874.
    [InlineData("h100-80gb", "0.4.7.post1", 1, 10240, 0.874)]
    //   H100 tp 8: (9.5 + 8 ÷ 2) × 1024 = 13,824; 67,735 ÷ 81,559 = 0.830502 → 0.831.
    [InlineData("h100-80gb", "0.5.2", 8, 13824, 0.831)]
    //   H200 tp 1 (90–160 GiB): (12 + 0.5) × 1024 = 12,800; 130,971 ÷ 143,771 = 0.91097 → 0.911.
    [InlineData("h200", "0.4.10", 1, 12800, 0.911)]
    //   RTX 4090 tp 2 (< 35 GiB): (2.8 + 2 ÷ 10) × 1024 = 3,072; 21,492 ÷ 24,564 = 0.87494 → 0.875.
    [InlineData("rtx-4090", "0.4.9.post2", 2, 3072, 0.875)]
    //   B200 (≥ 160 GiB): 32 × 1024 = 32,768 whatever the tp; 150,591 ÷ 183,359 = 0.82129 → 0.821.
    [InlineData("b200", "0.5.0", 4, 32768, 0.821)]
    public void From_0_4_7_post1_to_0_5_2_the_reserve_is_a_tier_of_gpu_memory_and_tp(string gpu, string version, int tp, double reserved, double fraction)
    {
        SglangDefaults d = Defaults(gpu, version, tp);
        Assert.Null(d.ChunkedPrefillSize);
        Assert.Equal(reserved, d.ReservedMib, 9);
        Assert.Equal(fraction, d.MemFractionStatic);
    }

    [Fact]
    public void The_release_changes_the_pool_and_the_note_shows_the_arithmetic()
    {
        // The same H100 at tp 1: 0.874 of the CUDA total under 0.5.2, 0.835 under 0.5.3 (above). The KV pool is the fraction
        // of the 85,045,477,376 B device total less the same weights and CUDA context, so it shrinks by
        // ⌊0.874 × 85,045,477,376⌋ − ⌊0.835 × 85,045,477,376⌋ = 74,329,747,226 − 71,012,973,608 = 3,316,773,618 B, less
        // what is left over within the last token (one token of Llama-3.1-8B is 131,072 B).
        MemoryEstimate older = Sglang("h100-80gb", "0.5.2");
        MemoryEstimate newer = Sglang("h100-80gb", "0.5.3");
        long drop = older.Components.Single(c => c.Name == "kv_cache").Bytes.Bytes - newer.Components.Single(c => c.Name == "kv_cache").Bytes.Bytes;
        Assert.InRange(drop, 3_316_773_618 - 131_072, 3_316_773_618 + 131_072);
        Assert.Contains(newer.Notes, n => n.Contains("mem_fraction_static 0.835 is SGLang 0.5.3's default", StringComparison.Ordinal)
            && n.Contains("(81,559 − 13,440) ÷ 81,559", StringComparison.Ordinal));
    }

    [Fact]
    public void The_given_fraction_overrides_the_default_of_any_release()
    {
        // --mem-fraction-static wins over the heuristic (server_args.py: "if self.mem_fraction_static is None"), so the same
        // pool comes out under every release, and a release older than the modelled ones is accepted beside it.
        static long Pool(string? version) => Sglang("h100-80gb", version, fraction: 0.8).Components.Single(c => c.Name == "kv_cache").Bytes.Bytes;
        Assert.Equal(Pool(null), Pool("0.5.2"));
        Assert.Equal(Pool(null), Pool("0.3.6"));
    }

    [Theory]
    [InlineData("0.5.5", "newer than the SGLang releases modelled")]
    [InlineData("0.6.0", "newer than the SGLang releases modelled")]
    [InlineData("1.0", "newer than the SGLang releases modelled")]
    [InlineData("0.4.7", "older than the SGLang releases")]
    [InlineData("0.3.6", "older than the SGLang releases")]
    [InlineData("latest", "not an SGLang release")]
    [InlineData("0.5.0rc0", "not an SGLang release")]
    public void A_release_outside_the_modelled_ones_is_refused_naming_the_field(string version, string reason)
    {
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => Sglang("h100-80gb", version));
        Assert.Contains("engine_options.version", error.Message, StringComparison.Ordinal);
        Assert.Contains(reason, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_newer_release_is_refused_even_beside_a_given_fraction()
    {
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => Sglang("h100-80gb", "0.5.19", fraction: 0.9));
        Assert.Contains("newer than the SGLang releases modelled", error.Message, StringComparison.Ordinal);
    }
}

/// <summary>SGLang's pipeline parallelism (<c>--pp-size</c>): the layers split as vLLM's get_pp_indices splits them, each stage's pool sized from the least free memory of any rank.</summary>
public sealed class SglangPipelineTests
{
    [Fact]
    public void Four_stages_of_Llama_70B_size_their_pools_after_the_heaviest_stage()
    {
        // Llama-3.1-70B in bf16 over 4 H100s at pp 4 (get_pp_indices: 20 layers a stage). Layer 1,711,308,800 B; embedding and
        // head 2,101,346,304 B each; final norm 16,384 B. The last stage is the heaviest: 20 × 1,711,308,800 + 2,101,346,304 +
        // 16,384 = 36,327,538,688 B, plus the rotary cos/sin cache of 131,072 positions × 128 × 2 B = 33,554,432.
        // mem_fraction_static (server_args.py 0.5.3 on): gpu_mem 81,559 MiB gives chunked_prefill_size 8,192 and
        // cuda_graph_max_bs 256 (tp < 4), reserved_mem = 512 + 12,288 + 512 + tp × pp ÷ 8 × 1024 = 13,824 MiB;
        // (81,559 − 13,824) ÷ 81,559 = 0.83050 → 0.831.
        // profile_max_num_token: available = the least free memory of any rank = total − context − the heaviest weights, so
        // rest = ⌊85,045,477,376 × 0.831⌋ − 36,361,093,120 − 728,545,689 (694.8 MiB of CUDA context) = 33,583,152,890 B,
        // and a token of 20 layers × 2 × 8 KV heads × 128 × 2 B = 81,920 B: ⌊33,583,152,890 ÷ 81,920⌋ = 409,950 tokens.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.Named("llama-3.1-70b"), Engine = Engine.Sglang, Gpu = GpuCatalog.Find("h100-80gb"),
            Weights = LlmMemory.Numerics.WeightFormats.Parse("bf16"), Parallel = new ParallelSettings { Gpus = 4, Pp = 4 },
            EngineOptions = new EngineOptions { Version = "0.5.4" },
        });

        Assert.Equal(409_950, estimate.Facts.Single(f => f.Key == "kv_tokens").Value);
        Assert.Equal(36_361_093_120, estimate.Components.Single(c => c.Name == "weights").Bytes.Bytes);
        Assert.Contains("pipeline stage 4 of 4", estimate.Device, StringComparison.Ordinal);
    }
}
