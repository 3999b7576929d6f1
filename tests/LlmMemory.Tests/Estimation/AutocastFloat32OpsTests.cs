using LlmMemory.Estimation.Replay;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// autocast's fp32 policy (PyTorch aten/src/ATen/autocast_mode.h, <c>AT_FORALL_FP32</c>: <c>pow</c>, <c>rsqrt</c>,
/// <c>layer_norm</c>, …): a 16-bit input is copied to fp32, the op computes and returns fp32, and a backward that saves its
/// input keeps the copy. GPT-2's NewGELU (transformers <c>activations.py</c>:
/// <c>0.5 * x * (1 + tanh(√(2/π) · (x + 0.044715 · pow(x, 3))))</c>) is where it shows in training.
/// </summary>
public sealed class AutocastFloat32OpsTests
{
    private const long N = 1L << 20; // elements of the MLP activation (a multiple of 512 B in every type: no rounding)

    [Fact]
    public void NewGelu_under_bf16_autocast_keeps_the_fp32_pow_copy_and_fp32_tanh_outputs()
    {
        // Live after the forward of gelu_new on a bf16 input x (N elements), by autograd's saved tensors (derivatives.yaml):
        //   x itself (bf16, the caller's)                                   2N
        //   pow(x, 3): autocast copies x to fp32 and pow saves the copy      4N
        //   tanh saves its output, fp32 (its input descends from the fp32 pow) 4N
        //   (1 + tanh) fp32, saved by the final mul for the other operand    4N
        //   0.5·x bf16 (a Python scalar keeps x's type), saved by that mul   2N
        //   the result, fp32 (bf16 × fp32 promotes)                          4N
        //   total                                                           20N
        Assert.Equal(20 * N, GeluNewLive(ScalarType.BFloat16));
    }

    [Fact]
    public void NewGelu_without_autocast_stays_in_the_input_type()
    {
        // Pure bf16: pow saves x itself; tanh output, (1 + tanh), 0.5·x and the result are bf16: x 2N + 2N · 4 = 10N.
        Assert.Equal(10 * N, GeluNewLive(null));
    }

    [Fact]
    public void LayerNorm_under_autocast_returns_fp32_for_a_bf16_input()
    {
        // layer_norm is in the fp32 list: x bf16 (2 B × rows × 1024) is copied to fp32 (4 B), which native_layer_norm saves
        // with its per-row fp32 mean and rstd (4 B each), and the output is fp32 (4 B): rows · (2048 + 4096 + 8 + 4096) B.
        var s = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { Autocast = ScalarType.BFloat16 };
        const long rows = 1024;
        Tensor x = s.Empty([rows, 1024], ScalarType.BFloat16, requiresGrad: true);
        Tensor weight = s.Empty([1024], ScalarType.Float32, requiresGrad: true);
        Tensor bias = s.Empty([1024], ScalarType.Float32, requiresGrad: true);
        long before = s.Allocator.Allocated;
        Tensor y = Blocks.LayerNorm(s, x, weight, bias);
        Assert.Equal(ScalarType.Float32, y.Type);
        Assert.Equal(rows * (1024 * 4 + 4 + 4 + 1024 * 4), s.Allocator.Allocated - before);
    }

    private static long GeluNewLive(ScalarType? autocast)
    {
        var s = new ReplayEngine(capacity: null, workspaceBytes: 0, AllocatorSettings.Default) { Autocast = autocast };
        Tensor x = s.Empty([N], ScalarType.BFloat16, requiresGrad: true);
        Tensor y = Blocks.GeluNew(s, x);
        Assert.Equal(autocast is null ? ScalarType.BFloat16 : ScalarType.Float32, y.Type);
        return s.Allocator.Allocated;
    }
}
