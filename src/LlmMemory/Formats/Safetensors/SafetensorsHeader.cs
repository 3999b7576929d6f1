using System.Collections.Immutable;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Safetensors;

/// <summary>The header of one <c>.safetensors</c> file: its tensors and its <c>__metadata__</c>.</summary>
/// <param name="Source">The file (or URL) it was read from.</param>
/// <param name="HeaderBytes">Length of the JSON header (the file's first 8 bytes).</param>
/// <param name="DataBytes">Length of the data section, when the file length was known.</param>
/// <param name="Tensors">Tensors in the order of their data offsets.</param>
/// <param name="Metadata">The <c>__metadata__</c> string map (e.g. <c>{"format": "pt"}</c>).</param>
public sealed record SafetensorsHeader(string Source, long HeaderBytes, long? DataBytes, IReadOnlyList<SafetensorsTensor> Tensors,
    IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Bytes of all tensor data: the data section, exactly.</summary>
    public long TensorBytes => Tensors.Sum(t => t.Bytes);
}

/// <summary>One tensor entry of a safetensors header.</summary>
/// <param name="Name">Checkpoint name (<c>model.layers.0.self_attn.q_proj.weight</c>).</param>
/// <param name="DType">Stored type (safetensors <c>dtype</c>).</param>
/// <param name="Shape">Dimensions, PyTorch order.</param>
/// <param name="Begin">Start of its data, relative to the data section (<c>data_offsets[0]</c>).</param>
/// <param name="End">End of its data (<c>data_offsets[1]</c>), exclusive.</param>
public sealed record SafetensorsTensor(string Name, DataType DType, ImmutableArray<long> Shape, long Begin, long End)
{
    /// <summary>Number of elements (product of the shape).</summary>
    public long Elements => Shape.Aggregate(1L, (product, dimension) => checked(product * dimension));

    /// <summary>Bytes of its data.</summary>
    public long Bytes => End - Begin;
}
