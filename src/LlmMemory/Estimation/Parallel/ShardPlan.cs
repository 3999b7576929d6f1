using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Parallel;

/// <summary>How a multi-GPU training run splits the model states over devices (docs/memory-model.md §7).</summary>
/// <param name="Tp">Tensor-parallel degree: weights, heads and (with sequence parallelism) activations ÷ tp.</param>
/// <param name="Pp">Pipeline stages: each holds about layers ÷ pp blocks.</param>
/// <param name="Cp">Context-parallel degree: the sequence ÷ cp.</param>
/// <param name="Dp">Data-parallel degree: GPUs ÷ (tp · pp · cp).</param>
/// <param name="ParameterShards">Ranks the parameters are sharded over (ZeRO-3, FSDP full/hybrid shard), else 1.</param>
/// <param name="GradientShards">Ranks the gradients are sharded over (ZeRO-2/3, FSDP), else 1.</param>
/// <param name="OptimizerShards">Ranks the optimizer states and fp32 masters are sharded over (ZeRO-1/2/3, FSDP), else 1.</param>
/// <param name="Offload">What moves to host memory.</param>
internal sealed record ShardPlan(int Tp, int Pp, int Cp, int Dp, int ParameterShards, int GradientShards, int OptimizerShards, OffloadMode Offload)
{
    /// <summary>GPUs of one node, over which HYBRID_SHARD shards (it replicates across nodes).</summary>
    private const int GpusPerNode = 8;

    public static ShardPlan For(Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(scenario);
        ParallelSettings p = scenario.Parallel;
        int dp = p.DataParallel;
        // torchtitan applies FSDP over the joined data-parallel and context-parallel mesh (dp_shard_cp), so states shard over dp · cp.
        int shardGroup = scenario.Engine == Engine.Torchtitan ? dp * p.Cp : dp;
        int stage = p.Zero;
        (int parameters, int gradients, int optimizer) = p.Fsdp switch
        {
            FsdpMode.FullShard => (shardGroup, shardGroup, shardGroup),
            FsdpMode.ShardGradOp => (1, shardGroup, shardGroup),
            FsdpMode.HybridShard => (Math.Min(shardGroup, GpusPerNode), Math.Min(shardGroup, GpusPerNode), Math.Min(shardGroup, GpusPerNode)),
            _ => (stage >= 3 ? shardGroup : 1, stage >= 2 ? shardGroup : 1, stage >= 1 ? shardGroup : 1),
        };
        return new ShardPlan(p.Tp, p.Pp, p.Cp, dp, parameters, gradients, optimizer, p.Offload);
    }

    public int Gpus => Tp * Pp * Cp * Dp;

    /// <summary>"ZeRO-3 over 8 ranks, TP 2" style summary for formulas.</summary>
    public string Describe()
    {
        var parts = new List<string>();
        if (ParameterShards > 1 || GradientShards > 1 || OptimizerShards > 1)
        {
            parts.Add($"states sharded over {OptimizerShards} ranks (parameters ÷ {ParameterShards}, gradients ÷ {GradientShards}, optimizer ÷ {OptimizerShards})");
        }

        if (Tp > 1)
        {
            parts.Add($"tensor parallel {Tp}");
        }

        if (Pp > 1)
        {
            parts.Add($"{Pp} pipeline stages");
        }

        if (Cp > 1)
        {
            parts.Add($"context parallel {Cp}");
        }

        return parts.Count > 0 ? string.Join(", ", parts) : Gpus > 1 ? "replicated on every GPU" : "one GPU holds every state";
    }
}
