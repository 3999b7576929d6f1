using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>DeepSpeed ZeRO as the replay runs it for one rank.</summary>
/// <param name="Stage">1: the optimizer partitioned; 2: gradients too; 3: parameters too.</param>
/// <param name="OffloadOptimizer"><c>offload_optimizer</c> to the CPU: the fp32 master, its moments and the fp32 gradients live in host memory.</param>
/// <param name="OffloadParameters"><c>offload_param</c> to the CPU (stage 3 only): the 16-bit partitions live in host memory.</param>
internal sealed record ZeroSettings(int Stage, bool OffloadOptimizer, bool OffloadParameters)
{
    /// <summary><c>reduce_bucket_size</c>: elements of the gradient bucket (DeepSpeedZeroConfig, <c>pp_int(5e8)</c>).</summary>
    public const long ReduceBucketSize = 500_000_000;

    /// <summary><c>stage3_prefetch_bucket_size</c>: parameter elements fetched ahead of use (DeepSpeedZeroConfig, <c>pp_int(5e7)</c>).</summary>
    public const long PrefetchBucketSize = 50_000_000;

    /// <summary><c>stage3_max_live_parameters</c>: gathered elements beyond which nothing more is prefetched (<c>pp_int(1e9)</c>).</summary>
    public const long MaxLiveParameters = 1_000_000_000;

    /// <summary><c>stage3_max_reuse_distance</c>: a parameter used again within this many traversed elements is not released (<c>pp_int(1e9)</c>).</summary>
    public const long MaxReuseDistance = 1_000_000_000;

    /// <summary><c>stage3_param_persistence_threshold</c>: parameters of at most this many elements stay gathered (<c>pp_int(1e5)</c>).</summary>
    public const long PersistenceThreshold = 100_000;

    /// <summary>
    /// <c>nccl_start_alignment_factor</c> of stage_1_and_2.py: each flat group is padded to a multiple of this × the ranks
    /// (4-byte alignment of 16-bit elements) before it is cut into equal partitions.
    /// </summary>
    public const int AlignmentFactor = 2;

    /// <summary><c>overlap_comm</c>'s default (<c>overlap_comm_valid</c>: True for stage 3, else False): a second gradient bucket.</summary>
    public bool OverlapComm => Stage == 3;
}

/// <summary>
/// What DeepSpeed's ZeRO does to rank 0's memory around the replayed step (deepspeed/runtime/zero/stage_1_and_2.py,
/// stage3.py, partition_parameters.py, partitioned_param_coordinator.py), with the defaults of DeepSpeedZeroConfig
/// (<see cref="ZeroSettings"/>). The engine computes in the 16-bit type of its bf16/fp16 section (the module is cast to it);
/// the optimizer steps an fp32 master copy of the rank's partition, with its moments over that partition.
/// <para>
/// Stages 1 and 2 (<c>DeepSpeedZeroOptimizer</c>) flatten the parameters into one 16-bit buffer, padded to a multiple of
/// 2·N, which every rank keeps whole; rank 0 owns its first 1/N (the fp32 master, <c>single_partition_of_fp32_groups</c>).
/// <c>backward()</c> allocates the gradient bucket (<c>ipg_buffer</c>, <c>reduce_bucket_size</c> elements; two with
/// <c>overlap_comm</c>); each gradient is copied into it and its own tensor freed (stage 2 at once, from the gradient hook;
/// stage 1 after backward, in <c>reduce_gradients</c>), and when the bucket would overflow it is reduced and the gradients
/// of the parameters that overlap rank 0's partition are copied into <c>grads_in_partition</c>, allocated at the first such
/// copy for every parameter overlapping the partition. The bucket is freed at the end of backward. At the step the
/// partition's gradients are flattened (16-bit) and cast to an fp32 gradient of the partition, the 16-bit ones freed.
/// </para>
/// <para>
/// Stage 3 partitions each parameter: rank 0 keeps ⌈n ÷ N⌉ elements of it (<c>_partition_param</c>), flattened into one
/// buffer, and parameters of at most <c>stage3_param_persistence_threshold</c> elements stay whole. The optimizer holds, from
/// its initialization, the fp32 master, a 16-bit gradient partition (<c>grad_partitions_flat_buffer</c>) and the gradient
/// bucket (<c>__ipg_bucket_flat_buffer</c>). A module is all-gathered before it runs into one flat output, then each
/// parameter is copied out of it (<c>torch.cat</c> of its N pieces) and the flat output freed; once the first step traced
/// the module order, the next <c>stage3_prefetch_bucket_size</c> elements are gathered ahead, and a module is not released
/// after its forward when its parameters come back within <c>stage3_max_reuse_distance</c> traversed elements (the last
/// blocks and the head stay gathered into backward). Gradients go into the bucket as they arrive; a full bucket is
/// reduce-scattered through a flat copy and its rank-0 slices land in the gradient partition.
/// </para>
/// The replay gathers and releases block by block (a block's modules together), the granularity of its hooks.
/// </summary>
internal sealed class ZeroStep(ReplayEngine engine, Sharding sharding) : RankStep
{
    /// <summary>Unit keys: the embedding (before the blocks) and the final norm with the head (after them).</summary>
    private const int Embedding = -1;

    private const int Head = ReplayEngine.HeadLayer;

    private readonly ZeroSettings _zero = sharding.Zero!;
    private readonly List<Parameter> _parameters = [];
    private readonly SortedDictionary<int, List<Parameter>> _units = [];
    private readonly List<Tensor> _bucket = [];
    private Storage? _flat;
    private Tensor? _master;
    private Tensor? _partitions;
    private Tensor? _gradientPartitions;
    private Tensor[] _ipg = [];
    private Tensor? _gradsInPartition;
    private Tensor? _accumulated;
    private long _bucketElements;
    private long _partition;
    private long _available;
    private bool _blocksStarted;
    private bool _inBackward;
    private bool _traced;

    public override Sharding Options => sharding;

    public override IReadOnlyList<Tensor> Stepped => _master is null ? [] : [_master];

    /// <summary><c>initialize_optimizer_states</c> (stage_1_and_2.py, stage3.py): the moments exist from <c>deepspeed.initialize</c> on.</summary>
    public override bool InitializesOptimizer => true;

    private int World => sharding.World;

    /// <summary>The type the engine casts the module to and computes in.</summary>
    private ScalarType Type => sharding.ParamType ?? ScalarType.Float32;

    /// <summary>Stage 1 and 2's flat buffer: the parameters padded to a multiple of 2·N elements.</summary>
    public static long PaddedElements(long elements, int world)
    {
        long alignment = (long)ZeroSettings.AlignmentFactor * world;
        return (elements + alignment - 1) / alignment * alignment;
    }

    /// <summary>Stage 3's partition of one parameter on every rank: ⌈n ÷ N⌉ elements.</summary>
    public static long PartitionElements(long elements, int world) => (elements + world - 1) / world;

    public override (Tensor Compute, Tensor? Stepped) Add(int? layer, long[] shape, StoredWeight stored, bool trainable, TensorRole role)
    {
        // Outside the blocks: parameters created before the first block belong to the embedding, the rest to the head.
        int key = layer ?? (_blocksStarted ? Head : Embedding);
        _blocksStarted |= layer is not null;
        long elements = Tensor.ElementsOf(shape);
        ScalarType type = stored.Type.IsFloatingPoint() ? Type : stored.Type;
        bool persistent = _zero.Stage == 3 && elements <= ZeroSettings.PersistenceThreshold;
        Storage storage = _zero.Stage < 3 ? _flat ??= new Storage(engine, null, MemoryTag.Weight)
            : new Storage(engine, null, persistent ? MemoryTag.Weight : MemoryTag.GatheredWeight);
        var compute = new Tensor(shape, type, storage, trainable) { IsParameter = true };
        var parameter = new Parameter(compute, elements, persistent, _parameters.Sum(p => p.Elements));
        _parameters.Add(parameter);
        if (!_units.TryGetValue(key, out List<Parameter>? unit))
        {
            unit = [];
            _units[key] = unit;
        }

        unit.Add(parameter);
        return (compute, null);
    }

    /// <summary><c>deepspeed.initialize</c>: the flat parameters or partitions, the fp32 master, and stage 3's gradient buffers.</summary>
    public override void Loaded()
    {
        long total = _parameters.Sum(p => p.Elements);
        long bytesPer = Type.Bits() / 8;
        if (_zero.Stage < 3)
        {
            long padded = PaddedElements(total, World);
            _partition = padded / World;
            engine.Allocate(_flat!, checked(padded * bytesPer));
        }
        else
        {
            _partition = _parameters.Sum(p => PartitionElements(p.Elements, World));
            if (!_zero.OffloadParameters)
            {
                _partitions = engine.Empty([_partition], Type, MemoryTag.Weight);
            }

            foreach (Parameter p in _parameters.Where(p => p.Persistent))
            {
                engine.Allocate(p.Compute.Storage!, checked(p.Elements * bytesPer));
                p.Gathered = true;
            }

            if (!_zero.OffloadOptimizer)
            {
                _gradientPartitions = engine.Empty([_partition], Type, MemoryTag.Gradient);
            }

            _ipg = [engine.Empty([ZeroSettings.ReduceBucketSize], Type, MemoryTag.Collective)];
        }

        if (!_zero.OffloadOptimizer)
        {
            _master = engine.Empty([_partition], ScalarType.Float32, MemoryTag.MasterWeight);
        }
    }

    public override void BeginForward()
    {
        _inBackward = false;
        Gather(Embedding, forward: true);
    }

    public override void EnterForwardLayer(int previous, int next)
    {
        if (_zero.Stage < 3)
        {
            return;
        }

        // A recomputed block in backward (activation checkpointing) runs its forward on parameters gathered for its backward.
        if (!_inBackward && previous != next && previous != Head)
        {
            ReleaseAfterForward(previous);
        }

        Gather(next, forward: !_inBackward);
    }

    public override void BeginBackward()
    {
        _inBackward = true;
        if (_zero.Stage < 3)
        {
            // DeepSpeedZeroOptimizer.backward: the contiguous gradient bucket(s), for this backward.
            _ipg = [.. Enumerable.Range(0, _zero.OverlapComm ? 2 : 1).Select(_ => engine.Empty([ZeroSettings.ReduceBucketSize], Type, MemoryTag.Collective))];
        }
    }

    public override void EnterBackwardLayer(int layer)
    {
        if (_zero.Stage < 3)
        {
            return;
        }

        // The units after this one are done with their backward: released (their next use is the next step's forward).
        foreach (int done in _units.Keys.Where(k => k > layer).ToArray())
        {
            Release(done);
        }

        Gather(layer, forward: false);
    }

    public override void GradientReady(Tensor leaf)
    {
        if (_zero.Stage >= 2)
        {
            ToBucket(leaf);
        }
    }

    public override void EndBackward()
    {
        if (_zero.Stage == 1)
        {
            // reduce_gradients: every gradient, in parameter order, through the bucket.
            foreach (Parameter p in _parameters.Where(p => p.Compute.Grad is not null))
            {
                ToBucket(p.Compute);
            }
        }

        Flush();
        if (_zero.Stage < 3)
        {
            Blocks.Release(_ipg);
            _ipg = [];
            if (_gradsInPartition is not null)
            {
                // A later micro-batch's partition is added into the accumulated one and dropped.
                if (_accumulated is null)
                {
                    _accumulated = _gradsInPartition;
                }
                else
                {
                    _gradsInPartition.Release();
                }

                _gradsInPartition = null;
            }
        }
        else
        {
            foreach (int key in _units.Keys.ToArray())
            {
                Release(key);
            }
        }

        _traced = true;
    }

    /// <summary>
    /// The step's fp32 gradient of the partition: the 16-bit gradients flattened, cast to fp32 and set as the master's
    /// <c>.grad</c>; stages 1 and 2 then free their partition gradients. Under optimizer offload all of it is in host memory.
    /// </summary>
    public override void BeforeOptimizerStep()
    {
        if (_master is null)
        {
            _accumulated?.Release();
            _accumulated = null;
            return;
        }

        Tensor flat = engine.Empty([_partition], Type, MemoryTag.OptimizerTemporary);
        Tensor fp32 = engine.Empty([_partition], ScalarType.Float32, MemoryTag.Gradient);
        flat.Release();
        _accumulated?.Release();
        _accumulated = null;
        _master.Grad = fp32;
    }

    /// <summary>A gradient goes into the bucket (the bucket reduced first if it would overflow), and its own tensor is freed.</summary>
    private void ToBucket(Tensor leaf)
    {
        long elements = leaf.Elements;
        if (_bucketElements + elements > ZeroSettings.ReduceBucketSize)
        {
            Flush();
        }

        _bucketElements += elements;
        _bucket.Add(leaf);
        if (elements <= ZeroSettings.ReduceBucketSize)
        {
            leaf.Grad!.Release();
            leaf.Grad = null;
        }
        else
        {
            // A parameter larger than the bucket is reduced in its own gradient tensor, at once.
            Flush();
        }
    }

    /// <summary>Reduces the bucket: rank 0's share of it lands in its gradient partition.</summary>
    private void Flush()
    {
        if (_bucket.Count == 0)
        {
            return;
        }

        if (_zero.Stage == 3)
        {
            // reduce_scatter_coalesced: the bucket's gradients, padded per rank, flattened into one copy; rank 0's output chunk.
            long padded = _bucket.Sum(t => PartitionElements(t.Elements, World) * World);
            Tensor flat = engine.Empty([padded], Type, MemoryTag.Collective);
            Tensor output = engine.Empty([padded / World], Type, MemoryTag.Collective);
            flat.Release();
            output.Release();
        }
        else if (!_zero.OffloadOptimizer && _gradsInPartition is null
                 && _bucket.Any(t => _parameters.First(p => ReferenceEquals(p.Compute, t)).Offset < _partition))
        {
            // copy_grads_in_partition: sized for every parameter that overlaps rank 0's partition, whole.
            long inPartition = _parameters.Where(p => p.Offset < _partition).Sum(p => p.Elements);
            _gradsInPartition = engine.Empty([inPartition], Type, MemoryTag.Gradient);
        }

        foreach (Tensor leaf in _bucket)
        {
            leaf.Grad?.Release();
            leaf.Grad = null;
        }

        _bucket.Clear();
        _bucketElements = 0;
    }

    /// <summary>Gathers unit <paramref name="key"/>, and once the order is traced prefetches what follows it.</summary>
    private void Gather(int key, bool forward)
    {
        if (_zero.Stage < 3 || !_units.TryGetValue(key, out List<Parameter>? unit))
        {
            return;
        }

        AllGather(unit.Where(p => !p.Gathered).ToArray());
        if (!_traced)
        {
            return;
        }

        // fetch_sub_module's prefetch: the parameters of the next modules in the traced order, up to the bucket and the live limit.
        IEnumerable<int> following = forward ? _units.Keys.Where(k => k > key) : _units.Keys.Where(k => k < key).Reverse();
        var ahead = new List<Parameter>();
        long prefetching = 0;
        foreach (Parameter p in following.SelectMany(k => forward ? _units[k] : Enumerable.Reverse(_units[k])))
        {
            if (prefetching >= ZeroSettings.PrefetchBucketSize || _available + prefetching + p.Elements > ZeroSettings.MaxLiveParameters)
            {
                break;
            }

            if (!p.Gathered)
            {
                ahead.Add(p);
                prefetching += p.Elements;
            }
        }

        AllGather([.. ahead]);
    }

    /// <summary>One all-gather: a flat output of every rank's partitions, each parameter copied out of it, the output freed.</summary>
    private void AllGather(Parameter[] parameters)
    {
        if (parameters.Length == 0)
        {
            return;
        }

        long flat = parameters.Sum(p => PartitionElements(p.Elements, World) * World);
        Tensor output = engine.Empty([flat], Type, MemoryTag.Collective);
        foreach (Parameter p in parameters)
        {
            engine.Allocate(p.Compute.Storage!, checked(p.Elements * p.Compute.Type.Bits() / 8));
            p.Gathered = true;
            _available += p.Elements;
        }

        output.Release();
    }

    /// <summary>
    /// After a unit's forward: released unless, in a traced step, its parameters come back (in its backward) within
    /// <c>stage3_max_reuse_distance</c> elements of modules traversed: every later unit's forward and backward.
    /// </summary>
    private void ReleaseAfterForward(int key)
    {
        if (_traced)
        {
            long distance = 2 * _units.Where(u => u.Key > key).Sum(u => u.Value.Sum(p => p.Elements));
            if (distance < ZeroSettings.MaxReuseDistance)
            {
                return;
            }
        }

        Release(key);
    }

    private void Release(int key)
    {
        if (!_units.TryGetValue(key, out List<Parameter>? unit))
        {
            return;
        }

        foreach (Parameter p in unit.Where(p => p.Gathered && !p.Persistent))
        {
            engine.Deallocate(p.Compute.Storage!);
            p.Gathered = false;
            _available -= p.Elements;
        }
    }

    /// <summary>A parameter as ZeRO holds it: the tensor computed with, its size, whether it stays gathered, its offset in the flat buffer.</summary>
    private sealed class Parameter(Tensor compute, long elements, bool persistent, long offset)
    {
        public Tensor Compute { get; } = compute;

        public long Elements { get; } = elements;

        public bool Persistent { get; } = persistent;

        public long Offset { get; } = offset;

        public bool Gathered { get; set; }
    }
}
