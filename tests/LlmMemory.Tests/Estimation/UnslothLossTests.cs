using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>cross_entropy: unsloth</c>, Unsloth's own causal-LM forward (unsloth/models/llama.py <c>LlamaForCausalLM_fast_forward</c>):
/// <c>logits = self.lm_head(hidden_states)</c> in the model's 16-bit type, the labels shifted instead of the logits, and
/// <c>Fast_CrossEntropyLoss</c> (unsloth/kernels/cross_entropy_loss.py), which upcasts inside the Triton kernel, saves
/// <c>(logits, logsumexp, labels)</c> and writes the gradient into the saved logits. No fp32 logits and no shifted copy
/// exist. The model is a tiny Llama (hidden 256, 2 layers, 4 heads of 64, FFN 512), LoRA, full checkpointing, bf16, so the
/// loss is the step's peak.
/// </summary>
public sealed class UnslothLossTests
{
    private static MemoryEstimate Estimate(long vocabulary, int batch, int seq, string loss = "unsloth", string more = "")
    {
        string config = $$"""
            {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256,
             "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
             "vocab_size": {{vocabulary}}, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
             "tie_word_embeddings": false, "hidden_act": "silu", "torch_dtype": "bfloat16"}
            """;
        using JsonDocument document = JsonDocument.Parse($$"""
            {"model": {"config": {{config}} }, "mode": "lora", "batch": {{batch}}, "seq": {{seq}},
             "gradient_checkpointing": "full", "cross_entropy": "{{loss}}"{{more}}}
            """);
        return MemoryEstimator.Estimate(ScenarioDraft.FromJson(document.RootElement, "test").Read());
    }

    private static long Bytes(MemoryEstimate estimate, string component) =>
        estimate.Components.SingleOrDefault(c => c.Name == component)?.Bytes.Bytes ?? 0;

    [Theory]
    [InlineData(32_000, 2, 64)]
    [InlineData(131_072, 1, 32)]
    public void The_loss_holds_only_the_model_s_16_bit_logits_which_take_their_own_gradient(long vocabulary, int batch, int seq)
    {
        // T = batch × seq tokens. At the loss and the start of backward: the bf16 logits 2·T·V (saved by the kernel, which
        // writes the gradient into them), the per-row fp32 log-sum-exp 4·T B (one 512 B block here), the loss scalar (a 512 B
        // block) and the head's input gradient T × 256 × 2 B, which backward computes while the logits are alive.
        // 32,000 columns run in one block per row; 131,072 in ⌈131,072 ÷ 65,536⌉ = 2 chunks, whose (T × 2) fp32 log-sum-exp is
        // reduced to one per row inside the forward, so nothing of the logits' size is added.
        long tokens = (long)batch * seq;
        long expected = 2 * tokens * vocabulary + 512 + 512 + tokens * 256 * 2;
        MemoryEstimate estimate = Estimate(vocabulary, batch, seq);
        Assert.Contains("loss", estimate.PeakPhase, StringComparison.Ordinal);
        Assert.Equal(expected, Bytes(estimate, "logits_and_loss"));
    }

    [Fact]
    public void Against_foak_s_in_place_plug_the_fp32_copy_and_the_shifted_copy_are_gone()
    {
        // FOAK's loss through transformers' loss_function holds the model's bf16 logits 2·T·V, logits.float() 4·T·V and the
        // shifted fp32 copy 4·(T − b)·V; Unsloth's forward only the first: at least 4·T·V + 4·(T − b)·V less,
        // 4 × 128 × 32,000 + 4 × 126 × 32,000 = 32,512,000 B.
        long unsloth = Bytes(Estimate(32_000, 2, 64), "logits_and_loss");
        long inPlace = Bytes(Estimate(32_000, 2, 64, "in-place"), "logits_and_loss");
        Assert.True(inPlace - unsloth >= 32_512_000, $"in-place {inPlace}, unsloth {unsloth}");
    }

    [Theory]
    [InlineData("google/gemma-2-2b", "gemma2")]
    [InlineData("openai-community/gpt2", "gpt2")]
    public void Models_whose_forward_unsloth_s_is_not_replayed_for_are_refused(string model, string type)
    {
        using JsonDocument document = JsonDocument.Parse($$"""{"model": "{{model}}", "mode": "lora", "cross_entropy": "unsloth"}""");
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(ScenarioDraft.FromJson(document.RootElement, "test").Read()));
        Assert.Equal("cross_entropy", e.Key);
        Assert.Contains($"not {type}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(""", "engine": "torchtune" """, "engine transformers")]
    [InlineData(""", "compile": true """, "uncompiled")]
    [InlineData(""", "parallel": {"gpus": 2, "fsdp": "full_shard"} """, "single-GPU")]
    [InlineData(""", "engine_options": {"version": "4.48.1"} """, "this run's loss is unsloth")]
    public void Where_unsloth_s_forward_does_not_run_the_value_is_refused_naming_the_field(string more, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => Estimate(32_000, 2, 64, more: more));
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }
}
