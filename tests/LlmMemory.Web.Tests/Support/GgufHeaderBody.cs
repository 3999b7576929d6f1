using System.Text.Json.Nodes;
using LlmMemory.Formats.Gguf;

namespace LlmMemory.Web.Tests.Support;

/// <summary>
/// A GGUF file's header in the API's form (<c>{"gguf": {"metadata", "tensors"}}</c>, docs/sources.md), as the page builds it
/// from its own reading of a dropped file: every metadata value, arrays without kept values as <c>{"length": N}</c>, and each
/// tensor's name, dimensions (row length first) and ggml type id.
/// </summary>
internal static class GgufHeaderBody
{
    public static JsonObject Of(byte[] file) => Of(GgufReader.Read(new MemoryStream(file), "test.gguf"));

    public static JsonObject Of(string path) => Of(GgufReader.ReadFile(path));

    private static JsonObject Of(GgufFile read)
    {
        var metadata = new JsonObject();
        foreach ((string key, GgufValue value) in read.Metadata)
        {
            metadata[key] = Value(value);
        }

        var tensors = new JsonArray(read.Tensors.Select(t => (JsonNode)new JsonObject
        {
            ["name"] = t.Name,
            ["shape"] = new JsonArray(t.Dimensions.Select(d => (JsonNode)d).ToArray()),
            ["type"] = t.Type.GgmlId,
        }).ToArray());
        return new JsonObject { ["metadata"] = metadata, ["tensors"] = tensors };
    }

    private static JsonNode? Value(GgufValue value) => value.Type switch
    {
        GgufValueType.String => value.Text,
        GgufValueType.Bool => value.Number == 1,
        GgufValueType.Array => value.Values is { } values
            ? new JsonArray(values.Select(v => (JsonNode)v).ToArray())
            : new JsonObject { ["length"] = value.Count },
        _ => value.Number is long integer ? integer : value.Real,
    };
}
