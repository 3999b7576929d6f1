using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// Creates graph tensors the way the ggml ops do (shape, type, sources, view semantics), stamping each with the block being
/// built, as llama.cpp's graph callback names tensors per layer.
/// </summary>
internal sealed class GraphFactory(IReadOnlyDictionary<string, DataType> weightTypes)
{
    public ComputeGraph Graph { get; } = new();

    /// <summary>The block being built: −1 for the inputs, n_layer for the output head.</summary>
    public int Layer { get; set; } = -1;

    public GraphTensor Leaf(string name, DataType type, IReadOnlyList<long> ne, bool external = false, bool input = false) =>
        new(name, GgmlOp.None, type, ne, [], Layer) { External = external, Flags = input ? TensorFlags.Input : TensorFlags.None };

    /// <summary>A weight of the model file (external memory); its type is the file's, F32 for vectors and F16 otherwise when unknown.</summary>
    public GraphTensor Weight(string name, params long[] ne) =>
        Leaf(name, weightTypes.GetValueOrDefault(name) ?? (ne.Length == 1 ? DataTypes.F32 : DataTypes.F16), ne, external: true);

    public GraphTensor Op(string name, GgmlOp op, DataType type, IReadOnlyList<long> ne, params GraphTensor?[] sources) =>
        new(name, op, type, ne, sources, Layer);

    public GraphTensor F32(string name, GgmlOp op, IReadOnlyList<long> ne, params GraphTensor?[] sources) =>
        Op(name, op, DataTypes.F32, ne, sources);

    /// <summary>An op that writes into another tensor's memory (SET_ROWS or CPY into the KV cache).</summary>
    public GraphTensor Into(string name, GgmlOp op, DataType type, IReadOnlyList<long> ne, GraphTensor destination, params GraphTensor?[] sources) =>
        new(name, op, type, ne, sources, Layer) { ViewSource = destination, External = destination.External };

    /// <summary><c>ggml_view_*</c>: shares the memory of the tensor <paramref name="a"/> views (or of what <paramref name="a"/> itself views).</summary>
    public GraphTensor View(GraphTensor a, IReadOnlyList<long> ne, string? name = null, GgmlOp op = GgmlOp.View, bool contiguous = false) =>
        new(name ?? a.Name + " (view)", op, a.Type, ne, [a], Layer)
        {
            ViewSource = a.ViewSource ?? a,
            External = a.External,
            Contiguous = contiguous,
        };

    public GraphTensor Reshape(GraphTensor a, IReadOnlyList<long> ne, string? name = null) =>
        View(a, ne, name ?? a.Name + " (reshaped)", GgmlOp.Reshape, a.Contiguous);

    public GraphTensor Permute(GraphTensor a, IReadOnlyList<long> ne) => View(a, ne, a.Name + " (permuted)", GgmlOp.Permute);

    public GraphTensor Expand(GraphTensor tensor) => Graph.Expand(tensor);
}
