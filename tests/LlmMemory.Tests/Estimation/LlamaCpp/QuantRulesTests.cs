using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Estimation.Weights;
using LlmMemory.Numerics;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>llama-quant.cpp's type per tensor (ggml-org/llama.cpp src/llama-quant.cpp, llama_tensor_get_type_impl).</summary>
public sealed class QuantRulesTests
{
    private static Dictionary<string, int> Counts(string config, string ftype, bool currentRule)
    {
        var model = LlamaCppModels.Read(config);
        IReadOnlyDictionary<string, DataType> types = QuantRules.TypesOf(GgufTensorList.Of(model), LlamaCppArch.Of(model),
            GgufFileType.From(WeightFormats.Parse(ftype)), currentRule);
        return types.Values.GroupBy(t => t.Name).ToDictionary(g => g.Key, g => g.Count());
    }

    [Fact]
    public void Pythia_Q4_K_M_at_b4823_has_the_type_counts_of_the_ggml_ci_log()
    {
        // ggml-org/ci e966aaa7, llama.cpp/56/4747beac…/ggml-4-x86-cuda-v100/README.md, pythia_2_8b q4_k (build 4823):
        // "type f32: 258 tensors", "type q4_K: 81 tensors", "type q5_K: 32 tensors", "type q6_K: 17 tensors".
        Dictionary<string, int> counts = Counts(LlamaCppModels.Pythia28B, "q4_k_m", currentRule: false);
        Assert.Equal(new Dictionary<string, int> { ["F32"] = 258, ["Q4_K"] = 81, ["Q5_K"] = 32, ["Q6_K"] = 17 }, counts);
    }

    [Fact]
    public void Pythia_Q3_K_M_at_b4823_has_the_type_counts_of_the_ggml_ci_log()
    {
        // Same log, pythia_2_8b q3_k: "type f32: 258", "type q3_K: 33", "type q4_K: 94", "type q5_K: 2", "type q6_K: 1".
        Dictionary<string, int> counts = Counts(LlamaCppModels.Pythia28B, "q3_k_m", currentRule: false);
        Assert.Equal(new Dictionary<string, int> { ["F32"] = 258, ["Q3_K"] = 33, ["Q4_K"] = 94, ["Q5_K"] = 2, ["Q6_K"] = 1 }, counts);
    }

    [Fact]
    public void Current_master_counts_fused_QKV_with_attn_v()
    {
        // llama-quant.cpp category_is_attn_v() includes ATTENTION_QKV, so under Q4_K_M the 32 attn_qkv tensors follow
        // use_more_bits(i, 32): true for i < 4, i ≥ 28 and every third in between ((i − 4) % 3 == 2: 6, 9, …, 27) — 4 + 4 + 8
        // = 16 Q6_K and 16 Q4_K; ffn_down does the same (16 Q6_K), plus output Q6_K: Q6_K 33, Q4_K 32 + 16 + 32 (attn_output,
        // ffn_up) + 1 (token_embd) = 81 + 16 = 97.
        Dictionary<string, int> counts = Counts(LlamaCppModels.Pythia28B, "q4_k_m", currentRule: true);
        Assert.Equal(33, counts["Q6_K"]);
        Assert.Equal(97, counts["Q4_K"]);
        Assert.False(counts.ContainsKey("Q5_K"));
    }

    [Fact]
    public void Q4_K_is_llama_quantize_s_alias_for_Q4_K_M()
    {
        // tools/quantize/quantize.cpp QUANT_OPTIONS: { "Q4_K", LLAMA_FTYPE_MOSTLY_Q4_K_M, "alias for Q4_K_M" }.
        Assert.Same(WeightFormats.Parse("q4_k_m"), WeightFormats.Parse("q4_k"));
        Assert.Same(WeightFormats.Parse("q5_k_m"), WeightFormats.Parse("q5_k"));
    }

    [Fact]
    public void Rows_that_are_not_whole_k_blocks_fall_back_as_tensor_type_fallback_says()
    {
        // SmolLM2-135M: n_embd 576 and n_ff 1536. Only ffn_down (rows of 1536 = 6 × 256) can hold a k-quant; every row of 576 falls
        // back, Q4_K → Q5_0 and Q6_K → Q8_0, and the tied token_embd (output rule: 576 % 256 ≠ 0) becomes Q8_0.
        // ffn_down: use_more_bits(i, 30) for i < 3, i ≥ 26 and (i − 3) % 3 == 2 (5, 8, …, 23: 7) = 14 Q6_K, 16 Q4_K.
        // attn_v: the same 14 layers want Q6_K → Q8_0; the other 16 want Q4_K → Q5_0. So Q8_0 = 14 + 1, Q5_0 = 30 × 5 + 16 = 166.
        Dictionary<string, int> counts = Counts(LlamaCppModels.SmolLm2, "q4_k_m", currentRule: true);
        Assert.Equal(new Dictionary<string, int> { ["F32"] = 61, ["Q5_0"] = 166, ["Q4_K"] = 16, ["Q6_K"] = 14, ["Q8_0"] = 15 }, counts);
    }

    [Fact]
    public void A_legacy_type_whose_block_does_not_divide_the_row_is_refused_like_llama_quantize()
    {
        // Rows of 100 are not 32-element blocks. The first tensor visited is output.weight, which the output rule makes Q8_0
        // (nx % block ≠ 0), and tensor_type_fallback has no case for Q8_0 or Q4_0: "no tensor type fallback is defined".
        const string odd = """{"model_type": "llama", "hidden_size": 100, "intermediate_size": 256, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 1000}""";
        var error = Assert.Throws<FormatException>(() => Counts(odd, "q4_0", currentRule: true));
        Assert.Contains("output.weight", error.Message, StringComparison.Ordinal);
        Assert.Contains("no fallback for Q8_0", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_70B_llama_gives_attn_v_five_bits_where_Q4_K_M_would_give_four()
    {
        // LLM_TYPE_70B (80 layers with GQA): "if (new_type == GGML_TYPE_Q3_K || new_type == GGML_TYPE_Q4_K) new_type = GGML_TYPE_Q5_K".
        // use_more_bits(i, 80) holds for i < 10, i ≥ 70 and (i − 10) % 3 == 2 (12, 15, …, 69: 20) = 40 layers of Q6_K; the
        // other 40 would be Q4_K and become Q5_K.
        var model = LlmMemory.Catalog.ModelCatalog.All.Single(m => m.Alias == "llama-2-70b").Architecture;
        var types = QuantRules.TypesOf(GgufTensorList.Of(model), LlamaCppArch.Of(model), GgufFileType.From(WeightFormats.Parse("q4_k_m")));
        var attnV = types.Where(t => t.Key.EndsWith(".attn_v.weight", StringComparison.Ordinal)).GroupBy(t => t.Value.Name).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(new Dictionary<string, int> { ["Q6_K"] = 40, ["Q5_K"] = 40 }, attnV);
    }
}
