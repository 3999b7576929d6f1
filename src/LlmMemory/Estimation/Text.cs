using System.Globalization;

namespace LlmMemory.Estimation;

/// <summary>Number formatting for formulas: invariant culture, thousands separators, short decimals.</summary>
internal static class Text
{
    public static string N(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    public static string N(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);

    public static string Bytes(double bytesPerElement) => N(bytesPerElement) + " B";
}
