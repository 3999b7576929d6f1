using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Planning;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>Planning answers against published numbers.</summary>
public sealed class KnownAnswerTests
{
    /// <summary>
    /// Unsloth's README, "Context length benchmarks" → "Llama 3.1 (8B) max. context length" (unslothai/unsloth README.md):
    /// Llama 3.1 (8B) Instruct, 4-bit QLoRA on q, k, v, o, gate, up and down with rank 32, batch 1, every sequence padded
    /// to the length tested; the "Hugging Face + FA2" column is the longest length that fit: 12 GB → 932 tokens,
    /// 24 GB → 5,789, 48 GB → 15,502, 80 GB → 28,454. A length that ran is a lower bound on what fits.
    /// </summary>
    /// <remarks>
    /// <para>The README does not state the cards; these are the catalog's cards of each size (24 GB: the RTX 4090;
    /// 80 GB: the A100 80GB, the card the README names for its 70B table).</para>
    /// <para>Gradient checkpointing is not stated either, but must have been on: without it Llama-3-8B saves
    /// 41·h = 167,936 B per token per layer in its blocks alone (docs/memory-model.md §5.3: 12h + 4h_kv + 8I with
    /// h = 4096, h_kv = 1024, I = 14336), × 32 layers = 5.37 MB per token, twice the whole per-token cost of the table
    /// itself: (28,454 − 5,789) tokens over (80 − 24) GB is 404.7 tokens per GB, 2.47 MB per token.</para>
    /// </remarks>
    [Theory]
    [InlineData("rtx-3060", 932)]
    [InlineData("rtx-4090", 5_789)]
    [InlineData("rtx-a6000", 15_502)]
    [InlineData("a100-80gb", 28_454)]
    public void QLoRA_Llama_3_1_8B_fits_at_least_the_context_Hugging_Face_reached(string gpu, int published)
    {
        FitPlan plan = Plans.For(UnslothBenchmark(gpu));

        Assert.True(plan.MaxSeq.Value is not null, $"nothing fits {gpu}: {plan.MaxSeq.Reason}");
        int maxSeq = plan.MaxSeq.Value.Value;
        Assert.True(maxSeq >= published, $"max_seq {maxSeq:N0} on {gpu} is below the {published:N0} tokens Hugging Face + FA2 trained at");
    }

    /// <summary>
    /// On the 24 GB card the answer must also be close: at most 40 % above the published 5,789 tokens. The table's lengths
    /// are the longest that fit, so the true boundary is at or just above them; what is left is our error. The estimate
    /// replays transformers 5 (research/torch SPEC §5): at the start of backward the loss holds 12·T·V bytes, about 1.5 MB
    /// of Llama-3.1-8B's ~1.9 MB per token, which puts the boundary near 8,000 tokens. The table's own slope,
    /// (28,454 − 5,789) tokens over (80 − 24) GB = 2.47 MB per token, implies about 16·T·V: a 2024 run that kept the fp32
    /// logits of its output object through backward, or the older loss's shifted copy; the README does not say which, nor
    /// the transformers version. 40 % covers that difference and nothing more.
    /// </summary>
    [Fact]
    public void QLoRA_Llama_3_1_8B_on_24_GB_is_within_40_percent_of_the_published_context()
    {
        FitPlan plan = Plans.For(UnslothBenchmark("rtx-4090"));

        Assert.True(plan.MaxSeq.Value is not null, $"nothing fits: {plan.MaxSeq.Reason}");
        int maxSeq = plan.MaxSeq.Value.Value;
        Assert.InRange(maxSeq, 5_789, (int)(5_789 * 1.40));
    }

    [Fact]
    public void The_essay_rule_gives_112_GB_for_training_a_7B_model()
    {
        // The essay: (2 + 4) bytes of weights + 8 of AdamW + 2 of gradients = 16 bytes per parameter; 7B × 16 = 112 GB.
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario { Model = new ModelReference.Named("7B"), Mode = Mode.Training });

        Assert.Equal(112_000_000_000, estimate.DeviceTotal.Bytes);
        Assert.Equal(["weights", "master_weights", "gradients", "optimizer_states"], estimate.Components.Select(c => c.Name));
        Assert.Equal([14_000_000_000L, 28_000_000_000, 14_000_000_000, 56_000_000_000], estimate.Components.Select(c => c.Bytes.Bytes));
    }

    private static Scenario UnslothBenchmark(string gpu) => new()
    {
        Model = new ModelReference.Named("llama-3.1-8b"),
        Mode = Mode.Qlora,
        Weights = WeightFormats.Parse("nf4"),
        Lora = new LoraSettings(32, null, new LoraTargets(null, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]), false),
        Batch = 1,
        Attention = AttentionKernel.Flash,
        GradientCheckpointing = Checkpointing.Full,
        Gpu = GpuCatalog.Find(gpu),
    };
}
