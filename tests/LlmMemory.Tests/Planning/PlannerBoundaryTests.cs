using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Planning;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>The solvers' defining property, checked by fresh estimates: an answer fits and the next value does not.</summary>
public sealed class PlannerBoundaryTests
{
    /// <summary>Models, modes, engines and GPUs spread over what the estimators distinguish: dense and GQA, sliding windows,
    /// MoE, eager attention, quantized weights, vLLM, training modes and bare counts.</summary>
    public static TheoryData<string, string, string, string, string?, int> Cases => new()
    {
        { "llama-3.1-8b", "inference", "transformers", "rtx-4090", null, 1 },
        { "llama-3.1-8b", "inference", "transformers", "rtx-4090", "nf4", 4 },
        { "qwen2.5-0.5b", "inference", "transformers", "t4", null, 1 },
        { "gemma-2-2b", "inference", "transformers", "rtx-3060", null, 2 },
        { "mixtral-8x7b", "inference", "transformers", "h100-80gb", "q4_k_m", 1 },
        { "mistral-7b-v0.1", "inference", "transformers", "a100-40gb", null, 8 },
        { "phi-3-mini-4k", "inference", "transformers", "l4-24gb", "int8", 1 },
        { "llama-3.2-1b", "training", "transformers", "rtx-4090", null, 1 },
        { "llama-3.1-8b", "training", "transformers", "h100-80gb", null, 1 },
        { "llama-3.1-8b", "qlora", "transformers", "rtx-4090", null, 1 },
        { "qwen3-0.6b", "lora", "transformers", "t4", null, 2 },
        { "7B", "training", "transformers", "h200", null, 1 },
        { "7B", "inference", "transformers", "rtx-3060", null, 1 },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Max_seq_fits_and_one_more_token_does_not(string model, string mode, string engine, string gpu, string? weights, int batch)
    {
        Scenario scenario = Scenario(model, mode, engine, gpu, weights, batch);

        FitPlan plan = Plans.For(scenario);

        AssertBoundary(plan.MaxSeq, FitPlanner.MaxSeq, n => scenario with { Seq = n });
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Max_batch_fits_and_one_more_sequence_does_not(string model, string mode, string engine, string gpu, string? weights, int batch)
    {
        Scenario scenario = Scenario(model, mode, engine, gpu, weights, batch);

        FitPlan plan = Plans.For(scenario);

        AssertBoundary(plan.MaxBatch, FitPlanner.MaxBatch, n => scenario with { Batch = n });
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fits_is_the_estimate_rule_and_every_option_is_judged_by_a_fresh_estimate(string model, string mode, string engine, string gpu, string? weights, int batch)
    {
        Scenario scenario = Scenario(model, mode, engine, gpu, weights, batch);

        FitPlan plan = Plans.For(scenario);

        Assert.Equal(MemoryEstimator.Estimate(scenario).Fits, plan.Fits);
        foreach (PlanOption option in plan.Formats.Concat(plan.Changes))
        {
            Assert.Equal(option.Fits, Fits(option.Scenario));
        }
    }

    [Fact]
    public void A_solver_uses_the_memory_limit_when_memory_binds()
    {
        // Llama-3.1-8B in bf16 (16.06 GB of weights) on a 23.64 GiB card: the KV cache and logits grow with the context
        // until they fill what is left, so memory — not the search cap — must end the context search.
        FitPlan plan = Plans.For(Scenario("llama-3.1-8b", "inference", "transformers", "rtx-4090", null, 1));

        Assert.Equal(SolveLimit.Memory, plan.MaxSeq.Limit);
        Assert.Equal(SolveLimit.Memory, plan.MaxBatch.Limit);
    }

    [Fact]
    public void Formats_run_from_most_to_fewest_weight_bytes_and_the_one_needed_is_the_first_that_fits()
    {
        // Llama-3.1-70B in bf16 is 141 GB of weights: nothing 16- or 8-bit fits an 80 GB card, 4-bit does.
        FitPlan plan = Plans.For(Scenario("llama-3.1-70b", "inference", "transformers", "h100-80gb", null, 1));

        long[] weights = plan.Formats.Select(f => f.Weights!.Value.Bytes).ToArray();
        Assert.Equal(weights.OrderDescending(), weights);
        int first = plan.Formats.ToList().FindIndex(f => f.Fits);
        Assert.True(first > 0);
        Assert.Equal(plan.Formats[first].Name, plan.FormatNeeded);
        Assert.All(plan.Formats.Take(first), f => Assert.False(f.Fits));
    }

    [Fact]
    public void Fewest_tensor_parallel_gpus_fit_and_the_next_smaller_head_divisor_does_not()
    {
        // vLLM splits Llama-3.1-70B over tensor-parallel GPUs; tp must divide its 64 attention heads.
        Scenario scenario = Scenario("llama-3.1-70b", "inference", "vllm", "rtx-4090", null, 1);

        FitPlan plan = Plans.For(scenario);

        Assert.True(plan.MinGpus.Supported);
        int n = Assert.IsType<int>(plan.MinGpus.Count);
        Assert.Equal(0, 64 % n);
        Assert.True(Fits(scenario with { Parallel = new ParallelSettings { Gpus = n, Tp = n } }));
        int smaller = Enumerable.Range(1, n - 1).Where(d => 64 % d == 0).DefaultIfEmpty(0).Max();
        Assert.True(smaller > 0);
        Assert.False(Fits(scenario with { Parallel = new ParallelSettings { Gpus = smaller, Tp = smaller } }));
    }

    [Fact]
    public void A_vllm_server_whose_pool_cannot_hold_max_model_len_is_answered_with_the_reason_and_a_shorter_max_model_len()
    {
        // vLLM starts with max_model_len = max_position_embeddings (131,072 for Llama-3.1-8B) unless told otherwise, and refuses
        // to start when one such request does not fit its KV pool (vllm/v1/core/kv_cache_utils.py, check_enough_kv_cache_memory).
        // On an L4 the bytes fit (vLLM fills what it reserves), so every "no" must carry that reason, the batch answer must be at
        // max_model_len, and the suggestion is a shorter max_model_len: the longest a format's pool holds must itself start.
        Scenario scenario = Scenario("llama-3.1-8b", "inference", "vllm", "l4-24gb", null, 1);

        FitPlan plan = Plans.For(scenario);

        Assert.False(plan.Fits);
        Assert.True(plan.ServesRequests);
        Assert.Equal(131_072, plan.Context);
        Assert.Contains("refuses to start", plan.AsGivenRefusal, StringComparison.Ordinal);
        Assert.Contains("fewer than max_model_len 131,072", plan.AsGivenRefusal, StringComparison.Ordinal);
        Assert.Contains("1 GPU does not", plan.MinGpus.Reason, StringComparison.Ordinal);
        Assert.Contains("fewer than max_model_len", plan.MinGpus.Reason, StringComparison.Ordinal);
        string note = Assert.Single(plan.Notes, n => n.Contains("--max-model-len", StringComparison.Ordinal));
        Assert.DoesNotContain(plan.Notes, n => n.Contains("llama.cpp", StringComparison.Ordinal));
        int longest = Assert.IsType<int>(plan.MaxSeq.Value);
        Assert.Contains($"bf16 up to {longest:N0}", note, StringComparison.Ordinal);
        Assert.True(Fits(scenario with { EngineOptions = scenario.EngineOptions with { MaxModelLen = longest } }));
        Assert.False(Fits(scenario with { EngineOptions = scenario.EngineOptions with { MaxModelLen = longest + 1 } }));
    }

    [Fact]
    public void A_layout_the_estimator_does_not_spread_is_reported_as_not_estimated_rather_than_guessed()
    {
        // A bare count has no heads to split, so tensor-parallel inference cannot be shown to help.
        FitPlan plan = Plans.For(Scenario("70B", "inference", "transformers", "rtx-4090", null, 1));

        Assert.False(plan.MinGpus.Supported);
        Assert.Null(plan.MinGpus.Count);
        Assert.Contains("not estimated yet", plan.MinGpus.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_bare_count_trains_on_as_many_GPUs_as_its_sharded_sixteen_bytes_per_parameter_need()
    {
        // The essay's 16 B/param (2 + 4 weights, 2 gradients, 8 AdamW), all sharded by FSDP full_shard as ZeRO-3 shards them
        // (ZeRO paper, arXiv:1910.02054, Figure 1): 70B × 16 B over n GPUs must fit each GPU's usable memory.
        FitPlan plan = Plans.For(Scenario("70B", "training", "transformers", "h100-80gb", null, 1));
        long usable = LlmMemory.Hardware.GpuCatalog.Find("h100-80gb").Budget!.Value.Bytes;

        Assert.True(plan.MinGpus.Supported);
        Assert.Equal((int)Math.Ceiling(70_000_000_000.0 * 16 / usable), plan.MinGpus.Count);
    }

    [Fact]
    public void Training_changes_come_in_order_of_cost_and_the_cheapest_is_the_first_that_fits()
    {
        FitPlan plan = Plans.For(Scenario("llama-3.1-8b", "training", "transformers", "rtx-4090", null, 1));

        Assert.False(plan.Fits);
        string[] singles = plan.Changes.Select(c => c.Name).Where(n => !n.Contains('+', StringComparison.Ordinal)).ToArray();
        Assert.Equal(["gradient checkpointing", "8-bit AdamW", "LoRA", "QLoRA"], singles.Take(4));
        Assert.Equal(plan.Changes.FirstOrDefault(c => c.Fits), plan.CheapestChange);
    }

    [Fact]
    public void Fit_explains_a_hybrid_pool_by_the_window_not_by_dividing_tokens()
    {
        // Gemma-3-4B (data/models/gemma-3-4b.json) has 5 full-attention and 29 sliding-window layers: vLLM holds more
        // requests of 32k tokens than its token capacity ÷ 32k, because the sliding layers keep only their window.
        FitPlan plan = Plans.For(new Scenario
        {
            Model = new ModelReference.Named("gemma-3-4b"), Gpu = GpuCatalog.Find("rtx-4090"), Seq = 32_768,
        });
        ServingCapacity serving = plan.Serving!;

        Assert.True(serving.MaxConcurrency > serving.KvTokens / 32_768);
        Assert.Contains("sliding-window layers hold their window", serving.Reason, StringComparison.Ordinal);
    }

    private static void AssertBoundary(SolvedValue solved, int cap, Func<int, Scenario> at)
    {
        switch (solved.Limit)
        {
            case SolveLimit.NothingFits:
                Assert.Null(solved.Value);
                Assert.False(Fits(at(1)));
                break;
            case SolveLimit.SearchLimit:
                Assert.Equal(cap, solved.Value);
                Assert.True(Fits(at(cap)));
                break;
            case SolveLimit.KvPool:
                Assert.NotNull(solved.Value);
                break;
            default:
                int value = Assert.IsType<int>(solved.Value);
                Assert.True(Fits(at(value)), $"{value} should fit");
                Assert.False(Fits(at(value + 1)), $"{value + 1} should not fit");
                break;
        }
    }

    /// <summary>The fit rule, from a fresh estimate; a refusal (beyond 2^63 bytes, no room for a KV cache) is not a fit.</summary>
    private static bool Fits(Scenario scenario)
    {
        try
        {
            return MemoryEstimator.Estimate(scenario).Fits == true;
        }
        catch (Exception refused) when (refused is OverflowException or FormatException or NotSupportedException)
        {
            return false;
        }
    }

    internal static Scenario Scenario(string model, string mode, string engine, string gpu, string? weights, int batch)
    {
        Assert.True(Names.TryParse(mode, out Mode m));
        Assert.True(Names.TryParse(engine, out Engine e));
        return new Scenario
        {
            Model = new ModelReference.Named(model),
            Mode = m,
            Engine = e,
            Gpu = GpuCatalog.Find(gpu),
            Weights = weights is null ? null : WeightFormats.Parse(weights),
            Batch = batch,
            Lora = m is Mode.Lora or Mode.Qlora ? LoraSettings.Default : null,
        };
    }
}
