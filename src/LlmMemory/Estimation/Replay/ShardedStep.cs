using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// One rank of an N-rank FSDP2 run (<c>fully_shard</c> on every transformer block, then on the root module).
/// </summary>
/// <param name="World">Ranks the parameters, gradients and optimizer states are sharded over.</param>
/// <param name="ReshardAfterForward">Blocks free their gathered parameters after their forward (FULL_SHARD) instead of keeping them until their backward (SHARD_GRAD_OP).</param>
/// <param name="ParamType"><c>MixedPrecisionPolicy.param_dtype</c>: the type parameters are gathered and computed in; null keeps the sharded type.</param>
/// <param name="ReduceType"><c>MixedPrecisionPolicy.reduce_dtype</c>: the type gradients are reduce-scattered in; null means the gathered type.</param>
/// <param name="Offload"><c>CPUOffloadPolicy</c>: the sharded parameters, their gradients and the optimizer live in host memory.</param>
/// <param name="UntiedHead">
/// A tied head is a parameter of its own: the model was built on the meta device, sharded, then given storage with
/// <c>to_empty()</c>, which gives every parameter fresh storage, so <c>lm_head</c> stops aliasing the embedding unless the
/// script ties them again (verl-project/verl PR 7835; PyTorch's FSDP2 recipe does not re-tie).
/// </param>
/// <param name="Zero">DeepSpeed ZeRO instead of FSDP2 (<see cref="ZeroStep"/>); null for FSDP2.</param>
/// <param name="OwnUnits">torchtune's <c>custom_sharded_layers</c>: the embedding and/or head are FSDP units of their own, not the root's.</param>
internal sealed record Sharding(int World, bool ReshardAfterForward, ScalarType? ParamType, ScalarType? ReduceType, bool Offload, bool UntiedHead,
    ZeroSettings? Zero = null, CustomShardedLayers OwnUnits = CustomShardedLayers.None);

/// <summary>
/// What FSDP2 does to one rank's memory around the replayed step (torch/distributed/fsdp/_fully_shard, torch 2.4–2.11).
/// Each parameter is sharded on dim 0: rank 0 keeps its first ⌈dim0 ÷ N⌉ rows, padded to that size on every rank
/// (<c>FSDPParam._init_sharded_param</c>), so rank 0 is the most loaded one. A unit (one block, or the root: the
/// embedding, final norm and head) is all-gathered before its forward into one flat buffer of its padded parameters
/// (<c>foreach_all_gather</c>), copied out into one padded tensor per parameter (<c>init_all_gather_outputs</c>); in forward
/// the flat buffer is kept until the next all-gather (<c>all_gather_state</c>), in backward it is freed at once. A block
/// frees its parameters after its forward (<c>reshard_after_forward=True</c>, <c>storage.resize_(0)</c>) and gathers them
/// again before its backward, prefetching the block before it (backward prefetch); the root is not resharded after forward.
/// After a unit's backward (<c>post_backward</c>) it is resharded, its gradients are copied into one flat reduce-scatter
/// input of the reduce type and freed, and the reduce-scatter output (the unit's padded size ÷ N) becomes the sharded
/// gradients (views of it when the types agree, else a cast); the input is kept until the next unit's reduce-scatter
/// (<c>reduce_scatter_state</c>) or the end of backward. The flat all-gather buffer is allocated on the all-gather copy-in
/// stream (<c>foreach_all_gather</c> under <c>all_gather_copy_in_stream</c>, which <c>get_all_gather_streams</c> picks in
/// forward and pre-backward), the reduce-scatter output and the sharded gradients cast from it on the reduce-scatter stream
/// (<c>foreach_reduce</c> under <c>reduce_scatter_stream</c>); the caching allocator keeps each stream's freed blocks for that
/// stream, so those buffers are never reused by the activations and the reserved memory holds them apart
/// (torch/distributed/fsdp/_fully_shard/_fsdp_collectives.py, _fsdp_param_group.py).
/// torchtune's <c>custom_sharded_layers</c> (<see cref="Sharding.OwnUnits"/>) makes the embedding and/or the head units of
/// their own (<c>training.shard_model</c> calls <c>fully_shard</c> on each module <c>get_shard_conditions</c> names, with the
/// blocks' <c>reshard_after_forward</c>, before the root): the embedding unit is gathered for its forward, resharded after
/// it and gathered again as the prefetch of block 0's backward; the head unit is gathered after the last block and, as the
/// replay has no moment between the head's matmul and the loss, kept gathered until its backward is done (FSDP2 reshards
/// it after its forward and gathers it again for its backward, so the loss region's moment holds it once more than FSDP2 does).
/// </summary>
internal sealed class ShardedStep(ReplayEngine engine, Sharding sharding) : RankStep
{
    /// <summary>The key of the root unit (parameters outside the blocks and the units of their own), below every block.</summary>
    private const int Root = int.MinValue;

    /// <summary>The key of the embedding's own unit: the layer the forward stamps the embedding with.</summary>
    private const int EmbeddingUnit = -1;

    /// <summary><c>FSDPCommContext.all_gather_copy_in_stream</c>: where the flat all-gather output is allocated.</summary>
    private const int AllGatherCopyInStream = 1;

    /// <summary><c>FSDPCommContext.reduce_scatter_stream</c>: where the reduce-scatter output (the sharded gradients) is allocated.</summary>
    private const int ReduceScatterStream = 2;

    private readonly SortedDictionary<int, Unit> _units = [];
    private Tensor? _allGatherState;
    private Tensor? _reduceScatterState;

    public override Sharding Options => sharding;

    /// <summary>
    /// Rows of dim 0 rank 0 keeps: ⌈dim0 ÷ N⌉ (<c>_chunk_with_empty</c>: <c>torch.chunk</c> gives the first ranks the full
    /// chunks); every rank's storage is padded to that many rows.
    /// </summary>
    public static long ShardRows(long rows, int world) => (rows + world - 1) / world;

    /// <summary>Bytes of rank 0's padded shard of a parameter of <paramref name="shape"/> stored in <paramref name="bytes"/>.</summary>
    public static long ShardBytes(IReadOnlyList<long> shape, long bytes, int world) =>
        shape.Count == 0 || shape[0] == 0 ? bytes : checked(bytes / shape[0] * ShardRows(shape[0], world));

    /// <summary>Rank 0's shard shape: ⌈dim0 ÷ N⌉ rows of the rest.</summary>
    public static long[] ShardShape(IReadOnlyList<long> shape, int world) =>
        shape.Count == 0 ? [] : [ShardRows(shape[0], world), .. shape.Skip(1)];

    /// <summary>
    /// Registers a parameter of block <paramref name="layer"/> (null: the root): allocates its padded shard (nothing on the
    /// device under CPU offload) and returns the tensor the model computes with, full-shaped in the gathered type and
    /// without memory until its unit is gathered, and the shard the optimizer steps.
    /// </summary>
    public override (Tensor Compute, Tensor? Stepped) Add(int? layer, long[] shape, StoredWeight stored, bool trainable, TensorRole role)
    {
        int key = layer ?? role switch
        {
            TensorRole.TokenEmbedding when sharding.OwnUnits.HasFlag(CustomShardedLayers.TokEmbeddings) => EmbeddingUnit,
            TensorRole.OutputHead when sharding.OwnUnits.HasFlag(CustomShardedLayers.Output) => ReplayEngine.HeadLayer,
            _ => Root,
        };
        if (!_units.TryGetValue(key, out Unit? unit))
        {
            unit = new Unit(key);
            _units[key] = unit;
        }

        long[] shardShape = ShardShape(shape, sharding.World);
        Tensor shard = sharding.Offload
            ? new Tensor(shardShape, stored.Type, new Storage(engine, null, MemoryTag.Weight))
            : engine.Parameter(shardShape, stored.Type, false, MemoryTag.Weight, ShardBytes(shape, stored.Bytes, sharding.World));
        ScalarType type = stored.Type.IsFloatingPoint() ? sharding.ParamType ?? stored.Type : stored.Type;
        var compute = new Tensor(shape, type, new Storage(engine, null, MemoryTag.GatheredWeight), trainable) { IsParameter = true };
        long padded = checked(Tensor.ElementsOf(shardShape) * sharding.World);
        unit.Parameters.Add(new ShardedParameter(compute, shard, padded));
        return (compute, shard);
    }

    /// <summary>
    /// The root's pre-forward: it gathers its own parameters (embedding, final norm, head unless units of their own) and keeps
    /// them through backward; then the embedding's own unit, if any, is gathered for its forward.
    /// </summary>
    public override void BeginForward()
    {
        foreach (Unit unit in _units.Values)
        {
            unit.Reduced = false;
        }

        Gather(Root, forward: true);
        Gather(EmbeddingUnit, forward: true);
    }

    /// <summary>A block's pre-forward gathers it; the block before it is resharded after its forward.</summary>
    public override void EnterForwardLayer(int previous, int next)
    {
        if (sharding.ReshardAfterForward && _units.TryGetValue(previous, out Unit? done) && done.Key != Root)
        {
            Reshard(done);
        }

        if (next >= 0)
        {
            Gather(next, forward: true);
        }
    }

    /// <summary>
    /// The backward reached block <paramref name="layer"/> (or the embeddings, -1): the blocks after it are done (their
    /// post-backward reduce-scatters them); it is gathered, and the block before it prefetched.
    /// </summary>
    public override void EnterBackwardLayer(int layer)
    {
        foreach (Unit done in _units.Values.Where(u => u.Key != Root && u.Key > layer && !u.Reduced).Reverse().ToArray())
        {
            PostBackward(done);
        }

        if (layer is >= 0 and < ReplayEngine.HeadLayer)
        {
            Gather(layer, forward: false);
            Gather(layer - 1, forward: false);
        }
    }

    /// <summary>The root's post-backward after the embedding's gradient, then <c>finalize_backward</c> frees the last reduce-scatter input.</summary>
    public override void EndBackward()
    {
        foreach (Unit unit in _units.Values.Where(u => !u.Reduced).Reverse().ToArray())
        {
            PostBackward(unit);
        }

        _reduceScatterState?.Release();
        _reduceScatterState = null;
    }

    private void Gather(int key, bool forward)
    {
        if (!_units.TryGetValue(key, out Unit? unit) || unit.Gathered)
        {
            return;
        }

        // The previous forward all-gather's flat output is freed once the next all-gather starts.
        _allGatherState?.Release();
        _allGatherState = null;
        ScalarType type = unit.Parameters[0].Compute.Type;
        Tensor flat = OnStream(AllGatherCopyInStream, () => engine.Empty([unit.Parameters.Sum(p => p.PaddedElements)], type, MemoryTag.Collective));
        foreach (ShardedParameter p in unit.Parameters)
        {
            engine.Allocate(p.Compute.Storage!, checked(p.PaddedElements * p.Compute.Type.Bits() / 8));
        }

        if (forward)
        {
            _allGatherState = flat;
        }
        else
        {
            flat.Release();
        }

        unit.Gathered = true;
    }

    private void Reshard(Unit unit)
    {
        if (!unit.Gathered)
        {
            return;
        }

        foreach (ShardedParameter p in unit.Parameters)
        {
            engine.Deallocate(p.Compute.Storage!);
        }

        unit.Gathered = false;
    }

    private void PostBackward(Unit unit)
    {
        unit.Reduced = true;
        ShardedParameter[] withGradients = [.. unit.Parameters.Where(p => p.Compute.Grad is not null)];
        _reduceScatterState?.Release();
        _reduceScatterState = null;
        Reshard(unit);
        if (withGradients.Length == 0)
        {
            return;
        }

        ScalarType reduce = sharding.ReduceType ?? withGradients[0].Compute.Type;
        long padded = withGradients.Sum(p => p.PaddedElements);
        Tensor input = engine.Empty([padded], reduce, MemoryTag.Collective);
        foreach (ShardedParameter p in withGradients)
        {
            p.Compute.Grad!.Release();
            p.Compute.Grad = null;
        }

        OnStream(ReduceScatterStream, () =>
        {
            Tensor output = engine.Empty([padded / sharding.World], reduce, MemoryTag.Gradient);
            foreach (ShardedParameter p in withGradients)
            {
                // A later micro-batch adds into the existing sharded gradient; under CPU offload it is copied to host memory.
                p.Shard.Grad ??= sharding.Offload ? new Tensor(p.Shard.Shape, p.Shard.Type, new Storage(engine, null, MemoryTag.Gradient))
                    : reduce == p.Shard.Type ? new Tensor(p.Shard.Shape, reduce, output.Storage)
                    : engine.Empty(p.Shard.Shape, p.Shard.Type, MemoryTag.Gradient);
            }

            output.Release();
            return output;
        });
        _reduceScatterState = input;
    }

    /// <summary>Runs <paramref name="allocate"/> with new blocks allocated for <paramref name="stream"/> (<c>with torch.cuda.stream(stream):</c>).</summary>
    private T OnStream<T>(int stream, Func<T> allocate)
    {
        engine.Stream = stream;
        try
        {
            return allocate();
        }
        finally
        {
            engine.Stream = 0;
        }
    }

    private sealed class Unit(int key)
    {
        public int Key { get; } = key;

        public List<ShardedParameter> Parameters { get; } = [];

        public bool Gathered { get; set; }

        /// <summary>Its post-backward ran in this backward.</summary>
        public bool Reduced { get; set; }
    }

    /// <summary>A parameter as FSDP2 holds it: the tensor computed with, rank 0's shard, and the padded element count of the whole.</summary>
    private sealed record ShardedParameter(Tensor Compute, Tensor Shard, long PaddedElements);
}
