using System.Buffers.Binary;
using System.Collections.Frozen;
using System.Collections.Immutable;
using System.Text.Json;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Safetensors;

/// <summary>Reads the header of a <c>.safetensors</c> file: 8 bytes of length, then that many bytes of JSON. Never the data.</summary>
/// <remarks>
/// Format: huggingface/safetensors README "Format" and <c>safetensors/src/tensor.rs</c> (<c>Metadata::validate</c>). The header
/// is checked as the library checks it: a known dtype per tensor, offsets that tile the data section from 0 without
/// holes or overlaps, and bytes equal to elements × dtype size.
/// </remarks>
public static class SafetensorsHeaderReader
{
    /// <summary>The dtype strings of the safetensors format (<c>Dtype</c> in tensor.rs) and the catalog type of each.</summary>
    private static readonly FrozenDictionary<string, DataType> DTypes = new Dictionary<string, DataType>
    {
        ["BOOL"] = DataTypes.Bool, ["F4"] = DataTypes.FP4, ["F6_E2M3"] = DataTypes.F6E2M3, ["F6_E3M2"] = DataTypes.F6E3M2,
        ["U8"] = DataTypes.UInt8, ["I8"] = DataTypes.Int8, ["F8_E5M2"] = DataTypes.F8E5M2, ["F8_E4M3"] = DataTypes.F8E4M3,
        ["F8_E8M0"] = DataTypes.E8M0, ["I16"] = DataTypes.Int16, ["U16"] = DataTypes.UInt16, ["F16"] = DataTypes.F16,
        ["BF16"] = DataTypes.BF16, ["I32"] = DataTypes.Int32, ["U32"] = DataTypes.UInt32, ["F32"] = DataTypes.F32,
        ["F64"] = DataTypes.F64, ["I64"] = DataTypes.Int64, ["U64"] = DataTypes.UInt64,
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>Reads the header of a file.</summary>
    /// <exception cref="ModelFormatException">Missing, truncated, malformed or inconsistent; the message names the file.</exception>
    public static SafetensorsHeader ReadFile(string path)
    {
        using FileStream stream = LocalFile.OpenRead(path, 1, FileOptions.RandomAccess);
        return Read(stream, path);
    }

    /// <summary>Reads a header from the start of <paramref name="stream"/>, reading only the header's bytes.</summary>
    /// <param name="stream">The file; its length bounds the header when the stream can seek or <paramref name="fileLength"/> is given.</param>
    /// <param name="source">Name used in messages.</param>
    /// <param name="fileLength">Bytes of the whole file, when the stream cannot tell (an HTTP range response's total).</param>
    public static SafetensorsHeader Read(Stream stream, string source, long? fileLength = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var reader = new HeaderReader(stream, source, fileLength);
        long headerBytes = HeaderLength(reader.ReadUInt64("the header length"), source, reader.Length);
        byte[] json = reader.ReadBytes(headerBytes, SafetensorsLimits.MaxHeaderBytes, "the JSON header");
        return Parse(json, source, reader.Length is long length ? length - 8 - headerBytes : null);
    }

    /// <summary>The header length stored in the first 8 bytes, checked against the limit and the file's length.</summary>
    public static long HeaderLength(ReadOnlySpan<byte> firstBytes, string source, long? fileLength) =>
        firstBytes.Length < 8
            ? throw new ModelFormatException(source, null, $"is truncated: a safetensors file starts with an 8-byte header length, found {firstBytes.Length} bytes.")
            : HeaderLength(BinaryPrimitives.ReadUInt64LittleEndian(firstBytes), source, fileLength);

    /// <summary>Parses the JSON header.</summary>
    /// <param name="json">The header bytes (after the 8-byte length).</param>
    /// <param name="source">Name used in messages.</param>
    /// <param name="dataBytes">Length of the data section, when known: the last tensor must end exactly there.</param>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> json, string source, long? dataBytes)
    {
        if (json.Length == 0 || json[0] != (byte)'{')
        {
            throw new ModelFormatException(source, null, "is not a safetensors file: the header does not start with '{'.");
        }

        JsonText.Check(json, source, "has a header that is not valid UTF-8.");

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = SafetensorsLimits.MaxJsonDepth });
        }
        catch (JsonException error)
        {
            throw new ModelFormatException(source, null, $"has a header that is not valid JSON ({FirstSentence(error.Message)}).");
        }

        using (document)
        {
            return Parse(document.RootElement, source, json.Length, dataBytes);
        }
    }

    private static long HeaderLength(ulong declared, string source, long? fileLength)
    {
        if (declared > SafetensorsLimits.MaxHeaderBytes)
        {
            throw new ModelFormatException(source, null,
                $"declares a header of {declared:N0} bytes, above the safetensors limit of {SafetensorsLimits.MaxHeaderBytes:N0} (not a safetensors file, or corrupted).");
        }

        if (declared < 2)
        {
            throw new ModelFormatException(source, null, $"declares a header of {declared} bytes; the smallest header, {{}}, has 2.");
        }

        return fileLength is long length && (long)declared > length - 8
            ? throw new ModelFormatException(source, null, $"is truncated: it declares a header of {declared:N0} bytes but holds only {length:N0} bytes in all.")
            : (long)declared;
    }

    private static SafetensorsHeader Parse(JsonElement root, string source, long headerBytes, long? dataBytes)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(source, null, $"has a header that is a JSON {root.ValueKind.ToString().ToLowerInvariant()}, not an object.");
        }

        var tensors = new List<SafetensorsTensor>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        IReadOnlyDictionary<string, string> metadata = FrozenDictionary<string, string>.Empty;
        foreach (JsonProperty entry in root.EnumerateObject())
        {
            if (!names.Add(entry.Name))
            {
                throw new ModelFormatException(source, entry.Name, "appears twice in the header.");
            }

            if (entry.Name == "__metadata__")
            {
                metadata = Metadata(entry.Value, source);
                continue;
            }

            if (tensors.Count == SafetensorsLimits.MaxTensors)
            {
                throw new ModelFormatException(source, null, $"lists more than {SafetensorsLimits.MaxTensors:N0} tensors.");
            }

            tensors.Add(Tensor(entry.Name, entry.Value, source));
        }

        SafetensorsTensor[] ordered = [.. tensors.OrderBy(t => t.Begin).ThenBy(t => t.End)];
        CheckTiling(ordered, source, dataBytes);
        return new SafetensorsHeader(source, headerBytes, dataBytes, ordered, metadata);
    }

    private static SafetensorsTensor Tensor(string name, JsonElement entry, string source)
    {
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(source, name, $"is a JSON {entry.ValueKind.ToString().ToLowerInvariant()}, not a tensor entry {{dtype, shape, data_offsets}}.");
        }

        string dtypeName = entry.TryGetProperty("dtype", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString()!
            : throw new ModelFormatException(source, name, "has no string 'dtype'.");
        DataType dtype = DTypes.TryGetValue(dtypeName, out DataType? known) ? known
            : throw new ModelFormatException(source, name, $"has dtype \"{Clip(dtypeName)}\", which is not a safetensors dtype (known: {string.Join(", ", DTypes.Keys.Order(StringComparer.Ordinal))}).");
        ImmutableArray<long> shape = Integers(entry, "shape", name, source, SafetensorsLimits.MaxRank, exactCount: null);
        ImmutableArray<long> offsets = Integers(entry, "data_offsets", name, source, 2, exactCount: 2);
        long elements = 0;
        long bytes;
        try
        {
            elements = shape.Aggregate(1L, (product, dimension) => checked(product * dimension));
            bytes = dtype.BytesFor(elements);
        }
        catch (OverflowException)
        {
            throw new ModelFormatException(source, name, $"has shape [{string.Join(", ", shape)}], whose size overflows a 64-bit integer.");
        }
        catch (ArgumentException)
        {
            throw new ModelFormatException(source, name, $"has {elements:N0} {dtypeName} elements, which do not fill whole bytes.");
        }

        if (offsets[1] < offsets[0])
        {
            throw new ModelFormatException(source, name, $"has data_offsets [{offsets[0]}, {offsets[1]}] that end before they begin.");
        }

        return offsets[1] - offsets[0] == bytes
            ? new SafetensorsTensor(name, dtype, shape, offsets[0], offsets[1])
            : throw new ModelFormatException(source, name,
                $"has data_offsets [{offsets[0]:N0}, {offsets[1]:N0}] spanning {offsets[1] - offsets[0]:N0} bytes, but {dtypeName} [{string.Join(", ", shape)}] takes {bytes:N0}.");
    }

    private static ImmutableArray<long> Integers(JsonElement entry, string key, string name, string source, int maxCount, int? exactCount)
    {
        if (!entry.TryGetProperty(key, out JsonElement array) || array.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(source, name, $"has no '{key}' array.");
        }

        int count = array.GetArrayLength();
        if (count > maxCount || (exactCount is int exact && count != exact))
        {
            throw new ModelFormatException(source, name, exactCount is null
                ? $"has {count} dimensions in '{key}'; at most {maxCount} are allowed."
                : $"has {count} values in '{key}'; it needs exactly {exactCount}.");
        }

        var values = ImmutableArray.CreateBuilder<long>(count);
        foreach (JsonElement item in array.EnumerateArray())
        {
            values.Add(item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out long value) && value >= 0
                ? value
                : throw new ModelFormatException(source, name, $"has '{key}' value {Clip(item.GetRawText())}; it must be a non-negative 64-bit integer."));
        }

        return values.MoveToImmutable();
    }

    /// <summary>Offsets must tile the data section: the first at 0, each where the previous ends, the last at its end.</summary>
    private static void CheckTiling(SafetensorsTensor[] ordered, string source, long? dataBytes)
    {
        long expected = 0;
        foreach (SafetensorsTensor tensor in ordered)
        {
            if (tensor.Begin != expected)
            {
                throw new ModelFormatException(source, tensor.Name, tensor.Begin < expected
                    ? $"overlaps the previous tensor: its data starts at {tensor.Begin:N0}, before {expected:N0}."
                    : $"starts at {tensor.Begin:N0}, leaving a hole after {expected:N0}; safetensors data has no gaps.");
            }

            expected = tensor.End;
        }

        if (dataBytes is long length && expected != length)
        {
            throw new ModelFormatException(source, null, expected > length
                ? $"is truncated: its tensors need {expected:N0} bytes of data but the file holds {length:N0}."
                : $"has {length - expected:N0} bytes of data after its last tensor (tensors end at {expected:N0}, the file at {length:N0}).");
        }
    }

    private static Dictionary<string, string> Metadata(JsonElement value, string source)
    {
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(source, "__metadata__", "must be an object of strings.");
        }

        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (JsonProperty item in value.EnumerateObject())
        {
            map[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()!
                : throw new ModelFormatException(source, "__metadata__", $"holds a non-string value at '{Clip(item.Name)}'.");
        }

        return map;
    }

    private static string Clip(string text) => text.Length <= 40 ? text : text[..40] + "…";

    private static string FirstSentence(string message) => message.Split(". ")[0].TrimEnd('.');
}
