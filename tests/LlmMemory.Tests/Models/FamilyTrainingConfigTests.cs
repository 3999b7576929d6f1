using System.Text;
using LlmMemory.Formats.HuggingFace;

namespace LlmMemory.Tests.Models;

/// <summary>Config fields that change what a family's training forward keeps (issue 20).</summary>
public sealed class FamilyTrainingConfigTests
{
    [Fact]
    public void GPT_NeoX_rotates_a_quarter_of_each_head_by_default()
    {
        // configuration_gpt_neox.py: rotary_pct = 0.25; GPTNeoXAttention: rotary_ndims = int(head_size * rotary_pct).
        // Pythia-410m: 1024 / 16 heads = 64 → int(64 × 0.25) = 16.
        const string json = """{"model_type": "gpt_neox", "hidden_size": 1024, "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24, "vocab_size": 50304}""";
        Assert.Equal(16, ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json), "config.json").RotaryDimension);
        Assert.Equal(32, ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json.Replace("\"vocab_size\"", "\"rotary_pct\": 0.5, \"vocab_size\"", StringComparison.Ordinal)), "config.json").RotaryDimension);
    }

    [Fact]
    public void GPT2_reads_its_dropout_probabilities_with_the_configs_defaults()
    {
        // configuration_gpt2.py: embd_pdrop = resid_pdrop = 0.1.
        const string json = """{"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 100, "n_positions": 32, "resid_pdrop": 0.0}""";
        var model = ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json), "config.json");
        Assert.Equal(0.1, model.EmbeddingDropout);
        Assert.Equal(0.0, model.ResidualDropout);
        Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json.Replace("0.0", "2", StringComparison.Ordinal)), "config.json"));
    }
}
