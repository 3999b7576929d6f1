using System.Text;
using System.Text.Json;
using LlmMemory.Estimation.Replay;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// Each catalog family trained through the replay: a tiny config of the family runs one training forward (labels given,
/// <c>model.train()</c>), and the tensors its autograd graph saves for backward are read off the graph (one entry per
/// storage, as the caching allocator holds them). Each test derives one saved tensor the family's transformers modeling file
/// makes it keep, with its shape, type and bytes. Shared dimensions: batch 2, sequence 64 (T = 128 tokens), two layers;
/// pure bf16 unless a test says mixed (autocast over fp32 parameters). Saved-tensor rules from PyTorch
/// tools/autograd/derivatives.yaml: a linear (<c>mm</c>) saves its input; <c>silu</c>/<c>gelu</c>/<c>pow</c> save their input;
/// <c>tanh</c>, <c>relu</c>, <c>_softmax</c>, <c>_log_softmax</c> their output; <c>mul</c> saves each operand the other's
/// gradient needs; <c>native_dropout</c> a bool mask; <c>_to_copy</c>, <c>add</c>, <c>cat</c> and views nothing.
/// </summary>
public sealed class FamilyTrainingReplayTests
{
    private const int B = 2;
    private const int S = 64;
    private const int L = 2;

    [Fact]
    public void Llama_RMSNorm_keeps_one_fp32_copy_of_its_input_per_norm()
    {
        // modeling_llama.py LlamaRMSNorm: h = x.to(float32); variance = h.pow(2).mean(-1); h = h * rsqrt(variance + eps).
        // pow and the mul both save the same fp32 copy [b, s, h] (4 B per element): one per norm, 2 per layer + the final norm.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256}""");
        Assert.Equal(2 * L + 1, Count(saved, ScalarType.Float32, B, S, 64));
        Assert.Equal(B * S * 64 * 4, One(saved, ScalarType.Float32, B, S, 64).Bytes);
    }

    [Fact]
    public void Mistral_under_SDPA_keeps_k_and_v_at_their_kv_heads_unless_the_sliding_window_needs_a_mask()
    {
        // modeling_mistral.py → integrations/sdpa_attention.py: with no mask (window 4096 ≥ s) SDPA gets enable_gqa and the flash
        // kernel saves k and v as given, [b, n_kv = 1, s, d = 16] bf16 (4 KiB each): 2 per layer.
        const string config = """{"model_type": "mistral", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 1, "num_hidden_layers": 2, "vocab_size": 256, "sliding_window": WINDOW}""";
        IReadOnlyList<Tensor> whole = Saved(config.Replace("WINDOW", "4096", StringComparison.Ordinal));
        Assert.Equal(2 * L, Count(whole, ScalarType.BFloat16, B, 1, S, 16));
        Assert.Equal(B * 1 * S * 16 * 2, One(whole, ScalarType.BFloat16, B, 1, S, 16).Bytes);

        // A window (32) shorter than s makes a mask, and use_gqa_in_sdpa is false with a mask: repeat_kv expands k and v to the
        // 4 heads before the kernel, which saves the expanded copies; the 1-head k and v are saved by nothing.
        IReadOnlyList<Tensor> windowed = Saved(config.Replace("WINDOW", "32", StringComparison.Ordinal));
        Assert.Equal(0, Count(windowed, ScalarType.BFloat16, B, 1, S, 16));
    }

    [Fact]
    public void Qwen2_loss_keeps_the_fp32_log_probabilities_of_every_token()
    {
        // loss_utils.py ForCausalLMLoss: logits.float(), cross_entropy → log_softmax saves its fp32 output [b·s, V], which
        // nll_loss saves too: 128 × 256 × 4 B = 131,072 B.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "tie_word_embeddings": true}""");
        Assert.Equal(128L * 256 * 4, One(saved, ScalarType.Float32, B * S, 256).Bytes);
    }

    [Fact]
    public void Qwen3_q_and_k_norms_keep_fp32_copies_of_q_and_k_per_head()
    {
        // modeling_qwen3.py: query_states = self.q_norm(self.q_proj(x).view(b, s, a, d)) — a Qwen3RMSNorm (LlamaRMSNorm's code)
        // on [b, s, a = 4, d = 32]: its fp32 copy, 2·64·4·32·4 B = 65,536 B, once per layer; k_norm the same on n_kv = 2 heads.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "num_hidden_layers": 2, "vocab_size": 256}""");
        Assert.Equal(L, Count(saved, ScalarType.Float32, B, S, 4, 32));
        Assert.Equal(L, Count(saved, ScalarType.Float32, B, S, 2, 32));
        Assert.Equal(65_536, One(saved, ScalarType.Float32, B, S, 4, 32).Bytes);
    }

    [Fact]
    public void Gemma_RMSNorm_keeps_two_fp32_tensors_per_norm()
    {
        // modeling_gemma.py GemmaRMSNorm: output = self._norm(x.float()) (x.float() saved by pow and by x * rsqrt);
        // output = output * (1.0 + self.weight.float()) saves the normalised fp32 output for the weight's gradient:
        // two fp32 [b, s, h] per norm, 2 norms per layer + the final norm → 2 · 5 = 10 (32 KiB each).
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "gemma", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 2, "vocab_size": 256}""");
        Assert.Equal(2 * (2 * L + 1), Count(saved, ScalarType.Float32, B, S, 64));
        Assert.Equal(B * S * 64 * 4, One(saved, ScalarType.Float32, B, S, 64).Bytes);
    }

    [Fact]
    public void Gemma2_final_logit_softcapping_keeps_the_tanh_of_the_logits()
    {
        // modeling_gemma2.py Gemma2ForCausalLM.forward: logits = logits / cap; logits = torch.tanh(logits); logits = logits * cap.
        // tanh saves its bf16 output [b, s, V] = 2·64·256·2 B = 65,536 B; without soft-capping no bf16 logits are saved (the
        // loss works on the fp32 copy). Four GemmaRMSNorms per layer (sandwich norms) + the final one: 2 · 9 fp32 [b, s, h].
        const string config = """{"model_type": "gemma2", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "num_hidden_layers": 2, "vocab_size": 256, "sliding_window": 4096, "query_pre_attn_scalar": 32, "attn_logit_softcapping": 50.0, "final_logit_softcapping": CAP}""";
        IReadOnlyList<Tensor> capped = Saved(config.Replace("CAP", "30.0", StringComparison.Ordinal));
        Assert.Equal(65_536, One(capped, ScalarType.BFloat16, B, S, 256).Bytes);
        Assert.Equal(2 * (4 * L + 1), Count(capped, ScalarType.Float32, B, S, 64));
        Assert.Equal(0, Count(Saved(config.Replace("CAP", "null", StringComparison.Ordinal)), ScalarType.BFloat16, B, S, 256));
    }

    [Fact]
    public void Gemma3_q_and_k_norms_keep_two_fp32_tensors_per_head_norm()
    {
        // modeling_gemma3.py Gemma3Attention: q_norm and k_norm are Gemma3RMSNorm (GemmaRMSNorm's code) on q [a = 4 heads, d = 32]
        // and k [n_kv = 1 head]: x.float() and the normalised output, both fp32, per norm: 2 per layer each, of
        // b·s·a·d = 16,384 elements (64 KiB) for q and b·s·d = 4,096 for k. (Counted by elements: Gemma 3 norms the transposed
        // [b, a, s, d] view.)
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 2, "vocab_size": 256, "sliding_window": 4096, "query_pre_attn_scalar": 32}""");
        Assert.Equal(2 * L, Storages(saved.Where(t => t.Type == ScalarType.Float32 && t.Elements == B * S * 4 * 32)));
        Assert.Equal(2 * L, Storages(saved.Where(t => t.Type == ScalarType.Float32 && t.Elements == B * S * 1 * 32)));
    }

    [Fact]
    public void Phi3_fused_projections_keep_the_whole_fused_outputs_alive()
    {
        // modeling_phi3.py Phi3MLP: up_states = self.gate_up_proj(x); gate, up_states = up_states.chunk(2, dim=-1);
        // up_states = up_states * self.activation_fn(gate). silu saves gate and the mul saves up_states: both views of the one
        // [b, s, 2I] output, which stays whole: 2·64·320·2 B = 81,920 B per layer. Phi3Attention: value_states is a slice of
        // qkv = self.qkv_proj(x), [b, s, (a + 2·n_kv)·d] = 2·64·192·2 B = 49,152 B, which SDPA saves through v when no cache
        // is built (use_cache false; with the training forward's DynamicCache, SDPA gets the cache's torch.cat copy instead).
        const string config = """{"model_type": "phi3", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "use_cache": CACHE}""";
        IReadOnlyList<Tensor> saved = Saved(config.Replace("CACHE", "false", StringComparison.Ordinal));
        Assert.Equal(L, Storages(saved.Where(t => t.Type == ScalarType.BFloat16 && t.Elements == B * S * 160 && StorageBytes(t) >= 81_920)));
        Assert.Equal(L, Storages(saved.Where(t => t.Type == ScalarType.BFloat16 && t.Shape.SequenceEqual(new long[] { B, 4, S, 16 }) && StorageBytes(t) >= 49_152)));
        IReadOnlyList<Tensor> cached = Saved(config.Replace("CACHE", "true", StringComparison.Ordinal));
        Assert.Equal(0, Storages(cached.Where(t => t.Type == ScalarType.BFloat16 && t.Shape.SequenceEqual(new long[] { B, 4, S, 16 }) && StorageBytes(t) >= 49_152)));
    }

    [Fact]
    public void GPT_NeoX_parallel_residual_normalises_the_block_input_twice_and_keeps_it_once()
    {
        // modeling_gpt_neox.py GPTNeoXLayer.forward with use_parallel_residual: attention(input_layernorm(x)) and
        // mlp(post_attention_layernorm(x)) read the same x; under autocast layer_norm runs in fp32 and the fp32 residual stream
        // needs no copy, so both norms save x itself: one fp32 [b, s, h] per layer (32 KiB), + the final norm's input; the norm
        // outputs are saved only as the linears' bf16 casts. Sequential (use_parallel_residual false) normalises x and
        // x + attention: two per layer.
        const string config = """{"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "use_parallel_residual": PARALLEL}""";
        IReadOnlyList<Tensor> parallel = Saved(config.Replace("PARALLEL", "true", StringComparison.Ordinal), Precision.MixedBf16);
        Assert.Equal(L + 1, Count(parallel, ScalarType.Float32, B, S, 64));
        Assert.Equal(2 * L + 1, Count(Saved(config.Replace("PARALLEL", "false", StringComparison.Ordinal), Precision.MixedBf16), ScalarType.Float32, B, S, 64));
    }

    [Fact]
    public void GPT_NeoX_under_autocast_caches_fp32_values_and_copies_its_heads_major_attention_output()
    {
        // Under autocast the rotary tables take the fp32 embeddings' type (GPTNeoXRotaryEmbedding returns cos.to(x.dtype)), so
        // apply_rotary_pos_emb returns fp32 q and k. cache_utils.py DynamicLayer.lazy_initialization makes the empty keys and
        // values in the keys' type (self.dtype = key_states.dtype) and update() concatenates onto them; cat promotes over every
        // input, the skipped empty one included (TensorShape.cpp: out_dtype = at::native::result_type(tensors)), so the bf16
        // values are cached in fp32. Per layer the cache holds keys and values [b, a, s, d] = 2·4·64·16·4 B = 32,768 B each, which
        // nothing saves (SDPA, in autocast's lower-precision list, saves bf16 casts of them) and which live until the forward
        // returns: at the forward's peak 2 layers × 2 × 32,768 B = 131,072 B of cache.
        (List<Tensor> saved, ReplayEngine engine) = Forward("""{"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256}""", Precision.MixedBf16);
        Assert.Equal(131_072, engine.PeakBreakdown[(int)MemoryTag.KvCache]);

        // torch.cat([q_embed, q_pass]) also lays q out heads-major, [b, a, s, d]; the flash kernel's output keeps q's layout
        // (flash_api.cpp mha_fwd: out = at::empty_like(q_padded)), so sdpa_attention_forward's transpose(1, 2).contiguous()
        // copies it: the kernel saves its output and `dense` the copy. bf16 storages of b·s·h·2 = 2·64·64·2 = 16,384 B saved per
        // layer: the casts of both norms' fp32 outputs for query_key_value and dense_h_to_4h (2), the casts of q, k and v for
        // SDPA (3), the kernel's output and its copy (2); + lm_head's input cast: 7·L + 1.
        Assert.Equal(7 * L + 1, Storages(saved.Where(t => t.Type == ScalarType.BFloat16 && StorageBytes(t) == B * S * 64 * 2)));
    }

    [Fact]
    public void Llama_under_autocast_caches_its_values_in_the_fp32_keys_type()
    {
        // modeling_llama.py under autocast: k = k_proj(x) is bf16, the rotary tables fp32 (LlamaRotaryEmbedding returns
        // cos.to(x.dtype), x the fp32 embeddings), so apply_rotary_pos_emb's k * cos + rotate_half(k) * sin is fp32; v stays bf16.
        // DynamicLayer caches both by torch.cat onto empty tensors of the keys' type, so the values become fp32 too: per layer
        // [b, n_kv = 2, s, d = 16] fp32 = 2·2·64·16·4 B = 16,384 B each for keys and values, none saved (SDPA saves bf16
        // casts): 2 layers × 2 × 16,384 B = 65,536 B at the forward's peak.
        (_, ReplayEngine engine) = Forward("""{"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 256}""", Precision.MixedBf16);
        Assert.Equal(65_536, engine.PeakBreakdown[(int)MemoryTag.KvCache]);
    }

    [Fact]
    public void GPT_NeoX_and_BLOOM_drop_with_hidden_dropout()
    {
        // modeling_gpt_neox.py: emb_dropout, post_attention_dropout and post_mlp_dropout are nn.Dropout(config.hidden_dropout):
        // 1 + 2·L bool masks [b, s, h] when it is above 0 (configuration_gpt_neox.py default 0.0: none). modeling_bloom.py:
        // BloomAttention and BloomMLP end in dropout_add(x, residual, hidden_dropout, training): 2·L, the embeddings undropped.
        const string neox = """{"model_type": "gpt_neox", "hidden_size": 64, "intermediate_size": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256 DROP}""";
        Assert.Equal(1 + 2 * L, Count(Saved(neox.Replace(" DROP", ", \"hidden_dropout\": 0.1", StringComparison.Ordinal)), ScalarType.Bool, B, S, 64));
        Assert.Equal(0, Count(Saved(neox.Replace(" DROP", "", StringComparison.Ordinal)), ScalarType.Bool, B, S, 64));
        const string bloom = """{"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 320, "hidden_dropout": 0.1}""";
        Assert.Equal(2 * L, Count(Saved(bloom), ScalarType.Bool, B, S, 64));
    }

    [Fact]
    public void GPT_J_scores_its_attention_in_fp32_as_its_eager_attention_does()
    {
        // modeling_gptj.py: GPTJ_ATTENTION_CLASSES has eager and flash_attention_2 only, so transformers runs GPTJAttention._attn:
        // query.to(float32), key.to(float32), matmul (saving the fp32 q copy and k: 2 per layer, [b, a, s, d] = 2·4·64·16·4 B),
        // softmax in fp32 (saving its output [b, a, s, s], 2·4·64·64·4 B = 131,072 B), .to(value.dtype) (the bf16
        // probabilities, saved by the second matmul). rotary_dim 8 of d = 16 rotates half of each head.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "gptj", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 256, "n_positions": 128, "rotary_dim": 8}""");
        Assert.Equal(L, Count(saved, ScalarType.Float32, B, 4, S, S));
        Assert.Equal(131_072, One(saved, ScalarType.Float32, B, 4, S, S).Bytes);
        Assert.Equal(L, Count(saved, ScalarType.BFloat16, B, 4, S, S));
        Assert.Equal(2 * L, Count(saved, ScalarType.Float32, B, 4, S, 16));
    }

    [Fact]
    public void GPT_J_reads_its_rotary_dimension()
    {
        // configuration_gptj.py: rotary_dim = 64 by default; GPTJAttention rotates key[..., :rotary_dim], all of it when null.
        const string config = """{"model_type": "gptj", "n_embd": 4096, "n_head": 16, "n_layer": 2, "vocab_size": 256 ROTARY}""";
        Assert.Equal(64, Read(config.Replace(" ROTARY", "", StringComparison.Ordinal)).RotaryDimension);
        Assert.Equal(32, Read(config.Replace(" ROTARY", ", \"rotary_dim\": 32", StringComparison.Ordinal)).RotaryDimension);
        Assert.Null(Read(config.Replace(" ROTARY", ", \"rotary_dim\": null", StringComparison.Ordinal)).RotaryDimension);
    }

    [Fact]
    public void OPT_drops_twice_per_layer_and_its_ReLU_keeps_one_tensor_for_two_ops()
    {
        // modeling_opt.py OPTDecoderLayer: nn.functional.dropout(p=config.dropout) after self_attn and after fc2 (the decoder
        // does not drop the embeddings): a bool mask [b, s, h] each, 2 per layer (8 KiB). activation_function "relu": relu saves
        // its output (threshold_backward(grad, result)) and fc2 saves the same tensor: one bf16 [b·s, I] per layer (64 KiB),
        // where GELU would keep fc1's output and its own (two).
        const string config = """{"model_type": "opt", "hidden_size": 64, "ffn_dim": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 128, "word_embed_proj_dim": 64, "dropout": 0.1, "activation_function": "ACT"}""";
        IReadOnlyList<Tensor> saved = Saved(config.Replace("ACT", "relu", StringComparison.Ordinal));
        Assert.Equal(2 * L, Count(saved, ScalarType.Bool, B, S, 64));
        Assert.Equal(B * S * 64, One(saved, ScalarType.Bool, B, S, 64).Bytes);
        Assert.Equal(L, Storages(saved.Where(t => t.Type == ScalarType.BFloat16 && t.Elements == B * S * 256)));
        Assert.Equal(2 * L, Storages(Saved(config.Replace("ACT", "gelu", StringComparison.Ordinal)).Where(t => t.Type == ScalarType.BFloat16 && t.Elements == B * S * 256)));
    }

    [Fact]
    public void OPT_refuses_an_activation_it_does_not_replay()
    {
        Assert.Throws<ModelFormatException>(() => Read("""{"model_type": "opt", "hidden_size": 64, "ffn_dim": 256, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "max_position_embeddings": 128, "activation_function": "swish"}"""));
    }

    [Fact]
    public void Falcon_parallel_attention_feeds_one_normed_input_to_both_branches()
    {
        // modeling_falcon.py FalconDecoderLayer (parallel_attn, not new_decoder_architecture): attention_layernorm_out =
        // self.input_layernorm(hidden_states) goes to self_attention and to mlp: one bf16 [b, s, h] (16 KiB) that
        // query_key_value and dense_h_to_4h both save. Per layer the bf16 [b, s, h] kept: the norm's input, that shared
        // output, and dense's input (the merged heads); + ln_f's input and its output, which lm_head saves: 3·L + 2. The new
        // decoder architecture (ln_attn and ln_mlp) normalises twice: 4·L + 2.
        IReadOnlyList<Tensor> mqa = Saved("""{"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "multi_query": true, "parallel_attn": true}""");
        Assert.Equal(3 * L + 2, Count(mqa, ScalarType.BFloat16, B, S, 64));
        Assert.Equal(B * S * 64 * 2, One(mqa, ScalarType.BFloat16, B, S, 64).Bytes);
        IReadOnlyList<Tensor> gqa = Saved("""{"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "new_decoder_architecture": true}""");
        Assert.Equal(4 * L + 2, Count(gqa, ScalarType.BFloat16, B, S, 64));
    }

    [Fact]
    public void Falcon_multi_query_attention_runs_SDPA_on_the_math_backend_with_fp32_scores()
    {
        // modeling_falcon.py FalconAttention.forward calls F.scaled_dot_product_attention(q [b, 4, s, 16], k and v [b, 1, s, 16],
        // is_causal=True) without enable_gqa. sdp_utils_cpp.h check_batch_size_and_num_heads_dense passes unequal heads only
        // with enable_gqa, so flash, memory-efficient and cuDNN all refuse and _scaled_dot_product_attention_math runs
        // (attention.cpp): bf16 q, k, v copied to fp32, q scaled, k scaled and broadcast to the 4 heads by matmul's
        // expand().reshape() copy, fp32 scores, softmax, matmul with v broadcast the same way. Per layer the graph keeps:
        // the softmax's fp32 output [b, a, s, s] = 2·4·64·64·4 B = 131,072 B (saved by softmax and by the second bmm: one
        // storage), and three fp32 [b, a, s, d] = 2·4·64·16·4 B = 32,768 B (the scaled q and the broadcast k saved by the first
        // bmm, the broadcast v by the second).
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "multi_query": true, "parallel_attn": true}""");
        Assert.Equal(L, Count(saved, ScalarType.Float32, B, 4, S, S));
        Assert.Equal(131_072, One(saved, ScalarType.Float32, B, 4, S, S).Bytes);
        Assert.Equal(3 * L, Count(saved, ScalarType.Float32, B, 4, S, 16));
        Assert.Equal(32_768, One(saved, ScalarType.Float32, B, 4, S, 16).Bytes);

        // The new decoder architecture broadcasts k and v to all heads in _split_heads (torch.broadcast_to, then a reshape
        // copy): equal heads, a fused kernel, no [b, a, s, s] scores.
        IReadOnlyList<Tensor> equal = Saved("""{"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_kv_heads": 2, "num_hidden_layers": 2, "vocab_size": 256, "new_decoder_architecture": true}""");
        Assert.Equal(0, Count(equal, ScalarType.Float32, B, 4, S, S));
    }

    [Fact]
    public void SDPA_math_backend_s_safe_softmax_holds_a_bool_mask_of_the_scores_shape_while_it_runs()
    {
        // attention.cpp _safe_softmax: out = softmax(self); masked = self.isneginf() (bool, the scores' shape); masked_rows =
        // all(masked, -1, keepdim); where_out(out, masked_rows, 0, out) in out's own storage. Falcon's multi-query inference
        // shape in small, no grad: q bf16 [1, 2, 64, 16], k and v [1, 1, 64, 16], is_causal. Live when masked_rows is made, in
        // blocks of at least 512 B: the fp32 copies of q (8,192 B), k and v (4,096 B each), the scaled q (8,192), the fp32
        // causal bias [64, 64] (16,384), the scores [1, 2, 64, 64] fp32 (32,768), the softmax's output (32,768), masked
        // (8,192) and masked_rows [1, 2, 64, 1] (128 B, a 512 B block) = 115,200 B; the scaled and broadcast k are gone after
        // the first matmul, and nothing later in the function holds more (the output's tail peaks at 98,304 B).
        var engine = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { GradEnabled = false };
        Tensor q = engine.Empty([1, 2, S, 16], ScalarType.BFloat16);
        Tensor k = engine.Empty([1, 1, S, 16], ScalarType.BFloat16);
        Tensor v = engine.Empty([1, 1, S, 16], ScalarType.BFloat16);
        long before = engine.Allocator.Allocated;
        engine.StartTracking();
        Blocks.SdpaMath(engine, q, k, v, repeats: 2, enableGqa: false);
        Assert.Equal(115_200, engine.Allocator.PeakAllocated - before);
    }

    [Fact]
    public void GPT_BigCode_drops_like_GPT2()
    {
        // modeling_gpt_bigcode.py: GPTBigCodeModel.drop (embd_pdrop) on the embeddings, GPTBigCodeAttention.resid_dropout and
        // GPTBigCodeMLP.dropout (resid_pdrop), both 0.1 by default (configuration_gpt_bigcode.py): 1 + 2·L bool masks
        // [b, s, h] of 8 KiB.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "gpt_bigcode", "n_embd": 64, "n_head": 4, "n_layer": 2, "vocab_size": 256, "n_positions": 128, "multi_query": true}""");
        Assert.Equal(1 + 2 * L, Count(saved, ScalarType.Bool, B, S, 64));
        Assert.Equal(B * S * 64, One(saved, ScalarType.Bool, B, S, 64).Bytes);
    }

    [Fact]
    public void BLOOM_keeps_its_eager_softmax_in_fp32_and_the_probabilities_in_bf16()
    {
        // modeling_bloom.py BloomAttention (no SDPA: the ALiBi bias enters through baddbmm): attention_probs =
        // F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query_layer.dtype); bmm(attention_probs, value). The softmax
        // saves its fp32 output [b, a, s, s] = 2·4·64·64·4 B = 131,072 B, the bmm the bf16 probabilities: one each per layer.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "bloom", "hidden_size": 64, "n_head": 4, "n_layer": 2, "vocab_size": 320}""");
        Assert.Equal(L, Count(saved, ScalarType.Float32, B, 4, S, S));
        Assert.Equal(131_072, One(saved, ScalarType.Float32, B, 4, S, S).Bytes);
        Assert.Equal(L, Count(saved, ScalarType.BFloat16, B, 4, S, S));
    }

    [Fact]
    public void BERT_drops_its_attention_probabilities_with_a_mask_per_layer()
    {
        // modeling_bert.py BertSelfAttention (eager): attention_probs = self.dropout(attention_probs) with
        // attention_probs_dropout_prob 0.1: a bool mask [b, a, s, s] (32 KiB) per layer; hidden_dropout_prob 0.1 on the
        // embeddings and after each block's attention output and output dense: 1 + 2 per layer bool [b, s, h].
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 128, "type_vocab_size": 2}""");
        Assert.Equal(L, Count(saved, ScalarType.Bool, B, 4, S, S));
        Assert.Equal(B * 4 * S * S, One(saved, ScalarType.Bool, B, 4, S, S).Bytes);
        Assert.Equal(1 + 2 * L, Count(saved, ScalarType.Bool, B, S, 64));
    }

    [Fact]
    public void BERT_under_the_2022_Trainer_keeps_each_softmax_input_as_torch_1_10_did()
    {
        // torch 1.10 derivatives.yaml: `_softmax: self: _softmax_backward_data(grad, result, dim, self)` (quoted in pytorch
        // issue #64000; PR #66018 dropped `self` after the 1.10 branch cut). BertSelfAttention in fp32 keeps three fp32
        // [b, a, s, s] tensors per layer: the masked scores (the softmax's input), the probabilities (its output) and the
        // dropped probabilities (saved by matmul(attention_probs, value_layer)); 2·4·64·64·4 B = 131,072 B each.
        IReadOnlyList<Tensor> saved = Saved("""{"model_type": "bert", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 256, "vocab_size": 256, "max_position_embeddings": 128, "type_vocab_size": 2}""", Precision.Fp32);
        Assert.Equal(3 * L, Count(saved, ScalarType.Float32, B, 4, S, S));
        Assert.Equal(131_072, One(saved, ScalarType.Float32, B, 4, S, S).Bytes);
    }

    [Fact]
    public void PEFT_adapters_on_a_16_bit_base_under_autocast_each_keep_their_own_16_bit_copy_of_the_input()
    {
        // peft lora/layer.py Linear.forward: `x = self._cast_input_dtype(x, lora_A.weight.dtype)` whether or not autocast is on
        // (bnb.py's Linear4bit casts only when `not torch.is_autocast_enabled()`): the fp32 adapter (autocast_adapter_dtype)
        // gets an fp32 copy of the bf16 x, and lora_A under autocast casts it back to a new bf16 [b, s, h] tensor that its mm
        // saves. q, k and v read one x, so adapting k and v beside q keeps two more such copies per layer (2·64·64·2 B each)
        // where reading x itself would keep none.
        const string llama = """{"model_type": "llama", "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4, "num_key_value_heads": 4, "num_hidden_layers": 2, "vocab_size": 256, "torch_dtype": "bfloat16"}""";
        static LoraSettings Targets(params string[] modules) => new(8, null, new LoraTargets(null, modules), false);
        int qOnly = Count(Saved(llama, Precision.MixedBf16, Targets("q_proj")), ScalarType.BFloat16, B, S, 64);
        int qkv = Count(Saved(llama, Precision.MixedBf16, Targets("q_proj", "k_proj", "v_proj")), ScalarType.BFloat16, B, S, 64);
        Assert.Equal(2 * L, qkv - qOnly);
        Assert.Equal(16_384, One(Saved(llama, Precision.MixedBf16, Targets("q_proj")), ScalarType.BFloat16, B, S, 64).Bytes);
    }

    /// <summary>
    /// One training forward of the config (as <c>Replayer</c> runs it: the ids, autocast for mixed precision, labels) and the
    /// tensors its graph saves for backward, as the nodes hold them (a tensor saved by two nodes, or two views of one
    /// allocation, appear twice; the counts below are of distinct storages).
    /// </summary>
    private static List<Tensor> Saved(string config, Precision precision = Precision.Bf16, LoraSettings? lora = null) => Forward(config, precision, lora).Saved;

    /// <summary><see cref="Saved"/>, with the engine that ran the forward (its peak breakdown by memory tag).</summary>
    private static (List<Tensor> Saved, ReplayEngine Engine) Forward(string config, Precision precision, LoraSettings? lora = null)
    {
        ModelArchitecture model = Read(config);
        ReplayOptions options = ReplayPlan.For(model, new Scenario
        {
            Model = new ModelReference.InlineConfig(JsonDocument.Parse(config).RootElement.Clone()),
            Mode = lora is null ? Mode.Training : Mode.Lora, Precision = precision, Batch = B, Seq = S, Engine = Engine.Transformers,
            Lora = lora,
        }, gpu: null).Options;
        var engine = new ReplayEngine(options.Capacity, options.WorkspaceBytes, options.Allocator) { SoftmaxSavesInput = options.SoftmaxSavesInput };
        ModelProgram program = Replayer.Program(engine, model, options);
        program.Ids = engine.Empty([B, S], ScalarType.Int64, MemoryTag.Inputs);
        engine.StartTracking();
        engine.SetPhase("step1.forward");
        engine.Autocast = options.Autocast;
        ForwardResult result = program.Forward(labels: true, training: true);
        var nodes = new HashSet<GradNode>(ReferenceEqualityComparer.Instance);
        var saved = new List<Tensor>();
        var work = new Stack<GradNode>([result.Loss!.Fn!]);
        while (work.TryPop(out GradNode? node))
        {
            if (!nodes.Add(node))
            {
                continue;
            }

            saved.AddRange(node.Saved.Where(t => t?.Storage is not null));

            foreach (GradNode? edge in node.Edges)
            {
                if (edge is not null)
                {
                    work.Push(edge);
                }
            }
        }

        return (saved, engine);
    }

    private static ModelArchitecture Read(string config) => ConfigJsonReader.Read(Encoding.UTF8.GetBytes(config), "config.json");

    /// <summary>Allocations kept for backward through a saved tensor of this type and shape.</summary>
    private static int Count(IReadOnlyList<Tensor> saved, ScalarType type, params long[] shape) =>
        Storages(saved.Where(t => t.Type == type && t.Shape.SequenceEqual(shape)));

    private static int Storages(IEnumerable<Tensor> tensors) =>
        tensors.Select(t => t.Storage!).Distinct(ReferenceEqualityComparer.Instance).Count();

    private static Tensor One(IReadOnlyList<Tensor> saved, ScalarType type, params long[] shape) =>
        saved.First(t => t.Type == type && t.Shape.SequenceEqual(shape));

    private static long StorageBytes(Tensor t) => t.Storage!.Size;
}
