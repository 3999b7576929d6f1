using System.Collections.Frozen;

namespace LlmMemory.Numerics;

/// <summary>The catalog of numeric storage formats: one row per type, looked up by name or alias.</summary>
/// <remarks>
/// ggml rows (id, block size, bytes per block) are read from <c>ggml-org/ggml:src/ggml.c</c> <c>type_traits[]</c> and
/// <c>src/ggml-common.h</c> at commit d99724f2 (docs/memory-model.md §1.7). Float layouts: IEEE 754-2008 (binary16/32/64),
/// bfloat16 (Google Brain), OCP 8-bit Floating Point Specification (E4M3FN, E5M2), OCP Microscaling Formats v1.0 (E2M1, E8M0).
/// </remarks>
public static class DataTypes
{
    public static readonly DataType F64 = Plain("F64", 8, new FloatLayout(11, 52, SpecialValues.Ieee), 28, "IEEE 754 binary64");
    public static readonly DataType F32 = Plain("F32", 4, new FloatLayout(8, 23, SpecialValues.Ieee), 0, "IEEE 754 binary32");
    public static readonly DataType F16 = Plain("F16", 2, new FloatLayout(5, 10, SpecialValues.Ieee), 1, "IEEE 754 binary16");
    public static readonly DataType BF16 = Plain("BF16", 2, new FloatLayout(8, 7, SpecialValues.Ieee), 30, "bfloat16: fp32's exponent, 7-bit fraction");
    public static readonly DataType F8E4M3 = Plain("F8_E4M3", 1, new FloatLayout(4, 3, SpecialValues.NanOnlyAllOnes), null, "OCP FP8 E4M3FN (no infinities)");
    public static readonly DataType F8E5M2 = Plain("F8_E5M2", 1, new FloatLayout(5, 2, SpecialValues.Ieee), null, "OCP FP8 E5M2 (IEEE-style specials)");
    public static readonly DataType E8M0 = new("E8M0", 1, 1, null, null, "OCP MX shared scale: an 8-bit power of two (safetensors F8_E8M0 / UE8)");
    public static readonly DataType FP4 = new("FP4", 2, 1, new FloatLayout(2, 1, SpecialValues.None), null, "OCP MX FP4 E2M1 codes, two per byte (bitsandbytes fp4; scales stored apart)");
    public static readonly DataType NF4 = new("NF4", 2, 1, null, null, "4-bit NormalFloat codes, two per byte (QLoRA, arXiv:2305.14314; scales stored apart)");
    public static readonly DataType Int4 = new("INT4", 2, 1, null, null, "4-bit integer codes, two per byte (GPTQ/AWQ pack eight per int32; scales stored apart)");
    public static readonly DataType Int8 = new("I8", 1, 1, null, 24, "8-bit signed integer");
    public static readonly DataType UInt8 = new("U8", 1, 1, null, null, "8-bit unsigned integer (safetensors U8; packed codes)");
    public static readonly DataType Int16 = new("I16", 1, 2, null, 25, "16-bit signed integer");
    public static readonly DataType Int32 = new("I32", 1, 4, null, 26, "32-bit signed integer");
    public static readonly DataType Int64 = new("I64", 1, 8, null, 27, "64-bit signed integer");
    public static readonly DataType Bool = new("BOOL", 1, 1, null, null, "boolean, one byte");
    public static readonly DataType UInt16 = new("U16", 1, 2, null, null, "16-bit unsigned integer (safetensors U16)");
    public static readonly DataType UInt32 = new("U32", 1, 4, null, null, "32-bit unsigned integer (safetensors U32)");
    public static readonly DataType UInt64 = new("U64", 1, 8, null, null, "64-bit unsigned integer (safetensors U64)");
    public static readonly DataType F6E2M3 = new("F6_E2M3", 4, 3, null, null, "OCP MX FP6 E2M3 codes, four per three bytes (safetensors F6_E2M3)");
    public static readonly DataType F6E3M2 = new("F6_E3M2", 4, 3, null, null, "OCP MX FP6 E3M2 codes, four per three bytes (safetensors F6_E3M2)");

    public static readonly DataType Q4_0 = Ggml("Q4_0", 2, 32, 18, "fp16 scale + 16 B of nibbles");
    public static readonly DataType Q4_1 = Ggml("Q4_1", 3, 32, 20, "fp16 scale and min + 16 B");
    public static readonly DataType Q5_0 = Ggml("Q5_0", 6, 32, 22, "fp16 scale + 4 B high bits + 16 B");
    public static readonly DataType Q5_1 = Ggml("Q5_1", 7, 32, 24, "fp16 scale and min + 4 B + 16 B");
    public static readonly DataType Q8_0 = Ggml("Q8_0", 8, 32, 34, "fp16 scale + 32 int8");
    public static readonly DataType Q8_1 = Ggml("Q8_1", 9, 32, 36, "fp16 scale and sum + 32 int8 (activation type)");
    public static readonly DataType Q2_K = Ggml("Q2_K", 10, 256, 84, "2 fp16 + 16 B scales + 64 B quants");
    public static readonly DataType Q3_K = Ggml("Q3_K", 11, 256, 110, "fp16 + 32 B high mask + 64 B + 12 B scales");
    public static readonly DataType Q4_K = Ggml("Q4_K", 12, 256, 144, "2 fp16 + 12 B scales/mins + 128 B");
    public static readonly DataType Q5_K = Ggml("Q5_K", 13, 256, 176, "2 fp16 + 12 B + 128 B + 32 B");
    public static readonly DataType Q6_K = Ggml("Q6_K", 14, 256, 210, "fp16 + 16 B int8 scales + 192 B");
    public static readonly DataType Q8_K = Ggml("Q8_K", 15, 256, 292, "fp32 scale + 256 int8 + 16 int16 sums (intermediate type)");
    public static readonly DataType IQ2_XXS = Ggml("IQ2_XXS", 16, 256, 66, "fp16 + 32 × uint16");
    public static readonly DataType IQ2_XS = Ggml("IQ2_XS", 17, 256, 74, "fp16 + 32 × uint16 + 8 B scales");
    public static readonly DataType IQ3_XXS = Ggml("IQ3_XXS", 18, 256, 98, "fp16 + 96 B");
    public static readonly DataType IQ1_S = Ggml("IQ1_S", 19, 256, 50, "fp16 + 32 B + 16 B");
    public static readonly DataType IQ4_NL = Ggml("IQ4_NL", 20, 32, 18, "fp16 + 16 B, non-linear codebook");
    public static readonly DataType IQ3_S = Ggml("IQ3_S", 21, 256, 110, "fp16 + 13 × 8 B + 4 B scales");
    public static readonly DataType IQ2_S = Ggml("IQ2_S", 22, 256, 82, "fp16 + 64 B + 16 B");
    public static readonly DataType IQ4_XS = Ggml("IQ4_XS", 23, 256, 136, "fp16 + uint16 + 4 B + 128 B");
    public static readonly DataType IQ1_M = Ggml("IQ1_M", 29, 256, 56, "32 B + 16 B + 8 B, scale packed");
    public static readonly DataType TQ1_0 = Ggml("TQ1_0", 34, 256, 54, "ternary, 5 trits per byte + fp16");
    public static readonly DataType TQ2_0 = Ggml("TQ2_0", 35, 256, 66, "2 bits per element + fp16");
    public static readonly DataType MXFP4 = Ggml("MXFP4", 39, 32, 17, "OCP MX FP4: E8M0 exponent + 16 B of E2M1");
    public static readonly DataType NVFP4 = Ggml("NVFP4", 40, 64, 36, "4 UE4M3 sub-block scales (16 each) + 32 B of E2M1");
    public static readonly DataType Q1_0 = Ggml("Q1_0", 41, 128, 18, "fp16 + 16 B (1 bit)");
    public static readonly DataType Q2_0 = Ggml("Q2_0", 42, 64, 18, "fp16 + 16 B (2 bits)");

    /// <summary>Every type, in catalog order.</summary>
    public static IReadOnlyList<DataType> All { get; } =
    [
        F64, F32, F16, BF16, F8E4M3, F8E5M2, E8M0, FP4, NF4, Int4, Int8, UInt8, Int16, Int32, Int64, Bool, UInt16, UInt32, UInt64, F6E2M3, F6E3M2,
        Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K,
        IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ4_NL, IQ3_S, IQ2_S, IQ4_XS, IQ1_M, TQ1_0, TQ2_0, MXFP4, NVFP4, Q1_0, Q2_0,
    ];

    /// <summary>Spellings used by PyTorch, Hugging Face configs, safetensors and llama.cpp, mapped to the catalog.</summary>
    private static readonly FrozenDictionary<string, DataType> Aliases = BuildAliases();

    private static readonly FrozenDictionary<int, DataType> ByGgmlId =
        All.Where(t => t.GgmlId is not null).ToFrozenDictionary(t => t.GgmlId!.Value);

    /// <summary>Finds a type by name or alias, ignoring case ("bfloat16", "torch.bfloat16", "BF16", "q4_k").</summary>
    public static bool TryParse(string? name, out DataType type)
    {
        type = F32;
        if (name is null)
        {
            return false;
        }

        if (Aliases.TryGetValue(name.Trim().ToLowerInvariant(), out DataType? found))
        {
            type = found;
            return true;
        }

        return false;
    }

    /// <summary>Finds a type by name or alias.</summary>
    /// <exception cref="FormatException">Unknown name; the message lists the known ones.</exception>
    public static DataType Parse(string name) =>
        TryParse(name, out DataType type)
            ? type
            : throw new FormatException($"Unknown data type '{name}'. Known: {string.Join(", ", All.Select(t => t.Name.ToLowerInvariant()))}.");

    /// <summary>The type with this <c>enum ggml_type</c> id, or null for an id the catalog does not know (removed or newer).</summary>
    public static DataType? FromGgmlId(int id) => ByGgmlId.GetValueOrDefault(id);

    private static DataType Plain(string name, int bytes, FloatLayout layout, int? ggmlId, string description) =>
        new(name, 1, bytes, layout, ggmlId, description);

    private static DataType Ggml(string name, int id, int block, int bytes, string layout) =>
        new(name, block, bytes, null, id, $"ggml block type: {layout}");

    private static FrozenDictionary<string, DataType> BuildAliases()
    {
        var map = All.ToDictionary(t => t.Name.ToLowerInvariant());
        void Add(DataType type, params string[] names)
        {
            foreach (string name in names)
            {
                map[name] = type;
            }
        }

        Add(F64, "fp64", "float64", "double", "torch.float64");
        Add(F32, "fp32", "float32", "float", "torch.float32");
        Add(F16, "fp16", "float16", "half", "torch.float16");
        Add(BF16, "bfloat16", "torch.bfloat16");
        Add(F8E4M3, "fp8", "fp8_e4m3", "float8_e4m3fn", "torch.float8_e4m3fn", "e4m3", "f8e4m3");
        Add(F8E5M2, "fp8_e5m2", "float8_e5m2", "torch.float8_e5m2", "e5m2", "f8e5m2");
        Add(E8M0, "f8_e8m0", "ue8", "float8_e8m0fnu");
        Add(FP4, "e2m1", "float4_e2m1");
        Add(Int8, "int8", "torch.int8");
        Add(UInt8, "uint8", "torch.uint8");
        Add(Int16, "int16", "torch.int16");
        Add(Int32, "int32", "torch.int32");
        Add(Int64, "int64", "torch.int64");
        Add(Bool, "torch.bool");
        Add(FP4, "f4");
        Add(UInt16, "uint16", "torch.uint16");
        Add(UInt32, "uint32", "torch.uint32");
        Add(UInt64, "uint64", "torch.uint64");
        return map.ToFrozenDictionary();
    }
}
