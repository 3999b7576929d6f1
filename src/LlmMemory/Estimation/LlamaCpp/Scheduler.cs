using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>Where each layer's weights and KV cache live, as the scheduler sees backends: GPUs 0..n−1, then the CPU.</summary>
/// <param name="Gpus">Number of GPUs; the CPU backend is number <paramref name="Gpus"/>.</param>
/// <param name="Layers">n_layer.</param>
/// <param name="DeviceOfLayer">The backend of block il's weights and cache.</param>
/// <param name="OutputDevice">The backend of the output layer.</param>
/// <param name="FullOffload">Every block and the output layer are on GPUs.</param>
/// <param name="NotHost">Weights in a CPU buffer that is not host memory (repacked copies), so their ops cannot be offloaded.</param>
internal sealed record BackendLayout(int Gpus, int Layers, Func<int, int> DeviceOfLayer, int OutputDevice, bool FullOffload, IReadOnlySet<string> NotHost)
{
    public int Cpu => Gpus;
}

/// <summary>
/// <c>ggml_backend_sched_split_graph</c> and <c>ggml_gallocr_reserve_n</c> (ggml-backend.cpp) for a graph over GPUs and the
/// CPU: which backend runs each node, where copies between backends go, and the compute buffer of every backend
/// (research/llamacpp SPEC §4.6). Pinned by the b4823 CUDA logs (full and partial offload) and issue 11200 (two GPUs).
/// </summary>
/// <remarks>
/// Pass 1: a node writing into a pre-allocated tensor runs where that tensor lives; graph inputs on the CPU; an op with a
/// weight where the weight lives — or on GPU 0 when the weight is in host memory and the op has at least 32 rows (op offload,
/// never for GET_ROWS); <c>norm-il</c> is pinned to layer il's device when everything is offloaded. Pass 2: GPU assignments
/// spread down then up over unassigned nodes, then any assignment; views follow their source. Splits are runs of one backend;
/// each split gets one copy of every tensor it reads from another backend. With pipeline parallelism
/// (<c>GGML_SCHED_MAX_COPIES</c> = 4) the copies and the graph inputs exist four times and are never freed. Scheduler passes 3
/// and 4 (upgrades to higher-priority backends) are simplified away; Metal/Vulkan reordering is not modelled.
/// </remarks>
internal sealed class Scheduler
{
    /// <summary>CUDA buffers align to 128 B; the CPU (and CUDA_Host) to 32 B (<c>TENSOR_ALIGNMENT</c>).</summary>
    private const long GpuAlignment = 128;

    private const long CpuAlignment = 32;

    /// <summary><c>get_op_batch_size</c> threshold of ggml-cuda for offloading an op whose weight is in host memory.</summary>
    private const long OpOffloadMinBatch = 32;

    /// <summary><c>MATRIX_ROW_PADDING</c> of ggml-cuda: quantized rows are padded to a multiple of 512 elements.</summary>
    private const long MatrixRowPadding = 512;

    private readonly BackendLayout _layout;
    private readonly int _copies;
    private readonly Dictionary<GraphTensor, int> _backend = new(ReferenceEqualityComparer.Instance);

    private Scheduler(BackendLayout layout, int copies)
    {
        _layout = layout;
        _copies = copies;
    }

    /// <summary>Compute buffer bytes per backend (GPUs 0..n−1, the CPU last) for one graph.</summary>
    public static IReadOnlyDictionary<int, long> Reserve(ComputeGraph graph, BackendLayout layout, int copies)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(layout);
        var scheduler = new Scheduler(layout, copies);
        scheduler.Assign(graph.Nodes);
        ComputeGraph split = scheduler.Split(graph);
        var alignments = new Dictionary<int, long>();
        for (int gpu = 0; gpu < layout.Gpus; gpu++)
        {
            alignments[gpu] = GpuAlignment;
        }

        alignments[layout.Cpu] = CpuAlignment;
        return GraphAllocator.Run(split, alignments, t => scheduler._backend.GetValueOrDefault(t, layout.Cpu), scheduler.AllocationSize);
    }

    private static bool IsViewLike(GraphTensor t) => t.Op is GgmlOp.None or GgmlOp.View or GgmlOp.Reshape or GgmlOp.Permute or GgmlOp.Transpose;

    private static bool IsWeight(GraphTensor t) => t.External && t.IsLeaf && !t.Name.StartsWith("cache_", StringComparison.Ordinal);

    /// <summary>ggml-cuda <c>get_op_batch_size</c>: rows of a MUL_MAT's activation, rows of other ops, 0 for GET_ROWS.</summary>
    private static long BatchSize(GraphTensor t) => t.Op switch
    {
        GgmlOp.GetRows => 0,
        GgmlOp.MulMat => t.Ne[1],
        _ => t.Ne[1] * t.Ne[2] * t.Ne[3],
    };

    /// <summary>Where a leaf's memory is: inputs and compute tensors on the CPU, weights and caches with their layer.</summary>
    private int? LeafBackend(GraphTensor t)
    {
        if (!t.IsLeaf)
        {
            return _backend.TryGetValue(t, out int b) ? b : null;
        }

        if (t.Flags.HasFlag(TensorFlags.Input) || !t.External || t.Name.StartsWith("token_embd", StringComparison.Ordinal) || t.Layer < 0)
        {
            return _layout.Cpu;
        }

        return t.Layer >= _layout.Layers ? _layout.OutputDevice : _layout.DeviceOfLayer(t.Layer);
    }

    private int BackendOf(GraphTensor t) => !t.IsLeaf || _backend.ContainsKey(t) ? _backend[t] : LeafBackend(t)!.Value;

    private void Assign(List<GraphTensor> nodes)
    {
        int cpu = _layout.Cpu;
        foreach (GraphTensor n in nodes)
        {
            if (n.ViewSource is { External: true } source)
            {
                _backend[n] = LeafBackend(source)!.Value;
                continue;
            }

            if (n.Flags.HasFlag(TensorFlags.Input))
            {
                _backend[n] = cpu;
                continue;
            }

            if (_layout.FullOffload && n.Name == $"norm-{n.Layer}" && n.Layer >= 0 && n.Layer < _layout.Layers && n.Op is GgmlOp.Norm or GgmlOp.RmsNorm)
            {
                _backend[n] = _layout.DeviceOfLayer(n.Layer);
                continue;
            }

            foreach (GraphTensor? s in n.Sources)
            {
                if (s is not null && IsWeight(s))
                {
                    int b = LeafBackend(s)!.Value;
                    if (b == cpu && _layout.Gpus > 0 && n.Op != GgmlOp.GetRows && BatchSize(n) >= OpOffloadMinBatch && !_layout.NotHost.Contains(s.Name))
                    {
                        b = 0;
                    }

                    _backend[n] = b;
                    break;
                }
            }
        }

        List<GraphTensor> ops = nodes.Where(n => !IsViewLike(n)).ToList();
        List<GraphTensor> reversed = Enumerable.Reverse(ops).ToList();
        foreach ((List<GraphTensor> order, bool gpuOnly) in new[] { (ops, true), (reversed, true), (ops, false), (reversed, false) })
        {
            int? current = null;
            foreach (GraphTensor n in order)
            {
                if (_backend.TryGetValue(n, out int b))
                {
                    current = gpuOnly && b == cpu ? null : b;
                }
                else if (current is int c)
                {
                    _backend[n] = c;
                }
            }
        }

        foreach (GraphTensor n in ops)
        {
            _backend.TryAdd(n, cpu);
        }

        foreach (GraphTensor n in nodes.Where(n => IsViewLike(n) && !_backend.ContainsKey(n)))
        {
            GraphTensor src = n.ViewSource ?? n.Sources[0]!;
            _backend[n] = src.IsLeaf ? LeafBackend(src)!.Value : _backend.GetValueOrDefault(src, cpu);
        }
    }

    private ComputeGraph Split(ComputeGraph graph)
    {
        var copies = new Dictionary<(GraphTensor, int), GraphTensor>();
        var graphInputs = new List<GraphTensor>();
        var splits = new List<(int Backend, List<(GraphTensor Source, GraphTensor Copy)> Inputs, List<GraphTensor> Nodes)>();
        (int Backend, List<(GraphTensor Source, GraphTensor Copy)> Inputs, List<GraphTensor> Nodes)? current = null;
        foreach (GraphTensor n in graph.Nodes)
        {
            int b = BackendOf(n);
            if (IsViewLike(n) && current is { } open)
            {
                open.Nodes.Add(n);
                continue;
            }

            bool newSplit = current is null || b != current.Value.Backend;
            if (!newSplit && current!.Value.Inputs.Count > 0)
            {
                newSplit = n.Sources.Any(s => s is not null && IsWeight(s) && LeafBackend(s) != current.Value.Backend);
            }

            if (newSplit)
            {
                current = (b, [], []);
                splits.Add(current.Value);
            }

            var sources = new List<GraphTensor?>(n.Sources.Count);
            foreach (GraphTensor? s in n.Sources)
            {
                if (s is null)
                {
                    sources.Add(null);
                    continue;
                }

                if (_copies > 1 && s.IsLeaf && s.Flags.HasFlag(TensorFlags.Input) && !graphInputs.Contains(s, ReferenceEqualityComparer.Instance))
                {
                    graphInputs.Add(s);
                }

                if (BackendOf(s) != b)
                {
                    if (!copies.TryGetValue((s, b), out GraphTensor? copy))
                    {
                        copy = new GraphTensor($"B{b}#{s.Name}", GgmlOp.None, s.Type, s.Ne, [], -1)
                        {
                            Flags = _copies > 1 ? TensorFlags.Input | TensorFlags.Output : TensorFlags.None,
                        };
                        copies[(s, b)] = copy;
                        _backend[copy] = b;
                        current!.Value.Inputs.Add((s, copy));
                    }

                    sources.Add(copy);
                }
                else
                {
                    sources.Add(s);
                }
            }

            n.Sources = sources;
            current!.Value.Nodes.Add(n);
        }

        var result = new ComputeGraph();
        if (_copies > 1)
        {
            foreach (GraphTensor s in graphInputs)
            {
                for (int c = 0; c < _copies; c++)
                {
                    GraphTensor t = c == 0 ? s : new GraphTensor($"{s.Name}#{c}", GgmlOp.None, s.Type, s.Ne, [], -1) { Flags = TensorFlags.Input | TensorFlags.Output };
                    _backend[t] = _layout.Cpu;
                    result.Leafs.Add(t);
                }
            }

            foreach ((int backend, List<(GraphTensor Source, GraphTensor Copy)> inputs, _) in splits)
            {
                foreach ((_, GraphTensor copy) in inputs)
                {
                    for (int k = 0; k < _copies; k++)
                    {
                        GraphTensor t = k == 0 ? copy : new GraphTensor($"{copy.Name}#{k}", GgmlOp.None, copy.Type, copy.Ne, [], -1) { Flags = TensorFlags.Input | TensorFlags.Output };
                        _backend[t] = backend;
                        result.Leafs.Add(t);
                    }
                }
            }
        }

        result.Leafs.AddRange(graph.Leafs.Where(l => !l.External));
        foreach ((_, List<(GraphTensor Source, GraphTensor Copy)> inputs, List<GraphTensor> nodes) in splits)
        {
            foreach ((GraphTensor source, GraphTensor copy) in inputs)
            {
                // The original stays alive until the copy is made: a dependency on it, placed with it.
                var dependency = new GraphTensor("dep#" + source.Name, GgmlOp.None, source.Type, source.Ne, [source], -1) { ViewSource = source };
                _backend[dependency] = BackendOf(source);
                result.Nodes.Add(dependency);
                result.Nodes.Add(copy);
            }

            result.Nodes.AddRange(nodes);
        }

        return result;
    }

    /// <summary>ggml-cuda <c>get_alloc_size</c>: quantized tensors on a GPU get their rows padded to 512 elements.</summary>
    private long AllocationSize(GraphTensor t)
    {
        long bytes = t.Bytes;
        int b = _backend.GetValueOrDefault(t, _layout.Cpu);
        if (b != _layout.Cpu && t.Type.IsQuantized && t.Ne[0] % MatrixRowPadding != 0)
        {
            bytes += t.Type.BytesFor(MatrixRowPadding - (t.Ne[0] % MatrixRowPadding));
        }

        return bytes;
    }
}
