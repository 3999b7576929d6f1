using System.Collections.Frozen;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace LlmMemory.Catalog;

/// <summary>The models embedded in the assembly (data/models/*.json), addressable by Hugging Face id or alias, case-insensitively.</summary>
public static class ModelCatalog
{
    private static readonly Lazy<IReadOnlyList<CatalogModel>> Entries = new(Load);

    private static readonly Lazy<IReadOnlyList<CatalogModel>> VariantEntries = new(LoadVariants);

    private static readonly Lazy<FrozenDictionary<string, CatalogModel>> ByName = new(() =>
        Entries.Value.SelectMany(m => new[] { (Key: m.Alias, Model: m), (Key: m.HfId, Model: m) })
            .Concat(VariantEntries.Value.Select(v => (Key: v.HfId, Model: v)))
            .DistinctBy(pair => pair.Key.ToLowerInvariant())
            .ToFrozenDictionary(pair => pair.Key.ToLowerInvariant(), pair => pair.Model));

    /// <summary>Every catalog model, sorted by alias.</summary>
    public static IReadOnlyList<CatalogModel> All => Entries.Value;

    /// <summary>
    /// The instruct, chat and -it releases of data/model-variants.json, each its base model's config with the keys the
    /// variant's own config.json sets differently; <see cref="CatalogModel.VariantOf"/> names the base.
    /// </summary>
    public static IReadOnlyList<CatalogModel> Variants => VariantEntries.Value;

    /// <summary>Finds a model by Hugging Face id or alias (case-insensitive).</summary>
    public static bool TryFind(string name, out CatalogModel model)
    {
        ArgumentNullException.ThrowIfNull(name);
        return ByName.Value.TryGetValue(name.Trim().ToLowerInvariant(), out model!);
    }

    /// <summary>Up to <paramref name="count"/> catalog names closest to <paramref name="name"/>, for "did you mean" messages.</summary>
    public static IReadOnlyList<string> Suggest(string name, int count = 3)
    {
        ArgumentNullException.ThrowIfNull(name);
        string wanted = name.Trim().ToLowerInvariant();
        return Entries.Value
            .Select(m => (m.Alias, Distance: Math.Min(Distance(wanted, m.Alias.ToLowerInvariant()), Distance(wanted, m.HfId.ToLowerInvariant()))))
            .OrderBy(pair => pair.Distance)
            .ThenBy(pair => pair.Alias, StringComparer.Ordinal)
            .Take(count)
            .Select(pair => pair.Alias)
            .ToArray();
    }

    private static CatalogModel[] Load()
    {
        Assembly assembly = typeof(ModelCatalog).Assembly;
        var models = new List<CatalogModel>();
        foreach (string resource in assembly.GetManifestResourceNames().Where(r => r.StartsWith("models/", StringComparison.Ordinal)))
        {
            using Stream stream = assembly.GetManifestResourceStream(resource)!;
            using JsonDocument document = JsonDocument.Parse(stream);
            JsonElement root = document.RootElement;
            string alias = Path.GetFileNameWithoutExtension(resource);
            models.Add(new CatalogModel(
                alias,
                root.GetProperty("hf_id").GetString()!,
                root.GetProperty("config").Clone(),
                root.TryGetProperty("exact_params", out JsonElement exact) && exact.ValueKind == JsonValueKind.Number ? exact.GetInt64() : null,
                root.TryGetProperty("exact_params_source", out JsonElement source) && source.ValueKind == JsonValueKind.String ? source.GetString() : null,
                root.TryGetProperty("notes", out JsonElement notes) ? notes.GetString() ?? "" : ""));
        }

        return models.OrderBy(m => m.Alias, StringComparer.Ordinal).ToArray();
    }

    private static CatalogModel[] LoadVariants()
    {
        using Stream stream = typeof(ModelCatalog).Assembly.GetManifestResourceStream("model-variants.json")!;
        using JsonDocument document = JsonDocument.Parse(stream);
        var byName = Entries.Value.SelectMany(m => new[] { (Key: m.Alias, Model: m), (Key: m.HfId, Model: m) })
            .ToDictionary(pair => pair.Key.ToLowerInvariant(), pair => pair.Model);
        return document.RootElement.GetProperty("variants").EnumerateArray().Select(v =>
        {
            string id = v.GetProperty("id").GetString()!;
            string baseName = v.GetProperty("base").GetString()!;
            CatalogModel model = byName.TryGetValue(baseName.ToLowerInvariant(), out CatalogModel? found)
                ? found
                : throw new InvalidOperationException($"data/model-variants.json: {id} names base {baseName}, which is not in the catalog.");
            var config = JsonNode.Parse(model.Config.GetRawText())!.AsObject();
            if (v.TryGetProperty("differs", out JsonElement differs))
            {
                foreach (JsonProperty key in differs.EnumerateObject())
                {
                    config[key.Name] = JsonNode.Parse(key.Value.GetRawText());
                }
            }

            string source = v.GetProperty("source").GetString()!;
            return new CatalogModel(model.Alias, id, JsonSerializer.SerializeToElement(config, CatalogJsonContext.Default.JsonObject),
                model.ExactParameters, model.ExactParametersSource, $"Same shapes as {model.HfId}. Config: {source}")
            {
                VariantOf = model,
            };
        }).ToArray();
    }

    /// <summary>Edit distance that ranks a substring match first, so "llama-3-8b" suggests "llama-3.1-8b".</summary>
    private static int Distance(string wanted, string candidate)
    {
        if (candidate.Contains(wanted, StringComparison.Ordinal) || wanted.Contains(candidate, StringComparison.Ordinal))
        {
            return Math.Abs(candidate.Length - wanted.Length) / 4;
        }

        int[] previous = Enumerable.Range(0, candidate.Length + 1).ToArray();
        for (int i = 1; i <= wanted.Length; i++)
        {
            int[] current = new int[candidate.Length + 1];
            current[0] = i;
            for (int j = 1; j <= candidate.Length; j++)
            {
                int substitution = previous[j - 1] + (wanted[i - 1] == candidate[j - 1] ? 0 : 1);
                current[j] = Math.Min(substitution, Math.Min(previous[j] + 1, current[j - 1] + 1));
            }

            previous = current;
        }

        return previous[^1];
    }
}

/// <summary>Source-generated JSON for the catalog's config copies (the library is AOT-compatible).</summary>
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class CatalogJsonContext : JsonSerializerContext;
