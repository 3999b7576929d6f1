using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>engine_options.version</c> for engine transformers: the causal-LM loss as each release writes it (Workloads/
/// TransformersRelease.cs). Checked on fms-acceleration's Mistral-7B LoRA row (r 16 on q, k, v, o, 4 × 4096 packed tokens,
/// gradient checkpointing, one A100 80GB), run under transformers 4.45.2 (a100_80gb.csv at 0aab2c6) and 4.48.1
/// (a100_80gb_update_cross_entropy_and_deps.csv at bfdef09); the bytes are derived in each test.
/// </summary>
public sealed class TransformersReleaseLossTests
{
    private const long Tokens = 4 * 4096; // batch 4 × max_seq_len 4096: T
    private const long Vocabulary = 32_000; // Mistral-7B-v0.1 vocab_size: V

    private static ValidationCase Case(string file, string id) => CaseReader.ReadFile(Corpus.PathOf(file)).Single(c => c.Id == id);

    private static Scenario At(Scenario scenario, string? version) =>
        scenario with { EngineOptions = scenario.EngineOptions with { Version = version } };

    private static long Peak(Scenario scenario) => MemoryEstimator.Estimate(scenario).Quantity(MeasuredQuantity.PeakAllocated);

    [Fact]
    public void Releases_4_46_to_4_48_hold_the_16_bit_logits_beside_the_loss_that_4_45_drops()
    {
        // At the loss, before backward, in the three forms (b = 4 sequences, so the shifted tensors have T − b rows):
        // 4.45 (LlamaForCausalLM/MistralForCausalLM.forward): logits = logits.float() rebinds the name, the bf16 logits die;
        //   the fp32 logits 4·T·V, shift_logits = logits[..., :-1, :].contiguous() 4·(T − b)·V, log_softmax's output 4·(T − b)·V.
        // 4.48 (self.loss_function → ForCausalLMLoss): the same three inside the loss, and the model's bf16 logits, still bound
        //   to its output, 2·T·V more.
        // 4.49 on: labels padded, no shifted copy: 2·T·V + 4·T·V + 4·T·V = 10·T·V, below backward's 12·T·V (the saved
        //   log-softmax output and loss backward's two fp32 gradients), so the step peaks in backward as under 4.45.
        // 4.48 − 4.45 = 2·T·V = 2 · 16,384 · 32,000 = 1,048,576,000 B.
        const long bf16Logits = 2 * Tokens * Vocabulary;
        Assert.Equal(1_048_576_000, bf16Logits);
        Scenario lora = Case("stacks-d17.jsonl", "fms-bfdef09-mistral-7b-lora-b4-1xa100").Scenario;
        long v445 = Peak(At(lora, "4.45.2"));
        long v448 = Peak(At(lora, "4.48.1"));
        Assert.InRange(v448 - v445, bf16Logits * 0.99, bf16Logits * 1.01);

        // The two published rows differ by about as much: mem_peak_torch_mem_alloc_in_bytes 26,704,571,904 (bfdef09, 4.48.1)
        // − 25,653,881,344 (0aab2c6, 4.45.2) = 1,050,690,560 B, with peft, torch and bitsandbytes unchanged.
        PublishedRowsDifferByTheBf16Logits("fms-bfdef09-mistral-7b-lora-b4-1xa100", 26_704_571_904, "fms-a100-mistral-7b-lora-b4-1xa100", 25_653_881_344, v448);
    }

    /// <summary>
    /// Two published rows of one scenario, under transformers 4.48.1 (bfdef09, stacks-d17) and 4.45.2 (0aab2c6, stacks-ft17):
    /// their figures as quoted, their difference within 1 % of 2·T·V, and the 4.48 estimate within 1 % of its row.
    /// </summary>
    private static void PublishedRowsDifferByTheBf16Logits(string newer, long newerBytes, string older, long olderBytes, long estimate448)
    {
        const long bf16Logits = 2 * Tokens * Vocabulary;
        Assert.Equal(newerBytes, Case("stacks-d17.jsonl", newer).Measured.Value);
        Assert.Equal(olderBytes, Case("stacks-ft17.jsonl", older).Measured.Value);
        Assert.InRange(newerBytes - olderBytes, bf16Logits * 0.99, bf16Logits * 1.01);
        Assert.InRange(estimate448, newerBytes * 0.99, newerBytes * 1.01);
    }

    [Fact]
    public void FOAKs_in_place_loss_from_4_46_holds_the_16_bit_logits_beside_its_fp32_copies()
    {
        // fms-acceleration PR 123 ("fix: cross entropy for transformers>4.45", the "update cross entropy" run at bfdef09):
        // models/mistral.py picks its loss rule by release: before 4.46 "mistral-cross-ent" swaps the modeling file's
        // torch.nn.CrossEntropyLoss for FastCrossEntropyLoss (the forward has already rebound logits = logits.float(), so
        // the bf16 logits are dead); from 4.46 "mistral-custom-loss" sets LOSS_MAPPING[...] = FastForCausalLMLoss and the
        // model's loss_type to it, so MistralForCausalLM.forward keeps its bf16 logits for the output and calls
        // self.loss_function(logits, labels, vocab_size). FastForCausalLMLoss (kernels/unsloth/cross_entropy_loss.py):
        // logits = logits.float(); shift_logits = logits[..., :-1, :].contiguous(); Fast_CrossEntropyLoss saves
        // shift_logits and writes its gradient into it. Held in the kernel, before backward:
        //   4.45: fp32 logits 4·T·V + shifted copy 4·(T − b)·V
        //   4.48: bf16 logits 2·T·V + fp32 copy 4·T·V + shifted copy 4·(T − b)·V
        // The kernel allocates nothing else of the logits' size (per-row fp32 losses and log-sum-exp), and backward writes
        // into the saved copy, so on the NF4 QLoRA row (4-bit base, the loss the largest term) the step peaks at the kernel
        // in both and 4.48 − 4.45 = 2·T·V = 1,048,576,000 B.
        const long bf16Logits = 2 * Tokens * Vocabulary;
        Scenario nf4 = Case("stacks-d17.jsonl", "fms-bfdef09-mistral-7b-bnb-foak-b4-1xa100").Scenario;
        Assert.Equal(CrossEntropyKind.InPlace, nf4.CrossEntropy);
        long v445 = Peak(At(nf4, "4.45.2"));
        long v448 = Peak(At(nf4, "4.48.1"));
        Assert.Equal(bf16Logits, v448 - v445);
        Assert.Equal(v448, Peak(At(nf4, null))); // no release: the newest modelled, as for the standard loss
        Assert.Equal(v448, Peak(At(nf4, "5.17.0"))); // FOAK's own copy of 4.46's shifting: 4.49's padded labels do not reach it

        // The published FOAK NF4 rows: mem_peak_torch_mem_alloc_in_bytes 14,115,336,192 (bfdef09, 4.48.1) − 13,064,809,472
        // (0aab2c6, 4.45.2) = 1,050,526,720 B, with peft, torch and bitsandbytes unchanged.
        PublishedRowsDifferByTheBf16Logits("fms-bfdef09-mistral-7b-bnb-foak-b4-1xa100", 14_115_336_192, "fms-a100-mistral-7b-bnb-foak-b4-1xa100", 13_064_809_472, v448);
    }

    [Fact]
    public void The_padded_labels_of_4_49_are_the_default_release()
    {
        // 4.49 and 5.x write the same ForCausalLMLoss (labels padded, loss_utils.py), and no version means the newest modelled.
        Scenario lora = At(Case("stacks-d17.jsonl", "fms-bfdef09-mistral-7b-lora-b4-1xa100").Scenario, null);
        long current = Peak(lora);
        Assert.Equal(current, Peak(At(lora, "4.49.0")));
        Assert.Equal(current, Peak(At(lora, "5.17.0")));
        Assert.True(Peak(At(lora, "4.48.1")) > current);
    }

    [Theory]
    [InlineData("smollm2-135m", "--engine-version", "banana", "")]
    [InlineData("smollm2-135m", "--engine-version", "6.0", "")]
    [InlineData("smollm2-135m", "--engine-version", "3.5.1", "")]
    [InlineData("smollm2-135m", "--engine-version", "4.48.1", "--cross-entropy=chunked")]
    [InlineData("smollm2-135m", "--engine-version", "4.48.1", "--cross-entropy=fused-linear")]
    [InlineData("gpt2", "--engine-version", "4.48.1", "")]
    public void A_release_the_loss_cannot_take_is_refused_in_one_line(string model, string flag, string version, string extra)
    {
        string[] args = ["estimate", model, "--mode", "training", "--seq", "256", flag, version, .. extra.Length > 0 ? new[] { extra } : []];
        (int code, string output, string error) = CliTests.Run(args);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("engine_options.version", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Other_engines_refuse_a_transformers_release()
    {
        (int code, _, string error) = CliTests.Run("estimate", "smollm2-135m", "--mode", "training", "--seq", "256", "--engine", "pytorch", "--engine-version", "4.48.1");
        Assert.Equal(2, code);
        Assert.Contains("engine_options.version", error, StringComparison.Ordinal);
        Assert.Contains("pytorch", error, StringComparison.Ordinal);
    }
}
