using System.Text;
using LlmMemory.Catalog;
using LlmMemory.Formats.HuggingFace;

namespace LlmMemory.Fuzz;

/// <summary>The readers under fuzzing, with their seeds.</summary>
public static class Targets
{
    /// <summary>config.json: seeds are every catalog config (dense, MoE, latent attention, encoder-decoder, legacy families).</summary>
    public static FuzzTarget ConfigJson { get; } = new(
        "config",
        ModelCatalog.All.Select(m => Encoding.UTF8.GetBytes(m.Config.GetRawText())).ToArray(),
        _ => Range.All,
        input => ConfigJsonReader.Read(input, "fuzz/config.json"));

    public static IReadOnlyList<FuzzTarget> All { get; } = [ConfigJson];
}
