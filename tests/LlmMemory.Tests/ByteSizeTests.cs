namespace LlmMemory.Tests;

public sealed class ByteSizeTests
{
    [Theory]
    [InlineData("80GiB", 85_899_345_920)]
    [InlineData("81920 MiB", 85_899_345_920)]
    [InlineData("80 GB", 80_000_000_000)]
    [InlineData("1.5 TiB", 1_649_267_441_664)]
    [InlineData("24gib", 25_769_803_776)]
    [InlineData("512", 512)]
    [InlineData("512 B", 512)]
    [InlineData("64 KiB", 65_536)]
    public void Parses_binary_units_and_decimal_only_when_spelled_GB(string text, long bytes) =>
        Assert.Equal(bytes, ByteSize.Parse(text).Bytes);

    [Theory]
    [InlineData("")]
    [InlineData("GiB")]
    [InlineData("80 GiBs")]
    [InlineData("-5 GiB")]
    [InlineData("0.5 B")]
    [InlineData("99999999999 TiB")]
    public void Rejects_text_that_is_not_a_size(string text)
    {
        Assert.False(ByteSize.TryParse(text, out _));
        Assert.Throws<FormatException>(() => ByteSize.Parse(text));
    }

    [Theory]
    [InlineData(0, "0 B")]
    [InlineData(1023, "1023 B")]
    [InlineData(1536, "1.50 KiB")]
    [InlineData(16_060_522_496, "14.96 GiB")] // 8,030,261,248 × 2 B: Llama-3.1-8B in bf16
    [InlineData(1_099_511_627_776, "1.00 TiB")]
    public void Formats_in_the_largest_binary_unit_with_two_decimals(long bytes, string text) =>
        Assert.Equal(text, new ByteSize(bytes).ToString());

    [Fact]
    public void Arithmetic_throws_instead_of_wrapping()
    {
        var huge = new ByteSize(long.MaxValue);
        Assert.Throws<OverflowException>(() => huge + new ByteSize(1));
        Assert.Throws<OverflowException>(() => huge * 2);
    }
}
