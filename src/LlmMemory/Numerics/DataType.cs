namespace LlmMemory.Numerics;

/// <summary>A numeric storage format: how many bytes a run of elements takes.</summary>
/// <remarks>
/// Sizes are exact integers: a tensor row of <c>n</c> elements takes <c>n / BlockSize × BlockBytes</c> bytes
/// (ggml <c>ggml_row_size</c>). Plain types have a block of one element; packed 4-bit codes have a block of two
/// elements in one byte; ggml block types carry their scales inside the block.
/// </remarks>
/// <param name="Name">Canonical name, as printed (ggml names for ggml types).</param>
/// <param name="BlockSize">Elements per block.</param>
/// <param name="BlockBytes">Bytes per block.</param>
/// <param name="Float">Bit layout for plain floating-point types; null otherwise.</param>
/// <param name="GgmlId">The <c>enum ggml_type</c> value for types a GGUF file can hold; null otherwise.</param>
/// <param name="Description">One line on what the type is and where its layout comes from.</param>
public sealed record DataType(string Name, int BlockSize, int BlockBytes, FloatLayout? Float, int? GgmlId, string Description)
{
    /// <summary>Bits per element, scales included for block types.</summary>
    public double BitsPerElement => BlockBytes * 8.0 / BlockSize;

    /// <summary>True for ggml block-quantized types and packed sub-byte codes.</summary>
    public bool IsQuantized => BlockSize > 1;

    /// <summary>Exact bytes of <paramref name="elements"/> elements, which must fill whole blocks.</summary>
    /// <exception cref="ArgumentException">The count is not a multiple of the block size.</exception>
    public long BytesFor(long elements)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(elements);
        return elements % BlockSize == 0
            ? checked(elements / BlockSize * BlockBytes)
            : throw new ArgumentException(
                $"{elements} elements are not a whole number of {Name} blocks of {BlockSize}.", nameof(elements));
    }

    /// <summary>Whether a row of <paramref name="rowLength"/> elements can be stored in this type.</summary>
    public bool FitsRow(long rowLength) => rowLength % BlockSize == 0;

    public override string ToString() => Name;
}
