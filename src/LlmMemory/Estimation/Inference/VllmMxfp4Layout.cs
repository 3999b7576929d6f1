using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// How vLLM lays out MXFP4 experts on a GPU without a native MXFP4 or Triton MoE kernel: the Marlin backend pads them.
/// </summary>
/// <remarks>
/// vllm/model_executor/layers/quantization/mxfp4.py (vllm-project/vllm, commit 007d500): <c>get_mxfp4_backend</c> picks
/// FlashInfer on SM90 (opt-in) and SM100, the Triton kernels on compute capability 9.0 to 10.x, and Marlin everywhere else
/// on CUDA (Ampere and Ada, 8.x; consumer Blackwell, 12.0). <c>Mxfp4MoEMethod.create_weights</c> then, for Marlin, rounds
/// the per-partition intermediate size up to a multiple of 128 and the hidden size up to 256 ("the moe marlin kernel requires
/// that for each linear n % 256 == 0 and k % 128 == 0") and allocates w13 [E, 2·I′, H′/2] uint8 codes with [E, 2·I′, H′/32]
/// uint8 scales and a [E, 2·I′] bf16 bias, and w2 [E, H′, I′/2] codes, [E, H′, I′/32] scales and a [E, H′] bf16 bias.
/// <c>prepare_moe_fp4_layer_for_marlin</c> repacks the codes and keeps one-byte (e8m0) scales, so the padded shapes are what
/// stays on the GPU. gpt-oss-20b (hidden 2880, expert width 2880) becomes 3072 × 2944: 9 % more expert bytes, 0.85 GiB.
/// Other backends are left unpadded here: the Triton path rounds the intermediate size to 64 (2880 already is), and the
/// FlashInfer paths depend on whether FlashInfer is installed.
/// </remarks>
internal static class VllmMxfp4Layout
{
    /// <summary>Marlin's alignment of the per-partition intermediate size (k of down_proj) and of the hidden size (n).</summary>
    private const int IntermediateAlignment = 128;
    private const int HiddenAlignment = 256;

    /// <summary>The layout vLLM holds: <paramref name="layout"/> with gpt-oss's fused MXFP4 experts padded when Marlin serves them.</summary>
    public static WeightLayout OnGpu(WeightLayout layout, ModelArchitecture model, Gpu? gpu, int tp)
    {
        ArgumentNullException.ThrowIfNull(layout);
        ArgumentNullException.ThrowIfNull(model);
        if (!UsesMarlin(gpu) || model.Experts is not { } moe || !layout.Tensors.Any(IsMxfp4Experts))
        {
            return layout;
        }

        long hidden = RoundUp(model.HiddenSize, HiddenAlignment);
        // Padding is per tensor-parallel partition; the whole-model width is tp partitions of it, so ÷ tp gives one GPU's.
        long width = tp * RoundUp(moe.ExpertIntermediateSize / tp, IntermediateAlignment);
        long experts = moe.ExpertCount;
        return new WeightLayout(layout.Tensors.Select(t => Padded(t, experts, hidden, width)).ToArray());
    }

    /// <summary>Marlin serves MXFP4 MoE on CUDA GPUs outside compute capability 9.0–10.x (mxfp4.py <c>get_mxfp4_backend</c>).</summary>
    private static bool UsesMarlin(Gpu? gpu) => gpu?.ComputeCapability is Version cc && (cc.Major < 9 || cc.Major >= 11);

    private static bool IsMxfp4Experts(StoredTensor t) => t.Tensor.Role == TensorRole.Expert && t.Storage == "MXFP4";

    /// <summary>gpt-oss's gate_up_proj [E, H, 2I] and down_proj [E, I, H] (and their biases) at the padded sizes.</summary>
    private static StoredTensor Padded(StoredTensor t, long experts, long hidden, long width)
    {
        if (t.Tensor.Role != TensorRole.Expert || t.Tensor.Form is not (TensorForm.FusedExperts or TensorForm.Bias))
        {
            return t;
        }

        bool gateUp = t.Tensor.Module == "gate_up_proj";
        long rows = gateUp ? 2 * width : hidden;
        return t.Tensor.Form == TensorForm.FusedExperts && t.Storage == "MXFP4"
            ? new StoredTensor(t.Tensor, DataTypes.MXFP4.BytesFor(checked(experts * rows * (gateUp ? hidden : width))), "MXFP4, padded for Marlin")
            : t.Tensor.Form == TensorForm.Bias ? new StoredTensor(t.Tensor, checked(experts * rows * 2), "bf16, padded for Marlin") : t;
    }

    private static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;
}
