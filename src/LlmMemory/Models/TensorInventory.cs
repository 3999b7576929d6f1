namespace LlmMemory.Models;

/// <summary>Every parameter tensor of a model, whatever source described it (config.json, safetensors, GGUF).</summary>
/// <remarks>Non-parameters (rotary <c>inv_freq</c> buffers, causal-mask buffers, quantization scales) are never in it.</remarks>
public sealed record TensorInventory(IReadOnlyList<TensorSpec> Tensors)
{
    /// <summary>Total parameter count: the sum of every tensor's elements (tied tensors appear once).</summary>
    public long ParameterCount => Tensors.Sum(t => t.Elements);

    /// <summary>Parameters per role.</summary>
    public long CountOf(TensorRole role) => Tensors.Where(t => t.Role == role).Sum(t => t.Elements);

    /// <summary>Parameters of the tensors matching <paramref name="predicate"/>.</summary>
    public long CountWhere(Func<TensorSpec, bool> predicate) => Tensors.Where(predicate).Sum(t => t.Elements);
}
