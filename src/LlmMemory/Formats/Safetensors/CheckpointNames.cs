using System.Globalization;
using System.Text.RegularExpressions;

namespace LlmMemory.Formats.Safetensors;

/// <summary>What Hugging Face checkpoint tensor names say: buffers versus parameters, packed weights, expert and layer indices.</summary>
internal static partial class CheckpointNames
{
    /// <summary>
    /// Name endings of tensors that are stored but are not parameters: quantization scales, zero points and group indices
    /// (GPTQ/AWQ <c>scales</c>, <c>qzeros</c>, <c>g_idx</c>; bitsandbytes <c>absmax</c>, <c>quant_map</c>, <c>nested_*</c>,
    /// <c>quant_state.*</c>, <c>SCB</c>; fp8 <c>weight_scale_inv</c>, <c>weight_scale</c>, <c>input_scale</c>; compressed-tensors
    /// <c>weight_zero_point</c>, <c>weight_shape</c>, <c>*_global_scale</c>; MXFP4 <c>_scales</c>; KV-cache <c>k_scale</c>/<c>v_scale</c>),
    /// rotary tables (<c>inv_freq</c>, <c>cos_cached</c>) and position-id buffers.
    /// </summary>
    private static readonly string[] BufferEndings =
    [
        ".scales", ".qzeros", ".g_idx", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", ".SCB", ".weight_format",
        ".weight_scale_inv", ".weight_scale", ".input_scale", ".weight_zero_point", ".weight_shape", ".weight_global_scale",
        ".input_global_scale", ".k_scale", ".v_scale", "_scales", ".inv_freq", ".cos_cached", ".sin_cached", ".position_ids",
        ".masked_bias",
    ];

    /// <summary>Suffix rewrites from a packed weight to the parameter it holds (GPTQ/AWQ <c>qweight</c>, compressed-tensors
    /// <c>weight_packed</c>, gpt-oss MXFP4 <c>_blocks</c>).</summary>
    private static readonly (string Packed, string Parameter)[] PackedEndings =
    [
        (".qweight", ".weight"), (".weight_packed", ".weight"), ("_blocks", ""),
    ];

    /// <summary>Whether the tensor is a stored buffer rather than a parameter.</summary>
    /// <remarks>
    /// GPT-2, GPT-J and GPT-NeoX register their causal mask as a buffer named <c>attn.bias</c> / <c>attention.bias</c>
    /// ([1, 1, n, n] of bools or floats); a real bias of that name would be a vector, so only rank ≥ 3 is a mask.
    /// </remarks>
    public static bool IsBuffer(string name, int rank) =>
        BufferEndings.Any(e => name.EndsWith(e, StringComparison.Ordinal))
        || name.Contains(".quant_state.", StringComparison.Ordinal)
        || (rank >= 3 && (name.EndsWith(".attn.bias", StringComparison.Ordinal) || name.EndsWith(".attention.bias", StringComparison.Ordinal)));

    /// <summary>The parameter name a packed tensor stands for, or null when the name is not a packed form.</summary>
    public static string? Unpacked(string name)
    {
        foreach ((string packed, string parameter) in PackedEndings)
        {
            if (name.EndsWith(packed, StringComparison.Ordinal))
            {
                return name[..^packed.Length] + parameter;
            }
        }

        return null;
    }

    /// <summary>The name with a per-expert index replaced by <c>*</c>: <c>mlp.experts.7.up_proj.weight</c> → <c>mlp.experts.*.up_proj.weight</c>.</summary>
    public static string ExpertPattern(string name) => ExpertIndex().Replace(name, ".experts.*.");

    /// <summary>The block index in <c>….layers.N.…</c> (also <c>h.N</c>, <c>layer.N</c>, <c>blocks.N</c>), or null.</summary>
    public static int? Layer(string name)
    {
        Match match = LayerIndex().Match(name);
        return match.Success && int.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out int layer) ? layer : null;
    }

    /// <summary>The leaf module of a parameter name: <c>model.layers.0.self_attn.q_proj.weight</c> → <c>q_proj</c>.</summary>
    public static string Module(string name)
    {
        string[] parts = name.Split('.');
        return parts.Length >= 2 ? parts[^2] : parts[0];
    }

    [GeneratedRegex(@"\.experts\.\d+\.")]
    private static partial Regex ExpertIndex();

    [GeneratedRegex(@"(?:^|\.)(?:layers|h|layer|blocks)\.(\d{1,9})\.")]
    private static partial Regex LayerIndex();
}
