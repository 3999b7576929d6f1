using System.Globalization;
using System.Text;
using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Models;

namespace LlmMemory.Benchmarks;

/// <summary>
/// Writes a sharded bf16 safetensors checkpoint as <c>transformers</c>' <c>save_pretrained</c> writes it: <c>config.json</c>,
/// <c>model.safetensors.index.json</c> and <c>model-0000k-of-0000n.safetensors</c> shards of at most 5 GB (the default
/// <c>max_shard_size</c>), each an 8-byte header length, the JSON header padded with spaces to 8 bytes, then the data,
/// which is left sparse. Tensor names and shapes come from the catalog model's inventory (its Hugging Face names).
/// </summary>
public static class SparseSafetensors
{
    /// <summary><c>max_shard_size="5GB"</c> in transformers (decimal gigabytes).</summary>
    private const long MaxShardBytes = 5_000_000_000;

    /// <summary>Writes the checkpoint of catalog model <paramref name="alias"/> into <paramref name="folder"/>; returns shard count and total bytes.</summary>
    public static (int Shards, long Bytes) Write(string folder, string alias)
    {
        CatalogModel model = ModelCatalog.TryFind(alias, out CatalogModel found) ? found : throw new ArgumentException($"{alias} is not in the catalog.", nameof(alias));
        Directory.CreateDirectory(folder);
        File.WriteAllText(Path.Combine(folder, "config.json"), model.Config.GetRawText());

        var shards = new List<List<TensorSpec>> { new() };
        long inShard = 0;
        foreach (TensorSpec tensor in model.Architecture.Tensors.Tensors)
        {
            long bytes = tensor.Elements * 2;
            if (inShard > 0 && inShard + bytes > MaxShardBytes)
            {
                shards.Add([]);
                inShard = 0;
            }

            shards[^1].Add(tensor);
            inShard += bytes;
        }

        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        for (int k = 0; k < shards.Count; k++)
        {
            string name = string.Create(CultureInfo.InvariantCulture, $"model-{k + 1:D5}-of-{shards.Count:D5}.safetensors");
            total += WriteShard(Path.Combine(folder, name), shards[k]);
            foreach (TensorSpec tensor in shards[k])
            {
                weightMap[tensor.Name] = name;
            }
        }

        using (var index = new FileStream(Path.Combine(folder, "model.safetensors.index.json"), FileMode.Create))
        using (var json = new Utf8JsonWriter(index, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", total);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach ((string tensor, string file) in weightMap)
            {
                json.WriteString(tensor, file);
            }

            json.WriteEndObject();
            json.WriteEndObject();
        }

        return (shards.Count, total);
    }

    /// <summary>Writes one shard and returns its tensor bytes.</summary>
    private static long WriteShard(string path, List<TensorSpec> tensors)
    {
        using var header = new MemoryStream();
        long offset = 0;
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteEndObject();
            foreach (TensorSpec tensor in tensors)
            {
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", "BF16");
                json.WriteStartArray("shape");
                foreach (long d in tensor.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += tensor.Elements * 2;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        while (header.Length % 8 != 0)
        {
            header.WriteByte((byte)' ');
        }

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.Write(BitConverter.GetBytes((ulong)header.Length));
        header.Position = 0;
        header.CopyTo(file);
        file.SetLength(8 + header.Length + offset);
        return offset;
    }
}
