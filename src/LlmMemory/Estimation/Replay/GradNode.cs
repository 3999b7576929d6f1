namespace LlmMemory.Estimation.Replay;

/// <summary>Computes the gradients of a node's inputs from its output gradient; one owned reference per edge (null where none).</summary>
internal delegate Tensor?[] BackwardFormula(ReplayEngine engine, GradNode node, Tensor? gradient);

/// <summary>
/// Shape and type of a node input, which is all a backward formula needs to allocate its gradient; the default (no shape)
/// stands for no input, so a node's inputs are a plain array rather than one of nullables (a third larger).
/// </summary>
internal readonly record struct TensorMeta(long[] Shape, ScalarType Type);

/// <summary>
/// An autograd node: the edges to the nodes of its inputs, the tensors the derivative formula saves
/// (<c>tools/autograd/derivatives.yaml</c>) and the formula itself. It lives while an output tensor or a later node
/// refers to it; the saved tensors go with it, or right after it runs in backward (<c>release_variables</c>).
/// </summary>
internal class GradNode(long sequence, BackwardFormula? formula)
{
    [ThreadStatic]
    private static Stack<GradNode>? t_dying;

    private int _references;

    /// <summary>Creation order; backward runs the ready node with the highest number first.</summary>
    public long Sequence { get; } = sequence;

    public BackwardFormula? Formula { get; } = formula;

    public GradNode?[] Edges { get; init; } = [];

    public TensorMeta[] Inputs { get; init; } = [];

    public Tensor[] Saved { get; set; } = [];

    /// <summary>
    /// Tensors a custom <c>autograd.Function</c> puts on <c>ctx</c> as plain attributes (<c>ctx.tensors = (A, B)</c>), outside
    /// <c>save_for_backward</c>: <c>PyNode::release_variables</c> (torch/csrc/autograd/python_function.cpp) clears only the
    /// saved variables after the node ran, so these live as long as the node itself, until its graph dies.
    /// </summary>
    public Tensor[] Held { get; init; } = [];

    /// <summary>The checkpointed region the node was recorded in, and its index there.</summary>
    public Region? Region { get; init; }

    public int RegionIndex { get; init; }

    /// <summary>The forward position it was created at: a block index, -1 before the blocks, the block count in the head.</summary>
    public int Layer { get; init; }

    /// <summary>What the gradients it allocates hold, for the breakdown: the loss region's own, or activation gradients.</summary>
    public MemoryTag Tag { get; init; } = MemoryTag.Activation;

    /// <summary>The backward pass whose bookkeeping <see cref="Pending"/>, <see cref="Buffer"/> and <see cref="Buffered"/> hold.</summary>
    public int BackwardRun { get; private set; }

    /// <summary>In that backward: edges from nodes that have not run yet; the node is ready at zero.</summary>
    public int Pending { get; set; }

    /// <summary>In that backward: the gradient summed so far for the node's output (null: none, or an undefined one).</summary>
    public Tensor? Buffer { get; set; }

    /// <summary>In that backward: whether an edge delivered to <see cref="Buffer"/> yet (a null gradient counts).</summary>
    public bool Buffered { get; set; }

    /// <summary>Resets the backward bookkeeping for the pass <paramref name="run"/>.</summary>
    public void StartBackward(int run)
    {
        BackwardRun = run;
        Pending = 0;
        Buffer = null;
        Buffered = false;
    }

    public GradNode Retain()
    {
        _references++;
        return this;
    }

    /// <summary>
    /// Drops a reference; a node nobody refers to frees its saved tensors and drops its edges. Whole graphs die at once
    /// (the loss after backward), so the cascade runs from a work list rather than by recursion.
    /// </summary>
    public void Release()
    {
        if (--_references > 0)
        {
            return;
        }

        if (t_dying is { } pending)
        {
            pending.Push(this);
            return;
        }

        t_dying = new Stack<GradNode>([this]);
        try
        {
            while (t_dying.Count > 0)
            {
                t_dying.Pop().Die();
            }
        }
        finally
        {
            t_dying = null;
        }
    }

    private void Die()
    {
        foreach (Tensor saved in Saved)
        {
            saved.Release();
        }

        Saved = [];
        foreach (Tensor held in Held)
        {
            held.Storage?.AddSaver(-1);
            held.Release();
        }

        foreach (GradNode? edge in Edges)
        {
            edge?.Release();
        }

        Region?.Release();
    }
}

/// <summary>
/// <c>AccumulateGrad</c> of a leaf: runs as soon as it is ready (sequence number <c>UINT64_MAX</c>) and steals or
/// accumulates the leaf's gradient. It refers to the leaf weakly, as the engine does.
/// </summary>
internal sealed class AccumulateGrad(Tensor leaf) : GradNode(long.MaxValue, null)
{
    public Tensor Leaf { get; } = leaf;
}

/// <summary>
/// One non-reentrant checkpointed region (<c>torch.utils.checkpoint(..., use_reentrant=False)</c>, one decoder layer): it
/// keeps its input and recomputes the saved tensors of its nodes when the first of them runs in backward, stopping after
/// the last op that saves something. It lives while its nodes do, and keeps what its forward closes over (masks, rotary
/// tables) as long.
/// </summary>
internal sealed class Region
{
    private readonly Tensor[] _captured;
    private int _references = 1;

    /// <summary>Keeps <paramref name="input"/> and <paramref name="captured"/> (references taken by the caller) as saved for backward.</summary>
    public Region(Func<Tensor, Tensor> forward, Tensor input, ScalarType? autocast, Tensor[] captured)
    {
        Forward = forward;
        Input = input;
        Autocast = autocast;
        _captured = captured;
        foreach (Tensor kept in captured.Prepend(input))
        {
            kept.Storage?.AddSaver(1);
        }
    }

    public Func<Tensor, Tensor> Forward { get; }

    /// <summary>The region input on the device; null once dropped (after its first node ran in backward, or offloaded).</summary>
    public Tensor? Input { get; private set; }

    /// <summary>Shape and type of an input that was offloaded to host memory (torchtune activation offloading).</summary>
    public TensorMeta? Offloaded { get; set; }

    /// <summary>The autocast state the region ran under; the recomputation runs under it again.</summary>
    public ScalarType? Autocast { get; }

    /// <summary>Nodes recorded in the forward (and, while recomputing, ops replayed).</summary>
    public int Count { get; set; }

    /// <summary>Index of the last node that saves something (-1: none).</summary>
    public int LastSaving { get; set; } = -1;

    /// <summary>Saved tensors of the recomputation, by node index; null until the region is recomputed.</summary>
    public Dictionary<int, Tensor[]>? Store { get; set; }

    public void DropInput()
    {
        Input?.Storage?.AddSaver(-1);
        Input?.Release();
        Input = null;
    }

    public void Retain() => _references++;

    public void Release()
    {
        if (--_references > 0)
        {
            return;
        }

        DropInput();
        foreach (Tensor tensor in _captured)
        {
            tensor.Storage?.AddSaver(-1);
            tensor.Release();
        }

        foreach (Tensor tensor in Store?.Values.SelectMany(saved => saved) ?? [])
        {
            tensor.Storage?.AddSaver(-1);
            tensor.Release();
        }
    }
}
