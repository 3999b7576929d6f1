using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Sources;
using LlmMemory.Tests.Cli;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// kbit_preparation: PEFT's <c>prepare_model_for_kbit_training</c> (peft/utils/other.py) casts every float16/bfloat16
/// parameter that is not a bitsandbytes <c>Params4bit</c> to float32 after loading, and turns gradient checkpointing on.
/// The model is a tiny Llama written out here so every byte can be counted: hidden 256, 2 layers, 4 heads of 64 (no GQA),
/// FFN 512, vocabulary 1,024, an untied head, loaded in bf16 with bitsandbytes NF4 linears (mode qlora).
/// </summary>
public sealed class KbitPreparationTests
{
    private const long Hidden = 256;
    private const long Vocabulary = 1_024;
    private const int Batch = 2;
    private const int Seq = 64;

    private const string Config = """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "bfloat16"}
        """;

    private static readonly ResolvedModel Model = ModelResolver.Resolve(new ModelReference.InlineConfig(JsonDocument.Parse(Config).RootElement.Clone()));

    private static Scenario Qlora(bool kbit, Precision precision) => new()
    {
        Model = new ModelReference.InlineConfig(JsonDocument.Parse(Config).RootElement.Clone()), Mode = Mode.Qlora, Precision = precision,
        Batch = Batch, Seq = Seq, GradientCheckpointing = Checkpointing.Full, KbitPreparation = kbit,
    };

    private static long Bytes(MemoryEstimate estimate, string component) =>
        estimate.Components.SingleOrDefault(c => c.Name == component)?.Bytes.Bytes ?? 0;

    [Fact]
    public void The_unquantized_parameters_are_held_in_fp32_two_bytes_per_element_more()
    {
        // Cast by PEFT (bf16 → fp32): the embedding 1,024 × 256 = 262,144 elements, the head 262,144, and the RMSNorm weights
        // of 256 each: 2 per layer × 2 layers + the final norm = 5 × 256 = 1,280; in all 525,568 elements. The NF4 linears are
        // Params4bit and stay. 4 B − 2 B = 2 B more per element: 2 × 525,568 = 1,051,136 B.
        const long derived = 1_051_136;
        MemoryEstimate plain = MemoryEstimator.Estimate(Qlora(kbit: false, Precision.MixedBf16));
        MemoryEstimate prepared = MemoryEstimator.Estimate(Qlora(kbit: true, Precision.MixedBf16));
        Assert.Equal(derived, Bytes(prepared, "kbit_fp32_parameters"));
        Assert.Equal(0, Bytes(plain, "kbit_fp32_parameters"));
        Assert.Equal(Bytes(plain, "weights"), Bytes(prepared, "weights"));

        // The replay's own weight blocks say the same: every size here is a multiple of the allocator's 512 B, so the blocks
        // beyond the stored bytes (rotary buffer, quantization constants) are the same with and without the casts.
        Assert.Equal(Bytes(plain, "weight_blocks"), Bytes(prepared, "weight_blocks"));
    }

    [Fact]
    public void The_checkpointed_layer_inputs_are_the_fp32_embedding_s_stream()
    {
        // The fp32 embedding's output is the first block's input, and every block returns the fp32 residual: each checkpoint
        // holds 4 B per value, 2 layers × (2 × 64) tokens × 256 × 4 B, where the bf16 load holds 2 B.
        static string Saved(bool kbit) => MemoryEstimator.Estimate(Qlora(kbit, Precision.MixedBf16)).Components.Single(c => c.Name == "saved_activations").Formula;
        Assert.StartsWith("checkpointed layer inputs 2 layers × 128 tokens × 256 × 4 B", Saved(kbit: true), StringComparison.Ordinal);
        Assert.StartsWith("checkpointed layer inputs 2 layers × 128 tokens × 256 × 2 B", Saved(kbit: false), StringComparison.Ordinal);
    }

    [Fact]
    public void After_the_casts_the_model_holds_fp32_embedding_norms_and_head_and_keeps_the_4_bit_linears()
    {
        (ModelWeights weights, _) = Build(kbit: true);
        foreach (string name in new[] { "model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight", "model.norm.weight", "lm_head.weight" })
        {
            Assert.Equal(ScalarType.Float32, weights[name].Type);
        }

        Assert.Equal(ScalarType.Nf4, weights["model.layers.0.self_attn.q_proj.weight"].Type);
        (ModelWeights plain, _) = Build(kbit: false);
        Assert.Equal(ScalarType.BFloat16, plain["model.embed_tokens.weight"].Type);
    }

    [Fact]
    public void Without_autocast_the_fp32_head_gives_fp32_logits_four_bytes_per_logit()
    {
        // precision bf16 (no autocast): the fp32 final norm's output meets the fp32 head, so the logits are fp32:
        // batch × seq × vocabulary × 4 B = 2 × 64 × 1,024 × 4 = 524,288 B. Without the casts they are bf16: 262,144 B.
        Tensor logits = Logits(kbit: true, autocast: null);
        Assert.Equal(ScalarType.Float32, logits.Type);
        Assert.Equal(Batch * Seq * Vocabulary * 4, logits.Bytes);
        Assert.Equal(524_288, logits.Bytes);

        Tensor plain = Logits(kbit: false, autocast: null);
        Assert.Equal(ScalarType.BFloat16, plain.Type);
        Assert.Equal(262_144, plain.Bytes);
    }

    [Fact]
    public void Under_bf16_autocast_the_head_matmul_runs_in_bf16()
    {
        // torch.autocast casts both operands of the head's F.linear to bf16 (the fp32 head weight too, uncached because it is
        // frozen), so the logits stay bf16: 2 × 64 × 1,024 × 2 = 262,144 B, and the loss's logits.float() makes the fp32 copy.
        Tensor logits = Logits(kbit: true, autocast: ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, logits.Type);
        Assert.Equal(262_144, logits.Bytes);
    }

    [Fact]
    public void A_4_bit_linear_on_the_fp32_stream_computes_in_bf16_and_returns_fp32()
    {
        // bitsandbytes Linear4bit.forward on x fp32 [2, 64, 256] with an NF4 weight [512, 256], bnb_4bit_compute_dtype bf16:
        // x.to(bf16) 2·64·256·2 = 65,536 B; dequantize_4bit(W) in bf16 512·256·2 = 262,144 B; the GEMM's bf16 output
        // 2·64·512·2 = 131,072 B; the weight copy dropped, then .to(inp_dtype): fp32 2·64·512·4 = 262,144 B.
        // Peak: 65,536 + 262,144 + 131,072 = 458,752 B (the cast back, 131,072 + 262,144 = 393,216, is lower); the fp32
        // output is all that stays.
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = false };
        Tensor x = engine.Empty([2, 64, 256], ScalarType.Float32);
        Tensor weight = engine.Parameter([512, 256], ScalarType.Nf4, false, MemoryTag.Weight, bytes: 512 * 256 / 2);
        long before = engine.Allocator.Allocated;
        engine.StartTracking();
        Tensor y = Blocks.DequantizedLinear(engine, x, weight, ScalarType.BFloat16, ScalarType.BFloat16);
        Assert.Equal(ScalarType.Float32, y.Type);
        Assert.Equal([2L, 64, 512], y.Shape);
        Assert.Equal(262_144, engine.Allocator.Allocated - before);
        Assert.Equal(458_752, engine.Allocator.PeakAllocated - before);
    }

    [Fact]
    public void The_reader_takes_the_field_and_PEFT_s_default_turns_checkpointing_on()
    {
        Scenario defaulted = Read(""" "model": "smollm2-135m", "mode": "qlora", "kbit_preparation": true """);
        Assert.True(defaulted.KbitPreparation);
        Assert.Equal(Checkpointing.Full, defaulted.GradientCheckpointing); // use_gradient_checkpointing=True

        Scenario without = Read(""" "model": "smollm2-135m", "mode": "qlora", "kbit_preparation": true, "gradient_checkpointing": "none" """);
        Assert.Equal(Checkpointing.None, without.GradientCheckpointing); // use_gradient_checkpointing=False

        Scenario lora8 = Read(""" "model": "smollm2-135m", "mode": "lora", "weights": "int8", "kbit_preparation": true """);
        Assert.True(lora8.KbitPreparation);

        Assert.False(Read(""" "model": "smollm2-135m", "mode": "qlora" """).KbitPreparation);
        Assert.Equal("true", ScenarioFields.Value(defaulted, "kbit_preparation"));
    }

    [Theory]
    [InlineData(""" "mode": "lora" """, "mode lora loads the base in 16 bits")]
    [InlineData(""" "mode": "training" """, "mode is training")]
    [InlineData(""" "mode": "inference" """, "mode is inference")]
    [InlineData(""" "mode": "qlora", "weights": "gptq-int4" """, "weights are gptq-int4")]
    [InlineData(""" "mode": "qlora", "engine": "torchtune" """, "engine is torchtune")]
    [InlineData(""" "mode": "qlora", "kbit_preparation": "yes" """, "must be true or false")]
    public void Runs_PEFT_does_not_prepare_are_refused_naming_the_field(string fields, string reason)
    {
        string json = fields.Contains("kbit_preparation", StringComparison.Ordinal) ? fields : fields + """, "kbit_preparation": true """;
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => Read($""" "model": "smollm2-135m", {json} """));
        Assert.Equal("kbit_preparation", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_command_line_refuses_it_outside_k_bit_adapter_training_with_one_line_and_exit_2()
    {
        (int code, string output, string error) = CliTests.Run("estimate", "smollm2-135m", "--mode", "lora", "--kbit-preparation");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("--kbit-preparation", error, StringComparison.Ordinal);
        Assert.Contains("prepare_model_for_kbit_training", error, StringComparison.Ordinal);
    }

    [Fact]
    public void The_sharded_closed_form_and_other_model_families_refuse_it()
    {
        // Two GPUs route QLoRA to the closed form, which does not read the field.
        ModelFormatException sharded = Assert.Throws<ModelFormatException>(() =>
            MemoryEstimator.Estimate(Read(""" "model": "smollm2-135m", "mode": "qlora", "kbit_preparation": true, "parallel": {"gpus": 2, "zero": 2} """)));
        Assert.Equal("kbit_preparation", sharded.Key);

        // GPT-2 runs the classic program, which has no k-bit preparation replay.
        ModelFormatException gpt2 = Assert.Throws<ModelFormatException>(() =>
            MemoryEstimator.Estimate(Read(""" "model": "gpt2", "mode": "qlora", "kbit_preparation": true """)));
        Assert.Equal("kbit_preparation", gpt2.Key);
    }

    [Fact]
    public void The_command_line_switch_estimates_a_QLoRA_run()
    {
        (int code, string output, _) = CliTests.Run("estimate", "smollm2-135m", "--mode", "qlora", "--seq", "256", "--kbit-preparation");
        Assert.Equal(0, code);
        Assert.Contains("prepare_model_for_kbit_training", output, StringComparison.Ordinal);
    }

    private static Scenario Read(string fields)
    {
        using JsonDocument document = JsonDocument.Parse($"{{{fields}}}");
        return ScenarioDraft.FromJson(document.RootElement, "test").Read();
    }

    private static (ModelWeights Weights, DecoderProgram Program) Build(bool kbit, ReplayEngine? engine = null)
    {
        ReplayPlan plan = ReplayPlan.For(Model.Architecture!, Qlora(kbit, Precision.Bf16), gpu: null);
        engine ??= new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        var program = new DecoderProgram(engine, Model.Architecture!, plan.Options);
        return (program.Weights, program);
    }

    /// <summary>One training forward of the tiny model, as the replay's step runs it; the logits the model returns.</summary>
    private static Tensor Logits(bool kbit, ScalarType? autocast)
    {
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default);
        (_, DecoderProgram program) = Build(kbit, engine);
        program.Ids = engine.Empty([Batch, Seq], ScalarType.Int64, MemoryTag.Inputs);
        engine.Autocast = autocast;
        ForwardResult result = program.Forward(labels: true, training: true);
        return result.Outputs[0];
    }
}
