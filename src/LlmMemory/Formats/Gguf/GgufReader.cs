using System.Collections.Immutable;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Gguf;

/// <summary>Reads a GGUF header (v2, v3) in the order of the spec: magic, version, counts, key/values, tensor infos, alignment.</summary>
/// <remarks>
/// Spec: ggml-org/ggml <c>docs/gguf.md</c>; checks follow llama.cpp <c>ggml/src/gguf.cpp</c> (<c>gguf_init_from_file_impl</c>):
/// known types, at most 4 dimensions, rows of whole blocks, aligned offsets, no duplicate keys or names, no tensor past
/// the end of the file. Every count is bounded by the bytes that remain before anything is allocated; tensor data is
/// never read, so time and memory depend on the header only.
/// </remarks>
public static class GgufReader
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    private const uint Magic = 0x46554747;

    /// <summary>Default data alignment (GGUF_DEFAULT_ALIGNMENT).</summary>
    private const int DefaultAlignment = 32;

    /// <summary>Reads a file's header.</summary>
    /// <exception cref="ModelFormatException">Missing, truncated, malformed or absurd; the message names the file and the problem.</exception>
    public static GgufFile ReadFile(string path)
    {
        using FileStream stream = LocalFile.OpenRead(path, 64 << 10, FileOptions.RandomAccess);
        return Read(stream, path);
    }

    /// <summary>Reads a header from the start of <paramref name="stream"/>.</summary>
    /// <param name="stream">The file; when it can seek, large arrays are skipped rather than read.</param>
    /// <param name="source">Name used in messages.</param>
    /// <param name="fileLength">Length of the file when the stream cannot tell.</param>
    public static GgufFile Read(Stream stream, string source, long? fileLength = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var r = new HeaderReader(stream, source, fileLength);
        uint magic = r.ReadUInt32("the magic number");
        if (magic != Magic)
        {
            throw r.Error($"is not a GGUF file: it starts with 0x{magic:X8}, not \"GGUF\".");
        }

        uint version = r.ReadUInt32("the version");
        if (version is not (2 or 3))
        {
            throw r.Error(version switch
            {
                1 => "is GGUF version 1, which llama.cpp stopped reading in 2023; convert it again.",
                _ when (version & 0xFFFF) == 0 => $"has version 0x{version:X8}: a big-endian GGUF, which is not supported.",
                _ => $"has GGUF version {version}; versions 2 and 3 are supported.",
            });
        }

        long tensorCount = Count(r, r.ReadUInt64("the tensor count"), GgufLimits.MaxTensors, 8 + 4 + 4 + 8 + 8, "tensors");
        long keyCount = Count(r, r.ReadUInt64("the metadata count"), GgufLimits.MaxKeys, 8 + 4 + 1, "metadata keys");
        var metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        for (long i = 0; i < keyCount; i++)
        {
            string key = r.ReadUtf8(r.ReadUInt64("a key length"), GgufLimits.MaxNameBytes, "a metadata key");
            GgufValueType type = ValueType(r, r.ReadUInt32($"the type of '{key}'"), key);
            GgufValue value = ReadValue(r, type, key);
            if (!metadata.TryAdd(key, value))
            {
                throw new ModelFormatException(source, key, "appears twice in the metadata.");
            }

            CheckHeaderSize(r);
        }

        int alignment = Alignment(metadata, source);
        var tensors = new List<(GgufTensor Tensor, long Offset)>((int)Math.Min(tensorCount, 4096));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (long i = 0; i < tensorCount; i++)
        {
            (GgufTensor tensor, long offset) = ReadTensorInfo(r, alignment);
            if (!names.Add(tensor.Name))
            {
                throw new ModelFormatException(source, tensor.Name, "appears twice among the tensors.");
            }

            tensors.Add((tensor, offset));
            CheckHeaderSize(r);
        }

        long dataOffset = checked((r.Position + alignment - 1) / alignment * alignment);
        long? dataBytes = r.Length is long length ? length - dataOffset : null;
        if (dataBytes < 0 && tensors.Count > 0)
        {
            throw r.Error($"is truncated: its data section would start at {dataOffset:N0}, past the end of the file at {r.Length:N0}.");
        }

        CheckPlacement(tensors, dataBytes, source);
        return new GgufFile(source, (int)version, metadata, tensors.Select(t => t.Tensor).ToArray(), alignment, dataOffset, dataBytes is < 0 ? 0 : dataBytes);
    }

    private static long Count(HeaderReader r, ulong count, long limit, int minimumBytesEach, string what)
    {
        if (count > (ulong)limit)
        {
            throw r.Error($"declares {count:N0} {what}, above the limit of {limit:N0}.");
        }

        if (r.Remaining is long left && (long)count > left / minimumBytesEach)
        {
            throw r.Error($"is truncated or corrupt: it declares {count:N0} {what}, but the {left:N0} bytes left could hold at most {left / minimumBytesEach:N0}.");
        }

        return (long)count;
    }

    private static void CheckHeaderSize(HeaderReader r)
    {
        if (r.Position > GgufLimits.MaxHeaderBytes)
        {
            throw r.Error($"has a header longer than {GgufLimits.MaxHeaderBytes:N0} bytes.");
        }
    }

    private static GgufValue ReadValue(HeaderReader r, GgufValueType type, string key)
    {
        string what = $"the value of '{key}'";
        return type switch
        {
            GgufValueType.UInt8 => new(type, Number: r.ReadByte(what)),
            // Signed types are the same bits read as two's complement (unchecked: the build checks overflow, and a
            // checked cast of 0xFFFFFFFF to int threw OverflowException; found by fuzzing, docs/performance.md).
            GgufValueType.Int8 => new(type, Number: unchecked((sbyte)r.ReadByte(what))),
            GgufValueType.UInt16 => new(type, Number: r.ReadUInt16(what)),
            GgufValueType.Int16 => new(type, Number: unchecked((short)r.ReadUInt16(what))),
            GgufValueType.UInt32 => new(type, Number: r.ReadUInt32(what)),
            GgufValueType.Int32 => new(type, Number: unchecked((int)r.ReadUInt32(what))),
            GgufValueType.Float32 => new(type, Real: BitConverter.UInt32BitsToSingle(r.ReadUInt32(what))),
            GgufValueType.Bool => Bool(r, what),
            GgufValueType.String => new(type, Text: r.ReadUtf8(r.ReadUInt64(what), GgufLimits.MaxStringBytes, what)),
            GgufValueType.Array => ReadArray(r, key),
            GgufValueType.UInt64 => r.ReadUInt64(what) is var u && u <= long.MaxValue ? new(type, Number: (long)u) : new(type),
            GgufValueType.Int64 => new(type, Number: unchecked((long)r.ReadUInt64(what))),
            GgufValueType.Float64 => new(type, Real: BitConverter.UInt64BitsToDouble(r.ReadUInt64(what))),
            _ => throw new InvalidOperationException($"Unhandled GGUF type {type}."),
        };
    }

    /// <summary>A value type id, which must be one of gguf.h's 13 (0–12).</summary>
    private static GgufValueType ValueType(HeaderReader r, uint raw, string key) =>
        raw <= (uint)GgufValueType.Float64 ? (GgufValueType)(int)raw
            : throw new ModelFormatException(r.Source, key, $"has value type {raw}, which is not a GGUF type (0–12).");

    private static GgufValue Bool(HeaderReader r, string what)
    {
        byte b = r.ReadByte(what);
        return b <= 1 ? new GgufValue(GgufValueType.Bool, Number: b) : throw r.Error($"{what} is the byte {b}, not a bool (0 or 1).");
    }

    /// <summary>An array: numbers are kept when short, strings are skipped (only the count is kept). Nested arrays are refused, as gguf.cpp does.</summary>
    private static GgufValue ReadArray(HeaderReader r, string key)
    {
        GgufValueType element = ValueType(r, r.ReadUInt32($"the element type of '{key}'"), key);
        int size = element switch
        {
            GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
            GgufValueType.UInt16 or GgufValueType.Int16 => 2,
            GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
            GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64 => 8,
            GgufValueType.String => 0,
            GgufValueType.Array => throw new ModelFormatException(r.Source, key, "is an array of arrays, which GGUF readers do not support."),
            _ => throw new InvalidOperationException($"Unhandled GGUF type {element}."),
        };
        long count = Count(r, r.ReadUInt64($"the length of '{key}'"), GgufLimits.MaxArrayElements, size == 0 ? 8 : size, $"elements in '{key}'");
        if (size == 0)
        {
            // The two descriptions are built once: built per element they were 80 % of the time and 90 % of the memory of
            // reading a Llama 3 header (400,000 tokenizer strings; docs/performance.md).
            string lengthWhat = $"a string length in '{key}'";
            string stringWhat = $"a string in '{key}'";
            for (long i = 0; i < count; i++)
            {
                ulong length = r.ReadUInt64(lengthWhat);
                if (length > (ulong)GgufLimits.MaxStringBytes)
                {
                    throw new ModelFormatException(r.Source, key, $"holds a string of {length:N0} bytes, above the limit of {GgufLimits.MaxStringBytes:N0}.");
                }

                r.Skip((long)length, stringWhat);
            }

            return new GgufValue(GgufValueType.Array, ElementType: element, Count: count);
        }

        if (count > GgufLimits.MaxKeptArray)
        {
            r.Skip(checked(count * size), $"the values of '{key}'");
            return new GgufValue(GgufValueType.Array, ElementType: element, Count: count);
        }

        var values = new double[count];
        for (int i = 0; i < count; i++)
        {
            GgufValue item = ReadValue(r, element, key);
            values[i] = item.Number ?? item.Real ?? 0;
        }

        return new GgufValue(GgufValueType.Array, ElementType: element, Count: count, Values: values);
    }

    private static int Alignment(Dictionary<string, GgufValue> metadata, string source)
    {
        if (!metadata.TryGetValue(GgufKeys.Alignment, out GgufValue? value))
        {
            return DefaultAlignment;
        }

        return value.Type == GgufValueType.UInt32 && value.Number is long a && a > 0 && a <= 1 << 20 && (a & (a - 1)) == 0
            ? (int)a
            : throw new ModelFormatException(source, GgufKeys.Alignment, "must be a uint32 power of two up to 1 MiB.");
    }

    /// <summary>One tensor info and its data offset, which must be a multiple of the alignment.</summary>
    private static (GgufTensor Tensor, long Offset) ReadTensorInfo(HeaderReader r, int alignment)
    {
        string name = r.ReadUtf8(r.ReadUInt64("a tensor name length"), GgufLimits.MaxNameBytes, "a tensor name");
        uint rank = r.ReadUInt32($"the dimension count of '{name}'");
        GgufTensor.CheckRank(rank, r.Source, name);
        var dimensions = ImmutableArray.CreateBuilder<long>((int)rank);
        for (int i = 0; i < rank; i++)
        {
            ulong dimension = r.ReadUInt64($"a dimension of '{name}'");
            dimensions.Add(dimension <= long.MaxValue ? (long)dimension
                : throw new ModelFormatException(r.Source, name, $"has dimension {dimension:N0}, above the largest 64-bit signed integer."));
        }

        uint typeId = r.ReadUInt32($"the type of '{name}'");
        ulong offset = r.ReadUInt64($"the data offset of '{name}'");
        GgufTensor tensor = GgufTensor.Checked(name, dimensions.MoveToImmutable(), typeId, r.Source, name, name);
        return offset <= long.MaxValue && (long)offset % alignment == 0 ? (tensor, (long)offset)
            : throw new ModelFormatException(r.Source, name, $"has data offset {offset:N0}, which is not a multiple of the alignment {alignment}.");
    }

    /// <summary>Tensors must not overlap, and must end inside the file when its length is known.</summary>
    private static void CheckPlacement(List<(GgufTensor Tensor, long Offset)> tensors, long? dataBytes, string source)
    {
        long end = 0;
        string? previous = null;
        foreach ((GgufTensor tensor, long offset) in tensors.OrderBy(t => t.Offset))
        {
            if (offset < end)
            {
                throw new ModelFormatException(source, tensor.Name, $"overlaps '{previous}': its data starts at {offset:N0}, before {end:N0}.");
            }

            if (offset > long.MaxValue - tensor.Bytes)
            {
                throw new ModelFormatException(source, tensor.Name, $"has data offset {offset:N0}, whose end overflows a 64-bit integer.");
            }

            end = offset + tensor.Bytes;
            previous = tensor.Name;
            if (dataBytes is long length && end > length)
            {
                throw new ModelFormatException(source, tensor.Name,
                    $"ends at byte {end:N0} of the data section, past the end of the file ({length:N0} bytes of data): the file is truncated or the offset is wrong.");
            }
        }
    }
}
