using LlmMemory.Numerics;

namespace LlmMemory.Tests.Numerics;

public sealed class DataTypeTests
{
    [Fact]
    public void Pi_in_fp32_has_the_essays_bit_pattern_and_stored_value()
    {
        // docs: the essay "How much memory do you need to work with LLMs?" (2025-09-25): π as float32 is
        // 0 10000000 10010010000111111011011, stored as 3.14159274101257324.
        FloatEncoding pi = FloatEncoding.Encode(Math.PI, DataTypes.F32.Float!);
        Assert.Equal("0 10000000 10010010000111111011011", pi.Bits);
        Assert.Equal("3.14159274101257324", pi.Stored.ToString("G18", System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal((double)MathF.PI, pi.Stored);
    }

    [Theory]
    // Largest finite values: IEEE 754 binary16 65504; bfloat16 (2 − 2^−7)·2^127; OCP FP8 spec: E4M3FN 448, E5M2 57344; OCP MX E2M1: 6.
    [InlineData("fp16", 65504.0)]
    [InlineData("bf16", 3.3895313892515355e38)]
    [InlineData("fp8_e4m3", 448.0)]
    [InlineData("fp8_e5m2", 57344.0)]
    [InlineData("fp4", 6.0)]
    [InlineData("fp32", 3.4028234663852886e38)]
    public void Largest_finite_values_match_the_format_specifications(string name, double max) =>
        Assert.Equal(max, DataTypes.Parse(name).Float!.MaxFinite);

    [Theory]
    // Smallest normal 2^(1−bias) and machine epsilon 2^−mantissa bits (IEEE 754; OCP FP8).
    [InlineData("fp16", 6.103515625e-05, 0.0009765625)]
    [InlineData("bf16", 1.1754943508222875e-38, 0.0078125)]
    [InlineData("fp8_e4m3", 0.015625, 0.125)]
    [InlineData("fp8_e5m2", 6.103515625e-05, 0.25)]
    public void Smallest_normal_and_epsilon_follow_the_bit_layout(string name, double smallestNormal, double epsilon)
    {
        FloatLayout layout = DataTypes.Parse(name).Float!;
        Assert.Equal(smallestNormal, layout.SmallestNormal);
        Assert.Equal(epsilon, layout.Epsilon);
    }

    [Fact]
    public void Values_past_the_largest_finite_overflow_as_the_format_defines()
    {
        Assert.True(double.IsPositiveInfinity(FloatEncoding.Encode(70000, DataTypes.F16.Float!).Stored));
        Assert.True(double.IsNaN(FloatEncoding.Encode(500, DataTypes.F8E4M3.Float!).Stored));
        Assert.Equal(6.0, FloatEncoding.Encode(100, DataTypes.FP4.Float!).Stored);
    }

    [Fact]
    public void Halfway_values_round_to_even()
    {
        // 1 + 2^−11 lies halfway between fp16 neighbours 1 and 1 + 2^−10: ties go to the even mantissa (1).
        Assert.Equal(1.0, FloatEncoding.Encode(1 + Math.ScaleB(1, -11), DataTypes.F16.Float!).Stored);
        Assert.Equal(1 + Math.ScaleB(1, -9), FloatEncoding.Encode(1 + 3 * Math.ScaleB(1, -11), DataTypes.F16.Float!).Stored);
    }

    [Fact]
    public void Subnormals_are_encoded_with_a_zero_exponent()
    {
        FloatEncoding tiny = FloatEncoding.Encode(Math.ScaleB(1, -24), DataTypes.F16.Float!);
        Assert.Equal("0 00000 0000000001", tiny.Bits);
    }

    [Theory]
    // ggml-org/ggml src/ggml.c type_traits[] and ggml-common.h block structs (docs/memory-model.md §1.7).
    [InlineData("q4_0", 32, 18)]
    [InlineData("q8_0", 32, 34)]
    [InlineData("q4_k", 256, 144)]
    [InlineData("q6_k", 256, 210)]
    [InlineData("iq2_xxs", 256, 66)]
    [InlineData("mxfp4", 32, 17)]
    [InlineData("nvfp4", 64, 36)]
    public void Ggml_blocks_have_the_sizes_of_ggml_type_traits(string name, int block, int bytes)
    {
        DataType type = DataTypes.Parse(name);
        Assert.Equal(block, type.BlockSize);
        Assert.Equal(bytes, type.BlockBytes);
    }

    [Theory]
    [InlineData("bfloat16", "BF16")]
    [InlineData("torch.bfloat16", "BF16")]
    [InlineData("BF16", "BF16")]
    [InlineData("float16", "F16")]
    [InlineData("f32", "F32")]
    [InlineData("Q4_K", "Q4_K")]
    public void Aliases_resolve_to_one_catalog_row(string alias, string name) => Assert.Equal(name, DataTypes.Parse(alias).Name);

    [Fact]
    public void Unknown_names_are_rejected_with_the_known_ones()
    {
        FormatException error = Assert.Throws<FormatException>(() => DataTypes.Parse("fp12"));
        Assert.Contains("fp12", error.Message, StringComparison.Ordinal);
        Assert.Contains("bf16", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Q4_K_M_names_the_llama_cpp_mix()
    {
        WeightFormat mix = WeightFormats.Parse("Q4_K_M");
        Assert.Equal(WeightScheme.GgufMix, mix.Scheme);
        Assert.Equal(DataTypes.Q4_K, mix.Type);
    }

    [Fact]
    public void Rows_that_are_not_whole_blocks_are_refused() =>
        Assert.Throws<ArgumentException>(() => DataTypes.Q4_K.BytesFor(576));
}
