using LlmMemory.Models;

namespace LlmMemory.Estimation.Weights;

/// <summary>How one parameter tensor is stored: its bytes and a label for the storage ("bf16", "NF4+DQ", "Q6_K").</summary>
/// <param name="Tensor">The parameter tensor.</param>
/// <param name="Bytes">Bytes stored for it, quantization scales and zero points included.</param>
/// <param name="Storage">How it is stored, for grouping in formulas.</param>
public sealed record StoredTensor(TensorSpec Tensor, long Bytes, string Storage);

/// <summary>The stored form of every weight tensor of a model in one format; its sums and formula are computed once.</summary>
public sealed record WeightLayout
{
    private readonly Lazy<string> _formula;

    public WeightLayout(IReadOnlyList<StoredTensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Tensors = tensors;
        Bytes = tensors.Sum(t => t.Bytes);
        _formula = new Lazy<string>(() =>
            string.Join(" + ", ByStorage().Select(g => $"{Text.N(g.Parameters)} params in {g.Storage} = {new ByteSize(g.Bytes)}")));
    }

    public IReadOnlyList<StoredTensor> Tensors { get; }

    public long Bytes { get; }

    /// <summary>Parameters and bytes per storage label, largest first: the parts of the weights formula.</summary>
    public IReadOnlyList<(string Storage, long Parameters, long Bytes)> ByStorage() =>
        Tensors.GroupBy(t => t.Storage)
            .Select(g => (g.Key, g.Sum(t => t.Tensor.Elements), g.Sum(t => t.Bytes)))
            .OrderByDescending(g => g.Item3)
            .ToArray();

    /// <summary>"6,979,321,856 params in NF4+DQ = 3.36 GiB + 1,050,939,392 params in bf16 = 1.96 GiB".</summary>
    public string Formula() => _formula.Value;
}
