using LlmMemory.Estimation;
using LlmMemory.Estimation.Counts;
using LlmMemory.Estimation.Training;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// The components of a replayed estimate: the bytes each part held at the allocated peak (the replay's breakdown), with the
/// closed forms of research/torch SPEC §2–§6 as formulas. The allocated components add up to the peak allocated; the
/// allocator cache and the memory outside the allocator complete the device total.
/// </summary>
internal sealed class ReplayParts(ModelArchitecture model, Scenario scenario, ReplayPlan plan, ReplayResult result, bool host)
{
    private readonly ReplayOptions _options = plan.Options;
    private readonly long _tokens = (long)scenario.Batch * scenario.Seq;

    /// <summary>Bytes of the KV cache the replay held at the peak.</summary>
    public long KvBytes => result.Live(MemoryTag.KvCache);

    /// <summary>K and V of one token in every layer, as transformers caches them.</summary>
    public long KvBytesPerToken => checked(model.LayerCount * KvLayout().BytesPerTokenPerLayer);

    /// <summary>transformers caches K and V per head as attention computes them; MLA's decompressed K and V differ in width (§2.3).</summary>
    private LlmMemory.Estimation.Inference.KvLayout KvLayout()
    {
        DataType type = ActivationType() switch { ScalarType.Float32 => DataTypes.F32, ScalarType.Float16 => DataTypes.F16, _ => DataTypes.BF16 };
        return LlmMemory.Estimation.Inference.KvLayout.For(model, type, type, compressedLatent: false, model.KeyValueHeadCount);
    }

    public IReadOnlyList<MemoryComponent> Training()
    {
        var parts = new List<MemoryComponent>();
        AddWeights(parts);
        Add(parts, "autocast_copies", ComponentKind.MasterWeights, result.Live(MemoryTag.AutocastWeight), AutocastFormula);
        Add(parts, "gradients", ComponentKind.Gradients, result.Live(MemoryTag.Gradient), GradientFormula);
        Add(parts, "optimizer_states", ComponentKind.OptimizerStates, result.Live(MemoryTag.OptimizerState), StateFormula);
        if (_options.Optimizer is ReplayOptimizer.Paged or ReplayOptimizer.Paged8Bit)
        {
            OptimizerKind kind = OptimizerReplay.States(_options.Optimizer);
            long paged = OptimizerStates.PagedBytes(Trained(), kind);
            if (paged > 0)
            {
                parts.Add(MemoryComponent.Of("paged_optimizer_states", ComponentKind.OptimizerStates,
                    Formula.Size(new ByteSize(paged)).After($"the states of parameters of at least {Text.N(OptimizerStates.PagedMinElements)} elements:"),
                    "in CUDA managed memory (bitsandbytes paged optimizer): outside PyTorch's allocator, resident on the GPU unless memory runs short",
                    counter: Counter.Device));
            }
        }

        Add(parts, "lora_adapters", ComponentKind.Adapters, result.Live(MemoryTag.Adapter),
            live => Replayed(Formula.Count(plan.Adapters!.TrainableParameters, "adapter params") * Formula.Bytes(Bits(_options.Lora!.Type) / 8), live));
        Add(parts, "saved_activations", ComponentKind.Activations, result.Live(MemoryTag.SavedActivation), SavedFormula);
        Add(parts, "activation_transients", ComponentKind.Activations, result.Live(MemoryTag.Activation) + result.Live(MemoryTag.Inputs),
            live => Formula.Size(new ByteSize(live), "replayed").After("working tensors at the peak (activation gradients, attention and MLP intermediates, token ids):"));
        Add(parts, "logits_and_loss", ComponentKind.Logits, result.Live(MemoryTag.Logits) + result.Live(MemoryTag.Loss), LossFormula);
        Add(parts, "kv_cache", ComponentKind.KvCache, KvBytes,
            live => Formula.Size(new ByteSize(live), "replayed").After("K and V the cache holds during a training forward (config use_cache):"));
        Add(parts, "optimizer_temporaries", ComponentKind.Workspace, result.Live(MemoryTag.OptimizerTemporary), TemporaryFormula);
        Add(parts, "gathered_parameters", ComponentKind.Communication, result.Live(MemoryTag.GatheredWeight),
            live => Formula.Size(new ByteSize(live), "replayed").After(_options.Sharding?.Zero is not null
                ? "parameters all-gathered at the peak, in the 16-bit type (the block computed, what is prefetched after it, and the blocks and head kept within stage3_max_reuse_distance of their next use):"
                : "parameters all-gathered at the peak, in the gathered type (the root unit's embedding, final norm and head from its forward to its backward; the block computed and the one prefetched):"));
        Add(parts, "collective_buffers", ComponentKind.Communication, result.Live(MemoryTag.Collective),
            live => Formula.Size(new ByteSize(live), "replayed").After(_options.Sharding?.Zero is { } zero
                ? $"ZeRO's gradient bucket{(zero.OverlapComm && zero.Stage < 3 ? "s" : "")} ({Text.N(ZeroSettings.ReduceBucketSize)} elements{(zero.Stage < 3 && zero.OverlapComm ? " each" : "")}) and flat all-gather or reduce-scatter copies, live at the peak:"
                : "flat all-gather output and reduce-scatter input of a unit, live at the peak:"));
        AddRuntime(parts);
        if (_options.OffloadCheckpoints)
        {
            parts.Add(MemoryComponent.Of("offloaded_checkpoints", ComponentKind.Activations,
                Formula.Count(model.LayerCount, "layers") * Formula.Count(_tokens, "tokens") * Formula.Count(model.HiddenSize) * Formula.Bytes(ResidualBytes()),
                "checkpointed layer inputs in host memory (activation offloading)", Residence.Host));
        }

        return parts;
    }

    public IReadOnlyList<MemoryComponent> Inference()
    {
        var parts = new List<MemoryComponent>();
        AddWeights(parts);
        Add(parts, "kv_cache", ComponentKind.KvCache, KvBytes, KvFormula);
        Add(parts, "activations", ComponentKind.Activations, result.Live(MemoryTag.Activation) + result.Live(MemoryTag.SavedActivation) + result.Live(MemoryTag.Inputs),
            live => Formula.Size(new ByteSize(live), "replayed").After("working tensors of the forward at the peak (hidden states, attention and MLP intermediates, masks, token ids):"));
        Add(parts, "logits", ComponentKind.Logits, result.Live(MemoryTag.Logits) + result.Live(MemoryTag.Loss),
            live => _options.NewTokens is null
                ? Replayed(Formula.Count(_tokens, "tokens") * Formula.Count(model.VocabularySize, "vocab") * Formula.Bytes(Bits(ActivationType()) / 8), live)
                : Formula.Size(new ByteSize(live), "replayed").After("the last position's logits and generate()'s fp32 copies of them:"),
            _options.NewTokens is null ? "every position's logits (no logits_to_keep)" : "generate() asks for the last position only (logits_to_keep=1)");
        AddRuntime(parts);
        return parts;
    }

    /// <summary>The essay's rules of thumb beside the replayed figures.</summary>
    public IReadOnlyList<MemoryComponent> Comparisons()
    {
        long beta = Bits(ActivationType()) / 8;
        var lines = new List<MemoryComponent>
        {
            MemoryComponent.Of("activations_rule_of_thumb", ComponentKind.Activations,
                Formula.Count(model.LayerCount, "layers") * Formula.Count(model.HiddenSize, "hidden") * Formula.Count(scenario.Seq, "seq") * Formula.Count(scenario.Batch, "batch")
                * Formula.Bytes(beta), $"the essay's rough rule, against {new ByteSize(result.Live(MemoryTag.SavedActivation))} saved in the replay"),
        };
        if (scenario.Mode == Mode.Training)
        {
            lines.Add(MemoryComponent.Of("sixteen_bytes_per_parameter", ComponentKind.Weights, RuleOfThumb.ModelStates(model.ParameterCount),
                "the essay's rule for AdamW in mixed precision"));
        }

        return lines;
    }

    /// <summary>
    /// The weights as stored (exact), then what the allocator's blocks add to them: 512-B rounding, the tail of a segment
    /// too small to split off (≤ 1 MiB each), the rotary and position buffers the model registers (and BERT's classifier).
    /// </summary>
    private void AddWeights(List<MemoryComponent> parts)
    {
        string? masters = scenario.IsTraining && _options.TrainBase && (_options.Autocast is not null || _options.Sharding?.ParamType is not null)
            ? "the fp32 parameters are the master weights, updated in place" : null;
        long weights = plan.Layout.Bytes;
        if (_options.Sharding is { Zero: { } zero } zeroSharding)
        {
            weights = AddZeroWeights(parts, zeroSharding, zero);
        }
        else if (_options.Sharding is { } sharding)
        {
            weights = sharding.Offload ? 0 : ShardedWeightBytes(sharding.World);
            parts.Add(MemoryComponent.Of("weights", ComponentKind.Weights,
                (Formula.Size(new ByteSize(Stored().Sum(t => t.Stored.Bytes)), sharding.UntiedHead && model.TiedEmbeddings ? "of stored weights and the untied head" : "of stored weights")
                    / Formula.Count(sharding.World, "ranks")).Adjusted(ShardedWeightBytes(sharding.World), "the first rank's shards: each tensor's rows split over the ranks, rounded up"),
                sharding.Offload ? "in host memory (FSDP CPU offload)" : masters, sharding.Offload ? Residence.Host : Residence.Device));
        }
        else if (_options.Placement is { } placement)
        {
            weights = Stored().Where(t => placement.Map.OfTensor(t.Spec) == placement.Counted).Sum(t => t.Stored.Bytes);
            parts.Add(MemoryComponent.Of("weights", ComponentKind.Weights,
                Formula.Size(new ByteSize(weights)).After($"stored weights of {placement.Map.Describe(placement.Counted)}:"),
                $"GPU {placement.Counted}'s share of the {new ByteSize(plan.Layout.Bytes)} of weights (device_map=\"auto\")",
                allDevices: new ByteSize(plan.Layout.Bytes)));
        }
        else
        {
            parts.Add(MemoryComponent.Of("weights", ComponentKind.Weights, plan.Layout.Formula().Total(), masters));
        }

        if (_options.KbitPreparationFrom is not null)
        {
            // PEFT's prepare_model_for_kbit_training replaces each 16-bit parameter by its fp32 copy: 4 B per element where
            // the load stored it (2 B per element for a bf16 or fp16 load).
            (long Elements, long Bytes)[] cast = [.. Stored().Where(t => t.Stored.Type is ScalarType.BFloat16 or ScalarType.Float16)
                .Select(t => (Tensor.ElementsOf([.. t.Spec.Shape]), t.Stored.Bytes))];
            (long elements, long stored) = (cast.Sum(t => t.Elements), cast.Sum(t => t.Bytes));
            long extra = (4 * elements) - stored;
            parts.Add(MemoryComponent.Of("kbit_fp32_parameters", ComponentKind.Weights,
                (Formula.Count(elements, "unquantized 16-bit params") * Formula.Bytes(2, "fp32 over 16-bit")).Adjusted(extra, "their stored bytes differ"),
                "PEFT's prepare_model_for_kbit_training casts embeddings, norms and head to fp32"));
            weights += extra;
        }

        Add(parts, "weight_blocks", ComponentKind.Weights, result.Live(MemoryTag.Weight) - weights,
            extra => Formula.Size(new ByteSize(extra), "replayed").After(
                $"allocator blocks of the weights beyond their bytes (rounding, unsplit segment tails, rotary and position buffers{(model.Family == ModelFamily.Bert ? ", the classifier" : "")}):"));
    }

    /// <summary>
    /// ZeRO's parameters on rank 0 and its fp32 master: stages 1 and 2 keep the whole flat 16-bit buffer (padded to 2·N
    /// elements); stage 3 keeps ⌈n ÷ N⌉ elements of each parameter (in host memory under parameter offload) and the small
    /// persistent parameters whole; the master is the fp32 partition, 1/N of the flat buffer (stages 1, 2) or the sum of the
    /// parameter partitions (stage 3), in host memory under optimizer offload. Returns the weight bytes on the device.
    /// </summary>
    private long AddZeroWeights(List<MemoryComponent> parts, Sharding sharding, ZeroSettings zero)
    {
        long bytesPer = (sharding.ParamType ?? ScalarType.Float32).Bits() / 8;
        long[] elements = [.. Stored().Select(t => Tensor.ElementsOf([.. t.Spec.Shape]))];
        long total = elements.Sum();
        int world = sharding.World;
        Formula type = Formula.Bytes(bytesPer, bytesPer == 2 ? "16-bit" : "fp32");
        long partition;
        long device;
        if (zero.Stage < 3)
        {
            long padded = ZeroStep.PaddedElements(total, world);
            partition = padded / world;
            device = padded * bytesPer;
            parts.Add(MemoryComponent.Of("weights", ComponentKind.Weights,
                (Formula.Count(padded, $"params, padded to a multiple of {ZeroSettings.AlignmentFactor} × {world} ranks") * type).Because("every rank keeps the whole flat buffer (ZeRO stages 1 and 2)")));
        }
        else
        {
            partition = elements.Sum(n => ZeroStep.PartitionElements(n, world));
            long persistent = elements.Where(n => n <= ZeroSettings.PersistenceThreshold).Sum();
            Formula shards = Formula.Count(partition, $"params: ⌈n ÷ {world}⌉ of each") * type;
            Formula whole = Formula.Count(persistent, $"params of tensors ≤ {Text.N(ZeroSettings.PersistenceThreshold)} elements, kept whole") * type;
            device = (zero.OffloadParameters ? 0 : partition * bytesPer) + (persistent * bytesPer);
            parts.Add(MemoryComponent.Of("weights", ComponentKind.Weights, zero.OffloadParameters ? shards : shards + whole,
                zero.OffloadParameters ? "rank 0's partitions in host memory (offload_param)" : "rank 0's partitions and the persistent small parameters",
                zero.OffloadParameters ? Residence.Host : Residence.Device));
            if (zero.OffloadParameters)
            {
                parts.Add(MemoryComponent.Of("persistent_parameters", ComponentKind.Weights, whole, "small parameters DeepSpeed never partitions (stage3_param_persistence_threshold)"));
            }
        }

        Formula master = Formula.Count(partition, "params of rank 0's partition") * Formula.Bytes(4, "fp32 master");
        parts.Add(MemoryComponent.Of("master_weights", ComponentKind.MasterWeights,
            zero.OffloadOptimizer ? master : Replayed(master, result.Live(MemoryTag.MasterWeight), "allocator blocks"),
            zero.OffloadOptimizer ? "in host memory (offload_optimizer)" : "the optimizer steps it and copies it back into the 16-bit parameters",
            zero.OffloadOptimizer ? Residence.Host : Residence.Device));
        return device;
    }

    /// <summary>Rank 0's shard bytes of every stored tensor (and of a head a sharded run untied).</summary>
    private long ShardedWeightBytes(int world) =>
        Stored().Select(t => ShardedStep.ShardBytes(t.Spec.Shape, t.Stored.Bytes, world)).Sum();

    /// <summary>The stored tensors of the run: the inventory's, and the embedding's twin when a sharded run untied the head.</summary>
    private IEnumerable<(TensorSpec Spec, StoredWeight Stored)> Stored()
    {
        IEnumerable<(TensorSpec, StoredWeight)> tensors = model.Tensors.Tensors.Select((t, i) => (t, _options.Weights[i]));
        return _options.Sharding is { UntiedHead: true } && model.TiedEmbeddings
            ? tensors.Concat(tensors.Where(t => t.Item1.Role == TensorRole.TokenEmbedding).Take(1))
            : tensors;
    }

    private void AddRuntime(List<MemoryComponent> parts)
    {
        long workspace = result.Live(MemoryTag.Workspace);
        int threads = scenario.IsTraining ? 2 : 1;
        Add(parts, "cublas_workspaces", ComponentKind.Workspace, workspace,
            live => Replayed(Formula.Count(threads, threads == 1 ? "GEMM thread" : "GEMM threads (forward, autograd)") * Formula.Size(new ByteSize(_options.WorkspaceBytes), "cuBLAS workspace"), live),
            "allocated at each thread's first GEMM and kept");
        if (!host)
        {
            parts.Add(MemoryComponent.Of("allocator_cache", ComponentKind.AllocatorReserve,
                Formula.Size(new ByteSize(result.PeakReserved)).After("peak reserved") - Formula.Size(new ByteSize(result.PeakAllocated)).After("peak allocated"),
                "freed blocks the caching allocator keeps, which could not serve the request that made its last segment (replayed)", counter: Counter.Reserved));
            parts.Add(MemoryComponent.Of("cuda_context", ComponentKind.Runtime, Formula.Size(plan.Context).After("CUDA context, kernel modules and library handles:"),
                "outside PyTorch's allocator, seen only in the device total", counter: Counter.Device));
        }
    }

    private Formula AutocastFormula(long live)
    {
        long linear = model.Tensors.CountWhere(t => t.Form == TensorForm.LinearWeight) + (model.TiedEmbeddings ? model.Tensors.CountOf(TensorRole.TokenEmbedding) : 0);
        return Replayed(Formula.Count(linear, "linear-weight params") * Formula.Bytes(2, "16-bit copies"), live,
            "autocast casts each once per forward, and its layer keeps it until its backward");
    }

    private Formula GradientFormula(long live)
    {
        if (_options.Sharding?.Zero is { } zero)
        {
            return Formula.Size(new ByteSize(live), "replayed").After(zero.Stage switch
            {
                1 => "ZeRO-1 gradients at the peak (every parameter's 16-bit gradient until backward ends, then rank 0's partition; the fp32 gradient of the partition at the step):",
                2 => "ZeRO-2 gradients at the peak (each 16-bit gradient until it is copied into the bucket, rank 0's partition once its first gradient is reduced; the fp32 gradient of the partition at the step):",
                _ => "ZeRO-3 gradients at the peak (the 16-bit gradient partition, held from initialization, gradients on their way into the bucket; the fp32 gradient of the partition at the step):",
            });
        }

        (long count, long bytes) = (Trained().Sum(p => p.Elements), Trained().Sum(p => p.Bytes));
        Formula gradients = Formula.Count(count, "trainable params") * Formula.Bytes(bytes / (double)count, "the parameters' type");
        return Replayed(_options.KeepGradients ? gradients.Because("zeroed in place between steps, zero_grad(set_to_none=False)") : gradients, live,
            "gradients appear as backward reaches each parameter");
    }

    private Formula StateFormula(long live) => _options.Optimizer is ReplayOptimizer.Paged or ReplayOptimizer.Paged8Bit
        ? Replayed(Formula.Size(new ByteSize(OptimizerStates.DeviceBytes(Trained(), OptimizerReplay.States(_options.Optimizer))))
            .After($"bitsandbytes paged optimizer, the states it keeps in device memory (parameters under {Text.N(OptimizerStates.PagedMinElements)} elements, 8-bit block scales):"),
            live, "states are created in the first optimizer step")
        : Replayed(OptimizerStates.Formula(Trained(), OptimizerReplay.States(_options.Optimizer)), live, "states are created in the first optimizer step");

    private Formula TemporaryFormula(long live) => _options.Optimizer switch
    {
        ReplayOptimizer.AdamW => Replayed(Formula.Size(new ByteSize(Trained().Sum(p => p.Bytes))).After("torch.optim.AdamW foreach, one copy of the second moments (_foreach_sqrt):"), live),
        _ => Formula.Size(new ByteSize(live), "replayed").After("per-parameter temporaries of the optimizer step:"),
    };

    private Formula SavedFormula(long live)
    {
        Formula layers = Formula.Count(model.LayerCount, "layers");
        Formula tokens = Formula.Count(_tokens, "tokens");
        long head = SavedActivations.HeadPerToken(model, FrozenHead());
        Formula headTerm = (Formula.Count(_tokens) * Formula.Dot(head / model.HiddenSize, model.HiddenSize).InBytes()).After("head");
        if (_options.Checkpointing)
        {
            Formula inputs = (layers * tokens * Formula.Count(model.HiddenSize) * Formula.Bytes(ResidualBytes())).After("checkpointed layer inputs");
            return Replayed(inputs + headTerm, live, "plus one layer recomputed in backward");
        }

        Formula perToken = SavedActivations.PerToken(model, Regime(), plan.Adapters, scenario.Attention, scenario.Seq);
        return Replayed(layers * tokens * perToken.InBytes() + headTerm, live);
    }

    /// <summary>The closed form's regime: what trains and in which types.</summary>
    private SavedActivations.Regime Regime() => _options switch
    {
        { Lora: { } lora } => lora.Type == ScalarType.Float32 ? SavedActivations.Regime.LoraFp32Adapters : SavedActivations.Regime.LoraHalfAdapters,
        { Autocast: not null } => SavedActivations.Regime.Mixed,
        _ when _options.Weights[0].Type == ScalarType.Float32 => SavedActivations.Regime.Fp32,
        _ => SavedActivations.Regime.Half,
    };

    /// <summary>A frozen final norm and head: LoRA without an adapter on <c>lm_head</c>.</summary>
    private bool FrozenHead() => !_options.TrainBase && _options.Lora?.Targets.Any(t => t.Role == TensorRole.OutputHead) != true;

    private Formula LossFormula(long live)
    {
        Formula logits = Formula.Count(_tokens, "tokens") * Formula.Count(model.VocabularySize, "vocab");
        if (_options.Loss == LossStyle.Transformers && model.Family != ModelFamily.Bert && result.PeakPhase.Contains("backward", StringComparison.Ordinal)
            && result.PeakBackwardLayer >= model.LayerCount)
        {
            return Replayed(logits * Formula.Bytes(SavedActivations.LossRegionBytesPerLogit, "the fp32 log-softmax output and the loss backward's two fp32 gradients"), live);
        }

        if (_options.Loss == LossStyle.Transformers && model.Family != ModelFamily.Bert && result.PeakPhase.EndsWith(":head", StringComparison.Ordinal))
        {
            return Replayed(logits * Formula.Bytes(10, "16-bit logits, their fp32 copy and the log-softmax output"), live);
        }

        if (_options.Loss == LossStyle.TransformersShifted && result.PeakPhase.EndsWith(":head", StringComparison.Ordinal))
        {
            // transformers 4.46 to 4.48 (ForCausalLMLoss): the output's 16-bit logits and their fp32 copy, then the shifted fp32 copy
            // and its log-softmax, one position fewer per sequence.
            Formula shifted = (Formula.Count(_tokens, "tokens") - Formula.Count(scenario.Batch, "sequences")) * Formula.Count(model.VocabularySize, "vocab");
            return Replayed(logits * Formula.Bytes(6, "16-bit logits and their fp32 copy")
                + shifted * Formula.Bytes(8, "the shifted fp32 copy and its log-softmax"), live);
        }

        return Formula.Size(new ByteSize(live), "replayed").After("logits and the loss's own tensors and gradients at the peak:");
    }

    private Formula KvFormula(long live)
    {
        int layers = _options.Placement is { } placement ? placement.Map.Layers.Count(d => d == placement.Counted) : model.LayerCount;
        Formula kv = Formula.Count(scenario.Batch) * Formula.Count(scenario.Seq, "tokens") * KvLayout().PerToken(layers);
        return Replayed(model.SlidingWindow is int window && scenario.Seq > window
            ? kv.Because("the sliding layers hold every prefill token too, a view of the full copy")
            : kv, live);
    }

    /// <summary>The parameters the optimizer steps, as the replay created them.</summary>
    private IReadOnlyList<(long Elements, long Bytes, long[] Shape)> Trained() => _trained ??= TrainedParameters();

    private IReadOnlyList<(long Elements, long Bytes, long[] Shape)>? _trained;

    private (long, long, long[])[] TrainedParameters()
    {
        if (plan.Adapters is { } adapters)
        {
            long bytes = Bits(_options.Lora!.Type) / 8;
            return [.. adapters.TrainableShapes().Select(shape => Parameter(shape, bytes))];
        }

        if (_options.Sharding is { Zero: { } zero } sharding)
        {
            // ZeRO steps the fp32 master of rank 0's partition.
            long[] elements = [.. Stored().Select(t => Tensor.ElementsOf([.. t.Spec.Shape]))];
            long partition = zero.Stage < 3 ? ZeroStep.PaddedElements(elements.Sum(), sharding.World) / sharding.World
                : elements.Sum(n => ZeroStep.PartitionElements(n, sharding.World));
            return [Parameter([partition], 4)];
        }

        int world = _options.Sharding?.World ?? 1;
        (long, long, long[]) Shard((TensorSpec Spec, StoredWeight Stored) t)
        {
            long[] shard = ShardedStep.ShardShape(t.Spec.Shape, world);
            return (Tensor.ElementsOf(shard), ShardedStep.ShardBytes(t.Spec.Shape, t.Stored.Bytes, world), shard);
        }

        return [.. Stored().Where(t => t.Stored.Type.IsFloatingPoint()).Select(Shard)];
    }

    private static (long, long, long[]) Parameter(long[] shape, long bytesPerElement)
    {
        long elements = shape.Aggregate(1L, (n, x) => checked(n * x));
        return (elements, elements * bytesPerElement, shape);
    }

    private ScalarType ActivationType() => _options.Autocast ?? _options.Weights[0].Type;

    /// <summary>
    /// Bytes per value of the residual stream, which the checkpoints keep: the embedding's output type, fp32 where the
    /// embedding is fp32 (fp32 parameters under autocast; PEFT's k-bit preparation), else the activation type.
    /// </summary>
    private long ResidualBytes() =>
        (_options.TrainBase && _options.Autocast is not null) || _options.KbitPreparationFrom is not null ? 4 : Bits(ActivationType()) / 8;

    private static long Bits(ScalarType type) => type.Bits();

    private static void Add(List<MemoryComponent> parts, string name, ComponentKind kind, long live, Func<long, Formula> formula, string? remark = null)
    {
        if (live > 0)
        {
            parts.Add(MemoryComponent.Of(name, kind, formula(live), remark));
        }
    }

    /// <summary>The closed form, and what the replay held beyond it (or short of it), so the formula is the replayed bytes.</summary>
    private static Formula Replayed(Formula closed, long live, string? why = null) =>
        closed.Adjusted(live, why is null ? "held beyond the closed form in the replay" : $"replayed: {why}", why is null ? "not live at the peak in the replay" : $"not live at the peak: {why}");
}
