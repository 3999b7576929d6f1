using LlmMemory.Catalog;
using LlmMemory.Estimation.Weights;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

public sealed class WeightStorageTests
{
    private static ModelArchitecture Model(string alias) => ModelCatalog.All.Single(m => m.Alias == alias).Architecture;

    private static WeightLayout Layout(string alias, string format) =>
        WeightStorage.Layout(Model(alias), WeightFormats.Parse(format), DataTypes.BF16);

    [Fact]
    public void Llama_3_8B_at_Q4_K_M_weighs_the_tensor_bytes_of_the_llama_quant_rules()
    {
        // llama-quant.cpp rules (docs/memory-model.md §1.8): attn_v and ffn_down are Q6_K in the 16 use_more_bits layers
        // and Q4_K elsewhere, output Q6_K, token_embd Q4_K, norms F32. Q4_K = 144 B per 256, Q6_K = 210 B per 256.
        //   q, k, o, gate, up in all 32 layers: (2·4096² + 1024·4096 + 2·14336·4096) / 256 · 144 = 87,293,952 B each layer
        //   v + down: (1024·4096 + 14336·4096) / 256 = 245,760 blocks; × 210 = 51,609,600 (16 layers), × 144 = 35,389,440 (16)
        //   norms (2 per layer + final) × 4096 × 4 B = 1,064,960; token_embd 128256·4096/256·144 = 295,501,824;
        //   output 128256·4096/256·210 = 430,940,160.
        // memory-model.md prints 4,912,898,304: 256 B more, the F32 rope_freqs (64 floats) that convert_hf_to_gguf.py adds
        // only for Llama-3.1-style rope scaling, which Meta-Llama-3-8B's config does not have.
        long expected = 87_293_952L * 32 + 51_609_600L * 16 + 35_389_440L * 16 + 1_064_960 + 295_501_824 + 430_940_160;
        Assert.Equal(4_912_898_304 - 256, expected);
        Assert.Equal(expected, Layout("llama-3-8b", "q4_k_m").Bytes);
    }

    [Fact]
    public void NF4_with_double_quantization_keeps_embeddings_and_head_in_16_bit()
    {
        // memory-model.md §1.3 worked example: Llama-3-8B NF4+DQ ≈ 3.60 GB of quantized linears + 2.10 GB of embeddings and
        // lm_head = 5.70 GB, not the naive 8.03e9 × 0.5 = 4.02 GB. Linears: 32 × (2·4096² + 2·1024·4096 + 3·14336·4096)
        // = 6,979,321,856 weights; codes n/2 + one byte per 64 + one fp32 per 64·256 + a 4-byte offset per tensor.
        // Every linear has a multiple of 64·256 weights, so: n/2 + n/64 + 4·n/(64·256) + 4 per tensor (224 tensors).
        long linears = 6_979_321_856;
        long quantized = linears / 2 + linears / 64 + 4 * (linears / (64 * 256)) + 4 * 224;
        long embeddings = 2L * 128256 * 4096 * 2;
        long norms = (2L * 4096 * 32 + 4096) * 2;
        WeightLayout layout = Layout("llama-3-8b", "nf4");
        Assert.Equal(quantized + embeddings + norms, layout.Bytes);
        Assert.Equal(5.70, layout.Bytes / 1e9, 2);
    }

    [Fact]
    public void Plain_formats_store_every_tensor_in_their_type() =>
        // Llama-3.1-8B in bf16: 8,030,261,248 × 2 B (vLLM logged "Model loading took 14.99 GiB", memory-model.md §1.1).
        Assert.Equal(16_060_522_496, Layout("llama-3.1-8b", "bf16").Bytes);

    [Fact]
    public void K_quants_fall_back_when_a_row_is_not_a_multiple_of_256()
    {
        // SmolLM2-135M: hidden 576 and FFN 1536 are not multiples of 256 (validation/README "K-quant fallback"), so the
        // Q4_K_M file is mostly Q5_0 (llama-quant.cpp tensor_type_fallback: Q4_K → Q5_0, Q6_K → Q8_0).
        WeightLayout layout = Layout("smollm2-135m", "q4_k_m");
        Assert.Contains(layout.Tensors, t => t.Storage == "Q5_0");
        Assert.DoesNotContain(layout.Tensors, t => t.Storage == "Q4_K" && t.Tensor.InFeatures % 256 != 0);
    }

    [Fact]
    public void GPTQ_4_bit_group_128_costs_about_4_16_bits_per_linear_weight()
    {
        // memory-model.md §1.4: bits/weight = b + (16 + b)/g + 32/N, 4.164 for 4-bit, g = 128, N = 4096.
        WeightLayout layout = Layout("llama-3-8b", "gptq-int4");
        StoredTensor q = layout.Tensors.First(t => t.Tensor.Module == "q_proj");
        Assert.Equal(4 + 20.0 / 128 + 32.0 / 4096, q.Bytes * 8.0 / q.Tensor.Elements, 6);
    }

    [Fact]
    public void Llama_3_1_405B_Instruct_FP8_keeps_the_modules_its_config_lists_in_bf16()
    {
        // The checkpoint's quantization_config (data/model-variants.json, from Hugging Face's conversion script
        // quantize_fp8_llama.py): fbgemm_fp8, modules_to_not_convert = model.layers.0, model.layers.125, lm_head and
        // model.layers.{1..124}.self_attn. So only the MLP linears of blocks 1..124 are fp8, each with one fp32 scale per
        // output row (vLLM fbgemm_fp8.py: weight_scale of shape [output rows, 1], float32).
        // Llama-3.1-405B (data/models/llama-3.1-405b.json): hidden 16384, 128 heads and 8 KV heads of 128, MLP 53248,
        // vocab 128256, 126 blocks, untied head.
        //   MLP per block: 3 × 16384 × 53248 = 2,617,245,696 weights; rows 53248 (gate) + 53248 (up) + 16384 (down).
        //   attention per block: 16384 × (16384 + 1024 + 1024) + 16384 × 16384 = 570,425,344 weights.
        long mlp = 3L * 16384 * 53248;
        long attention = (16384L * (16384 + 1024 + 1024)) + (16384L * 16384);
        Assert.Equal(2_617_245_696, mlp);
        Assert.Equal(570_425_344, attention);
        long fp8Mlp = 124 * (mlp + (4 * (53248L + 53248 + 16384)));           // blocks 1..124: 1 B a weight + fp32 row scales
        long bf16Blocks = 2 * (attention + mlp) * 2;                           // blocks 0 and 125 whole, 2 B a weight
        long bf16Attention = 124 * attention * 2;                              // attention of blocks 1..124
        long embeddingsAndHead = 2L * 128256 * 16384 * 2;                      // embed_tokens and lm_head
        long norms = ((2L * 126) + 1) * 16384 * 2;                             // two RMSNorms a block and the final one
        Assert.True(ModelCatalog.TryFind("meta-llama/Llama-3.1-405B-Instruct-FP8", out CatalogModel model));
        WeightLayout layout = WeightStorage.Layout(model.Architecture, WeightFormats.Fp8, DataTypes.BF16);
        Assert.Equal(fp8Mlp + bf16Blocks + bf16Attention + embeddingsAndHead + norms, layout.Bytes);
    }

    [Fact]
    public void A_module_to_not_convert_names_that_module_and_not_its_numeric_neighbours()
    {
        // transformers (integrations/fbgemm_fp8.py) skips a linear when `key + "."` is in its name, so "model.layers.1" keeps
        // block 1 in 16 bits and leaves blocks 10 and 11 quantized; "mlp.gate" (the MoE router's name in Qwen-MoE configs)
        // would not match gate_proj either.
        string config = """
            {"config": {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
             "num_hidden_layers": 12, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000,
             "max_position_embeddings": 2048, "torch_dtype": "bfloat16",
             "quantization_config": {"quant_method": "fp8", "modules_to_not_convert": ["model.layers.1", "mlp.gate"]}}}
            """;
        using var document = System.Text.Json.JsonDocument.Parse(config);
        ModelArchitecture model = ModelResolver.Resolve(new ModelReference.InlineConfig(document.RootElement.GetProperty("config").Clone())).Architecture!;
        WeightLayout layout = WeightStorage.Layout(model, WeightFormats.Fp8, DataTypes.BF16);
        string[] kept = layout.Tensors.Where(t => t.Tensor.Name.Contains("_proj", StringComparison.Ordinal) && t.Storage == "bf16")
            .Select(t => t.Tensor.Name).ToArray();
        Assert.Equal(7, kept.Length);                                          // q, k, v, o, gate, up, down of block 1
        Assert.All(kept, name => Assert.StartsWith("model.layers.1.", name, StringComparison.Ordinal));
    }
}
