using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// The stacks' own cross-entropy kernels (cross_entropy in-place and fused-linear), against the fms-acceleration benchmark
/// rows (scripts/benchmarks/refs/a100_80gb_liger.csv at 12ebdb9, Meta-Llama-3-8B LoRA r 16 on q,k,v,o, packed to 4096
/// tokens, gradient checkpointing, one A100 80GB) and the derivations written out in each test.
/// </summary>
public sealed class StackLossTests
{
    private const long Vocabulary = 128_256; // Meta-Llama-3-8B vocab_size
    private const long Hidden = 4096;

    private static ValidationCase Case(string id) =>
        CaseReader.ReadFile(Corpus.PathOf("stack-published-cases.jsonl")).Single(c => c.Id == id);

    private static long Peak(Scenario scenario) => MemoryEstimator.Estimate(scenario).Quantity(MeasuredQuantity.PeakAllocated);

    [Fact]
    public void FOAK_in_place_loss_holds_one_fp32_logits_tensor_fewer_than_the_standard_loss()
    {
        // Batch 4 × 4096 tokens: T = 16,384 rows, b = 4.
        // standard (transformers 5 ForCausalLMLoss): at the start of backward the fp32 log-softmax output and the two fp32
        // gradients of the loss backward, 12 B per logit: 12·T·V.
        // in-place (FOAK's Unsloth Fast_CrossEntropyLoss in transformers 4.45's LlamaForCausalLM): logits.float() (4 B, T rows)
        // and shift_logits = logits[..., :-1, :].contiguous() (4 B, T − b rows) which the kernel keeps; backward writes the
        // gradient into that copy, and slice_backward's zeroed fp32 gradient has T rows again: 4·T·V + 4·(T − b)·V either way.
        // Difference: 12·T·V − 8·T·V + 4·b·V = 4·16,384·128,256 + 4·4·128,256 = 8,405,385,216 + 2,052,096 = 8,407,437,312 B.
        const long derived = 8_407_437_312;
        ValidationCase foak = Case("fms-liger-llama3-8b-foak-b4-1xa100");
        Assert.Equal(CrossEntropyKind.InPlace, foak.Scenario.CrossEntropy);
        long inPlace = Peak(foak.Scenario);
        long standard = Peak(foak.Scenario with { CrossEntropy = CrossEntropyKind.Standard });
        Assert.InRange(standard - inPlace, derived * 0.99, derived * 1.01);

        // The CSV row (framework_config foak-fast-kernels, batch 4): mem_peak_torch_mem_alloc_in_bytes 37,644,015,616.
        Assert.Equal(37_644_015_616, foak.Measured.Value);
        Assert.InRange(inPlace, 37_644_015_616 * 0.99, 37_644_015_616 * 1.01);
    }

    [Fact]
    public void Liger_chunks_rows_to_hold_about_as_much_as_the_hidden_states()
    {
        // fused_linear_cross_entropy_forward: inc_factor = ceil(V / H) = ceil(128,256 / 4096) = ceil(31.3) = 32;
        // chunk_size = next_power_of_2(ceil(BT / inc_factor)) = next_power_of_2(ceil(16,380 / 32)) = next_power_of_2(512) = 512.
        Assert.Equal(512, DecoderProgram.LigerChunkRows(16_380, Hidden, Vocabulary));
        // Liger's own example in the same comment: BT = 4096·4, V = 32,000, H = 4096 → inc_factor 8, chunk_size 2048.
        Assert.Equal(2048, DecoderProgram.LigerChunkRows(4096 * 4, 4096, 32_000));
    }

    [Theory]
    [InlineData("fms-liger-llama3-8b-bnb-foak-liger-b4-1xa100", 14_411_297_792)]
    [InlineData("fms-liger-llama3-8b-bnb-foak-liger-b32-1xa100", 74_089_427_968)]
    public void Liger_fused_linear_loss_never_holds_the_logits_so_the_peak_leaves_the_loss(string id, long measured)
    {
        // Liger saves grad_input (the hidden states' gradient, T × H × 2 B) instead of logits; with the frozen head there is no
        // grad_weight. The step's peak moves to the recomputed layer in backward, where the loss holds nothing of T × V.
        // The measured peaks are the CSV rows (accelerated-peft-bnb-foak-liger, batch 4 and 32).
        ValidationCase c = Case(id);
        Assert.Equal(measured, c.Measured.Value);
        Assert.Equal(CrossEntropyKind.FusedLinear, c.Scenario.CrossEntropy);
        MemoryEstimate estimate = MemoryEstimator.Estimate(c.Scenario);
        Assert.StartsWith("backward, layer", estimate.PeakPhase, StringComparison.Ordinal);
        Assert.InRange(estimate.Components.Single(p => p.Name == "logits_and_loss").Bytes.Bytes, 0, 1 << 20);
        Assert.InRange(estimate.Quantity(MeasuredQuantity.PeakAllocated), measured * 0.99, measured * 1.01);
    }

    [Theory]
    [InlineData("in-place")]
    [InlineData("fused-linear")]
    public void Sharded_training_refuses_the_stack_kernels_it_does_not_size(string loss)
    {
        (int code, string output, string error) = CliTests.Run("estimate", "llama-3-8b", "--mode", "lora", "--gpus", "2", "--fsdp", "full_shard",
            "--cross-entropy", loss);
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("cross_entropy", error, StringComparison.Ordinal);
        Assert.Contains(loss, error, StringComparison.Ordinal);
    }
}
