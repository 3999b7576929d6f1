using LlmMemory.Models;

namespace LlmMemory.Estimation.Weights;

/// <summary>How one parameter tensor is stored: its bytes and a label for the storage ("bf16", "NF4+DQ", "Q6_K").</summary>
/// <param name="Tensor">The parameter tensor.</param>
/// <param name="Bytes">Bytes stored for it, quantization scales and zero points included.</param>
/// <param name="Storage">How it is stored, for grouping in formulas.</param>
/// <param name="QuantStateBytes">
/// Of <paramref name="Bytes"/>, those bitsandbytes keeps in the module's <c>QuantState</c> (absmax, nested absmax and offset)
/// rather than in the 4-bit parameter itself; 0 for every other storage.
/// </param>
public sealed record StoredTensor(TensorSpec Tensor, long Bytes, string Storage, long QuantStateBytes = 0);

/// <summary>The stored form of every weight tensor of a model in one format; its sums and formula are computed once.</summary>
public sealed record WeightLayout
{
    private readonly Lazy<Formula> _formula;

    public WeightLayout(IReadOnlyList<StoredTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Tensors = tensors;
        Bytes = tensors.Sum(t => t.Bytes);
        _formula = new Lazy<Formula>(() => Estimation.Formula.SumOf(ByStorage().Select(g => g.Parameters == 0
            ? Estimation.Formula.Size(new ByteSize(g.Bytes), $"of {g.Storage}")
            : Estimation.Formula.Count(g.Parameters, "params") * Estimation.Formula.Bytes(g.Bytes / (double)g.Parameters, g.Storage))));
    }

    public IReadOnlyList<StoredTensor> Tensors { get; }

    public long Bytes { get; }

    /// <summary>Parameters and bytes per storage label, largest first: the parts of the weights formula.</summary>
    public IReadOnlyList<(string Storage, long Parameters, long Bytes)> ByStorage() =>
        Tensors.GroupBy(t => t.Storage)
            .Select(g => (g.Key, g.Sum(t => t.Tensor.Elements), g.Sum(t => t.Bytes)))
            .OrderByDescending(g => g.Item3)
            .ToArray();

    /// <summary>"6,979,321,856 params × 0.5156 B (NF4+DQ) + 1,050,939,392 params × 2 B (bf16)": each storage's parameters and bytes per parameter.</summary>
    public Formula Formula() => _formula.Value;
}
