namespace LlmMemory.Estimation.Replay;

/// <summary>
/// A shape-only imitation of PyTorch eager execution whose every allocation goes through <see cref="CachingAllocator"/>:
/// tensors, autograd with saved tensors and checkpointed regions, autocast, and the cuBLAS workspaces
/// (research/torch SPEC §1; a port of its <c>sim.py</c>).
/// </summary>
internal sealed partial class ReplayEngine
{
    private static readonly int TagCount = Enum.GetValues<MemoryTag>().Length;
    private readonly long[] _live = new long[TagCount];
    private readonly Dictionary<Tensor, Tensor> _autocastCache = new(ReferenceEqualityComparer.Instance);
    private readonly List<ReplayPoint> _timeline = [];
    private Tensor? _mainWorkspace;
    private Tensor? _autogradWorkspace;
    private bool _onAutogradThread;
    private readonly CancellationToken _cancellation;

    /// <summary>An engine whose <paramref name="cancellation"/> is checked at every phase and layer boundary, forward and backward.</summary>
    public ReplayEngine(long? capacity, long workspaceBytes, AllocatorSettings allocator, CancellationToken cancellation = default)
    {
        Allocator = new CachingAllocator(capacity, allocator);
        WorkspaceBytes = workspaceBytes;
        _cancellation = cancellation;
    }

    public CachingAllocator Allocator { get; }

    /// <summary>Bytes of the cuBLAS workspace each GEMM thread allocates at its first GEMM and keeps.</summary>
    public long WorkspaceBytes { get; }

    /// <summary>Whether ops record autograd nodes (<c>torch.is_grad_enabled</c>).</summary>
    public bool GradEnabled { get; set; } = true;

    /// <summary>
    /// torch 1.10 and earlier: <c>_softmax</c> and <c>_log_softmax</c> keep their input for backward beside their output. Their
    /// derivatives.yaml entries were <c>self: _softmax_backward_data(grad, result, dim, self)</c>, the input passed only for its
    /// type (pytorch/pytorch issue #64000, "Softmax/logsoftmax use more memory for backward than needed", 2021-08-26); PR
    /// #66018 (reland of #65242, landed 2021-10-01, after the release/1.10 branch cut of 2021-09-21, issue #65438) passes
    /// <c>self.scalar_type()</c> instead, so torch 1.11 is the first release whose softmax keeps only its output.
    /// </summary>
    public bool SoftmaxSavesInput { get; set; }

    /// <summary>The lower-precision type of the active <c>torch.autocast</c> region; null outside one.</summary>
    public ScalarType? Autocast { get; set; }

    /// <summary>What new blocks hold, for the breakdown.</summary>
    public MemoryTag Tag { get; set; } = MemoryTag.Activation;

    /// <summary>Where the replay is ("step2.backward", "forward:layer3").</summary>
    public string Phase { get; private set; } = "init";

    /// <summary>Where nodes made in the head are stamped (after every block).</summary>
    public const int HeadLayer = int.MaxValue;

    /// <summary>The block index the forward is in (-1 before the blocks, <see cref="HeadLayer"/> in the head), stamped on nodes for the backward timeline.</summary>
    public int Layer
    {
        get => _layer;
        set
        {
            int previous = _layer;
            _layer = value;
            if (value != previous)
            {
                Sharded?.EnterForwardLayer(previous, value);
            }

            if (Placement is { } placement)
            {
                Device = placement.Map.OfLayer(value);
            }
        }
    }

    private int _layer = -1;

    /// <summary>
    /// What the training loop still holds of the previous micro-batch's forward (LitGPT's <c>logits</c>, and through their
    /// <c>grad_fn</c> that graph's nodes); null when it holds nothing.
    /// </summary>
    public ForwardResult? LoopHeld { get; set; }

    /// <summary>
    /// The model's forward returned its logits: the loop's <c>logits = model(...)</c> rebinds the variable, dropping what it
    /// held of the previous micro-batch (<see cref="LoopHeld"/>) before it takes the loss.
    /// </summary>
    public void ModelReturned()
    {
        LoopHeld?.ReleaseOutputs();
        LoopHeld = null;
    }

    /// <summary>One rank of a sharded run: gathers, frees and reduces the parameters of each unit as the step moves; null on one GPU.</summary>
    public RankStep? Sharded { get; set; }

    /// <summary>One GPU of a model spread over several by accelerate (<c>device_map="auto"</c>); null on one GPU.</summary>
    public Placement? Placement { get; set; }

    /// <summary>The GPU the running module is on (accelerate's hooks run each module where its weights are).</summary>
    public int Device { get; set; }

    /// <summary>The running module is on a GPU this replay does not count: its tensors allocate nothing here.</summary>
    private bool Elsewhere => Placement is { } placement && Device != placement.Counted;

    /// <summary>Whether allocations count toward the peak (off while the model is built).</summary>
    public bool Tracking { get; private set; }

    /// <summary>Called with each leaf and its gradient instead of accumulating it (optimizer step in backward).</summary>
    public Action<Tensor, Tensor>? OnGradient { get; set; }

    public long Peak { get; private set; }

    public string? PeakPhase { get; private set; }

    /// <summary>Block index of the backward node that ran at the peak; -1 outside the blocks, null outside backward.</summary>
    public int? PeakBackwardLayer { get; private set; }

    /// <summary>How many timeline points were recorded when the peak happened (it lies after them).</summary>
    public int PeakTimelineIndex { get; private set; }

    /// <summary>Live bytes per <see cref="MemoryTag"/> at the peak.</summary>
    public IReadOnlyList<long> PeakBreakdown => _peakBreakdown;

    /// <summary>Overwritten at each new peak (a training forward sets one at almost every allocation): a copy each time was a clone per op.</summary>
    private readonly long[] _peakBreakdown = new long[TagCount];

    /// <summary>
    /// The CUDA stream new blocks are allocated for (<c>torch.cuda.stream(s)</c> around an allocation): 0, the default stream,
    /// except where a sharding engine allocates on a side stream of its own.
    /// </summary>
    public int Stream { get; set; }

    /// <summary>Allocated and reserved bytes at each phase boundary, in order.</summary>
    public IReadOnlyList<ReplayPoint> Timeline => _timeline;

    private int? BackwardLayer { get; set; }

    public void SetPhase(string phase)
    {
        Phase = phase;
        Mark(phase);
    }

    /// <summary>Starts tracking the peak from the current state (<c>reset_peak_memory_stats</c>).</summary>
    public void StartTracking()
    {
        Allocator.ResetPeaks();
        Peak = Allocator.Allocated;
        Tracking = true;
    }

    /// <summary>A new tensor over a new block.</summary>
    public Tensor Empty(long[] shape, ScalarType type, MemoryTag? tag = null, bool requiresGrad = false) =>
        new(shape, type, _dry || Elsewhere ? null : NewStorage(checked(Tensor.ElementsOf(shape) * type.Bits() / 8), tag ?? Tag), requiresGrad);

    /// <summary>A parameter (leaf) of <paramref name="bytes"/> bytes when its storage is not shape × type (quantized weights).</summary>
    public Tensor Parameter(long[] shape, ScalarType type, bool requiresGrad, MemoryTag tag, long? bytes = null) =>
        new(shape, type, Elsewhere ? null : NewStorage(bytes ?? checked(Tensor.ElementsOf(shape) * type.Bits() / 8), tag), requiresGrad) { IsParameter = true };

    public void Free(Storage storage)
    {
        if (storage.Block is not null)
        {
            Deallocate(storage);
        }
    }

    /// <summary>Frees the block of <paramref name="storage"/> while its tensors live on (FSDP's reshard, <c>storage.resize_(0)</c>).</summary>
    public void Deallocate(Storage storage)
    {
        CachingAllocator.Block block = storage.Block!;
        storage.Resize(null);
        Allocator.Free(block);
    }

    /// <summary>
    /// Moves a block's bytes to its new breakdown category after <paramref name="change"/> applies
    /// <paramref name="value"/> (a static lambda and its argument: this runs at every allocation, free and save, and a
    /// capturing closure per call was a fifth of what a training replay allocated).
    /// </summary>
    public void Recount<T>(Storage storage, T value, Action<Storage, T> change)
    {
        ArgumentNullException.ThrowIfNull(storage);
        ArgumentNullException.ThrowIfNull(change);
        _live[(int)Category(storage)] -= storage.Size;
        change(storage, value);
        _live[(int)Category(storage)] += storage.Size;
    }

    /// <summary>Allocates the current GEMM thread's cuBLAS workspace at its first GEMM.</summary>
    public void NeedWorkspace()
    {
        if (WorkspaceBytes == 0 || _dry || Elsewhere)
        {
            return;
        }

        if (_onAutogradThread)
        {
            _autogradWorkspace ??= Empty([WorkspaceBytes], ScalarType.UInt8, MemoryTag.Workspace);
        }
        else
        {
            _mainWorkspace ??= Empty([WorkspaceBytes], ScalarType.UInt8, MemoryTag.Workspace);
        }
    }

    /// <summary>Exits the autocast region: the cached casts of the weights are dropped (<c>clear_autocast_cache</c>).</summary>
    public void ClearAutocastCache()
    {
        foreach (Tensor cast in _autocastCache.Values)
        {
            cast.Release();
        }

        _autocastCache.Clear();
    }

    /// <summary>An activation (or a K/V the training forward's cache made) that autograd keeps counts as saved.</summary>
    private static MemoryTag Category(Storage storage) =>
        storage.Tag is MemoryTag.Activation or MemoryTag.KvCache && storage.SavedBy > 0 ? MemoryTag.SavedActivation : storage.Tag;

    private Storage NewStorage(long bytes, MemoryTag tag)
    {
        var storage = new Storage(this, null, tag);
        Allocate(storage, bytes);
        return storage;
    }

    /// <summary>Gives <paramref name="storage"/> a new block of <paramref name="bytes"/> (FSDP's unshard, <c>storage.resize_(n)</c>).</summary>
    public void Allocate(Storage storage, long bytes)
    {
        ArgumentNullException.ThrowIfNull(storage);
        storage.Resize(Allocator.Malloc(bytes, Stream));
        if (Tracking && Allocator.Allocated > Peak)
        {
            Peak = Allocator.Allocated;
            PeakPhase = Phase;
            PeakBackwardLayer = BackwardLayer;
            PeakTimelineIndex = _timeline.Count;
            _live.CopyTo(_peakBreakdown, 0);
        }
    }

    private void Mark(string phase)
    {
        _cancellation.ThrowIfCancellationRequested();
        if (Tracking)
        {
            _timeline.Add(new ReplayPoint(phase, Allocator.Allocated));
        }
    }
}

/// <summary>Bytes of live tensors at one moment of the replay.</summary>
internal readonly record struct ReplayPoint(string Phase, long Allocated);
