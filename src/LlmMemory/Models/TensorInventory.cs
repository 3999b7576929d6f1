namespace LlmMemory.Models;

/// <summary>Every parameter tensor of a model, whatever source described it (config.json, safetensors, GGUF).</summary>
/// <remarks>
/// Non-parameters (rotary <c>inv_freq</c> buffers, causal-mask buffers, quantization scales) are never in
/// <see cref="Tensors"/>; when a weights file stores them they are listed in <see cref="Buffers"/>, so that the file's
/// bytes are all accounted for while the parameter count stays the model's.
/// </remarks>
public sealed record TensorInventory
{
    public TensorInventory(IReadOnlyList<TensorSpec> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        Tensors = tensors;
        ParameterCount = tensors.Sum(t => t.Elements);
    }

    /// <summary>Every parameter tensor.</summary>
    public IReadOnlyList<TensorSpec> Tensors { get; }

    /// <summary>Tensors a weights file stores that are not parameters (quantization scales and zero points, rotary tables, masks).</summary>
    public IReadOnlyList<TensorSpec> Buffers { get; init; } = [];

    /// <summary>Total parameter count: the sum of every tensor's elements (tied tensors appear once), counted once.</summary>
    public long ParameterCount { get; }

    /// <summary>Parameters per role.</summary>
    public long CountOf(TensorRole role) => Tensors.Where(t => t.Role == role).Sum(t => t.Elements);

    /// <summary>Parameters of the tensors matching <paramref name="predicate"/>.</summary>
    public long CountWhere(Func<TensorSpec, bool> predicate) => Tensors.Where(predicate).Sum(t => t.Elements);

    /// <summary>Exact bytes of every stored tensor, parameters and buffers; null unless a weights file gave every tensor's type.</summary>
    public long? StoredBytes => Tensors.Concat(Buffers).All(t => t.Stored is not null)
        ? Tensors.Concat(Buffers).Sum(t => t.StoredBytes!.Value)
        : null;
}
