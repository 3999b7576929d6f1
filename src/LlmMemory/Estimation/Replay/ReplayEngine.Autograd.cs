namespace LlmMemory.Estimation.Replay;

/// <summary>Autograd: node recording, checkpointed regions with recomputation, and the backward engine.</summary>
internal sealed partial class ReplayEngine
{
    private long _sequence;
    private Region? _recording;
    private Region? _recomputing;

    /// <summary>
    /// Set once a recomputation has recorded the last op that saves something: the rest of the region runs without
    /// allocating, as if it had stopped there (the early stop of non-reentrant checkpointing).
    /// </summary>
    private bool _dry;

    /// <summary>
    /// Records the node of an op whose input requires grad: <paramref name="output"/> then requires grad and refers to it,
    /// and the node keeps <paramref name="saved"/> for backward. Inside a checkpointed region the saved tensors are not
    /// kept; inside a recomputation they are stored for the region's nodes and nothing is recorded. <paramref name="held"/>
    /// are a custom function's <c>ctx</c> attributes, kept until the node dies (<see cref="GradNode.Held"/>); they are not
    /// replayed inside a checkpointed region.
    /// </summary>
    public void Record(Tensor output, ReadOnlySpan<Tensor?> inputs, ReadOnlySpan<Tensor?> saved, BackwardFormula formula, ReadOnlySpan<Tensor?> held = default)
    {
        ArgumentNullException.ThrowIfNull(output);
        if (_dry || !GradEnabled || !AnyRequiresGrad(inputs))
        {
            return;
        }

        output.RequiresGrad = true;
        Tensor[] kept = Kept(saved);
        Tensor[] attributes = Kept(held);
        if (attributes.Length > 0 && (_recording is not null || _recomputing is not null))
        {
            throw new InvalidOperationException("tensors held on ctx are not replayed inside a checkpointed region");
        }

        if (_recomputing is { } recomputed)
        {
            int index = recomputed.Count++;
            if (kept.Length > 0)
            {
                recomputed.Store![index] = Hold(kept);
            }

            _dry = index >= recomputed.LastSaving;
            return;
        }

        var edges = new GradNode?[inputs.Length];
        var metas = new TensorMeta[inputs.Length];
        for (int i = 0; i < inputs.Length; i++)
        {
            Tensor? input = inputs[i];
            metas[i] = input is null ? default : new TensorMeta(input.Shape, input.Type);
            edges[i] = input is { RequiresGrad: true } ? EdgeOf(input).Retain() : null;
        }

        Region? region = _recording;
        var node = new GradNode(++_sequence, formula)
        {
            Edges = edges,
            Inputs = metas,
            Region = region,
            RegionIndex = region?.Count ?? 0,
            Layer = Layer,
            Tag = Tag is MemoryTag.Logits or MemoryTag.Loss ? MemoryTag.Loss : MemoryTag.Activation,
            Held = Hold(attributes),
        };
        if (region is not null)
        {
            region.Retain();
            if (kept.Length > 0)
            {
                region.LastSaving = region.Count;
            }

            region.Count++;
        }
        else
        {
            node.Saved = Hold(kept);
        }

        output.Fn = node.Retain();
    }

    /// <summary>
    /// <c>torch.utils.checkpoint(forward, input, use_reentrant=False)</c>. The region keeps its input (in host memory when
    /// <paramref name="offload"/>, as torchtune's activation offloading does) and <paramref name="captured"/>, the tensors
    /// its forward closes over, until the graph is released.
    /// </summary>
    public Tensor Checkpoint(Func<Tensor, Tensor> forward, Tensor input, IReadOnlyList<Tensor?> captured, bool offload)
    {
        ArgumentNullException.ThrowIfNull(forward);
        ArgumentNullException.ThrowIfNull(input);
        var region = new Region(forward, input.Retain(), Autocast, captured.OfType<Tensor>().Select(t => t.Retain()).ToArray());
        Region? outer = _recording;
        _recording = region;
        Tensor output = forward(input);
        _recording = outer;
        if (offload)
        {
            region.Offloaded = new TensorMeta(input.Shape, input.Type);
            region.DropInput();
        }

        region.Release();
        return output;
    }

    /// <summary>
    /// <c>loss.backward()</c>: runs the ready node with the highest sequence number first (<c>AccumulateGrad</c> as soon as
    /// it is ready), frees each node's saved tensors and incoming gradient right after it ran, sums several gradients of
    /// one input in place and steals a leaf's first gradient into <c>.grad</c>. Backward GEMMs run on the autograd thread,
    /// which has its own cuBLAS workspace.
    /// </summary>
    public void Backward(Tensor root)
    {
        ArgumentNullException.ThrowIfNull(root);
        string phase = Phase;
        _onAutogradThread = true;
        GradNode start = root.Fn ?? throw new InvalidOperationException("backward of a tensor without grad_fn");
        int run = ++_backwardRuns;
        CountDependencies(start, run);
        start.Buffer = Empty(root.Shape, root.Type, MemoryTag.Loss);
        start.Buffered = true;
        var ready = new ReadyQueue();
        ready.Push(start);

        // The reference replay's loop variables keep the last edge's gradient and the last saved tensor of a node alive
        // until they are rebound (sim.py backward); the port keeps them as long, so both free at the same moments.
        Tensor? lastGradient = null;
        Tensor? lastSaved = null;
        while (ready.Count > 0)
        {
            GradNode node = ready.Pop();
            Tensor? gradient = node.Buffer;
            node.Buffer = null;
            node.Buffered = false;
            if (node is AccumulateGrad accumulate)
            {
                lastGradient?.Release();
                lastGradient = null;
                Accumulate(accumulate.Leaf, gradient);
                continue;
            }

            BackwardLayer = node.Layer;
            if (node.Layer != _lastBackwardLayer)
            {
                _lastBackwardLayer = node.Layer;
                Mark(node.Layer switch { HeadLayer => $"{phase}:head", -1 => $"{phase}:embeddings", int l => $"{phase}:layer{l}" });
                Sharded?.EnterBackwardLayer(node.Layer);
            }

            Tensor[] saved = SavedOf(node);
            Tag = node.Tag;
            Tensor?[] grads = node.Formula!(this, node, gradient);
            Tag = MemoryTag.Activation;
            gradient?.Release();
            foreach (Tensor s in saved)
            {
                s.Storage?.AddSaver(-1);
            }

            if (saved.Length > 0)
            {
                lastSaved?.Release();
                lastSaved = saved[^1].Retain();
            }

            node.Saved = [];
            foreach (Tensor s in saved)
            {
                s.Release();
            }

            if (node is { Region: { } region, RegionIndex: 0 })
            {
                region.DropInput();
            }

            lastGradient?.Release();
            lastGradient = grads.Length > 0 ? grads[^1]?.Retain() : null;
            for (int i = 0; i < grads.Length; i++)
            {
                GradNode? edge = node.Edges[i];
                Tensor? g = grads[i];
                if (edge is null)
                {
                    g?.Release();
                    continue;
                }

                if (g is not null && edge.Buffered && edge.Buffer is not null)
                {
                    g.Release(); // summed in place into the existing buffer
                }
                else if (g is not null || !edge.Buffered)
                {
                    edge.Buffer = g;
                    edge.Buffered = true;
                }

                if (--edge.Pending == 0)
                {
                    ready.Push(edge);
                }
            }
        }

        lastGradient?.Release();
        lastSaved?.Release();
        BackwardLayer = null;
        _lastBackwardLayer = int.MinValue;
        _onAutogradThread = false;
        Phase = phase;
    }

    private int _lastBackwardLayer = int.MinValue;

    /// <summary>How many backward passes this engine ran; stamps the nodes of the current one.</summary>
    private int _backwardRuns;

    private static bool AnyRequiresGrad(ReadOnlySpan<Tensor?> inputs)
    {
        foreach (Tensor? input in inputs)
        {
            if (input is { RequiresGrad: true })
            {
                return true;
            }
        }

        return false;
    }

    private static Tensor[] Kept(ReadOnlySpan<Tensor?> saved)
    {
        int count = 0;
        foreach (Tensor? s in saved)
        {
            count += s is null ? 0 : 1;
        }

        if (count == 0)
        {
            return [];
        }

        var kept = new Tensor[count];
        count = 0;
        foreach (Tensor? s in saved)
        {
            if (s is not null)
            {
                kept[count++] = s;
            }
        }

        return kept;
    }

    /// <summary>Takes a reference to each saved tensor and counts the node as a saver of its block.</summary>
    private static Tensor[] Hold(Tensor[] saved)
    {
        foreach (Tensor s in saved)
        {
            s.Retain();
            s.Storage?.AddSaver(1);
        }

        return saved;
    }

    private static GradNode EdgeOf(Tensor input)
    {
        if (input.Fn is { } fn)
        {
            return fn;
        }

        input.Accumulator ??= (AccumulateGrad)new AccumulateGrad(input).Retain();
        return input.Accumulator;
    }

    /// <summary>
    /// Stamps every node reachable from <paramref name="start"/> with this backward's <paramref name="run"/> and counts its
    /// incoming edges (<c>compute_dependencies</c>). The counts live on the nodes rather than in a dictionary keyed by
    /// them: a 70B training step walks some 30,000 nodes, and hashing each one cost a tenth of the replay.
    /// </summary>
    private static void CountDependencies(GradNode start, int run)
    {
        start.StartBackward(run);
        var stack = new Stack<GradNode>();
        stack.Push(start);
        while (stack.Count > 0)
        {
            foreach (GradNode? edge in stack.Pop().Edges)
            {
                if (edge is null)
                {
                    continue;
                }

                if (edge.BackwardRun != run)
                {
                    edge.StartBackward(run);
                    stack.Push(edge);
                }

                edge.Pending++;
            }
        }
    }

    /// <summary>AccumulateGrad: the first gradient of a leaf becomes its <c>.grad</c> when it can be stolen, else a new one.</summary>
    private void Accumulate(Tensor leaf, Tensor? gradient)
    {
        if (leaf.IsAlive && gradient is not null)
        {
            if (OnGradient is not null)
            {
                OnGradient(leaf, gradient);
            }
            else if (leaf.Grad is null)
            {
                if (gradient.Storage!.Tag != MemoryTag.Gradient && gradient.Type == leaf.Type && gradient.Shape.AsSpan().SequenceEqual(leaf.Shape))
                {
                    gradient.Storage.Retag(MemoryTag.Gradient);
                    leaf.Grad = gradient.Retain();
                }
                else
                {
                    leaf.Grad = Empty(leaf.Shape, leaf.Type, MemoryTag.Gradient);
                }

                Sharded?.GradientReady(leaf);
            }
        }

        gradient?.Release();
    }

    private Tensor[] SavedOf(GradNode node)
    {
        if (node.Region is not { } region)
        {
            return node.Saved;
        }

        if (region.Store is null)
        {
            Recompute(region);
        }

        node.Saved = region.Store!.Remove(node.RegionIndex, out Tensor[]? saved) ? saved : [];
        return node.Saved;
    }

    /// <summary>Reruns a region's forward with grad enabled (under its autocast state) to refill its saved tensors.</summary>
    private void Recompute(Region region)
    {
        region.Store = [];
        region.Count = 0;
        string phase = Phase;
        Phase = phase + "/recompute";
        (Region? recording, bool grad, ScalarType? autocast) = (_recording, GradEnabled, Autocast);
        (_recomputing, _recording, GradEnabled, Autocast) = (region, null, true, region.Autocast);
        Tensor input = region.Offloaded is TensorMeta host ? Empty(host.Shape, host.Type, requiresGrad: true) : region.Input!.Retain();
        Tensor output = region.Forward(input);
        output.Release();
        input.Release();
        if (Autocast is not null)
        {
            ClearAutocastCache();
        }

        (_recomputing, _recording, GradEnabled, Autocast, _dry) = (null, recording, grad, autocast, false);
        Phase = phase;
    }
}
