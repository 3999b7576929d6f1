namespace LlmMemory.Models;

/// <summary>The <c>quantization_config</c> of a pre-quantized checkpoint, as far as memory depends on it.</summary>
/// <param name="Method">The <c>quant_method</c>: <c>fp8</c>, <c>gptq</c>, <c>awq</c>, <c>bitsandbytes</c>, <c>mxfp4</c>, <c>compressed-tensors</c>, …</param>
/// <param name="Bits">Bits per weight code when given (<c>bits</c>, <c>w_bit</c>).</param>
/// <param name="GroupSize">Weights per scale group (<c>group_size</c>, <c>q_group_size</c>); −1 means one group per row.</param>
/// <param name="BlockSize">Block scaling shape for fp8 (<c>weight_block_size</c>, e.g. 128×128), when given.</param>
/// <param name="NotConverted">Modules kept in 16-bit (<c>modules_to_not_convert</c>, <c>ignored_layers</c>).</param>
public sealed record QuantizationConfig(string Method, int? Bits, int? GroupSize, IReadOnlyList<int> BlockSize, IReadOnlyList<string> NotConverted);
