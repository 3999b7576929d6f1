using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// GPT-2 in training (<c>model.train()</c>): transformers' modeling_gpt2.py calls <c>self.drop</c> on the embeddings
/// (<c>embd_pdrop</c>), <c>resid_dropout</c> after the attention's <c>c_proj</c> and <c>dropout</c> after the MLP's
/// <c>c_proj</c> (<c>resid_pdrop</c>); configuration_gpt2.py defaults both to 0.1. ATen's <c>native_dropout</c> keeps a
/// bool mask of its input's shape for backward (<c>native_dropout_backward(grad, mask, scale)</c>); with p = 0
/// <c>dropout</c> returns its input (no kernel, no mask).
/// </summary>
public sealed class Gpt2DropoutTests
{
    [Fact]
    public void Each_GPT2_dropout_keeps_a_one_byte_mask_per_element_until_backward()
    {
        // gpt2 shape: L 12, h 768; b 8, s 1024 → T 8192. Masks: (1 + 2·12) × 8192 × 768 × 1 B = 157,286,400 B, all alive at
        // the start of backward (each a multiple of 512 B: no allocator rounding). Pure bf16, so that no autocast weight copy
        // changes which moment of the step is the peak.
        long withDropout = Saved(0.1);
        long withoutDropout = Saved(0.0);
        Assert.Equal((1 + 2 * 12) * 8192L * 768, withDropout - withoutDropout);
    }

    [Fact]
    public void A_dropout_probability_outside_0_to_1_is_refused()
    {
        Assert.ThrowsAny<Exception>(() => Saved(1.5));
    }

    private static long Saved(double p)
    {
        string config = $$"""
            {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "n_positions": 1024,
             "embd_pdrop": {{p.ToString(System.Globalization.CultureInfo.InvariantCulture)}}, "resid_pdrop": {{p.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}
            """;
        MemoryEstimate estimate = MemoryEstimator.Estimate(new Scenario
        {
            Model = new ModelReference.InlineConfig(JsonDocument.Parse(config).RootElement),
            Mode = Mode.Training, Precision = Precision.Bf16, Batch = 8, Seq = 1024, Engine = Engine.Transformers,
        });
        return estimate.Components.Single(c => c.Name == "saved_activations").Bytes.Bytes;
    }
}
