namespace LlmMemory.Estimation.Replay;

/// <summary>Element types of replayed tensors.</summary>
internal enum ScalarType
{
    BFloat16,
    Float16,
    Float32,
    Int64,
    Bool,
    UInt8,

    /// <summary>Marks an NF4-quantized weight (its storage was sized by the quantizer, 4 bits per element).</summary>
    Nf4,
}

internal static class ScalarTypes
{
    public static int Bits(this ScalarType type) => type switch
    {
        ScalarType.Float32 => 32,
        ScalarType.Int64 => 64,
        ScalarType.Bool or ScalarType.UInt8 => 8,
        ScalarType.Nf4 => 4,
        _ => 16,
    };

    public static bool IsFloatingPoint(this ScalarType type) => type is ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16;

    /// <summary>The result type of a binary op (PyTorch type promotion, restricted to the types replayed).</summary>
    public static ScalarType Promote(ScalarType a, ScalarType b)
    {
        if (a == b)
        {
            return a;
        }

        if (a.IsFloatingPoint() && b.IsFloatingPoint())
        {
            return b == ScalarType.Float32 ? b : a;
        }

        return a.IsFloatingPoint() ? a : b;
    }
}
