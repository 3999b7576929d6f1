using System.Collections.Frozen;

namespace LlmMemory.Numerics;

/// <summary>The catalog of weight formats, looked up by name or alias (case-insensitive).</summary>
public static class WeightFormats
{
    public static readonly WeightFormat Fp32 = new("fp32", WeightScheme.Dense, DataTypes.F32, "32-bit float");
    public static readonly WeightFormat Fp16 = new("fp16", WeightScheme.Dense, DataTypes.F16, "16-bit float");
    public static readonly WeightFormat Bf16 = new("bf16", WeightScheme.Dense, DataTypes.BF16, "bfloat16");
    public static readonly WeightFormat Fp8 = new("fp8", WeightScheme.Fp8, DataTypes.F8E4M3, "fp8 E4M3 linear weights with scales; embeddings and head in 16-bit");
    public static readonly WeightFormat Int8 = new("int8", WeightScheme.BitsAndBytes8, DataTypes.Int8, "bitsandbytes LLM.int8: int8 linear weights + fp32 row scales");
    public static readonly WeightFormat Nf4 = new("nf4", WeightScheme.BitsAndBytes4, DataTypes.NF4, "bitsandbytes NF4, block 64, double quantization (QLoRA)");
    public static readonly WeightFormat Fp4 = new("fp4", WeightScheme.BitsAndBytes4, DataTypes.FP4, "bitsandbytes FP4, block 64, no double quantization (load_in_4bit default)");
    public static readonly WeightFormat Int4 = new("int4", WeightScheme.Gptq, DataTypes.Int4, "4-bit integer weights, group 128 (as GPTQ)");
    public static readonly WeightFormat GptqInt4 = new("gptq-int4", WeightScheme.Gptq, DataTypes.Int4, "GPTQ 4-bit, group 128: qweight, qzeros, fp16 scales, g_idx");
    public static readonly WeightFormat AwqInt4 = new("awq-int4", WeightScheme.Awq, DataTypes.Int4, "AWQ GEMM 4-bit, group 128: qweight, qzeros, fp16 scales");
    public static readonly WeightFormat Mxfp4 = new("mxfp4", WeightScheme.Mxfp4, DataTypes.MXFP4, "OCP MXFP4 experts (gpt-oss), other tensors bf16");

    /// <summary>
    /// llama.cpp <c>llama_ftype</c> mixes: the name, the id a GGUF file stores in <c>general.file_type</c> (include/llama.h
    /// <c>enum llama_ftype</c>) and the default type of each (llama-quant.cpp <c>llama_ftype_get_default_type</c>).
    /// </summary>
    private static readonly (string Name, int FileType, DataType Default)[] Mixes =
    [
        ("q2_k", 10, DataTypes.Q2_K), ("q2_k_s", 21, DataTypes.Q2_K), ("q3_k_s", 11, DataTypes.Q3_K), ("q3_k_m", 12, DataTypes.Q3_K),
        ("q3_k_l", 13, DataTypes.Q3_K), ("q4_k_s", 14, DataTypes.Q4_K), ("q4_k_m", 15, DataTypes.Q4_K), ("q5_k_s", 16, DataTypes.Q5_K),
        ("q5_k_m", 17, DataTypes.Q5_K), ("q6_k", 18, DataTypes.Q6_K), ("q4_0", 2, DataTypes.Q4_0), ("q4_1", 3, DataTypes.Q4_1),
        ("q5_0", 8, DataTypes.Q5_0), ("q5_1", 9, DataTypes.Q5_1), ("q8_0", 7, DataTypes.Q8_0), ("iq2_xxs", 19, DataTypes.IQ2_XXS),
        ("iq2_xs", 20, DataTypes.IQ2_XS), ("iq2_s", 28, DataTypes.IQ2_XS), ("iq2_m", 29, DataTypes.IQ2_S), ("iq3_xxs", 23, DataTypes.IQ3_XXS),
        ("iq3_xs", 22, DataTypes.IQ3_S), ("iq3_s", 26, DataTypes.IQ3_S), ("iq3_m", 27, DataTypes.IQ3_S), ("iq1_s", 24, DataTypes.IQ1_S),
        ("iq1_m", 31, DataTypes.IQ1_M), ("iq4_nl", 25, DataTypes.IQ4_NL), ("iq4_xs", 30, DataTypes.IQ4_XS), ("tq1_0", 36, DataTypes.TQ1_0),
        ("tq2_0", 37, DataTypes.TQ2_0), ("mxfp4_moe", 38, DataTypes.MXFP4),
    ];

    /// <summary>
    /// llama-quantize's aliases (<c>tools/quantize/quantize.cpp</c> <c>QUANT_OPTIONS</c>: "Q4_K, alias for Q4_K_M"): asking for
    /// Q3_K, Q4_K or Q5_K means the M mix, not one type for every tensor.
    /// </summary>
    private static readonly Dictionary<string, string> MixAliases = new() { ["q3_k"] = "q3_k_m", ["q4_k"] = "q4_k_m", ["q5_k"] = "q5_k_m" };

    /// <summary>Every format: the plain and scheme formats, then the llama.cpp mixes, then single ggml types.</summary>
    public static IReadOnlyList<WeightFormat> All { get; } = BuildAll();

    private static readonly FrozenDictionary<string, WeightFormat> ByName = BuildNames();

    /// <summary>
    /// <c>general.file_type</c> → format: the mixes, and the unquantized files convert_hf_to_gguf.py writes
    /// (<c>LLAMA_FTYPE_ALL_F32</c> = 0, <c>MOSTLY_F16</c> = 1, <c>MOSTLY_BF16</c> = 32).
    /// </summary>
    private static readonly FrozenDictionary<long, WeightFormat> ByFileType = Mixes
        .Select(m => KeyValuePair.Create((long)m.FileType, ByName[m.Name]))
        .Concat([KeyValuePair.Create(0L, Fp32), KeyValuePair.Create(1L, Fp16), KeyValuePair.Create(32L, Bf16)])
        .ToFrozenDictionary();

    public static bool TryParse(string? name, out WeightFormat format)
    {
        format = Bf16;
        if (name is null)
        {
            return false;
        }

        if (ByName.TryGetValue(name.Trim().ToLowerInvariant(), out WeightFormat? found))
        {
            format = found;
            return true;
        }

        return false;
    }

    /// <exception cref="FormatException">Unknown name; the message lists the known ones.</exception>
    public static WeightFormat Parse(string name) =>
        TryParse(name, out WeightFormat format)
            ? format
            : throw new FormatException($"Unknown weight format '{name}'. Known: {string.Join(", ", All.Select(f => f.Name))}.");

    /// <summary>The format a GGUF file's <c>general.file_type</c> (a <c>llama_ftype</c>) names, or null for an id this library does not know.</summary>
    public static WeightFormat? FromLlamaFileType(long id) => ByFileType.GetValueOrDefault(id);

    /// <summary>The dense format of a plain dtype (a checkpoint's <c>torch_dtype</c>).</summary>
    public static WeightFormat Dense(DataType type) =>
        All.FirstOrDefault(f => f.Scheme == WeightScheme.Dense && f.Type == type)
        ?? new WeightFormat(type.Name.ToLowerInvariant(), WeightScheme.Dense, type, type.Description);

    private static WeightFormat[] BuildAll()
    {
        var formats = new List<WeightFormat> { Fp32, Fp16, Bf16, Fp8, Int8, Nf4, Fp4, Int4, GptqInt4, AwqInt4, Mxfp4 };
        formats.AddRange(Mixes.Select(m => new WeightFormat(m.Name, WeightScheme.GgufMix, m.Default,
            $"llama.cpp {m.Name.ToUpperInvariant()} mix: mostly {m.Default.Name}, chosen tensors kept at more bits")));
        formats.AddRange(DataTypes.All
            .Where(t => t.GgmlId is not null && t.IsQuantized && !MixAliases.ContainsKey(t.Name.ToLowerInvariant())
                && formats.TrueForAll(f => !string.Equals(f.Name, t.Name, StringComparison.OrdinalIgnoreCase)))
            .Select(t => new WeightFormat(t.Name.ToLowerInvariant(), WeightScheme.GgufType, t, $"every quantizable tensor in {t.Name}")));
        return [.. formats];
    }

    private static FrozenDictionary<string, WeightFormat> BuildNames()
    {
        var map = All.ToDictionary(f => f.Name);
        map["f32"] = map["float32"] = Fp32;
        map["f16"] = map["float16"] = map["half"] = Fp16;
        map["bfloat16"] = Bf16;
        map["fp8_e4m3"] = map["float8"] = Fp8;
        map["bnb-int8"] = map["llm.int8"] = Int8;
        map["bnb-nf4"] = Nf4;
        map["bnb-fp4"] = Fp4;
        map["gptq"] = GptqInt4;
        map["awq"] = AwqInt4;
        foreach ((string alias, string mix) in MixAliases)
        {
            map[alias] = map[mix];
        }

        return map.ToFrozenDictionary();
    }
}
