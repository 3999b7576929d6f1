using System.Text.Json;

namespace LlmMemory.Formats.Safetensors;

/// <summary>A sharded checkpoint's <c>model.safetensors.index.json</c>: which shard holds each tensor.</summary>
/// <param name="WeightMap">Tensor name → shard file name, relative to the index's folder.</param>
/// <param name="TotalSize">The declared <c>metadata.total_size</c> in bytes, when present (transformers writes the tensor bytes).</param>
public sealed record SafetensorsIndex(IReadOnlyDictionary<string, string> WeightMap, long? TotalSize)
{
    /// <summary>The shard files, in order of first appearance.</summary>
    public IReadOnlyList<string> Shards => WeightMap.Values.Distinct(StringComparer.Ordinal).ToArray();

    /// <summary>Reads an index file.</summary>
    public static SafetensorsIndex ReadFile(string path)
    {
        return Parse(LocalFile.ReadAllBytes(path, SafetensorsLimits.MaxIndexBytes, "a safetensors index"), path);
    }

    /// <summary>Parses index JSON; shard names must be plain relative paths (no <c>..</c>, not rooted).</summary>
    public static SafetensorsIndex Parse(ReadOnlySpan<byte> json, string source)
    {
        if (json.Length > SafetensorsLimits.MaxIndexBytes)
        {
            throw new ModelFormatException(source, null, $"is {json.Length:N0} bytes; an index is at most {SafetensorsLimits.MaxIndexBytes:N0}.");
        }

        JsonText.Check(json, source);

        try
        {
            using JsonDocument document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 });
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(source, "weight_map", "is missing or not an object.");
            }

            var weights = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty entry in map.EnumerateObject())
            {
                string shard = entry.Value.ValueKind == JsonValueKind.String ? entry.Value.GetString()!
                    : throw new ModelFormatException(source, entry.Name, "maps to a non-string shard.");
                if (!weights.TryAdd(entry.Name, CheckShardName(shard, source)))
                {
                    throw new ModelFormatException(source, entry.Name, "appears twice in weight_map.");
                }
            }

            if (weights.Values.Distinct(StringComparer.Ordinal).Count() > SafetensorsLimits.MaxShards)
            {
                throw new ModelFormatException(source, "weight_map", $"names more than {SafetensorsLimits.MaxShards:N0} shards.");
            }

            long? total = root.TryGetProperty("metadata", out JsonElement meta) && meta.ValueKind == JsonValueKind.Object
                && meta.TryGetProperty("total_size", out JsonElement size) && size.ValueKind == JsonValueKind.Number && size.TryGetInt64(out long t)
                ? t : null;
            return new SafetensorsIndex(weights, total);
        }
        catch (JsonException error)
        {
            throw new ModelFormatException(source, null, $"is not valid JSON ({error.Message.Split(". ")[0].TrimEnd('.')}).");
        }
    }

    private static string CheckShardName(string shard, string source)
    {
        string[] parts = shard.Split('/', '\\');
        return shard.Length == 0 || shard.Length > 1024 || Path.IsPathRooted(shard) || parts.Any(p => p is ".." or "." or "")
            || !shard.EndsWith(".safetensors", StringComparison.Ordinal)
            ? throw new ModelFormatException(source, "weight_map", $"names shard \"{(shard.Length > 60 ? shard[..60] + "…" : shard)}\", which is not a plain relative .safetensors file name.")
            : shard;
    }
}
