using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Weights;

/// <summary>
/// A llama.cpp file type (<c>llama_ftype</c>, what <c>llama-quantize</c> is asked for): its name, its default tensor type
/// (<c>llama_ftype_get_default_type</c>), and whether the per-tensor rules apply (<c>--pure</c> skips them).
/// </summary>
/// <param name="Name">Lower-case ftype name: <c>q4_k_m</c>, <c>q8_0</c>, <c>f16</c>.</param>
/// <param name="Default">The type every quantizable tensor starts from.</param>
/// <param name="Pure">One type for every quantizable tensor: no per-category overrides (the row-size fallback still applies).</param>
internal sealed record GgufFileType(string Name, DataType Default, bool Pure)
{
    public bool IsQuantized => Default.IsQuantized;

    /// <summary>The file type a weight format stands for in llama.cpp.</summary>
    /// <exception cref="FormatException">A format llama.cpp cannot load (bitsandbytes, GPTQ, AWQ, fp8 checkpoints).</exception>
    public static GgufFileType From(WeightFormat format)
    {
        ArgumentNullException.ThrowIfNull(format);
        return format.Scheme switch
        {
            WeightScheme.GgufMix => new GgufFileType(format.Name, format.Type, Pure: false),
            WeightScheme.GgufType => new GgufFileType(format.Name, format.Type, Pure: true),
            // convert_hf_to_gguf.py --outtype f16 / bf16 / f32: every 2-D tensor in that type, vectors in F32.
            WeightScheme.Dense when format.Type == DataTypes.F16 || format.Type == DataTypes.BF16 || format.Type == DataTypes.F32 =>
                new GgufFileType(format.Type.Name.ToLowerInvariant(), format.Type, Pure: false),
            _ => throw new FormatException(
                $"llama.cpp runs GGUF files, and '{format.Name}' is not a GGUF type: use f16, bf16, f32, a llama.cpp mix (q4_k_m, q5_k_m, q6_k, q8_0, …) or a ggml type (q4_0, iq4_xs, …)."),
        };
    }
}
