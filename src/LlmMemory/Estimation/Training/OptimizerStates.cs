using LlmMemory.Estimation.Replay;

namespace LlmMemory.Estimation.Training;

/// <summary>
/// Optimizer state bytes per parameter tensor (docs/memory-model.md §4.2, research/torch SPEC §6): AdamW two moments of
/// the parameter's type; bitsandbytes 8-bit AdamW uint8 moments with an fp32 absmax per 256 values, tensors under 4096
/// elements keeping fp32 moments (<c>min_8bit_size</c>); Adafactor a factored fp32 second moment (rows + columns) for
/// matrices and a full one for vectors; SGD with momentum and Lion one buffer of the parameter's type.
/// </summary>
internal static class OptimizerStates
{
    public static long Bytes(IEnumerable<(long Elements, long Bytes, long[] Shape)> parameters, ReplayOptimizer kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        return parameters.Sum(p => kind switch
        {
            ReplayOptimizer.AdamW or ReplayOptimizer.AdamWFused or ReplayOptimizer.AdamWPerParameter => 2 * p.Bytes,
            ReplayOptimizer.AdamW8Bit => EightBit(p.Elements),
            ReplayOptimizer.Adafactor when p.Shape.Length >= 2 => 4 * (p.Shape[..^1].Aggregate(1L, (a, x) => a * x) + p.Shape[..^2].Aggregate(1L, (a, x) => a * x) * p.Shape[^1]),
            ReplayOptimizer.Adafactor => 4 * p.Elements,
            ReplayOptimizer.SgdMomentum or ReplayOptimizer.Lion => p.Bytes,
            _ => 0,
        });
    }

    public static string Formula(IReadOnlyCollection<(long Elements, long Bytes, long[] Shape)> parameters, ReplayOptimizer kind)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        long count = parameters.Sum(p => p.Elements);
        long bytes = parameters.Sum(p => p.Bytes);
        string total = new ByteSize(Bytes(parameters, kind)).ToString();
        return kind switch
        {
            ReplayOptimizer.AdamW or ReplayOptimizer.AdamWFused or ReplayOptimizer.AdamWPerParameter
                => $"AdamW: 2 moments × {Text.N(count)} params × {Text.N(bytes / (double)Math.Max(1, count))} B = {total}",
            ReplayOptimizer.AdamW8Bit => $"8-bit AdamW: {Text.N(count)} params × 2 B (uint8 moments) + fp32 absmax per 256 values (tensors under 4096 elements keep fp32 moments) = {total}",
            ReplayOptimizer.Adafactor => $"Adafactor: fp32 row + column second moments per matrix, a full fp32 one per vector, over {Text.N(count)} params = {total}",
            ReplayOptimizer.SgdMomentum => $"SGD momentum: {Text.N(count)} params × {Text.N(bytes / (double)Math.Max(1, count))} B = {total}",
            ReplayOptimizer.Lion => $"Lion: one momentum, {Text.N(count)} params × {Text.N(bytes / (double)Math.Max(1, count))} B = {total}",
            _ => total,
        };
    }

    /// <summary>bitsandbytes paged states: the 8-bit layout, or two fp32 moments for the 32-bit paged AdamW.</summary>
    public static long PagedBytes(IEnumerable<(long Elements, long Bytes, long[] Shape)> parameters, bool eightBit) =>
        parameters.Sum(p => eightBit ? EightBit(p.Elements) : 8 * p.Elements);

    public static string PagedFormula(IReadOnlyCollection<(long Elements, long Bytes, long[] Shape)> parameters, bool eightBit) =>
        eightBit
            ? $"{Text.N(parameters.Sum(p => p.Elements))} params × 2 B (uint8 moments) + fp32 absmax per 256 values"
            : $"2 fp32 moments × {Text.N(parameters.Sum(p => p.Elements))} params × 4 B";

    private static long EightBit(long n) => n < 4096 ? 8 * n : (2 * n) + (8 * ((n / 256) + 1));
}
