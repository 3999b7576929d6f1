using LlmMemory.Catalog;
using LlmMemory.Formats.Gguf;
using LlmMemory.Models;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests.Formats;

public sealed class GgufTensorNamesTests
{
    public static TheoryData<string> CatalogModelsWithGgufArchitectures() =>
        new(ModelCatalog.All.Where(m => GgufFromConfig.Supports(m.Architecture)).Select(m => m.Alias));

    [Theory]
    [MemberData(nameof(CatalogModelsWithGgufArchitectures))]
    public void A_config_tensor_named_as_llama_cpp_names_it_is_described_back_as_the_same_module(string alias)
    {
        // Both directions read one table, so naming a tensor and describing the name must give back its role, module and block.
        Assert.True(ModelCatalog.TryFind(alias, out CatalogModel model));
        ModelArchitecture a = model.Architecture;
        foreach (TensorSpec t in a.Tensors.Tensors)
        {
            string name = GgufTensorNames.NameOf(t, a.ModelType);
            (GgufTensorNames.Meaning meaning, int? layer) = GgufTensorNames.Describe(name, a.ModelType)
                ?? throw new Xunit.Sdk.XunitException($"{t.Name} → {name}, a name the table does not describe.");
            Assert.True((t.Role, t.Module, t.Layer) == (meaning.Role, meaning.Module, layer),
                $"{t.Name} ({t.Role}, {t.Module}) → {name} → ({meaning.Role}, {meaning.Module})");
        }
    }

    [Theory]
    // llama.cpp gguf-py/gguf/tensor_mapping.py: post_attention_layernorm is FFN_NORM for Llama and Gemma 1, ATTN_POST_NORM
    // for Gemma 2 ("# gemma2 olmo2"), whose pre_feedforward_layernorm is FFN_NORM (constants.py MODEL_TENSORS[GEMMA] has no
    // ATTN_POST_NORM; MODEL_TENSORS[GEMMA2] has both).
    [InlineData("llama", "post_attention_layernorm", "blk.2.ffn_norm.weight")]
    [InlineData("gemma", "post_attention_layernorm", "blk.2.ffn_norm.weight")]
    [InlineData("gemma2", "post_attention_layernorm", "blk.2.post_attention_norm.weight")]
    [InlineData("gemma2", "pre_feedforward_layernorm", "blk.2.ffn_norm.weight")]
    [InlineData("gemma3_text", "post_feedforward_layernorm", "blk.2.post_ffw_norm.weight")]
    public void Block_norms_get_the_names_convert_hf_to_gguf_gives_each_family(string modelType, string module, string expected)
    {
        var norm = new TensorSpec($"model.layers.2.{module}.weight", [64], TensorRole.Norm, TensorForm.Vector, 2, module);
        Assert.Equal(expected, GgufTensorNames.NameOf(norm, modelType));
    }

    [Fact]
    public void A_router_weight_and_its_score_bias_get_different_names()
    {
        // DeepSeek-V3's mlp.gate.weight is ffn_gate_inp and its e_score_correction_bias exp_probs_b (tensor_mapping.py
        // FFN_GATE_INP, FFN_EXP_PROBS_B); both are the module "gate". convert_hf_to_gguf.py renames the bias to
        // e_score_correction.bias first, so it keeps the .bias suffix.
        var weight = new TensorSpec("model.layers.3.mlp.gate.weight", [256, 7168], TensorRole.Router, TensorForm.LinearWeight, 3, "gate");
        var bias = new TensorSpec("model.layers.3.mlp.gate.e_score_correction_bias", [256], TensorRole.Router, TensorForm.Vector, 3, "gate");
        Assert.Equal("blk.3.ffn_gate_inp.weight", GgufTensorNames.NameOf(weight, "deepseek_v3"));
        Assert.Equal("blk.3.exp_probs_b.bias", GgufTensorNames.NameOf(bias, "deepseek_v3"));
    }
}
