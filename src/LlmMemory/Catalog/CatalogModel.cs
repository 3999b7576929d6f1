using System.Text.Json;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;

namespace LlmMemory.Catalog;

/// <summary>One model of the embedded catalog: its Hugging Face config and where the config and its exact count come from.</summary>
/// <param name="Alias">Short name (<c>llama-3.1-8b</c>), the catalog file's name.</param>
/// <param name="HfId">Hugging Face repository id (<c>meta-llama/Llama-3.1-8B</c>).</param>
/// <param name="Config">The <c>config.json</c> object.</param>
/// <param name="ExactParameters">A published exact parameter count, when one is sourced.</param>
/// <param name="ExactParametersSource">Where that count is published.</param>
/// <param name="Notes">Counting traps and the config's source.</param>
public sealed record CatalogModel(string Alias, string HfId, JsonElement Config, long? ExactParameters, string? ExactParametersSource, string Notes)
{
    private readonly Lazy<ModelArchitecture> _architecture = new(() => ConfigJsonReader.Read(Config, $"catalog model {Alias}"));

    /// <summary>For an instruct, chat or -it release (data/model-variants.json), the catalog model whose shapes it has; else null.</summary>
    public CatalogModel? VariantOf { get; init; }

    /// <summary>The architecture read from <see cref="Config"/> (parsed once, on first use).</summary>
    public ModelArchitecture Architecture => _architecture.Value;
}
