using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// One rank's part in a data-parallel sharded step, as the replay drives it: the parameters it registers, then the moments
/// of the step where a sharding engine gathers, frees, reduces and partitions (FSDP2 in <see cref="ShardedStep"/>,
/// DeepSpeed ZeRO in <see cref="ZeroStep"/>). A single-GPU replay has none.
/// </summary>
internal abstract class RankStep
{
    public abstract Sharding Options { get; }

    /// <summary>
    /// Registers a parameter of block <paramref name="layer"/> (null: outside the blocks, whose <paramref name="role"/> says which) and returns the tensor the model
    /// computes with and the tensor the optimizer steps for it (null when the engine steps a partition of its own, or in host memory).
    /// </summary>
    public abstract (Tensor Compute, Tensor? Stepped) Add(int? layer, long[] shape, StoredWeight stored, bool trainable, TensorRole role);

    /// <summary>Every parameter is registered: the engine lays out what it keeps from initialization on.</summary>
    public virtual void Loaded()
    {
    }

    /// <summary>What the optimizer steps besides the tensors <see cref="Add"/> returned (an engine's own partitions).</summary>
    public virtual IReadOnlyList<Tensor> Stepped => [];

    /// <summary>The optimizer's states exist before the first step (the engine creates them at initialization).</summary>
    public virtual bool InitializesOptimizer => false;

    public abstract void BeginForward();

    public abstract void EnterForwardLayer(int previous, int next);

    /// <summary>Just before <c>loss.backward()</c>.</summary>
    public virtual void BeginBackward()
    {
    }

    public abstract void EnterBackwardLayer(int layer);

    /// <summary>A parameter's gradient was accumulated into its <c>.grad</c> (a post-accumulate-grad hook).</summary>
    public virtual void GradientReady(Tensor leaf)
    {
    }

    public abstract void EndBackward();

    /// <summary>Just before <c>optimizer.step()</c>.</summary>
    public virtual void BeforeOptimizerStep()
    {
    }
}
