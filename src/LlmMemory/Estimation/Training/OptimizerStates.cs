using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Training;

/// <summary>
/// The one table of optimizer states: the tensors each optimizer keeps per parameter tensor, created at its first step
/// (docs/memory-model.md §4.2, research/torch SPEC §6). The replay allocates exactly these; the closed forms sum their bytes.
/// </summary>
/// <remarks>
/// AdamW (torch.optim, every implementation): two moments of the parameter's type (<c>torch.zeros_like(p)</c>). bitsandbytes
/// 8-bit AdamW (paged or not): uint8 moments with an fp32 absmax per 256 values, tensors under 4096 elements keeping fp32
/// moments (<c>min_8bit_size</c>). bitsandbytes paged 32-bit AdamW: two fp32 moments. transformers' Adafactor (beta1 None):
/// a factored fp32 second moment, rows and columns, for matrices and a full one for vectors. SGD with momentum and Lion: one
/// buffer of the parameter's type. Plain SGD: none.
/// </remarks>
internal static class OptimizerStates
{
    /// <summary>What a state tensor is stored in.</summary>
    public enum Storage
    {
        /// <summary>The type of the parameter it updates.</summary>
        Parameter,

        Float32,

        UInt8,
    }

    /// <summary>One state tensor: its shape and storage.</summary>
    public readonly record struct State(long[] Shape, Storage Storage);

    /// <summary>The states <paramref name="kind"/> keeps for one parameter of <paramref name="shape"/>.</summary>
    public static IReadOnlyList<State> For(OptimizerKind kind, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long n = shape.Aggregate(1L, (a, x) => checked(a * x));
        return kind switch
        {
            OptimizerKind.AdamW => [new(shape, Storage.Parameter), new(shape, Storage.Parameter)],
            OptimizerKind.PagedAdamW => [new(shape, Storage.Float32), new(shape, Storage.Float32)],
            OptimizerKind.AdamW8Bit or OptimizerKind.PagedAdamW8Bit when n < 4096 => [new(shape, Storage.Float32), new(shape, Storage.Float32)],
            OptimizerKind.AdamW8Bit or OptimizerKind.PagedAdamW8Bit =>
                [new([n], Storage.UInt8), new([n], Storage.UInt8), new([(n / 256) + 1], Storage.Float32), new([(n / 256) + 1], Storage.Float32)],
            OptimizerKind.Adafactor when shape.Length >= 2 => [new(shape[..^1], Storage.Float32), new([.. shape[..^2], shape[^1]], Storage.Float32)],
            OptimizerKind.Adafactor => [new(shape, Storage.Float32)],
            OptimizerKind.SgdMomentum or OptimizerKind.Lion => [new(shape, Storage.Parameter)],
            _ => [],
        };
    }

    /// <summary>
    /// bitsandbytes' <c>Optimizer8bit.get_state_buffer</c> (bitsandbytes/optim/optimizer.py): a paged optimizer allocates a
    /// state in CUDA managed memory only for a parameter of at least 1e5 elements (<c>if not self.is_paged or p.numel() &lt;
    /// 1e5: return torch.zeros_like(p, dtype=dtype)</c>); smaller ones, and the 8-bit optimizers' fp32 block scales
    /// (<c>absmax1</c>/<c>absmax2</c>, plain <c>torch.zeros</c>), are ordinary device tensors in PyTorch's allocator.
    /// </summary>
    public const long PagedMinElements = 100_000;

    /// <summary>The states of a paged optimizer (<see cref="OptimizerKind.PagedAdamW"/>, <see cref="OptimizerKind.PagedAdamW8Bit"/>) that are ordinary device tensors.</summary>
    public static IReadOnlyList<State> OnDevice(OptimizerKind kind, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        IReadOnlyList<State> all = For(kind, shape);
        return kind is not (OptimizerKind.PagedAdamW or OptimizerKind.PagedAdamW8Bit) ? all
            : Elements(shape) < PagedMinElements ? all
            : [.. all.Where(s => s.Storage == Storage.Float32 && Elements(s.Shape) < Elements(shape))];
    }

    /// <summary>Bytes of the states <see cref="OnDevice"/> leaves in managed memory.</summary>
    public static long PagedBytes(IEnumerable<(long Elements, long Bytes, long[] Shape)> parameters, OptimizerKind kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Sum(p => For(kind, p.Shape).Sum(s => Elements(s.Shape) * BytesPerElement(s.Storage, 0))
            - OnDevice(kind, p.Shape).Sum(s => Elements(s.Shape) * BytesPerElement(s.Storage, 0)));
    }

    /// <summary>Bytes of the states <see cref="OnDevice"/> keeps in device memory.</summary>
    public static long DeviceBytes(IEnumerable<(long Elements, long Bytes, long[] Shape)> parameters, OptimizerKind kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Sum(p => OnDevice(kind, p.Shape).Sum(s => Elements(s.Shape) * BytesPerElement(s.Storage, 0)));
    }

    /// <summary>Bytes of every state of <paramref name="parameters"/> (elements, bytes per element of the parameter, shape).</summary>
    public static long Bytes(IEnumerable<(long Elements, long Bytes, long[] Shape)> parameters, OptimizerKind kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Sum(p => For(kind, p.Shape).Sum(s => Elements(s.Shape) * BytesPerElement(s.Storage, p.Bytes / (double)Math.Max(1, p.Elements))));
    }

    /// <summary>Bytes per element of a state: its own storage, or the parameter's bytes per element.</summary>
    public static long BytesPerElement(Storage storage, double parameterBytesPerElement) => storage switch
    {
        Storage.Float32 => 4,
        Storage.UInt8 => 1,
        _ => (long)parameterBytesPerElement,
    };

    /// <summary>The states' bytes as terms: "AdamW: 2 moments × 8,030,261,248 params × 4 B".</summary>
    public static Formula Formula(IReadOnlyCollection<(long Elements, long Bytes, long[] Shape)> parameters, OptimizerKind kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        long count = parameters.Sum(p => p.Elements);
        double per = parameters.Sum(p => p.Bytes) / (double)Math.Max(1, count);
        Formula Params() => Estimation.Formula.Count(count, "params");
        long total = Bytes(parameters, kind);
        return kind switch
        {
            OptimizerKind.AdamW => (Estimation.Formula.Count(2, "moments") * Params() * Estimation.Formula.Bytes(per)).After("AdamW:"),
            OptimizerKind.PagedAdamW => (Estimation.Formula.Count(2, "fp32 moments") * Params() * Estimation.Formula.Bytes(4)).After("paged AdamW:"),
            OptimizerKind.AdamW8Bit or OptimizerKind.PagedAdamW8Bit =>
                (Params() * Estimation.Formula.Bytes(2, "uint8 moments") + Estimation.Formula.Size(new ByteSize(total - (2 * count)), "of fp32 block scales and small-tensor moments"))
                .After("8-bit AdamW:"),
            OptimizerKind.Adafactor => Estimation.Formula.Size(new ByteSize(total)).After("Adafactor, fp32 row and column second moments per matrix and a full one per vector:"),
            OptimizerKind.SgdMomentum => (Params() * Estimation.Formula.Bytes(per)).After("SGD momentum:"),
            OptimizerKind.Lion => (Params() * Estimation.Formula.Bytes(per)).After("Lion, one momentum:"),
            _ => Estimation.Formula.Size(new ByteSize(total)),
        };
    }

    private static long Elements(long[] shape) => shape.Aggregate(1L, (a, x) => checked(a * x));
}
