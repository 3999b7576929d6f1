using System.Globalization;

namespace LlmMemory.Numerics;

/// <summary>How one real number is stored in a floating-point format, rounded to nearest, ties to even.</summary>
/// <param name="Sign">0 or 1.</param>
/// <param name="ExponentField">The biased exponent as stored.</param>
/// <param name="MantissaField">The stored fraction bits.</param>
/// <param name="Stored">The value the bits represent (±infinity or NaN where the format has them).</param>
/// <param name="Layout">The format.</param>
public sealed record FloatEncoding(int Sign, long ExponentField, long MantissaField, double Stored, FloatLayout Layout)
{
    /// <summary>Sign, exponent and mantissa bits separated by spaces: "0 10000000 10010010000111111011011".</summary>
    public string Bits =>
        string.Create(CultureInfo.InvariantCulture, $"{Sign} {Binary(ExponentField, Layout.ExponentBits)} {Binary(MantissaField, Layout.MantissaBits)}");

    /// <summary>Stored minus the requested value.</summary>
    public double ErrorFrom(double value) => Stored - value;

    /// <summary>Encodes <paramref name="value"/> in <paramref name="layout"/>.</summary>
    /// <remarks>
    /// Overflow goes to infinity for IEEE formats (round-to-nearest per IEEE 754 §7.4), to NaN for E4M3FN and saturates
    /// to the largest value for E2M1, which has neither (OCP MX v1.0 leaves conversion overflow to the implementation).
    /// Scaling by powers of two keeps every step exact in double precision for formats narrower than binary64.
    /// </remarks>
    public static FloatEncoding Encode(double value, FloatLayout layout)
    {
        ArgumentNullException.ThrowIfNull(layout);
        int sign = double.IsNegative(value) ? 1 : 0;
        double magnitude = Math.Abs(value);
        int mantissaBits = layout.MantissaBits;
        long mantissaOne = 1L << mantissaBits;

        if (double.IsNaN(value))
        {
            return Overflowing(sign, layout, isNaN: true);
        }

        if (magnitude == 0)
        {
            return new FloatEncoding(sign, 0, 0, sign == 1 ? -0.0 : 0.0, layout);
        }

        int exponent = double.IsInfinity(magnitude) ? int.MaxValue : Math.ILogB(magnitude);
        int minExponent = 1 - layout.Bias;
        long exponentField;
        long mantissaField;
        if (exponent < minExponent)
        {
            // Subnormal: fixed quantum 2^(minExponent − M); rounding up may carry into the smallest normal.
            long units = (long)Math.Round(Math.ScaleB(magnitude, mantissaBits - minExponent), MidpointRounding.ToEven);
            exponentField = units >= mantissaOne ? 1 : 0;
            mantissaField = units >= mantissaOne ? units - mantissaOne : units;
        }
        else if (exponent == int.MaxValue || exponent + layout.Bias > layout.MaxExponentField)
        {
            return Overflowing(sign, layout, isNaN: false);
        }
        else
        {
            long units = (long)Math.Round(Math.ScaleB(magnitude, mantissaBits - exponent), MidpointRounding.ToEven);
            if (units == 2 * mantissaOne)
            {
                exponent++;
                units = mantissaOne;
            }

            exponentField = exponent + layout.Bias;
            mantissaField = units - mantissaOne;
        }

        double stored = Decode(exponentField, mantissaField, layout);
        if (exponentField > layout.MaxExponentField || stored > layout.MaxFinite)
        {
            return Overflowing(sign, layout, isNaN: false);
        }

        return new FloatEncoding(sign, exponentField, mantissaField, sign == 1 ? -stored : stored, layout);
    }

    private static double Decode(long exponentField, long mantissaField, FloatLayout layout) =>
        exponentField == 0
            ? Math.ScaleB(mantissaField, 1 - layout.Bias - layout.MantissaBits)
            : Math.ScaleB((1L << layout.MantissaBits) + mantissaField, (int)exponentField - layout.Bias - layout.MantissaBits);

    private static FloatEncoding Overflowing(int sign, FloatLayout layout, bool isNaN)
    {
        long allOnesExponent = (1L << layout.ExponentBits) - 1;
        long allOnesMantissa = (1L << layout.MantissaBits) - 1;
        return layout.Special switch
        {
            SpecialValues.Ieee when isNaN => new FloatEncoding(sign, allOnesExponent, 1L << (layout.MantissaBits - 1), double.NaN, layout),
            SpecialValues.Ieee => new FloatEncoding(sign, allOnesExponent, 0, sign == 1 ? double.NegativeInfinity : double.PositiveInfinity, layout),
            SpecialValues.NanOnlyAllOnes => new FloatEncoding(sign, allOnesExponent, allOnesMantissa, double.NaN, layout),
            _ => new FloatEncoding(sign, allOnesExponent, allOnesMantissa, sign == 1 ? -layout.MaxFinite : layout.MaxFinite, layout),
        };
    }

    private static string Binary(long value, int width) => Convert.ToString(value, 2).PadLeft(width, '0');
}
