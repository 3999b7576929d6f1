namespace LlmMemory.Numerics;

/// <summary>How a model's weights are stored: a plain dtype, a quantization scheme, a GGUF type or a llama.cpp mix.</summary>
/// <param name="Name">Canonical lower-case name (<c>bf16</c>, <c>nf4</c>, <c>gptq-int4</c>, <c>q4_k_m</c>).</param>
/// <param name="Scheme">Which rules decide each tensor's bytes.</param>
/// <param name="Type">The element type of the quantized (or all) tensors.</param>
/// <param name="Description">What the format is, in one line.</param>
public sealed record WeightFormat(string Name, WeightScheme Scheme, DataType Type, string Description)
{
    public override string ToString() => Name;
}

/// <summary>The rule families that decide stored bytes per tensor (docs/memory-model.md §1).</summary>
public enum WeightScheme
{
    /// <summary>Every tensor in one plain dtype (fp32, fp16, bf16).</summary>
    Dense,

    /// <summary>fp8 checkpoint: linear weights in fp8 with scales; embeddings, head and norms in 16-bit (§1.1).</summary>
    Fp8,

    /// <summary>bitsandbytes LLM.int8: int8 linear weights plus one fp32 scale per row (§1.2).</summary>
    BitsAndBytes8,

    /// <summary>bitsandbytes 4-bit (NF4/FP4), block 64, optional double quantization (§1.3).</summary>
    BitsAndBytes4,

    /// <summary>GPTQ: packed int4 codes, per-group fp16 scales and packed zeros, g_idx (§1.4).</summary>
    Gptq,

    /// <summary>AWQ GEMM: packed int4 codes, per-group fp16 scales and packed zeros (§1.4).</summary>
    Awq,

    /// <summary>OCP MXFP4 experts (gpt-oss): 4.25 bits on expert weights, the rest in bf16.</summary>
    Mxfp4,

    /// <summary>One ggml type for every quantizable tensor (<c>--pure</c>); 1-D tensors stay F32.</summary>
    GgufType,

    /// <summary>A llama.cpp quantization mix (Q4_K_M, …): per-tensor types from llama-quant.cpp (§1.8).</summary>
    GgufMix,
}
