using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Tests.Cli;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// Two stack behaviours of fine-tuning runs (issue 17), each a scenario field: <c>use_cache</c>, whether the training forward
/// builds a KV cache (transformers follows <c>config.use_cache</c>; LitGPT's <c>GPT.forward</c> touches its KV cache only when
/// <c>input_pos</c> is given, which training never does), and <c>bitsandbytes_version</c>, whose releases before 0.43.2 keep
/// every 4-bit matmul's input for backward (<c>MatMul4Bit.forward</c>: <c>ctx.tensors = (A, B)</c>; bitsandbytes PR #1270 made
/// it <c>(None, B)</c>). The model is the tiny Llama of <see cref="KbitPreparationTests"/>: hidden 256, 2 layers, 4 heads of
/// 64 (no GQA), FFN 512, vocabulary 1,024, untied head.
/// </summary>
public sealed class StackBehaviourTests
{
    private const string Config = """
        {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256, "intermediate_size": 512,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1024,
         "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
         "hidden_act": "silu", "torch_dtype": "bfloat16"
        """;

    private static long Bytes(MemoryEstimate estimate, string component) =>
        estimate.Components.SingleOrDefault(c => c.Name == component)?.Bytes.Bytes ?? 0;

    private static Scenario Read(string fields, bool configUseCache = true)
    {
        string config = Config + (configUseCache ? "}" : """, "use_cache": false}""");
        using JsonDocument document = JsonDocument.Parse($$"""{"model": {"config": {{config}}}, "batch": 2, "seq": 64, {{fields}} }""");
        return ScenarioDraft.FromJson(document.RootElement, "test").Read();
    }

    [Fact]
    public void Without_a_training_cache_the_K_and_V_copies_are_gone_and_nothing_else_moves()
    {
        // transformers' DynamicCache concatenates each layer's K and V into its own tensors (torch.cat onto the empty
        // initial tensor copies them): per layer K and V of batch 2 × 4 heads × 64 tokens × 64 × 2 B = 65,536 B each, so at
        // least 2 layers × 2 × 65,536 = 262,144 B live at the end of the forward, the peak of a chunked-loss step.
        const string fields = """ "mode": "lora", "cross_entropy": "chunked" """;
        MemoryEstimate cached = MemoryEstimator.Estimate(Read(fields));
        MemoryEstimate uncached = MemoryEstimator.Estimate(Read(fields + """, "use_cache": false """));
        Assert.True(Bytes(cached, "kv_cache") >= 262_144, $"kv_cache {Bytes(cached, "kv_cache")}");
        Assert.Equal(0, Bytes(uncached, "kv_cache"));
        Assert.Equal(Bytes(cached, "saved_activations"), Bytes(uncached, "saved_activations"));
        Assert.Equal(Bytes(cached, "logits_and_loss"), Bytes(uncached, "logits_and_loss"));
    }

    [Fact]
    public void The_field_overrides_the_config_as_the_forward_s_use_cache_argument_does()
    {
        // model(input_ids, use_cache=True) builds the cache whatever config.use_cache says; without the argument the config decides.
        const string fields = """ "mode": "lora", "cross_entropy": "chunked" """;
        Assert.Equal(0, Bytes(MemoryEstimator.Estimate(Read(fields, configUseCache: false)), "kv_cache"));
        Assert.True(Bytes(MemoryEstimator.Estimate(Read(fields + """, "use_cache": true """, configUseCache: false)), "kv_cache") >= 262_144);
    }

    [Theory]
    [InlineData(""" "mode": "inference", "use_cache": false """, "training forward's cache")]
    [InlineData(""" "mode": "lora", "engine": "torchtune", "use_cache": true """, "build no KV cache")]
    [InlineData(""" "mode": "lora", "gradient_checkpointing": "full", "use_cache": true """, "incompatible with gradient checkpointing")]
    public void Use_cache_where_it_changes_nothing_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("use_cache", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Before_0_43_2_a_4_bit_matmul_keeps_its_input_until_backward()
    {
        // x bf16 [2, 64, 256] needs a gradient (it is computed from a trained parameter). MatMul4Bit.forward with an NF4
        // weight [512, 256]: the output bf16 2·64·512·2 = 131,072 B. bitsandbytes 0.42 sets ctx.tensors = (A, B), so after
        // the caller drops x its 2·64·256·2 = 65,536 B stay held by the node: 131,072 + 65,536 = 196,608 B. From 0.43.2
        // ctx.tensors = (None, B): x is freed and only the output stays, 131,072 B.
        Assert.Equal(196_608, HeldAfterMatmul(keepsInput: true));
        Assert.Equal(131_072, HeldAfterMatmul(keepsInput: false));
    }

    [Fact]
    public void The_kept_input_outlives_backward_until_the_graph_dies()
    {
        // MatMul4Bit puts A on ctx as a plain attribute (ctx.tensors = (A, B)), not through save_for_backward. After a node ran,
        // the engine calls release_variables, and PyNode::release_variables (torch/csrc/autograd/python_function.cpp) clears
        // only saved_variables: A lives until the node dies with its graph. Same shapes as above: after backward, dropping
        // the output y (2·64·512·2 = 131,072 B), the last reference to the graph, frees y and, before 0.43.2, x
        // (2·64·256·2 = 65,536 B) with it: 196,608 B; from 0.43.2 only y, 131,072 B.
        Assert.Equal(196_608, FreedWithTheGraph(keepsInput: true));
        Assert.Equal(131_072, FreedWithTheGraph(keepsInput: false));
    }

    private static long FreedWithTheGraph(bool keepsInput)
    {
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = true };
        Tensor parameter = engine.Parameter([2, 64, 256], ScalarType.BFloat16, true, MemoryTag.Weight);
        Tensor weight = engine.Parameter([512, 256], ScalarType.Nf4, false, MemoryTag.Weight, bytes: 512 * 256 / 2);
        Tensor x = engine.Scale(parameter);
        Tensor y = Blocks.DequantizedLinear(engine, x, weight, ScalarType.BFloat16, ScalarType.BFloat16, keepsInput);
        x.Release();
        engine.Backward(y);
        long afterBackward = engine.Allocator.Allocated;
        y.Release();
        return afterBackward - engine.Allocator.Allocated;
    }

    private static long HeldAfterMatmul(bool keepsInput)
    {
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = true };
        Tensor parameter = engine.Parameter([2, 64, 256], ScalarType.BFloat16, true, MemoryTag.Weight);
        Tensor weight = engine.Parameter([512, 256], ScalarType.Nf4, false, MemoryTag.Weight, bytes: 512 * 256 / 2);
        long before = engine.Allocator.Allocated;
        Tensor x = engine.Scale(parameter);
        Tensor y = Blocks.DequantizedLinear(engine, x, weight, ScalarType.BFloat16, ScalarType.BFloat16, keepsInput);
        x.Release();
        Assert.True(y.RequiresGrad);
        return engine.Allocator.Allocated - before;
    }

    [Theory]
    [InlineData("mixed-bf16")]
    [InlineData("bf16")]
    public void An_old_bitsandbytes_release_holds_each_4_bit_input_nothing_else_saves(string precision)
    {
        // QLoRA with one adapter, on o_proj; 2 × 64 = 128 tokens, hidden 256, FFN 512. What MatMul4Bit adds before 0.43.2,
        // per layer, is each 4-bit projection's input that needs a gradient and that no other op saves:
        // - layer 0: q/k/v read the norm of the frozen embedding (no gradient: not kept); o_proj reads the attention output
        //   of those (no gradient either); the MLP reads norm(x + o_proj(…)), which needs a gradient through the adapter:
        //   gate/up's shared input, 256, and down's act(gate) * up, 512 → 768;
        // - layer 1: q/k/v's shared input 256; o_proj's input is SDPA's output (flash and efficient attention write it in
        //   (B, S, H, D) order, so transformers' transpose(1, 2).contiguous() is no copy), which SDPA already saves, and which
        //   the adapter's lora_A saves too (or its fp32 copy, without autocast) → 0; the MLP 256 + 512 → 1,024.
        // (768 + 1,024) × 128 tokens × 2 B = 458,752 B, at the end of the forward (the chunked loss's peak). From 0.43.2 the
        // step holds what a current release does.
        string fields = $$""" "mode": "qlora", "precision": "{{precision}}", "cross_entropy": "chunked", "use_cache": false, "lora": {"r": 8, "targets": ["o_proj"]} """;
        long current = Bytes(MemoryEstimator.Estimate(Read(fields)), "saved_activations");
        long fixedRelease = Bytes(MemoryEstimator.Estimate(Read(fields + """, "bitsandbytes_version": "0.43.2" """)), "saved_activations");
        long old = Bytes(MemoryEstimator.Estimate(Read(fields + """, "bitsandbytes_version": "0.42.0" """)), "saved_activations");
        Assert.Equal(current, fixedRelease);
        Assert.Equal(458_752, old - current);
    }

    [Fact]
    public void Lightning_s_converter_quantizes_the_head_too()
    {
        // Lightning's BitsandbytesPrecision replaces every nn.Linear, lm_head included; transformers keeps lm_head in the load
        // type. The head [1,024, 256] in bf16: 262,144 × 2 = 524,288 B. In NF4 with double quantization (the format nf4):
        // 262,144 / 2 = 131,072 B of codes, 262,144 / 64 = 4,096 blocks of one byte each, ⌈4,096 / 256⌉ = 16 fp32 constants
        // and one fp32 offset: 131,072 + 4,096 + 64 + 4 = 135,236 B. The weights differ by 524,288 − 135,236 = 389,052 B.
        const string fields = """ "mode": "qlora", "precision": "bf16", "use_cache": false """;
        long transformers = Bytes(MemoryEstimator.Estimate(Read(fields)), "weights");
        long lightning = Bytes(MemoryEstimator.Estimate(Read(fields + """, "bitsandbytes_converter": "lightning" """)), "weights");
        Assert.Equal(389_052, transformers - lightning);
    }

    [Fact]
    public void Without_double_quantization_each_64_weights_keep_an_fp32_absmax()
    {
        // bitsandbytes quantize_4bit, blocks of 64: with compress_statistics (double quantization) the absmax is 8-bit, one
        // byte per block, plus an fp32 constant per 256 blocks and one fp32 offset; without it, 4 B per block.
        // q, k, v, o [256, 256]: 65,536 weights, 1,024 blocks: 1,024 + 4·4 + 4 = 1,044 B against 4,096 B → 3,052 B more.
        // gate, up, down [512, 256] and [256, 512]: 131,072 weights, 2,048 blocks: 2,048 + 4·8 + 4 = 2,084 against 8,192 → 6,108.
        // Per layer 4 × 3,052 + 3 × 6,108 = 30,532 B; 2 layers: 61,064 B (the head stays bf16).
        const string fields = """ "mode": "qlora", "precision": "bf16", "use_cache": false """;
        long doubleQuantized = Bytes(MemoryEstimator.Estimate(Read(fields)), "weights");
        long plain = Bytes(MemoryEstimator.Estimate(Read(fields + """, "bnb_4bit_use_double_quant": false """)), "weights");
        Assert.Equal(61_064, plain - doubleQuantized);
        Assert.Equal(doubleQuantized, Bytes(MemoryEstimator.Estimate(Read(fields + """, "bnb_4bit_use_double_quant": true """)), "weights"));

        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(""" "mode": "lora", "bnb_4bit_use_double_quant": false """)));
        Assert.Equal("bnb_4bit_use_double_quant", e.Key);
    }

    [Fact]
    public void A_weight_quantized_from_fp16_dequantizes_to_fp16_and_then_to_the_compute_type()
    {
        // Lightning's _Linear4bit.quantize: w = weight.contiguous().to(device, dtype=torch.half), so the quant state is fp16.
        // MatMul4Bit.forward: F.dequantize_4bit(B, state) is fp16 [512, 256], 262,144 B; .to(A.dtype) is its bf16 copy,
        // 262,144 B more while both exist; the bf16 output 2·64·512·2 = 131,072 B. With x (65,536 B) alive before, the peak
        // over x is 262,144 + 262,144 = 524,288 B (the GEMM, after the fp16 copy is dropped: 262,144 + 131,072 = 393,216);
        // with a bf16 quant state it would be the bf16 weight and the output, 393,216 B.
        Assert.Equal(524_288, PeakOfMatmul(ScalarType.Float16));
        Assert.Equal(393_216, PeakOfMatmul(ScalarType.BFloat16));
    }

    private static long PeakOfMatmul(ScalarType stored)
    {
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = false };
        Tensor x = engine.Empty([2, 64, 256], ScalarType.BFloat16);
        Tensor weight = engine.Parameter([512, 256], ScalarType.Nf4, false, MemoryTag.Weight, bytes: 512 * 256 / 2);
        long before = engine.Allocator.Allocated;
        engine.StartTracking();
        Blocks.DequantizedLinear(engine, x, weight, ScalarType.BFloat16, stored);
        return engine.Allocator.PeakAllocated - before;
    }

    [Theory]
    [InlineData(""" "mode": "lora", "bitsandbytes_converter": "lightning" """, "the weights are bf16")]
    [InlineData(""" "mode": "qlora", "engine": "torchtune", "bitsandbytes_converter": "lightning" """, "torchao")]
    public void Lightning_s_converter_where_it_cannot_apply_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("bitsandbytes_converter", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(""" "mode": "lora", "bitsandbytes_version": "0.42.0" """, "the weights are bf16")]
    [InlineData(""" "mode": "qlora", "gradient_checkpointing": "full", "bitsandbytes_version": "0.41.1" """, "outside save_for_backward")]
    [InlineData(""" "mode": "qlora", "bitsandbytes_version": "latest" """, "major.minor.patch")]
    public void Bitsandbytes_version_where_it_cannot_apply_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("bitsandbytes_version", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_paged_optimizer_keeps_the_states_of_small_tensors_in_device_memory()
    {
        // bitsandbytes' get_state_buffer: a paged optimizer's state goes to CUDA managed memory only for a parameter of at
        // least 1e5 elements; smaller ones get torch.zeros_like on the device. Full training of the tiny Llama with paged
        // 32-bit AdamW (two fp32 moments):
        // - under 1e5: q, k, v, o 256 × 256 = 65,536 each (4 per layer) and the RMSNorm weights of 256 (2 per layer + the
        //   final one): 2 × (4 × 65,536 + 2 × 256) + 256 = 525,568 elements → × 2 moments × 4 B = 4,204,544 B in the allocator;
        // - at least 1e5: the embedding and the head, 1,024 × 256 = 262,144 each, and gate, up, down, 131,072 each (3 per
        //   layer): 524,288 + 2 × 3 × 131,072 = 1,310,720 elements → 10,485,760 B in managed memory.
        const string fields = """ "mode": "training", "precision": "bf16", "optimizer": "paged-adamw" """;
        MemoryEstimate estimate = MemoryEstimator.Estimate(Read(fields));
        Assert.Equal(4_204_544, Bytes(estimate, "optimizer_states"));
        Assert.Equal(10_485_760, Bytes(estimate, "paged_optimizer_states"));
    }

    [Theory]
    [InlineData("0.41.1", true)]
    [InlineData("0.42.0", true)]
    [InlineData("0.43.1", true)]
    [InlineData("0.43.2", false)]
    [InlineData("0.45.0.dev0", false)]
    [InlineData("1.0.0", false)]
    public void Releases_before_0_43_2_keep_the_input(string release, bool keeps) =>
        Assert.Equal(keeps, BitsandbytesRelease.KeepsFourBitInput(release));

    [Fact]
    public void The_command_line_takes_both_and_refuses_use_cache_in_inference_with_one_line_and_exit_2()
    {
        (int ok, string output, _) = CliTests.Run("estimate", "smollm2-135m", "--mode", "qlora", "--seq", "256", "--use-cache", "false", "--bitsandbytes-version", "0.42.0");
        Assert.Equal(0, ok);
        Assert.DoesNotContain("kv_cache", output, StringComparison.Ordinal);

        (int code, string stdout, string error) = CliTests.Run("estimate", "smollm2-135m", "--use-cache", "false");
        Assert.Equal(2, code);
        Assert.Equal("", stdout);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("--use-cache", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Logits_kept_to_the_next_forward_keep_the_previous_graph_s_4_bit_inputs()
    {
        // LitGPT's loop (litgpt/finetune/lora.py at 01fe959, lit-gpt finetune/lora.py at b96a570) binds
        // `logits = model(input_ids, lm_head_chunk_size=128)` and rebinds it only when the next forward returns. The chunks'
        // grad_fn keep the previous graph's nodes alive; after its backward they hold nothing saved, but bitsandbytes
        // before 0.43.2 keeps each 4-bit matmul's input on ctx (not released by release_variables). Same tiny QLoRA as
        // above (adapter on o_proj, 2 × 64 = 128 tokens, bf16). The inputs that need a gradient, so have a MatMul4Bit node:
        // - layer 0: the MLP's input (256) and down's act(gate) * up (512): 768 (q/k/v and o_proj read no gradient);
        // - layer 1: q/k/v's input 256, o_proj's input 256 (SDPA's output: saved by SDPA too, but freed with it after
        //   backward, while ctx keeps it), the MLP's 256 + 512: 1,280.
        // (768 + 1,280) × 128 × 2 B = 524,288 B of activations live beside the next forward's, at its peak (the head, before
        // the model returns and the loop drops them). The previous chunks of logits, 2 × 64 × 1,024 × 2 B = 262,144 B, are
        // there too, in the loss component.
        const string fields = """ "mode": "qlora", "engine": "pytorch", "precision": "bf16", "cross_entropy": "chunked", "use_cache": false, "gradient_accumulation": 2, "bitsandbytes_version": "0.42.0", "lora": {"r": 8, "targets": ["o_proj"]} """;
        MemoryEstimate dropped = MemoryEstimator.Estimate(Read(fields));
        MemoryEstimate held = MemoryEstimator.Estimate(Read(fields + """, "hold_previous_logits": true """));
        Assert.Equal(524_288, Bytes(held, "saved_activations") - Bytes(dropped, "saved_activations"));
    }

    [Theory]
    [InlineData(""" "mode": "lora", "hold_previous_logits": true """, "not transformers")]
    [InlineData(""" "mode": "inference", "engine": "pytorch", "hold_previous_logits": true """, "training loop setting")]
    public void Holding_the_previous_logits_where_no_loop_does_is_refused_naming_the_field(string fields, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => MemoryEstimator.Estimate(Read(fields)));
        Assert.Equal("hold_previous_logits", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }
}
