using System.Collections.Immutable;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Safetensors;

/// <summary>
/// A safetensors checkpoint as a <see cref="ModelArchitecture"/>: the architecture from <c>config.json</c>, the tensors
/// (with their stored types and exact bytes) from the headers, and the two cross-checked.
/// </summary>
/// <remarks>
/// Each header tensor is matched to the tensor config.json's layout names. A match is a parameter with the config's role;
/// per-expert tensors (<c>experts.7.up_proj.weight</c>) match the config's <c>experts.*</c> entry; packed quantized weights
/// (GPTQ/AWQ <c>qweight</c>, bitsandbytes 4-bit <c>weight</c>, MXFP4 <c>_blocks</c>) count the logical elements the config
/// gives them, stored in the 4- or 8-bit type that reproduces their bytes. Scales, zero points, rotary tables and masks are
/// buffers: their bytes are kept, they are not parameters. A tensor config.json's layout lacks is still counted, with a note.
/// </remarks>
public static partial class SafetensorsCheckpoint
{
    /// <summary>Combines a config's architecture with the headers of every shard.</summary>
    /// <param name="config">The architecture read from config.json (its inventory is the layout to match).</param>
    /// <param name="headers">One header per shard.</param>
    /// <param name="source">Name of the checkpoint, for messages.</param>
    /// <exception cref="ModelFormatException">A tensor appears in two shards, or a header contradicts config.json.</exception>
    public static ModelArchitecture FromHeaders(ModelArchitecture config, IReadOnlyList<SafetensorsHeader> headers, string source)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(headers);
        var layout = config.Tensors.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        var owners = config.Tensors.Tensors.DistinctBy(t => (t.Layer, t.Module)).ToDictionary(t => (t.Layer, t.Module), t => t.Role);
        var matched = new Dictionary<string, long>(StringComparer.Ordinal);
        var parameters = new List<TensorSpec>();
        var buffers = new List<TensorSpec>();
        var extras = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        int prediction = 0;
        foreach (SafetensorsHeader header in headers)
        {
            foreach (SafetensorsTensor tensor in header.Tensors)
            {
                if (!seen.Add(tensor.Name))
                {
                    throw new ModelFormatException(header.Source, tensor.Name, "is also stored in another shard.");
                }

                var match = Match(tensor, layout, config);
                if (match is { } found)
                {
                    TensorSpec spec = Parameter(tensor, found.Spec, found.PerExpert, config, header.Source);
                    parameters.Add(spec);
                    matched[found.Spec.Name] = checked(matched.GetValueOrDefault(found.Spec.Name) + spec.Elements);
                }
                else if (CheckpointNames.IsBuffer(tensor.Name, tensor.Shape.Length) || IsTiedCopy(tensor, config))
                {
                    buffers.Add(Buffer(tensor, owners));
                }
                else if (config.PredictionLayerParameters > 0 && CheckpointNames.Layer(tensor.Name) >= config.LayerCount)
                {
                    // DeepSeek-V3 stores its multi-token-prediction layer as model.layers.61; it is counted apart (models/README.md trap 3).
                    buffers.Add(Buffer(tensor, owners));
                    prediction++;
                }
                else
                {
                    parameters.Add(new TensorSpec(tensor.Name, tensor.Shape, TensorRole.Other,
                        tensor.Shape.Length == 1 ? TensorForm.Vector : TensorForm.LinearWeight,
                        CheckpointNames.Layer(tensor.Name), CheckpointNames.Module(tensor.Name), tensor.DType));
                    extras.Add(tensor.Name);
                }
            }
        }

        var inventory = new TensorInventory(parameters) { Buffers = buffers };
        long fileBytes = headers.Sum(h => h.TensorBytes);
        long? stored = inventory.StoredBytes;
        if (stored != fileBytes)
        {
            throw new InvalidOperationException($"{source}: accounted {stored} of {fileBytes} tensor bytes; every tensor must be counted once.");
        }

        return config with
        {
            Tensors = inventory,
            WeightsFile = new WeightsFile(WeightsFileFormat.Safetensors, headers.Select(h => h.Source).ToArray(), fileBytes,
                Notes(config, inventory, layout, matched, extras, prediction)),
        };
    }

    private static (TensorSpec Spec, bool PerExpert)? Match(SafetensorsTensor tensor, Dictionary<string, TensorSpec> layout, ModelArchitecture config)
    {
        foreach (string name in new[] { tensor.Name, CheckpointNames.Unpacked(tensor.Name) }.OfType<string>())
        {
            if (layout.TryGetValue(name, out TensorSpec? exact))
            {
                return (exact, false);
            }

            if (layout.TryGetValue(CheckpointNames.ExpertPattern(name), out TensorSpec? expert) && expert.Form == TensorForm.ExpertLinear
                && config.Experts is not null)
            {
                return (expert, true);
            }
        }

        return null;
    }

    /// <summary>A matched parameter: the file's shape and type, or for a packed weight the config's logical shape in the type that reproduces its bytes.</summary>
    private static TensorSpec Parameter(SafetensorsTensor tensor, TensorSpec layout, bool perExpert, ModelArchitecture config, string source)
    {
        ImmutableArray<long> logical = perExpert ? layout.Shape[1..] : layout.Shape;
        TensorSpec spec = layout with { Name = tensor.Name, Shape = tensor.Shape, Stored = tensor.DType };
        if (tensor.Elements == logical.Aggregate(1L, (p, d) => checked(p * d)) && CheckpointNames.Unpacked(tensor.Name) is null)
        {
            return spec;
        }

        long elements = logical.Aggregate(1L, (p, d) => checked(p * d));
        DataType? packed = elements > 0 && checked(tensor.Bytes * 8) % elements == 0
            ? PackedType(checked(tensor.Bytes * 8) / elements, config.Quantization?.Method, tensor.Name)
            : null;
        return packed is not null && packed.FitsRow(elements) && packed.BytesFor(elements) == tensor.Bytes
            ? spec with { Shape = logical, Stored = packed }
            : throw new ModelFormatException(source, tensor.Name,
                $"is {tensor.DType} [{string.Join(", ", tensor.Shape)}] ({tensor.Bytes:N0} bytes), but config.json implies [{string.Join(", ", logical)}] ({elements:N0} elements); the header and config.json disagree.");
    }

    /// <summary>The catalog type for codes of <paramref name="bits"/> bits, per quantization method.</summary>
    private static DataType? PackedType(long bits, string? method, string name) => bits switch
    {
        4 when method is "bitsandbytes" => DataTypes.NF4,
        4 when method is "mxfp4" || name.EndsWith("_blocks", StringComparison.Ordinal) => DataTypes.FP4,
        4 => DataTypes.Int4,
        8 => DataTypes.Int8,
        _ => null,
    };

    /// <summary>An output head stored although config.json ties it to the embeddings (falcon-40b, some fine-tunes): one tensor in memory.</summary>
    private static bool IsTiedCopy(SafetensorsTensor tensor, ModelArchitecture config) =>
        config.TiedEmbeddings && tensor.Name is "lm_head.weight" or "embed_out.weight"
        && config.Tensors.Tensors.FirstOrDefault(t => t.Role == TensorRole.TokenEmbedding) is { } embedding
        && embedding.Shape.SequenceEqual(tensor.Shape);

    /// <summary>A stored non-parameter, given the role of the module it belongs to (a q_proj scale is attention storage).</summary>
    private static TensorSpec Buffer(SafetensorsTensor tensor, Dictionary<(int?, string), TensorRole> owners)
    {
        int? layer = CheckpointNames.Layer(tensor.Name);
        string module = CheckpointNames.Module(tensor.Name);
        return new TensorSpec(tensor.Name, tensor.Shape, owners.GetValueOrDefault((layer, module), TensorRole.Other), TensorForm.Vector, layer,
            module, tensor.DType);
    }

    private static string[] Notes(ModelArchitecture config, TensorInventory inventory, Dictionary<string, TensorSpec> layout,
        Dictionary<string, long> matched, List<string> extras, int prediction)
    {
        var notes = new List<string>();
        string[] missing = layout.Values.Where(t => matched.GetValueOrDefault(t.Name) != t.Elements).Select(t => t.Name).ToArray();
        if (missing.Length > 0)
        {
            notes.Add($"config.json's layout has {missing.Length} tensor(s) the headers lack or hold only in part: {Few(missing)}.");
        }

        if (extras.Count > 0)
        {
            notes.Add($"{extras.Count} tensor(s) in the headers are not in config.json's layout and are counted as parameters: {Few(extras)}.");
        }

        if (prediction > 0)
        {
            notes.Add($"{prediction} tensor(s) of the multi-token-prediction layer are stored and counted apart from the parameters.");
        }

        if (inventory.ParameterCount != config.ParameterCount)
        {
            notes.Add($"The headers hold {inventory.ParameterCount:N0} parameters; config.json describes {config.ParameterCount:N0}.");
        }

        return [.. notes];
    }

    private static string Few(IReadOnlyList<string> names) =>
        string.Join(", ", names.Take(3)) + (names.Count > 3 ? $" and {names.Count - 3} more" : "");
}
