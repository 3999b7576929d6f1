using System.Collections.Immutable;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Gguf;

/// <summary>The header of one GGUF file: version, metadata and tensor infos. Tensor data is never read.</summary>
/// <param name="Source">The file (or URL) it was read from.</param>
/// <param name="Version">Format version (2 or 3).</param>
/// <param name="Metadata">Key/value metadata; arrays keep their length (and numeric values up to <see cref="GgufLimits.MaxKeptArray"/>).</param>
/// <param name="Tensors">Tensor infos in file order (their data offsets are checked while reading, then dropped).</param>
/// <param name="Alignment">Data alignment (<c>general.alignment</c>, 32 by default).</param>
/// <param name="DataOffset">Where the data section starts: after the tensor infos, padded to the alignment.</param>
/// <param name="DataBytes">Bytes from the data offset to the end of the file, when the file length was known.</param>
public sealed record GgufFile(string Source, int Version, IReadOnlyDictionary<string, GgufValue> Metadata, IReadOnlyList<GgufTensor> Tensors,
    int Alignment, long DataOffset, long? DataBytes)
{
    /// <summary>Bytes of all tensor data.</summary>
    public long TensorBytes => Tensors.Sum(t => t.Bytes);

    /// <summary>The <c>general.architecture</c> string.</summary>
    public string? Architecture => Metadata.GetValueOrDefault(GgufKeys.Architecture)?.Text;
}

/// <summary>One tensor info: what a header says about a tensor apart from where its data lies.</summary>
/// <param name="Name">llama.cpp tensor name (<c>blk.0.attn_q.weight</c>).</param>
/// <param name="Dimensions">ggml order: <c>ne[0]</c> is the row length (the fastest-varying dimension).</param>
/// <param name="Type">The ggml type.</param>
public sealed record GgufTensor(string Name, ImmutableArray<long> Dimensions, DataType Type)
{
    /// <summary>Number of elements.</summary>
    public long Elements => Dimensions.Aggregate(1L, (product, dimension) => checked(product * dimension));

    /// <summary>Exact bytes: <c>ggml_nbytes</c> = elements / block size × block bytes (rows hold whole blocks).</summary>
    public long Bytes => Type.BytesFor(Elements);

    /// <summary>Dimensions in PyTorch order ([rows, row length]), as the rest of the library writes shapes.</summary>
    public ImmutableArray<long> Shape => [.. Dimensions.Reverse()];

    /// <summary>
    /// A dimension count gguf.cpp accepts: 1 to <see cref="GgufLimits.MaxDimensions"/>. Messages name <paramref name="key"/>:
    /// the tensor in a file, the JSON field in a request.
    /// </summary>
    internal static void CheckRank(long rank, string source, string key)
    {
        if (rank is < 1 or > GgufLimits.MaxDimensions)
        {
            throw new ModelFormatException(source, key, $"has {rank} dimensions; ggml tensors have 1 to {GgufLimits.MaxDimensions}.");
        }
    }

    /// <summary>
    /// A tensor info checked as <c>gguf_init_from_file_impl</c> checks it: a known ggml type, an element count that fits 64 bits
    /// (and <see cref="Models.Limits.MaxParameters"/>), rows of whole blocks. The dimensions come non-negative and counted
    /// (<see cref="CheckRank"/>). Messages about the type name <paramref name="typeKey"/>, about the dimensions
    /// <paramref name="shapeKey"/>: the tensor in a file, the JSON field in a request.
    /// </summary>
    internal static GgufTensor Checked(string name, ImmutableArray<long> dimensions, long typeId, string source, string typeKey, string shapeKey)
    {
        DataType type = typeId is >= 0 and <= int.MaxValue && DataTypes.FromGgmlId((int)typeId) is { } known ? known
            : throw new ModelFormatException(source, typeKey, $"has ggml type id {typeId}, which is unknown (removed, or newer than this reader).");
        var tensor = new GgufTensor(name, dimensions, type);
        long elements;
        try
        {
            elements = tensor.Elements;
        }
        catch (OverflowException)
        {
            throw new ModelFormatException(source, shapeKey, $"has dimensions [{string.Join(", ", dimensions)}], whose product overflows a 64-bit integer.");
        }

        if (elements > Models.Limits.MaxParameters)
        {
            throw new ModelFormatException(source, shapeKey, $"has {elements:N0} elements, above the limit of {Models.Limits.MaxParameters:N0} for a whole model.");
        }

        return type.FitsRow(dimensions[0]) ? tensor
            : throw new ModelFormatException(source, shapeKey, $"has rows of {dimensions[0]:N0} elements, not a whole number of {type.Name} blocks of {type.BlockSize}.");
    }
}

/// <summary>A metadata value: a number, a bool, a string, or an array summary.</summary>
/// <param name="Type">The GGUF value type.</param>
/// <param name="Number">Integer value (for unsigned 64-bit values above <see cref="long.MaxValue"/>, null).</param>
/// <param name="Real">Floating-point value.</param>
/// <param name="Text">String value.</param>
/// <param name="ElementType">For arrays, the element type.</param>
/// <param name="Count">For arrays, the element count.</param>
/// <param name="Values">For numeric arrays up to <see cref="GgufLimits.MaxKeptArray"/> elements, the values.</param>
public sealed record GgufValue(GgufValueType Type, long? Number = null, double? Real = null, string? Text = null,
    GgufValueType? ElementType = null, long Count = 0, IReadOnlyList<double>? Values = null);

/// <summary>GGUF metadata value types (<c>enum gguf_type</c>, ggml/include/gguf.h).</summary>
public enum GgufValueType
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}
