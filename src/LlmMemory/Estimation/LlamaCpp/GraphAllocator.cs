namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// <c>ggml_gallocr_alloc_graph_impl</c> (ggml-alloc.c, read at ggml-org/llama.cpp 0450e2f9): one pass over the graph in
/// execution order with one <see cref="DynamicAllocator"/> per backend buffer. A compute buffer is the high-water mark of
/// that pass, fragmentation included; there is no closed formula for it.
/// </summary>
/// <remarks>
/// Leafs are allocated first; every node is allocated before its sources are released; a source is freed when its last
/// consumer ran and no view of it is alive; graph outputs are never freed. In-place ops (ADD, MUL, ROPE, RMS_NORM, UNARY,
/// SOFT_MAX, …) take over their first source when it was allocated here (views and external tensors never qualify), is not
/// an output, has the same type and shape, is contiguous, and has this node as its only remaining consumer.
/// </remarks>
internal sealed class GraphAllocator
{
    private readonly Dictionary<GraphTensor, State> _states = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<int, DynamicAllocator> _buffers;
    private readonly Func<GraphTensor, int> _bufferOf;
    private readonly Func<GraphTensor, long> _sizeOf;

    private GraphAllocator(IReadOnlyDictionary<int, long> alignments, Func<GraphTensor, int> bufferOf, Func<GraphTensor, long> sizeOf)
    {
        _buffers = alignments.ToDictionary(a => a.Key, a => new DynamicAllocator(a.Value));
        _bufferOf = bufferOf;
        _sizeOf = sizeOf;
    }

    /// <summary>The size of the one buffer a graph needs on a single backend (the CPU: alignment 32).</summary>
    public static long Run(ComputeGraph graph, long alignment) =>
        Run(graph, new Dictionary<int, long> { [0] = alignment }, _ => 0, t => t.Bytes)[0];

    /// <summary>The size of every backend buffer, for tensors placed by <paramref name="bufferOf"/>.</summary>
    public static IReadOnlyDictionary<int, long> Run(ComputeGraph graph, IReadOnlyDictionary<int, long> alignments,
        Func<GraphTensor, int> bufferOf, Func<GraphTensor, long> sizeOf)
    {
        var allocator = new GraphAllocator(alignments, bufferOf, sizeOf);
        allocator.AllocateGraph(graph);
        return allocator._buffers.ToDictionary(b => b.Key, b => b.Value.MaxSize);
    }

    private static bool IsInPlace(GgmlOp op) => op is GgmlOp.Add or GgmlOp.Mul or GgmlOp.Rope or GgmlOp.RmsNorm or GgmlOp.Unary or GgmlOp.SoftMax;

    private State Of(GraphTensor tensor)
    {
        if (!_states.TryGetValue(tensor, out State? state))
        {
            state = new State();
            _states[tensor] = state;
        }

        return state;
    }

    private void AllocateGraph(ComputeGraph graph)
    {
        foreach (GraphTensor leaf in graph.Leafs)
        {
            Allocate(leaf);
        }

        foreach (GraphTensor node in graph.Nodes)
        {
            if (node.ViewSource is not null && !node.IsLeaf)
            {
                Of(node.ViewSource).Views++;
            }

            if (node.Flags.HasFlag(TensorFlags.Input))
            {
                Allocate(node);
            }

            foreach (GraphTensor? source in node.Sources)
            {
                if (source is null)
                {
                    continue;
                }

                Of(source).Children++;
                if (source.Flags.HasFlag(TensorFlags.Input))
                {
                    Allocate(source);
                }
            }
        }

        foreach (GraphTensor node in graph.Nodes)
        {
            foreach (GraphTensor? source in node.Sources)
            {
                if (source is not null)
                {
                    Allocate(source);
                }
            }

            Allocate(node);
            foreach (GraphTensor? parent in node.Sources)
            {
                if (parent is not null)
                {
                    Release(parent);
                }
            }
        }
    }

    private void Release(GraphTensor parent)
    {
        State state = Of(parent);
        state.Children--;
        if (state.Children != 0 || state.Views != 0)
        {
            return;
        }

        if (parent.ViewSource is not null)
        {
            State owner = Of(parent.ViewSource);
            owner.Views--;
            if (owner.Views == 0 && owner.Children == 0 && owner.Allocated)
            {
                Free(parent.ViewSource, owner);
            }
        }
        else if (state.Allocated)
        {
            Free(parent, state);
        }
    }

    private void Allocate(GraphTensor tensor)
    {
        State state = Of(tensor);
        if (tensor.External || state.Allocated || tensor.ViewSource is not null)
        {
            return;
        }

        state.Allocated = true;
        if (IsInPlace(tensor.Op) && TryReuseParent(tensor, state))
        {
            return;
        }

        state.Buffer = _bufferOf(tensor);
        state.Offset = _buffers[state.Buffer].Allocate(_sizeOf(tensor));
    }

    private bool TryReuseParent(GraphTensor tensor, State state)
    {
        foreach (GraphTensor? parent in tensor.Sources)
        {
            if (parent is null)
            {
                continue;
            }

            State p = Of(parent);
            if (!p.Allocated || parent.Flags.HasFlag(TensorFlags.Output) || parent.Type != tensor.Type || !parent.SameShape(tensor)
                || !parent.Contiguous)
            {
                continue;
            }

            if (p.Children == 1 && p.Views == 0)
            {
                state.Offset = p.Offset;
                state.Buffer = p.Buffer;
                p.Allocated = false;
                DynamicAllocator buffer = _buffers[p.Buffer];
                long parentSize = buffer.Pad(_sizeOf(parent));
                long size = buffer.Pad(_sizeOf(tensor));
                if (parentSize > size)
                {
                    buffer.Free(p.Offset + size, parentSize - size);
                }

                return true;
            }
        }

        return false;
    }

    private void Free(GraphTensor tensor, State state)
    {
        if (tensor.Flags.HasFlag(TensorFlags.Output))
        {
            return;
        }

        _buffers[state.Buffer].Free(state.Offset, _sizeOf(tensor));
        state.Allocated = false;
    }

    private sealed class State
    {
        public int Children { get; set; }

        public int Views { get; set; }

        public bool Allocated { get; set; }

        public long Offset { get; set; }

        public int Buffer { get; set; }
    }
}
