using System.Collections.Immutable;

namespace LlmMemory.Models;

/// <summary>One tensor of a model: its checkpoint name, shape and role.</summary>
/// <param name="Name">Hugging Face checkpoint name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="Shape">Dimensions in PyTorch order ([out, in] for linear weights).</param>
/// <param name="Role">What the tensor does.</param>
/// <param name="Form">Module kind, which decides quantization and LoRA eligibility.</param>
/// <param name="Layer">Block index, or null outside the blocks.</param>
/// <param name="Module">The leaf module name LoRA targets use (<c>q_proj</c>, <c>c_attn</c>, <c>query_key_value</c>).</param>
/// <param name="Stored">The type a weights file stores it in (safetensors dtype, ggml type); null when only a config described it.</param>
public sealed record TensorSpec(string Name, ImmutableArray<long> Shape, TensorRole Role, TensorForm Form, int? Layer, string Module,
    Numerics.DataType? Stored = null)
{
    /// <summary>Number of elements (product of the shape).</summary>
    public long Elements => Shape.Aggregate(1L, (product, dimension) => checked(product * dimension));

    /// <summary>Exact bytes in the weights file (<see cref="Stored"/> over <see cref="Elements"/>); null when no file gave the type.</summary>
    public long? StoredBytes => Stored?.BytesFor(Elements);

    /// <summary>Input features of a linear weight (last dimension).</summary>
    public long InFeatures => Shape[^1];

    /// <summary>Output features of a linear weight (second to last dimension).</summary>
    public long OutFeatures => Shape.Length >= 2 ? Shape[^2] : Shape[0];
}
