namespace LlmMemory.Estimation.Replay;

/// <summary>
/// A shape-only tensor of the replay: its shape, element type and the storage (one allocator block) it views.
/// </summary>
/// <remarks>
/// PyTorch frees a tensor's memory when the last Python or autograd reference to it disappears (CPython reference
/// counting). The replay counts those references explicitly: whoever holds a tensor owns one reference, takes another
/// with <see cref="Retain"/> and gives it back with <see cref="Release"/> at the statement where the Python code drops
/// it (<c>del</c>, the end of the consuming statement, a function's return, a rebinding). Views share the storage.
/// </remarks>
internal sealed class Tensor
{
    private int _references = 1;

    public Tensor(long[] shape, ScalarType type, Storage? storage, bool requiresGrad = false)
    {
        Shape = shape;
        Type = type;
        Storage = storage;
        RequiresGrad = requiresGrad;
        storage?.Retain();
    }

    public long[] Shape { get; }

    public ScalarType Type { get; }

    /// <summary>The memory it views; null for a tensor of a stopped recomputation, which allocates nothing.</summary>
    public Storage? Storage { get; }

    public bool RequiresGrad { get; set; }

    /// <summary>The autograd node that produced it (<c>grad_fn</c>); null for leaves and tensors made without grad.</summary>
    public GradNode? Fn { get; set; }

    public bool IsParameter { get; init; }

    /// <summary>The accumulated gradient of a leaf (<c>.grad</c>).</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The leaf's <c>AccumulateGrad</c> node, created on first use.</summary>
    public AccumulateGrad? Accumulator { get; set; }

    public bool IsAlive => _references > 0;

    public long Elements => ElementsOf(Shape);

    public long Bytes => checked(Elements * Type.Bits() / 8);

    public static long ElementsOf(long[] shape)
    {
        long product = 1;
        foreach (long dimension in shape)
        {
            product = checked(product * dimension);
        }

        return product;
    }

    /// <summary>Another tensor object over the same storage (a view, or the alias autograd keeps of an op's output).</summary>
    public Tensor Alias(long[]? shape = null) => new(shape ?? Shape, Type, Storage);

    public Tensor Retain()
    {
        _references++;
        return this;
    }

    public void Release()
    {
        if (--_references > 0)
        {
            return;
        }

        if (_references < 0)
        {
            throw new InvalidOperationException("Tensor released more often than retained.");
        }

        Storage?.Release();
        Fn?.Release();
        Fn = null;
        Grad?.Release();
        Grad = null;
        Accumulator?.Release();
        Accumulator = null;
    }

    /// <summary>Shape with the last dimension replaced.</summary>
    public long[] WithLast(long last)
    {
        long[] shape = [.. Shape];
        shape[^1] = last;
        return shape;
    }
}

/// <summary>
/// One allocator block and what it holds; freed when no tensor views it. A sharded run's unsharded parameters keep their
/// storage object and lose or regain the block itself (FSDP's <c>storage.resize_</c>), whoever views them.
/// </summary>
internal sealed class Storage
{
    private readonly ReplayEngine _engine;
    private int _references;

    public Storage(ReplayEngine engine, CachingAllocator.Block? block, MemoryTag tag)
    {
        _engine = engine;
        Block = block;
        Tag = tag;
    }

    /// <summary>The memory; null while a sharded parameter is resharded (or for a tensor in host memory).</summary>
    public CachingAllocator.Block? Block { get; private set; }

    /// <summary>Bytes of the block, 0 without one.</summary>
    public long Size => Block?.Size ?? 0;

    /// <summary>Gives the storage a block or takes it away (<c>storage.resize_</c>); the engine allocates and frees it.</summary>
    public void Resize(CachingAllocator.Block? block) => _engine.Recount(this, block, static (storage, b) => storage.Block = b);

    public MemoryTag Tag { get; private set; }

    /// <summary>How many autograd nodes keep it for backward.</summary>
    public int SavedBy { get; private set; }

    public void Retain() => _references++;

    public void Release()
    {
        if (--_references == 0)
        {
            _engine.Free(this);
        }
    }

    public void Retag(MemoryTag tag) => _engine.Recount(this, tag, static (storage, t) => storage.Tag = t);

    public void AddSaver(int delta) => _engine.Recount(this, delta, static (storage, d) => storage.SavedBy += d);
}

/// <summary>What a block holds, for the breakdown of the live memory at the peak.</summary>
internal enum MemoryTag
{
    Activation,
    SavedActivation,
    Weight,
    Adapter,
    AutocastWeight,
    Gradient,
    OptimizerState,
    OptimizerTemporary,
    KvCache,
    Logits,
    Loss,
    Workspace,
    Inputs,

    /// <summary>Parameters a sharded run all-gathered for the unit being computed (and the one prefetched).</summary>
    GatheredWeight,

    /// <summary>Flat all-gather outputs and reduce-scatter inputs of a sharded run.</summary>
    Collective,

    /// <summary>An fp32 master copy kept apart from the parameters the model computes with (DeepSpeed ZeRO's partition).</summary>
    MasterWeight,
}

/// <summary>
/// An argument of a replayed op: borrowed (the caller keeps its reference) or handed over with <see cref="Take"/>, for a
/// temporary that CPython drops as soon as the call that consumes it returns.
/// </summary>
internal readonly record struct Operand(Tensor Tensor, bool Owned)
{
    public static implicit operator Operand(Tensor tensor) => new(tensor, false);

    public static Operand Take(Tensor tensor) => new(tensor, true);

    /// <summary>Drops the reference when it was handed over.</summary>
    public void Done()
    {
        if (Owned)
        {
            Tensor.Release();
        }
    }
}
