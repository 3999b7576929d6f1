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

    public IReadOnlyList<MemoryComponent> Training()
    {
        var parts = new List<MemoryComponent>();
        AddWeights(parts);
        Add(parts, "autocast_copies", ComponentKind.MasterWeights, result.Live(MemoryTag.AutocastWeight), AutocastFormula);
        Add(parts, "gradients", ComponentKind.Gradients, result.Live(MemoryTag.Gradient), GradientFormula);
        Add(parts, "optimizer_states", ComponentKind.OptimizerStates, result.Live(MemoryTag.OptimizerState), StateFormula);
        if (_options.Optimizer == ReplayOptimizer.Paged)
        {
            OptimizerKind kind = scenario.Optimizer!.Value;
            long paged = OptimizerStates.Bytes(Trained(), kind);
            parts.Add(new MemoryComponent("paged_optimizer_states", ComponentKind.OptimizerStates, new ByteSize(paged),
                $"{OptimizerStates.Formula(Trained(), kind)} in CUDA managed memory (bitsandbytes paged optimizer): outside PyTorch's allocator, resident on the GPU unless memory runs short",
                Counter: Counter.Device));
        }

        Add(parts, "lora_adapters", ComponentKind.Adapters, result.Live(MemoryTag.Adapter),
            live => $"{Text.N(plan.Adapters!.TrainableParameters)} adapter params × {Bits(_options.Lora!.Type) / 8} B{Replayed(live, plan.Adapters.TrainableParameters * Bits(_options.Lora.Type) / 8)}");
        Add(parts, "saved_activations", ComponentKind.Activations, result.Live(MemoryTag.SavedActivation), SavedFormula);
        Add(parts, "activation_transients", ComponentKind.Activations, result.Live(MemoryTag.Activation) + result.Live(MemoryTag.Inputs),
            live => $"working tensors at the peak: activation gradients, attention and MLP intermediates, token ids (replayed: {new ByteSize(live)})");
        Add(parts, "logits_and_loss", ComponentKind.Logits, result.Live(MemoryTag.Logits) + result.Live(MemoryTag.Loss), LossFormula);
        Add(parts, "kv_cache", ComponentKind.KvCache, KvBytes, live => $"K and V the cache holds during a training forward (config use_cache): {new ByteSize(live)} replayed");
        Add(parts, "optimizer_temporaries", ComponentKind.Workspace, result.Live(MemoryTag.OptimizerTemporary), TemporaryFormula);
        AddRuntime(parts);
        if (_options.OffloadCheckpoints)
        {
            long offloaded = checked(model.LayerCount * _tokens * model.HiddenSize * Bits(ActivationType()) / 8);
            parts.Add(new MemoryComponent("offloaded_checkpoints", ComponentKind.Activations, new ByteSize(offloaded),
                $"{model.LayerCount} layers × {Text.N(_tokens)} tokens × {model.HiddenSize} × {Bits(ActivationType()) / 8} B checkpointed layer inputs in host memory (activation offloading)",
                Residence.Host));
        }

        return parts;
    }

    public IReadOnlyList<MemoryComponent> Inference()
    {
        var parts = new List<MemoryComponent>();
        AddWeights(parts);
        Add(parts, "kv_cache", ComponentKind.KvCache, KvBytes, KvFormula);
        Add(parts, "activations", ComponentKind.Activations, result.Live(MemoryTag.Activation) + result.Live(MemoryTag.SavedActivation) + result.Live(MemoryTag.Inputs),
            live => $"working tensors of the forward at the peak (hidden states, attention and MLP intermediates, masks, token ids): {new ByteSize(live)} replayed");
        Add(parts, "logits", ComponentKind.Logits, result.Live(MemoryTag.Logits) + result.Live(MemoryTag.Loss),
            live => $"{Text.N(_tokens)} tokens × {Text.N(model.VocabularySize)} vocab × {Bits(ActivationType()) / 8} B (every position's logits: no logits_to_keep){Replayed(live, _tokens * model.VocabularySize * Bits(ActivationType()) / 8)}");
        AddRuntime(parts);
        return parts;
    }

    /// <summary>The essay's rules of thumb beside the replayed figures.</summary>
    public IReadOnlyList<MemoryComponent> Comparisons()
    {
        long beta = Bits(ActivationType()) / 8;
        var lines = new List<MemoryComponent>
        {
            new("activations_rule_of_thumb", ComponentKind.Activations, new ByteSize(checked(model.LayerCount * model.HiddenSize * _tokens * beta)),
                $"the essay's rough rule: {model.LayerCount} layers × {model.HiddenSize} hidden × {Text.N(scenario.Seq)} seq × {scenario.Batch} batch × {beta} B, against {new ByteSize(result.Live(MemoryTag.SavedActivation))} saved in the replay"),
        };
        if (scenario.Mode == Mode.Training)
        {
            ByteSize rule = RuleOfThumb.ModelStates(model.ParameterCount);
            lines.Add(new MemoryComponent("sixteen_bytes_per_parameter", ComponentKind.Weights, rule,
                $"the essay's rule for AdamW in mixed precision: {Text.N(model.ParameterCount)} params × {rule.Bytes / model.ParameterCount} B (2 + 4 weights, 2 gradients, 8 optimizer)"));
        }

        return lines;
    }

    /// <summary>
    /// The weights as stored (exact), then what the allocator's blocks add to them: 512-B rounding, the tail of a segment
    /// too small to split off (≤ 1 MiB each), the rotary and position buffers the model registers (and BERT's classifier).
    /// </summary>
    private void AddWeights(List<MemoryComponent> parts)
    {
        string masters = scenario.IsTraining && _options.TrainBase && _options.Autocast is not null ? " (the fp32 parameters are the master weights, updated in place)" : "";
        parts.Add(new MemoryComponent("weights", ComponentKind.Weights, new ByteSize(plan.Layout.Bytes), plan.Layout.Formula() + masters));
        Add(parts, "weight_blocks", ComponentKind.Weights, result.Live(MemoryTag.Weight) - plan.Layout.Bytes,
            extra => $"allocator blocks of the weights beyond their bytes: 512-B rounding, unsplit segment tails, rotary and position buffers{(model.Family == ModelFamily.Bert ? ", the classifier" : "")} ({new ByteSize(extra)}, replayed)");
    }

    private void AddRuntime(List<MemoryComponent> parts)
    {
        long workspace = result.Live(MemoryTag.Workspace);
        Add(parts, "cublas_workspaces", ComponentKind.Workspace, workspace,
            live => $"{(scenario.IsTraining ? "2 GEMM threads (forward, autograd)" : "1 GEMM thread")} × {new ByteSize(_options.WorkspaceBytes)} cuBLAS workspace, allocated at each thread's first GEMM and kept{Replayed(live, (scenario.IsTraining ? 2 : 1) * _options.WorkspaceBytes)}");
        if (!host)
        {
            parts.Add(new MemoryComponent("allocator_cache", ComponentKind.AllocatorReserve, new ByteSize(result.PeakReserved - result.PeakAllocated),
                $"peak reserved {new ByteSize(result.PeakReserved)} − peak allocated {new ByteSize(result.PeakAllocated)}: freed blocks the caching allocator keeps, which could not serve the request that made its last segment (replayed)",
                Counter: Counter.Reserved));
            parts.Add(new MemoryComponent("cuda_context", ComponentKind.Runtime, plan.Context,
                "CUDA context, kernel modules and library handles outside PyTorch's allocator (Constants.CudaContext)", Counter: Counter.Device));
        }
    }

    private string AutocastFormula(long live)
    {
        long linear = model.Tensors.CountWhere(t => t.Form == TensorForm.LinearWeight) + (model.TiedEmbeddings ? model.Tensors.CountOf(TensorRole.TokenEmbedding) : 0);
        return $"{Text.N(linear)} linear-weight params × 2 B: the 16-bit copies autocast casts once per forward; each is kept by its layer's nodes until that layer's backward{Replayed(live, linear * 2)}";
    }

    private string GradientFormula(long live)
    {
        (long count, long bytes) = (Trained().Sum(p => p.Elements), Trained().Sum(p => p.Bytes));
        string keep = _options.KeepGradients ? "; zeroed in place between steps (zero_grad(set_to_none=False))" : "";
        return $"{Text.N(count)} trainable params in the parameters' type = {new ByteSize(bytes)}{keep}{Replayed(live, bytes, "gradients appear as backward reaches each parameter")}";
    }

    private string StateFormula(long live)
    {
        OptimizerKind kind = OptimizerReplay.States(_options.Optimizer);
        long full = OptimizerStates.Bytes(Trained(), kind);
        return $"{OptimizerStates.Formula(Trained(), kind)}{Replayed(live, full, "states are created in the first optimizer step")}";
    }

    private string TemporaryFormula(long live) => _options.Optimizer switch
    {
        ReplayOptimizer.AdamW => $"torch.optim.AdamW (foreach): _foreach_sqrt copies the second moment of each type group, {new ByteSize(Trained().Sum(p => p.Bytes))}{Replayed(live, Trained().Sum(p => p.Bytes))}",
        _ => $"per-parameter temporaries of the optimizer step: {new ByteSize(live)} replayed",
    };

    private string SavedFormula(long live)
    {
        long layers = model.LayerCount;
        if (_options.Checkpointing)
        {
            long beta = _options.TrainBase && _options.Autocast is not null ? 4 : Bits(ActivationType()) / 8;
            long head = SavedActivations.HeadPerToken(model, FrozenHead());
            long closed = checked((layers * _tokens * model.HiddenSize * beta) + (_tokens * head));
            return $"checkpointed layer inputs {layers} layers × {Text.N(_tokens)} tokens × {model.HiddenSize} × {beta} B{(_options.OffloadCheckpoints ? " (in host memory, see offloaded_checkpoints)" : "")} + head {Text.N(_tokens)} × {head / model.HiddenSize}·{model.HiddenSize} B = {new ByteSize(closed)}, plus one layer recomputed in backward{Replayed(live, closed)}";
        }

        (long perToken, string terms) = SavedActivations.PerToken(model, Regime(), plan.Adapters, scenario.Attention, scenario.Seq);
        long headBytes = SavedActivations.HeadPerToken(model, FrozenHead());
        long total = checked((layers * _tokens * perToken) + (_tokens * headBytes));
        return $"{layers} layers × {Text.N(_tokens)} tokens × ({terms}) B + head {Text.N(_tokens)} × {headBytes / model.HiddenSize}·{model.HiddenSize} B = {new ByteSize(total)}{Replayed(live, total)}";
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

    private string LossFormula(long live)
    {
        long tv = checked(_tokens * model.VocabularySize);
        if (_options.Loss == LossStyle.Transformers && model.Family != ModelFamily.Bert && result.PeakPhase.Contains("backward", StringComparison.Ordinal)
            && result.PeakBackwardLayer >= model.LayerCount)
        {
            const int perLogit = SavedActivations.LossRegionBytesPerLogit;
            return $"{perLogit} × {Text.N(_tokens)} tokens × {Text.N(model.VocabularySize)} vocab B: the fp32 log-softmax output and the loss backward's two fp32 gradients = {new ByteSize(perLogit * tv)}{Replayed(live, perLogit * tv)}";
        }

        if (_options.Loss == LossStyle.Transformers && model.Family != ModelFamily.Bert && result.PeakPhase.EndsWith(":head", StringComparison.Ordinal))
        {
            return $"10 × {Text.N(_tokens)} tokens × {Text.N(model.VocabularySize)} vocab B: 16-bit logits, their fp32 copy and the log-softmax output = {new ByteSize(10 * tv)}{Replayed(live, 10 * tv)}";
        }

        return $"logits and the loss's own tensors and gradients at the peak: {new ByteSize(live)} replayed";
    }

    private string KvFormula(long live)
    {
        // transformers caches K and V per head as attention computes them; MLA's decompressed K and V differ in width (§2.3).
        DataType type = ActivationType() switch { ScalarType.Float32 => DataTypes.F32, ScalarType.Float16 => DataTypes.F16, _ => DataTypes.BF16 };
        var layout = LlmMemory.Estimation.Inference.KvLayout.For(model, type, type, compressedLatent: false, model.KeyValueHeadCount);
        long perToken = checked(model.LayerCount * layout.BytesPerTokenPerLayer);
        string sliding = model.SlidingWindow is int window && scenario.Seq > window
            ? $"; the sliding layers hold all {Text.N(scenario.Seq)} prefill tokens too (a view of the full copy)" : "";
        return $"{scenario.Batch} × {Text.N(scenario.Seq)} tokens × {layout.Describe(model.LayerCount)}{sliding}{Replayed(live, checked(_tokens * perToken))}";
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

        return [.. model.Tensors.Tensors.Select((t, i) => (t.Elements, _options.Weights[i].Bytes, t.Shape.ToArray()))
            .Where((_, i) => _options.Weights[i].Type.IsFloatingPoint())];
    }

    private static (long, long, long[]) Parameter(long[] shape, long bytesPerElement)
    {
        long elements = shape.Aggregate(1L, (n, x) => checked(n * x));
        return (elements, elements * bytesPerElement, shape);
    }

    private ScalarType ActivationType() => _options.Autocast ?? _options.Weights[0].Type;

    private static long Bits(ScalarType type) => type.Bits();

    private static void Add(List<MemoryComponent> parts, string name, ComponentKind kind, long live, Func<long, string> formula)
    {
        if (live > 0)
        {
            parts.Add(new MemoryComponent(name, kind, new ByteSize(live), formula(live)));
        }
    }

    /// <summary>"; replayed: X live at the peak (why)" when the replay's bytes differ from the closed form by more than 1 %.</summary>
    private static string Replayed(long live, long closed, string? why = null) =>
        Math.Abs(live - closed) <= closed / 100 ? "" : $"; replayed: {new ByteSize(live)} live at the peak{(why is null ? "" : $" ({why})")}";
}
