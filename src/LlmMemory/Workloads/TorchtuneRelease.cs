namespace LlmMemory.Workloads;

/// <summary>
/// torchtune releases (<c>engine_options.version</c> for engine <c>torchtune</c>), where a release changed how the model
/// is built on the GPU before the first step (replayed in <c>Estimation/Replay/Programs/TorchtuneInit.cs</c>).
/// </summary>
public static class TorchtuneRelease
{
    /// <summary>The first release read (April 2024).</summary>
    public static readonly Version Oldest = new(0, 1, 0);

    /// <summary>
    /// torchtune 0.1's requirements.txt pins <c>torchao==0.1</c>, whose <c>NF4Tensor.convert_to_norm_float_weight</c>
    /// calls <c>quantize_tensor_nearest</c> on the whole flattened weight: <c>(value - nf4).abs()</c> makes two
    /// [numel, 16] tensors of the weight's type. torchao PR #196 "Perform quantization in Chunks" (merged 2024-05-01,
    /// first released in torchao 0.2.0) quantizes 1024² elements at a time; later torchtune releases require such
    /// torchao releases.
    /// </summary>
    public static readonly Version ChunkedNf4 = new(0, 2, 0);

    /// <summary>
    /// Until torchtune PR #2282 "Update model builders" (merged 2025-01-19, issue #2270 "Don't use _get_clones"), the
    /// builders made one layer and <c>TransformerDecoder</c> deep-copied it <c>num_layers</c> times
    /// (<c>torchtune/modules/transformer.py</c> <c>_get_clones</c>); from 0.6.0 they build every layer in a loop.
    /// </summary>
    public static readonly Version LayersBuiltInLoop = new(0, 6, 0);

    /// <summary>Reads <c>major.minor[.patch]</c> (a leading <c>v</c> allowed); null when it is not a release number.</summary>
    public static Version? TryParse(string text) => TransformersRelease.TryParse(text);
}
