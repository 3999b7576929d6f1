using System.Text;
using LlmMemory.Formats.HuggingFace;

namespace LlmMemory.Tests.Fuzzing;

/// <summary>Inputs the fuzzer found that once ended in something other than a <see cref="ModelFormatException"/>, kept as regressions.</summary>
public sealed class FuzzFindingTests
{
    private const string Llama = """
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256
        """;

    [Fact]
    public void Invalid_utf8_inside_a_string_is_a_format_error()
    {
        // 0xE1 starts a three-byte UTF-8 sequence that "l" cannot continue; JsonDocument.Parse accepts it and GetString threw
        // InvalidOperationException ("Cannot transcode invalid UTF-8 JSON text to UTF-16 string").
        byte[] json = [.. "{\"architectures\": [\"Llama"u8, 0xE1, .. "lForCausalLM\"]}"u8];

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        Assert.Equal("config.json: is not valid UTF-8.", error.Message);
    }

    [Fact]
    public void An_escaped_lone_surrogate_in_a_key_is_a_format_error()
    {
        // "\ud800" is valid JSON but no .NET string: looking up any key of the object threw InvalidOperationException
        // ("Cannot read incomplete UTF-16 JSON text as string with missing low surrogate").
        byte[] json = Encoding.UTF8.GetBytes("{" + Llama + ", \"torch_\\ud800dtype\": \"bfloat16\"}");

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        Assert.Contains("not valid Unicode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_escaped_lone_surrogate_in_a_value_is_a_format_error()
    {
        byte[] json = Encoding.UTF8.GetBytes("{" + Llama.Replace("\"llama\"", "\"lla\\udc00ma\"", StringComparison.Ordinal) + "}");

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        Assert.Contains("not valid Unicode", error.Message, StringComparison.Ordinal);
    }
}
