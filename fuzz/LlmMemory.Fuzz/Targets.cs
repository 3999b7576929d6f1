using System.Buffers.Binary;
using System.Text;
using LlmMemory.Catalog;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Formats.Safetensors;

namespace LlmMemory.Fuzz;

/// <summary>The readers and services under fuzzing, with their seeds.</summary>
public static class Targets
{
    /// <summary>config.json: seeds are every catalog config (dense, MoE, latent attention, encoder-decoder, legacy families).</summary>
    public static FuzzTarget ConfigJson { get; } = new(
        "config",
        ModelCatalog.All.Select(m => Encoding.UTF8.GetBytes(m.Config.GetRawText())).ToArray(),
        _ => Range.All,
        input => ConfigJsonReader.Read(input, "fuzz/config.json"));

    /// <summary>
    /// A safetensors file (length prefix and header; the data section is given as the file's length) read as
    /// <c>llm-memory params</c> reads a checkpoint: the header, then matched against the model's config.json.
    /// </summary>
    public static FuzzTarget Safetensors { get; } = new(
        "safetensors",
        TinySeeds.Safetensors,
        HeaderJson,
        input =>
        {
            using var stream = new MemoryStream(input, writable: false);
            SafetensorsHeader header = SafetensorsHeaderReader.Read(stream, "fuzz.safetensors", input.Length + TinySeeds.SafetensorsDataBytes);
            SafetensorsCheckpoint.FromHeaders(TinySeeds.Architecture, [header], "fuzz.safetensors");
        });

    /// <summary>A GGUF header (the data section is given as the file's length) read into an architecture, as <c>llm-memory params FILE.gguf</c>.</summary>
    public static FuzzTarget Gguf { get; } = new(
        "gguf",
        TinySeeds.Gguf,
        null,
        input =>
        {
            using var stream = new MemoryStream(input, writable: false);
            GgufFile file = GgufReader.Read(stream, "fuzz.gguf", input.Length + TinySeeds.GgufDataBytes);
            GgufModel.FromFiles([file], "fuzz.gguf");
        });

    /// <summary>Every target: the three file readers, then the web API and the Hub client (issue 19).</summary>
    public static IReadOnlyList<FuzzTarget> All { get; } = [ConfigJson, Safetensors, Gguf, ApiTarget.Target, HubTarget.Target];

    /// <summary>The JSON header of a safetensors seed: after the 8-byte length prefix, as long as the prefix says.</summary>
    private static Range? HeaderJson(byte[] input) =>
        input.Length >= 8 && BinaryPrimitives.ReadUInt64LittleEndian(input) is ulong n && n <= (ulong)(input.Length - 8)
            ? new Range(8, 8 + (int)n)
            : null;
}
