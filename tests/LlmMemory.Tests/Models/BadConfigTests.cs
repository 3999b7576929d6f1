using System.Text;
using LlmMemory.Formats.HuggingFace;

namespace LlmMemory.Tests.Models;

public sealed class BadConfigTests
{
    private static ModelFormatException Read(string json) =>
        Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json), "config.json"));

    private const string Llama = """
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256
        """;

    [Fact]
    public void Text_that_is_not_JSON_names_the_file() =>
        Assert.StartsWith("config.json: is not valid JSON", Read("{ not json").Message, StringComparison.Ordinal);

    [Fact]
    public void A_missing_key_is_named() =>
        Assert.Contains("'num_hidden_layers' is missing", Read("""{"model_type": "llama", "hidden_size": 4096}""").Message, StringComparison.Ordinal);

    [Fact]
    public void A_negative_size_is_named() =>
        Assert.Contains("'hidden_size' must be between 1", Read("{" + Llama.Replace("\"hidden_size\": 4096", "\"hidden_size\": -4096", StringComparison.Ordinal) + "}").Message, StringComparison.Ordinal);

    [Fact]
    public void An_absurd_size_is_named() =>
        Assert.Contains("'num_hidden_layers' must be between 1 and 4,096", Read("{" + Llama.Replace("\"num_hidden_layers\": 32", "\"num_hidden_layers\": 99999999", StringComparison.Ordinal) + "}").Message, StringComparison.Ordinal);

    [Fact]
    public void A_wrong_type_is_named() =>
        Assert.Contains("'vocab_size' must be an integer, found the string", Read("{" + Llama.Replace("\"vocab_size\": 128256", "\"vocab_size\": \"big\"", StringComparison.Ordinal) + "}").Message, StringComparison.Ordinal);

    [Fact]
    public void A_product_beyond_any_real_model_is_refused()
    {
        // Each size is within its bound, but 4096 layers × (2^20)² would be ~10^16 parameters.
        string json = """{"model_type": "llama", "hidden_size": 1048576, "intermediate_size": 4194304, "num_attention_heads": 8, "num_hidden_layers": 4096, "vocab_size": 1000}""";
        Assert.Contains("above the limit", Read(json).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Key_value_heads_that_do_not_divide_the_attention_heads_are_refused() =>
        // transformers reshapes query heads into num_attention_heads // num_key_value_heads groups (modeling_llama.py repeat_kv): 32 / 7 has no shape.
        Assert.Equal("config.json: 'num_key_value_heads' is 7, which does not divide the 32 attention heads of 'num_attention_heads'; each key-value head serves a whole group of query heads.",
            Read("{" + Llama.Replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 7", StringComparison.Ordinal) + "}").Message);

    [Fact]
    public void More_key_value_heads_than_attention_heads_are_refused() =>
        Assert.Equal("config.json: 'num_key_value_heads' is 64, more than the 32 attention heads of 'num_attention_heads'; key-value heads are at most the attention heads.",
            Read("{" + Llama.Replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 64", StringComparison.Ordinal) + "}").Message);

    [Fact]
    public void An_explicit_head_dim_need_not_multiply_out_to_the_hidden_size()
    {
        // transformers takes head_dim as given (Gemma-7B: hidden 3072, 16 heads × head_dim 256 = 4096; Qwen3 sets head_dim too).
        string json = "{" + Llama.Replace("\"hidden_size\": 4096", "\"hidden_size\": 4000, \"head_dim\": 256", StringComparison.Ordinal) + "}";
        Assert.Equal(256, ConfigJsonReader.Read(Encoding.UTF8.GetBytes(json), "config.json").HeadDimension);
    }

    [Fact]
    public void An_unknown_model_type_lists_the_supported_ones()
    {
        string message = Read("""{"model_type": "mamba2"}""").Message;
        Assert.Contains("mamba2", message, StringComparison.Ordinal);
        Assert.Contains("qwen3_moe", message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_JSON_array_is_not_a_config() =>
        Assert.Contains("is not a JSON object", Read("[1, 2]").Message, StringComparison.Ordinal);

    [Fact]
    public void Deep_nesting_is_refused_without_a_stack_overflow() =>
        Assert.Contains("is not valid JSON", Read(new string('[', 100_000)).Message, StringComparison.Ordinal);

    [Fact]
    public void Heads_that_do_not_divide_the_width_need_an_explicit_head_dim() =>
        Assert.Contains("'head_dim' is missing", Read("{" + Llama.Replace("\"num_attention_heads\": 32", "\"num_attention_heads\": 30", StringComparison.Ordinal) + "}").Message, StringComparison.Ordinal);
}
