using System.Globalization;

namespace LlmMemory;

/// <summary>An exact amount of memory in bytes. Immutable; arithmetic is checked and throws on overflow.</summary>
/// <remarks>
/// Output uses IEC binary units (KiB, MiB, GiB, TiB = powers of 1024), the units GPU tools print.
/// Parsing accepts binary units ("80GiB", "81920 MiB") and decimal units only when spelled as such
/// ("80 GB" = 80 × 10^9 bytes), so a value is never silently reinterpreted.
/// </remarks>
public readonly record struct ByteSize(long Bytes) : IComparable<ByteSize>
{
    public const long BytesInKibibyte = 1024;
    public const long BytesInMebibyte = 1024 * BytesInKibibyte;
    public const long BytesInGibibyte = 1024 * BytesInMebibyte;
    public const long BytesInTebibyte = 1024 * BytesInGibibyte;

    private static readonly (string Unit, long Factor)[] Units =
    [
        ("B", 1), ("KIB", BytesInKibibyte), ("MIB", BytesInMebibyte), ("GIB", BytesInGibibyte), ("TIB", BytesInTebibyte),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
    ];

    public static ByteSize Zero => default;

    public static ByteSize FromMebibytes(double value) => FromScaled(value, BytesInMebibyte);

    public static ByteSize FromGibibytes(double value) => FromScaled(value, BytesInGibibyte);

    public double Mebibytes => Bytes / (double)BytesInMebibyte;

    public double Gibibytes => Bytes / (double)BytesInGibibyte;

    public static ByteSize operator +(ByteSize left, ByteSize right) => new(checked(left.Bytes + right.Bytes));

    public static ByteSize operator -(ByteSize left, ByteSize right) => new(checked(left.Bytes - right.Bytes));

    public static ByteSize operator *(ByteSize size, long factor) => new(checked(size.Bytes * factor));

    public static ByteSize operator *(long factor, ByteSize size) => new(checked(size.Bytes * factor));

    public static bool operator <(ByteSize left, ByteSize right) => left.Bytes < right.Bytes;

    public static bool operator >(ByteSize left, ByteSize right) => left.Bytes > right.Bytes;

    public static bool operator <=(ByteSize left, ByteSize right) => left.Bytes <= right.Bytes;

    public static bool operator >=(ByteSize left, ByteSize right) => left.Bytes >= right.Bytes;

    public static ByteSize Add(ByteSize left, ByteSize right) => left + right;

    public static ByteSize Subtract(ByteSize left, ByteSize right) => left - right;

    public static ByteSize Multiply(ByteSize size, long factor) => size * factor;

    public int CompareTo(ByteSize other) => Bytes.CompareTo(other.Bytes);

    /// <summary>The value in the largest binary unit that keeps it at least 1, with two decimals: "15.27 GiB", "512 B".</summary>
    public override string ToString()
    {
        long magnitude = Math.Abs(Bytes);
        (string unit, long factor) = magnitude switch
        {
            >= BytesInTebibyte => ("TiB", BytesInTebibyte),
            >= BytesInGibibyte => ("GiB", BytesInGibibyte),
            >= BytesInMebibyte => ("MiB", BytesInMebibyte),
            >= BytesInKibibyte => ("KiB", BytesInKibibyte),
            _ => ("B", 1L),
        };
        return factor == 1
            ? string.Create(CultureInfo.InvariantCulture, $"{Bytes} B")
            : string.Create(CultureInfo.InvariantCulture, $"{Bytes / (double)factor:F2} {unit}");
    }

    /// <summary>Parses "80GiB", "81920 MiB", "80 GB", "1.5 TiB" or a plain byte count.</summary>
    /// <exception cref="FormatException">The text is not a number followed by a known unit.</exception>
    public static ByteSize Parse(string text) =>
        TryParse(text, out ByteSize size)
            ? size
            : throw new FormatException(
                $"'{text}' is not a memory size: expected a number and a unit, e.g. 80GiB, 81920 MiB, 80 GB (decimal), 1024 B.");

    public static bool TryParse(string? text, out ByteSize size)
    {
        size = Zero;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }

        string trimmed = text.Trim();
        int split = 0;
        while (split < trimmed.Length && (char.IsDigit(trimmed[split]) || trimmed[split] == '.'))
        {
            split++;
        }

        string number = trimmed[..split];
        string unit = trimmed[split..].Trim().ToUpperInvariant();
        if (unit.Length == 0)
        {
            unit = "B";
        }

        if (number.Length == 0 || !decimal.TryParse(number, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out decimal value))
        {
            return false;
        }

        foreach ((string name, long factor) in Units)
        {
            if (name != unit)
            {
                continue;
            }

            decimal bytes = value * factor;
            if (bytes > long.MaxValue || bytes != decimal.Truncate(bytes))
            {
                return false;
            }

            size = new ByteSize((long)bytes);
            return true;
        }

        return false;
    }

    private static ByteSize FromScaled(double value, long factor)
    {
        double bytes = Math.Round(value * factor);
        return double.IsFinite(bytes) && bytes is >= long.MinValue and <= long.MaxValue
            ? new ByteSize((long)bytes)
            : throw new ArgumentOutOfRangeException(nameof(value), value, "The size does not fit in a 64-bit byte count.");
    }
}
