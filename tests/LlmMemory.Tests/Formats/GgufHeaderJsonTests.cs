using System.Text.Json;
using LlmMemory.Formats.Gguf;

namespace LlmMemory.Tests.Formats;

/// <summary>The bounds a GGUF header sent as JSON shares with a file (GgufLimits); past the web API's 1 MiB body only a scenario file reaches them.</summary>
public sealed class GgufHeaderJsonTests
{
    [Fact]
    public void More_tensors_than_a_file_may_declare_are_refused_before_any_is_read()
    {
        // GgufLimits.MaxTensors + 1 entries; each "{}" would be refused too, so the count is what is checked first.
        string json = $$"""{"metadata": {}, "tensors": [{{string.Join(",", Enumerable.Repeat("{}", (int)GgufLimits.MaxTensors + 1))}}]}""";
        using JsonDocument document = JsonDocument.Parse(json);

        var error = Assert.Throws<ModelFormatException>(() => GgufHeaderJson.Read(document.RootElement, "model.gguf"));

        Assert.Equal("tensors", error.Key);
        Assert.Contains("above the limit of 1,048,576", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void More_metadata_keys_than_a_file_may_declare_are_refused_before_any_value_is_read()
    {
        // GgufLimits.MaxKeys + 1 keys, each holding null (a value that would be refused).
        string keys = string.Join(",", Enumerable.Range(0, (int)GgufLimits.MaxKeys + 1).Select(i => $"\"k{i}\": null"));
        using JsonDocument document = JsonDocument.Parse($$"""{"metadata": {{{keys}}}, "tensors": []}""");

        var error = Assert.Throws<ModelFormatException>(() => GgufHeaderJson.Read(document.RootElement, "model.gguf"));

        Assert.Equal("metadata", error.Key);
    }
}
