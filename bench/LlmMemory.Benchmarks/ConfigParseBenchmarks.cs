using System.Text;
using System.Text.Json;
using BenchmarkDotNet.Attributes;
using LlmMemory.Catalog;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;

namespace LlmMemory.Benchmarks;

/// <summary>config.json into an architecture with its exact tensor inventory, against parsing the same bytes into a JsonDocument.</summary>
[MemoryDiagnoser]
public class ConfigParseBenchmarks
{
    private byte[] _json = [];

    /// <summary>A dense model (Llama-3.1-8B: 291 tensors) and a large MoE with latent attention (DeepSeek-V3: 256 experts × 58 layers).</summary>
    [Params("llama-3.1-8b", "deepseek-v3")]
    public string Model { get; set; } = "llama-3.1-8b";

    [GlobalSetup]
    public void Load()
    {
        CatalogModel model = ModelCatalog.TryFind(Model, out CatalogModel found) ? found : throw new InvalidOperationException($"{Model} is not in the catalog.");
        _json = Encoding.UTF8.GetBytes(model.Config.GetRawText());
        if (ConfigJsonReader.Read(_json, "config.json").ParameterCount != model.Architecture.ParameterCount)
        {
            throw new InvalidOperationException($"{Model}: the raw config and the catalog entry read differently.");
        }
    }

    /// <summary>The floor: the JSON parse the reader has to do anyway.</summary>
    [Benchmark(Baseline = true)]
    public int JsonDocumentParse()
    {
        using JsonDocument document = JsonDocument.Parse(_json);
        return document.RootElement.GetPropertyCount();
    }

    [Benchmark]
    public ModelArchitecture ConfigJsonRead() => ConfigJsonReader.Read(_json, "config.json");
}
