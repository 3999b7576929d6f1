using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;

namespace LlmMemory.Formats.Safetensors;

public static partial class SafetensorsCheckpoint
{
    /// <summary>Whether a folder holds safetensors weights (an index or <c>.safetensors</c> files).</summary>
    public static bool HasWeights(string folder) =>
        File.Exists(Path.Combine(folder, "model.safetensors.index.json")) || Directory.EnumerateFiles(folder, "*.safetensors").Any();

    /// <summary>A folder holding <c>config.json</c> and the weights: an index with its shards, or <c>.safetensors</c> files.</summary>
    /// <remarks>Without an index every <c>model*.safetensors</c> file is read (all <c>*.safetensors</c> when none is named so).</remarks>
    public static ModelArchitecture ReadFolder(string folder)
    {
        string index = Path.Combine(folder, "model.safetensors.index.json");
        if (File.Exists(index))
        {
            return ReadIndex(index);
        }

        string[] files = Directory.GetFiles(folder, "model*.safetensors");
        if (files.Length == 0)
        {
            files = Directory.GetFiles(folder, "*.safetensors");
        }

        Array.Sort(files, StringComparer.Ordinal);
        return files.Length == 0
            ? throw new ModelFormatException(folder, null, "holds no .safetensors files.")
            : Read(folder, files.Select(SafetensorsHeaderReader.ReadFile).ToArray(), folder);
    }

    /// <summary>A <c>model.safetensors.index.json</c> with its shards and the <c>config.json</c> beside it.</summary>
    public static ModelArchitecture ReadIndex(string indexPath)
    {
        string folder = Path.GetDirectoryName(Path.GetFullPath(indexPath))!;
        SafetensorsIndex index = SafetensorsIndex.ReadFile(indexPath);
        SafetensorsHeader[] headers = index.Shards.Select(shard => SafetensorsHeaderReader.ReadFile(Path.Combine(folder, shard))).ToArray();
        CheckIndex(index, headers, indexPath);
        return Read(folder, headers, indexPath);
    }

    /// <summary>One <c>.safetensors</c> file and the <c>config.json</c> beside it.</summary>
    public static ModelArchitecture ReadFile(string path) =>
        Read(Path.GetDirectoryName(Path.GetFullPath(path))!, [SafetensorsHeaderReader.ReadFile(path)], path);

    /// <summary>Checks that every tensor the index names is in the shard it names, and that the shards hold nothing else.</summary>
    public static void CheckIndex(SafetensorsIndex index, IReadOnlyList<SafetensorsHeader> headers, string source)
    {
        ArgumentNullException.ThrowIfNull(index);
        ArgumentNullException.ThrowIfNull(headers);
        var where = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach ((SafetensorsHeader header, string shard) in headers.Zip(index.Shards))
        {
            foreach (SafetensorsTensor tensor in header.Tensors)
            {
                where.TryAdd(tensor.Name, shard);
            }
        }

        foreach ((string name, string shard) in index.WeightMap)
        {
            if (!where.TryGetValue(name, out string? actual) || actual != shard)
            {
                throw new ModelFormatException(source, name, actual is null
                    ? $"is mapped to {shard}, but no shard's header holds it."
                    : $"is mapped to {shard}, but it is stored in {actual}.");
            }
        }

        if (where.Count != index.WeightMap.Count)
        {
            string stray = where.Keys.First(k => !index.WeightMap.ContainsKey(k));
            throw new ModelFormatException(source, stray, $"is stored in {where[stray]} but missing from weight_map.");
        }
    }

    private static ModelArchitecture Read(string folder, IReadOnlyList<SafetensorsHeader> headers, string source)
    {
        string config = Path.Combine(folder, "config.json");
        return File.Exists(config)
            ? FromHeaders(ConfigJsonReader.ReadFile(config), headers, source)
            : throw new ModelFormatException(source, null, $"has no config.json beside it in {folder}; the architecture (layers, heads, context) comes from there.");
    }
}
