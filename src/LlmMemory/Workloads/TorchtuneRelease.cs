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

    /// <summary>
    /// torchtune PR #1046 "[LoRA] del logits to save peak memory" (opened and approved 2024-06-04, between 0.1.1 of April
    /// and 0.2.0 of July 2024): before it the single-device LoRA recipe's training loop kept <c>logits</c> (its shifted fp32
    /// copy, "(2, 512, 32000) in float32, 6% of peak memory" in the PR's snapshot) through <c>loss.backward()</c> until the
    /// next forward rebound the name; from it, <c>del logits</c> before the backward. PR #1235 (2024-07-27) did the same for
    /// the full fine-tuning recipes; which release first carried that was not read, so full fine-tuning under 0.2.x is
    /// replayed with the logits freed, as the LoRA recipe frees them.
    /// </summary>
    public static readonly Version LogitsFreedBeforeBackward = new(0, 2, 0);

    /// <summary>
    /// torchtune PR #1390 "chunked cross entropy" (merged 2024-08, first released in 0.3.0) changed the recipes' loss from
    /// <c>logits[..., :-1, :].contiguous()</c> and <c>transpose(1, 2)</c> to labels shifted and padded with
    /// <c>ignore_index</c> (<c>torch.hstack((labels[..., 1:], self.ignore_labels_cache[: labels.shape[0]]))</c>).
    /// </summary>
    public static readonly Version LabelsPadded = new(0, 3, 0);

    /// <summary>
    /// torchtune's configs construct <c>torch.optim.AdamW</c> with only <c>lr</c> and <c>weight_decay</c> through mid-2024
    /// (recipes/configs/llama2/7B_lora_single_device.yaml at 04dc380, later than 0.1.1), so torch runs its default, foreach
    /// on CUDA; issue #1998 "Add `fused=True` to all configs" was opened 2024-11-13, and by December 2024 the configs pass
    /// <c>fused: True</c> (issue #2152). Releases before 0.4.0 are taken as foreach; 0.4.x, whose configs were not read, as
    /// the later ones (fused).
    /// </summary>
    public static readonly Version FusedAdamWInConfigs = new(0, 4, 0);

    /// <summary>Reads <c>major.minor[.patch]</c> (a leading <c>v</c> allowed); null when it is not a release number.</summary>
    public static Version? TryParse(string text) => TransformersRelease.TryParse(text);
}
