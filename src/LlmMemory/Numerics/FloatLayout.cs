namespace LlmMemory.Numerics;

/// <summary>The bit layout of a binary floating-point format: 1 sign bit, <see cref="ExponentBits"/>, <see cref="MantissaBits"/>.</summary>
/// <param name="ExponentBits">Width of the biased exponent field.</param>
/// <param name="MantissaBits">Width of the stored fraction (the leading 1 of a normal number is implicit).</param>
/// <param name="Special">How the all-ones exponent is used: IEEE infinities and NaNs, or extra finite values.</param>
public sealed record FloatLayout(int ExponentBits, int MantissaBits, SpecialValues Special)
{
    /// <summary>Exponent bias, 2^(E−1) − 1 for every format in the catalog (IEEE 754; OCP FP8 and MX specs).</summary>
    public int Bias => (1 << (ExponentBits - 1)) - 1;

    public int TotalBits => 1 + ExponentBits + MantissaBits;

    /// <summary>Largest finite value.</summary>
    /// <remarks>IEEE: (2 − 2^−M) · 2^(2^E − 2 − bias). E4M3FN (OCP FP8) keeps only S.1111.111 as NaN: 1.75 · 2^8 = 448.
    /// E2M1 (OCP MX FP4) has no special values: 1.5 · 2^2 = 6.</remarks>
    public double MaxFinite => Special switch
    {
        SpecialValues.Ieee => (2 - Math.ScaleB(1, -MantissaBits)) * Math.ScaleB(1, MaxExponentField - Bias),
        SpecialValues.NanOnlyAllOnes => (2 - Math.ScaleB(1, 1 - MantissaBits)) * Math.ScaleB(1, MaxExponentField - Bias),
        _ => (2 - Math.ScaleB(1, -MantissaBits)) * Math.ScaleB(1, MaxExponentField - Bias),
    };

    /// <summary>Smallest positive normal value, 2^(1 − bias).</summary>
    public double SmallestNormal => Math.ScaleB(1, 1 - Bias);

    /// <summary>Machine epsilon: the gap between 1 and the next representable value, 2^−M.</summary>
    public double Epsilon => Math.ScaleB(1, -MantissaBits);

    /// <summary>The largest exponent field that encodes finite numbers.</summary>
    internal int MaxExponentField => Special == SpecialValues.Ieee ? (1 << ExponentBits) - 2 : (1 << ExponentBits) - 1;
}

/// <summary>What the all-ones exponent field means.</summary>
public enum SpecialValues
{
    /// <summary>IEEE 754: all-ones exponent is ±infinity (zero fraction) or NaN.</summary>
    Ieee,

    /// <summary>OCP FP8 E4M3FN: no infinities; only the all-ones pattern S.1111.111 is NaN.</summary>
    NanOnlyAllOnes,

    /// <summary>No infinities and no NaN (OCP MX FP4 E2M1): every pattern is a finite number.</summary>
    None,
}
