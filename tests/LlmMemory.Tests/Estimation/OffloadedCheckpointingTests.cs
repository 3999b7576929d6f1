using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>gradient_checkpointing: offload</c> as Unsloth's <c>use_gradient_checkpointing="unsloth"</c> runs it
/// (<c>Unsloth_Offloaded_Gradient_Checkpointer</c>, unsloth/models/_utils.py; unsloth_zoo/gradient_checkpointing.py): each
/// decoder layer's input is copied to host memory in the forward (<c>hidden_states.to("cpu", non_blocking = True)</c>) and
/// only the host copy is saved, so the device holds no per-layer checkpoints; backward brings the layer's input back and
/// recomputes the layer. The model is a tiny Llama: hidden 256, 4 layers, 4 heads of 64, FFN 512, a vocabulary of 32,000
/// (so the loss is the step's peak, before any layer is recomputed), LoRA, batch 2 × 64 tokens, bf16.
/// </summary>
public sealed class OffloadedCheckpointingTests
{
    private const string Config = """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 32000,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "bfloat16"}
        """;

    private static MemoryEstimate Estimate(string checkpointing)
    {
        using JsonDocument document = JsonDocument.Parse($$"""
            {"model": {"config": {{Config}}}, "mode": "lora", "batch": 2, "seq": 64, "use_cache": false,
             "gradient_checkpointing": "{{checkpointing}}"}
            """);
        return MemoryEstimator.Estimate(ScenarioDraft.FromJson(document.RootElement, "test").Read());
    }

    private static long Bytes(MemoryEstimate estimate, string component) =>
        estimate.Components.SingleOrDefault(c => c.Name == component)?.Bytes.Bytes ?? 0;

    [Fact]
    public void Offloaded_checkpoints_leave_the_device_and_sit_in_host_memory()
    {
        // One layer input: b × s × h × 2 B = 2 × 64 × 256 × 2 = 65,536 B. Full checkpointing keeps all L = 4 of them on the
        // device from the end of the forward until the first layer is recomputed, so at the loss: 4 × 65,536 = 262,144 B.
        // Offloaded, the device holds none of them there; the same 262,144 B are the host copies.
        const long layerInput = 2 * 64 * 256 * 2;
        const long checkpoints = 4 * layerInput;
        MemoryEstimate full = Estimate("full");
        MemoryEstimate offloaded = Estimate("offload");
        Assert.Equal(full.PeakPhase, offloaded.PeakPhase);
        Assert.Equal(checkpoints, Bytes(full, "saved_activations") - Bytes(offloaded, "saved_activations"));
        Assert.Equal(checkpoints, Bytes(offloaded, "offloaded_checkpoints"));
        Assert.Equal(Residence.Host, offloaded.Components.Single(c => c.Name == "offloaded_checkpoints").Residence);
        Assert.Equal(0, Bytes(full, "offloaded_checkpoints"));
        // Nothing else the loss holds moves.
        Assert.Equal(Bytes(full, "logits_and_loss"), Bytes(offloaded, "logits_and_loss"));
    }
}
