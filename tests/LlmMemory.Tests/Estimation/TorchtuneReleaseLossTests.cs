using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>engine_options.version</c> for engine torchtune: the single-device LoRA recipe's loss as each release wrote it
/// (Workloads/TorchtuneRelease.cs). Checked on the LoRA tutorial row of April 2024 (Llama-2-7B, r 8 on q and v, batch 2 ×
/// 512 tokens, activation checkpointing); the bytes are derived in each test.
/// </summary>
public sealed class TorchtuneReleaseLossTests
{
    private const long Batch = 2;
    private const long Seq = 512;
    private const long Vocabulary = 32_000; // Llama-2-7b-hf vocab_size

    private static Scenario Tutorial() =>
        CaseReader.ReadFile(Corpus.PathOf("cases.jsonl")).Single(c => c.Id == "torchtune-lora-tutorial-llama2-7b-qv-r8").Scenario;

    private static Scenario At(Scenario scenario, string version) =>
        scenario with { EngineOptions = scenario.EngineOptions with { Version = version } };

    private static long Peak(Scenario scenario) => MemoryEstimator.Estimate(scenario).Quantity(MeasuredQuantity.PeakAllocated);

    private static long Reserved(Scenario scenario) => MemoryEstimator.Estimate(scenario).Quantity(MeasuredQuantity.PeakReserved);

    [Fact]
    public void Before_0_2_the_recipe_keeps_its_shifted_fp32_logits_through_backward()
    {
        // torchtune 0.1.x and 0.2.x both take logits = logits[..., :-1, :].contiguous() of the fp32 output and its
        // transpose(1, 2) into CrossEntropyLoss (until PR #1390, 0.3.0); PR #1046 (0.2.0) added `del logits` before
        // loss.backward(). Both build the model alike (before 0.6.0), so at the backward peak 0.1.1 holds one more tensor:
        // the shifted copy, fp32, b × (n − 1) × V = 4 · 2 · 511 · 32,000 = 130,816,000 B ("(2, 512, 32000) in float32",
        // PR #1046's snapshot).
        const long shifted = 4 * Batch * (Seq - 1) * Vocabulary;
        Assert.Equal(130_816_000, shifted);
        Scenario tutorial = Tutorial();
        Assert.Equal(shifted, Peak(At(tutorial, "0.1.1")) - Peak(At(tutorial, "0.2.0")));
    }

    [Fact]
    public void Before_0_4_the_configs_AdamW_runs_torchs_default_foreach_not_fused()
    {
        // recipes/configs/llama2/7B_lora_single_device.yaml at 04dc380 (mid-2024): optimizer _component_ torch.optim.AdamW,
        // weight_decay 0.01, lr 3e-4, no fused; torch.optim's default on CUDA is foreach, i.e. an explicit fused false.
        // From 0.4.0 the replay keeps the current configs' fused: True.
        Scenario tutorial = Tutorial();
        Assert.Equal(Reserved(At(tutorial, "0.1.1") with { Fused = false }), Reserved(At(tutorial, "0.1.1")));
        Assert.Equal(Reserved(At(tutorial, "0.5.0") with { Fused = true }), Reserved(At(tutorial, "0.5.0")));
        Assert.NotEqual(Reserved(At(tutorial, "0.1.1") with { Fused = true }), Reserved(At(tutorial, "0.1.1")));
    }

    [Theory]
    [InlineData(CrossEntropyKind.Chunked, false)]
    [InlineData(CrossEntropyKind.Standard, true)]
    public void A_release_before_0_3_with_a_loss_its_recipe_did_not_have_is_refused(CrossEntropyKind crossEntropy, bool compile)
    {
        Scenario tutorial = Tutorial() with { CrossEntropy = crossEntropy, Compile = compile };
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(tutorial));
        Assert.Equal("engine_options.version", e.Key);
        Assert.Contains("standard, uncompiled loss", e.Message, StringComparison.Ordinal);
    }
}
