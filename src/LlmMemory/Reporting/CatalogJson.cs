using System.Text.Json.Nodes;
using LlmMemory.Catalog;
using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Reporting;

/// <summary>The stable snake_case JSON of the catalogs, shared by <c>models/dtypes --json</c> and <c>GET /api/models|gpus|dtypes</c>.</summary>
public static class CatalogJson
{
    /// <summary>Every catalog model: alias, Hugging Face id, exact parameter count, model type and stored dtype.</summary>
    public static JsonArray Models()
    {
        var array = new JsonArray();
        foreach (CatalogModel m in ModelCatalog.All)
        {
            array.Add((JsonNode)new JsonObject
            {
                ["alias"] = m.Alias,
                ["hf_id"] = m.HfId,
                ["parameters"] = m.Architecture.ParameterCount,
                ["model_type"] = m.Architecture.ModelType,
                ["dtype"] = m.Architecture.StoredType?.Name.ToLowerInvariant(),
                ["max_positions"] = m.Architecture.MaxPositions,
            });
        }

        return array;
    }

    /// <summary>Every device: stated capacity, what software can allocate, the budget estimates are checked against, and the source.</summary>
    public static JsonArray Gpus()
    {
        var array = new JsonArray();
        foreach (Gpu g in GpuCatalog.All)
        {
            array.Add((JsonNode)new JsonObject
            {
                ["id"] = g.Id,
                ["name"] = g.Name,
                ["vendor"] = g.Vendor,
                ["memory_marketed"] = g.Marketed,
                ["memory_bytes"] = g.Memory?.Bytes,
                ["usable_bytes"] = g.Usable?.Bytes,
                ["usable_basis"] = g.UsableBasis,
                ["budget_bytes"] = g.Budget?.Bytes,
                ["bf16"] = g.Bf16,
                ["fp8"] = g.Fp8,
                ["source"] = g.Source,
            });
        }

        return array;
    }

    /// <summary>The numeric formats (block size and bytes, ggml id, float layout) and the weight formats.</summary>
    public static JsonObject Dtypes()
    {
        var array = new JsonArray();
        foreach (DataType t in DataTypes.All)
        {
            var row = new JsonObject
            {
                ["name"] = t.Name.ToLowerInvariant(),
                ["block_size"] = t.BlockSize,
                ["block_bytes"] = t.BlockBytes,
                ["bits_per_element"] = t.BitsPerElement,
                ["ggml_id"] = t.GgmlId,
                ["description"] = t.Description,
            };
            if (t.Float is FloatLayout f)
            {
                row["exponent_bits"] = f.ExponentBits;
                row["mantissa_bits"] = f.MantissaBits;
                row["max_finite"] = f.MaxFinite;
                row["smallest_normal"] = f.SmallestNormal;
                row["epsilon"] = f.Epsilon;
            }

            array.Add((JsonNode)row);
        }

        var formats = new JsonArray();
        foreach (WeightFormat f in WeightFormats.All)
        {
            formats.Add((JsonNode)new JsonObject { ["name"] = f.Name, ["scheme"] = f.Scheme.ToString(), ["type"] = f.Type.Name.ToLowerInvariant(), ["description"] = f.Description });
        }

        return new JsonObject { ["dtypes"] = array, ["weight_formats"] = formats };
    }

    /// <summary>
    /// The scenario spelling of every choice-valued field (docs/scenario.md), so a form can offer exactly these; and, by engine,
    /// the scenario fields its inference estimate reads.
    /// </summary>
    public static JsonObject ScenarioChoices() => new()
    {
        ["mode"] = Strings(Names.All<Mode>()),
        ["engine"] = Strings(Names.All<Engine>()),
        ["precision"] = Strings(Names.All<Precision>()),
        ["optimizer"] = Strings(Names.All<OptimizerKind>()),
        ["gradient_checkpointing"] = Strings(Names.All<Checkpointing>()),
        ["attention"] = Strings(Names.All<AttentionKernel>()),
        ["cross_entropy"] = Strings(Names.All<CrossEntropyKind>()),
        ["fsdp"] = Strings(Names.All<FsdpMode>()),
        ["offload"] = Strings(Names.All<OffloadMode>()),
        ["weights"] = Strings(WeightFormats.All.Select(f => f.Name).ToArray()),
        ["kv_cache_dtype"] = Strings(ScenarioReader.KvCacheTypeNames),
        ["inference_fields"] = new JsonObject(Enum.GetValues<Engine>()
            .Where(e => EngineRegistry.InferenceFieldsOf(e).Count > 0)
            .Select(e => KeyValuePair.Create(Names.Of(e), (JsonNode?)Strings(EngineRegistry.InferenceFieldsOf(e))))),
    };

    private static JsonArray Strings(IReadOnlyList<string> values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());
}
