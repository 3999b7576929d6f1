using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>model_code: litgpt</c> (issues 17 and 20): the replay runs LitGPT's own modules. LitGPT's <c>LoRALinear.forward</c>
/// (litgpt/lora.py, read at 01e39f5): <c>pretrained = self.linear(x)</c>;
/// <c>lora = (self.lora_dropout(x) @ self.lora_A.transpose(0, 1) @ self.lora_B.transpose(0, 1)) * self.scaling</c>, in the model
/// type; its <c>LoRAQKVLinear</c> takes <c>F.linear(self.lora_dropout(x), self.lora_A)</c> once for q, k and v. The model is the
/// tiny Llama of <see cref="StackBehaviourTests"/>: hidden 256, 2 layers, 4 heads of 64 (no GQA), FFN 512, vocabulary 1,024.
/// </summary>
public sealed class LitGptModelCodeTests
{
    private const string Config = """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "bfloat16"}
        """;

    private const string LitGpt = """ "mode": "lora", "engine": "pytorch", "precision": "bf16", "cross_entropy": "chunked", "use_cache": false, "model_code": "litgpt" """;

    private static long Saved(string fields) =>
        MemoryEstimator.Estimate(Read(fields)).Components.Single(c => c.Name == "saved_activations").Bytes.Bytes;

    private static Scenario Read(string fields, string config = Config)
    {
        using JsonDocument document = JsonDocument.Parse($$"""{"model": {"config": {{config}}}, "batch": 2, "seq": 64, {{fields}} }""");
        return ScenarioDraft.FromJson(document.RootElement, "test").Read();
    }

    [Fact]
    public void A_LoRALinear_with_dropout_keeps_the_dropped_copy_and_its_bool_mask_instead_of_its_input()
    {
        // LoRA on o_proj only (LitGPT's proj). Without dropout lora_A's matmul keeps x itself, the proj's input [2, 64, 256]
        // bf16 (LitGPT's y.reshape copy), 65,536 B per layer. With p = 0.05, nn.Dropout makes a new bf16 tensor that the
        // matmul keeps instead (65,536 B; x dies after the frozen base linear, which keeps no input) and native_dropout keeps
        // a bool mask of 2·64·256 = 32,768 B, for backward only where x needs a gradient: the first layer's x comes from frozen
        // modules only (the first adapter is its own o_proj's), so its dropout records no node and its mask dies at once; the
        // second layer's x does, and its mask stays: 32,768 B more in all.
        long without = Saved(LitGpt + """, "lora": {"r": 8, "targets": ["o_proj"]} """);
        long with = Saved(LitGpt + """, "lora": {"r": 8, "targets": ["o_proj"], "dropout": 0.05} """);
        Assert.Equal(32_768, with - without);
    }

    [Fact]
    public void The_fused_qkv_drops_its_input_once_for_q_k_and_v()
    {
        // LoRAQKVLinear: one lora_dropout(x) for every adapted part of the fused qkv, so adapting k and v besides q adds no
        // dropped copy or mask, only their share of after_A: [2, 64, 8] bf16 = 2,048 B each, 4,096 B per layer, 8,192 B in all
        // (PEFT would drop x three times). lora_B's outputs are added into the qkv output and kept by nothing.
        long q = Saved(LitGpt + """, "lora": {"r": 8, "targets": ["q_proj"], "dropout": 0.05} """);
        long qkv = Saved(LitGpt + """, "lora": {"r": 8, "targets": ["q_proj", "k_proj", "v_proj"], "dropout": 0.05} """);
        Assert.Equal(8_192, qkv - q);
    }

    [Fact]
    public void A_PEFT_adapter_with_dropout_keeps_its_dropped_fp32_copy_and_a_mask()
    {
        // PEFT's Linear.forward: x = self._cast_input_dtype(x, lora_A.weight.dtype) (an fp32 copy, 2·64·256·4 = 131,072 B,
        // which lora_A keeps without dropout), then lora_A(dropout(x)): with p = 0.05 the dropped copy is fp32 too (131,072 B,
        // kept) and the cast dies, plus a bool mask of 32,768 B in the second layer only (the first layer's input needs no
        // gradient, as above): 32,768 B more in all.
        const string peft = """ "mode": "lora", "engine": "pytorch", "precision": "bf16", "cross_entropy": "chunked", "use_cache": false """;
        long without = Saved(peft + """, "lora": {"r": 8, "targets": ["o_proj"]} """);
        long with = Saved(peft + """, "lora": {"r": 8, "targets": ["o_proj"], "dropout": 0.05} """);
        Assert.Equal(32_768, with - without);
    }

    [Theory]
    [InlineData(""" "mode": "lora", "model_code": "litgpt" """, "engine pytorch")]
    [InlineData(""" "mode": "inference", "engine": "pytorch", "model_code": "litgpt" """, "training")]
    [InlineData(""" "mode": "lora", "engine": "pytorch", "attention": "eager", "model_code": "litgpt" """, "scaled_dot_product_attention")]
    public void LitGPT_code_where_the_replay_does_not_run_it_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("model_code", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Phi_3_is_refused_because_LitGPT_splits_its_fused_gate_up_projection()
    {
        const string phi3 = """
            {"model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
             "hidden_act": "silu", "torch_dtype": "bfloat16"}
            """;
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(LitGpt, phi3)));
        Assert.Equal("model_code", e.Key);
        Assert.Contains("fc_1", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Adapter_dropout_is_refused_by_the_sharded_closed_form_which_does_not_count_it()
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(
            Read(""" "mode": "lora", "parallel": {"gpus": 2, "zero": 3}, "lora": {"r": 8, "dropout": 0.05} """)));
        Assert.Equal("lora.dropout", e.Key);
    }

    [Theory]
    [InlineData(""" "model_code": "lit" """, "model_code")]
    [InlineData(""" "mode": "lora", "lora": {"dropout": 1} """, "lora.dropout")]
    [InlineData(""" "mode": "lora", "lora": {"dropout": -0.1} """, "lora.dropout")]
    public void A_bad_value_is_refused_when_the_scenario_is_read_naming_the_field(string fields, string field)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => Read(fields));
        Assert.Equal(field, e.Key);
    }
}
