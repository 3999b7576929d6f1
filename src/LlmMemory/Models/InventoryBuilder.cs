using System.Collections.Immutable;

namespace LlmMemory.Models;

/// <summary>Collects the tensors of a model while a reader walks its structure.</summary>
internal sealed class InventoryBuilder
{
    private readonly List<TensorSpec> _tensors = [];

    /// <summary>An <c>nn.Linear</c>: <c>{prefix}.{module}.weight</c> [out, in] and, when <paramref name="bias"/>, <c>.bias</c> [out].</summary>
    public void Linear(string prefix, string module, TensorRole role, int? layer, long outFeatures, long inFeatures, bool bias)
    {
        string name = prefix.Length == 0 ? module : $"{prefix}.{module}";
        Add($"{name}.weight", [outFeatures, inFeatures], role, TensorForm.LinearWeight, layer, module);
        if (bias)
        {
            Add($"{name}.bias", [outFeatures], role, TensorForm.Bias, layer, module);
        }
    }

    /// <summary>A norm: weight [width] and, for LayerNorm, bias [width].</summary>
    public void Norm(string prefix, string module, int? layer, long width, bool withBias)
    {
        Add($"{prefix}.{module}.weight", [width], TensorRole.Norm, TensorForm.Vector, layer, module);
        if (withBias)
        {
            Add($"{prefix}.{module}.bias", [width], TensorRole.Norm, TensorForm.Vector, layer, module);
        }
    }

    public void Embedding(string name, TensorRole role, long rows, long width, string module) =>
        Add(name, [rows, width], role, TensorForm.Embedding, null, module);

    public void Vector(string name, TensorRole role, int? layer, long length, string module) =>
        Add(name, [length], role, TensorForm.Vector, layer, module);

    /// <summary><paramref name="experts"/> separate linear experts named <c>{prefix}.{e}.{module}.weight</c>, listed once as [experts, out, in].</summary>
    public void ExpertLinears(string prefix, string module, TensorRole role, int layer, long experts, long outFeatures, long inFeatures) =>
        Add($"{prefix}.*.{module}.weight", [experts, outFeatures, inFeatures], role, TensorForm.ExpertLinear, layer, module);

    /// <summary>One fused 3-D expert parameter (not an <c>nn.Linear</c>).</summary>
    public void FusedExperts(string name, string module, int layer, params long[] shape) =>
        Add(name, [.. shape], TensorRole.Expert, shape.Length == 3 ? TensorForm.FusedExperts : TensorForm.Bias, layer, module);

    public TensorInventory Build(string source)
    {
        var inventory = new TensorInventory(_tensors.ToArray());
        long total;
        try
        {
            total = inventory.ParameterCount;
        }
        catch (OverflowException)
        {
            throw new ModelFormatException(source, null, "describes a model whose parameter count overflows a 64-bit integer.");
        }

        return total <= Limits.MaxParameters
            ? inventory
            : throw new ModelFormatException(source, null, $"describes {total:N0} parameters, above the limit of {Limits.MaxParameters:N0}.");
    }

    private void Add(string name, ImmutableArray<long> shape, TensorRole role, TensorForm form, int? layer, string module) =>
        _tensors.Add(new TensorSpec(name, shape, role, form, layer, module));
}
