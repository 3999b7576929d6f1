using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>The ggml ops the llama.cpp graphs here use; only what decides memory (shape, type, views, in-place reuse) is kept.</summary>
internal enum GgmlOp
{
    /// <summary>A leaf: a graph input, a weight or a KV-cache tensor.</summary>
    None,
    GetRows,
    Norm,
    RmsNorm,
    Mul,
    Add,
    MulMat,
    Rope,
    View,
    Reshape,
    Permute,
    Transpose,
    SetRows,
    Cpy,
    Cont,
    SoftMax,
    FlashAttnExt,
    Glu,
    Unary,
}

/// <summary>ggml tensor flags that matter to the allocator (<c>GGML_TENSOR_FLAG_INPUT</c>, <c>_OUTPUT</c>).</summary>
[Flags]
internal enum TensorFlags
{
    None = 0,
    Input = 1,
    Output = 2,
}

/// <summary>
/// One tensor of a ggml compute graph: its op, type, shape (<c>ne</c>, 4 dimensions, <c>ne[0]</c> the row) and sources.
/// </summary>
/// <remarks>
/// A class, compared by reference like ggml's <c>ggml_tensor *</c>: the allocator and the scheduler key their state on the
/// tensor object. Sources are rewritten by the scheduler when it inserts copies between backends, as
/// <c>ggml_backend_sched_split_graph</c> does.
/// </remarks>
internal sealed class GraphTensor
{
    public GraphTensor(string name, GgmlOp op, DataType type, IReadOnlyList<long> ne, IReadOnlyList<GraphTensor?> sources, int layer)
    {
        Name = name;
        Op = op;
        Type = type;
        Ne = [ne.Count > 0 ? ne[0] : 1, ne.Count > 1 ? ne[1] : 1, ne.Count > 2 ? ne[2] : 1, ne.Count > 3 ? ne[3] : 1];
        Sources = [.. sources];
        Layer = layer;
    }

    public string Name { get; }

    public GgmlOp Op { get; }

    public DataType Type { get; }

    /// <summary>ne[0..3].</summary>
    public long[] Ne { get; }

    public List<GraphTensor?> Sources { get; set; }

    /// <summary>The tensor whose memory a view uses (<c>view_src</c>); null for a tensor with its own memory.</summary>
    public GraphTensor? ViewSource { get; init; }

    public TensorFlags Flags { get; set; }

    /// <summary>Memory not owned by the compute buffer: weights, the KV cache, and views into them.</summary>
    public bool External { get; init; }

    /// <summary>Whether the data is contiguous (in-place reuse requires it).</summary>
    public bool Contiguous { get; init; } = true;

    /// <summary>The block the tensor was built in: −1 for the inputs, n_layer for the output head.</summary>
    public int Layer { get; }

    public bool IsLeaf => Op == GgmlOp.None;

    /// <summary><c>ggml_nbytes</c> of a contiguous tensor: <c>ggml_row_size(type, ne[0]) × ne[1] × ne[2] × ne[3]</c>.</summary>
    public long Bytes => checked(Type.BytesFor(Ne[0]) * Ne[1] * Ne[2] * Ne[3]);

    public bool SameShape(GraphTensor other) => Ne.AsSpan().SequenceEqual(other.Ne);

    public override string ToString() => $"{Name}({Op} {Type} [{string.Join(", ", Ne)}])";
}
