using LlmMemory.Sources;
using LlmMemory.Estimation.Training;
using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Parallel;

/// <summary>
/// Memory of the most loaded GPU of a multi-GPU training run: sharded model states, the parameters a sharded run gathers,
/// the activations of the local micro-batch split by tensor, context and pipeline parallelism, the loss region, and
/// communication buffers (docs/memory-model.md §7).
/// </summary>
internal static class DistributedTraining
{
    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ModelArchitecture m = resolved.Architecture!;
        ShardPlan plan = ShardPlan.For(scenario);
        bool lora = scenario.IsAdapterTraining;
        LoraAdapters? adapters = scenario.EffectiveLora is LoraSettings settings ? LoraAdapters.For(m, settings) : null;
        long trainable = adapters?.TrainableParameters ?? m.ParameterCount;
        StateBytes states = StatesFor(scenario, lora);
        WeightLayout layout = WeightStorage.Layout(m, states.WeightFormat, DataTypes.BF16);

        long stageShare(long bytes) => StageBytes(m, bytes, plan.Pp);
        var components = new List<MemoryComponent>();
        bool paramsOffloaded = plan.Offload == OffloadMode.OptimizerAndParams;
        long weights = stageShare(layout.Bytes) / (plan.Tp * (long)plan.ParameterShards);
        components.Add(new MemoryComponent("weights", ComponentKind.Weights, new ByteSize(weights),
            $"{layout.Formula()}{Split(plan.Tp, plan.ParameterShards, plan.Pp)}", paramsOffloaded ? Residence.Host : Residence.Device));

        double trainableStage = stageShare(trainable) / (double)plan.Tp;
        if (states.AdapterBytes > 0)
        {
            components.Add(States(plan, "lora_adapters", ComponentKind.Adapters, trainableStage, states.AdapterBytes, plan.ParameterShards,
                "adapter weights", paramsOffloaded));
        }

        if (states.MasterBytes > 0)
        {
            components.Add(States(plan, "master_weights", ComponentKind.MasterWeights, trainableStage, states.MasterBytes, plan.OptimizerShards,
                "fp32 master copy", plan.Offload != OffloadMode.None));
        }

        components.Add(States(plan, "gradients", ComponentKind.Gradients, trainableStage, states.GradientBytes, plan.GradientShards,
            "gradients", plan.Offload != OffloadMode.None && scenario.Engine == Engine.Deepspeed));
        OptimizerKind optimizer = scenario.Optimizer ?? OptimizerKind.AdamW;
        components.Add(States(plan, "optimizer_states", ComponentKind.OptimizerStates, trainableStage, OptimizerBytes(m, adapters, optimizer, states.UpdatedBytes),
            plan.OptimizerShards, $"{Names.Of(optimizer)} states", plan.Offload != OffloadMode.None));

        long block = BlockParameters(m);
        if (plan.ParameterShards > 1 || paramsOffloaded)
        {
            // FSDP/ZeRO-3 all-gather the unit being computed and prefetch the next: two blocks, cast to bf16 when the
            // shards are full precision, in their stored bytes when quantized (FSDP gathers the NF4 storage as is).
            long stored = layout.Tensors.Where(t => t.Tensor.Layer == 0).Sum(t => t.Bytes);
            long blockBytes = states.WeightFormat.Type.IsQuantized ? stored : block * 2;
            components.Add(new MemoryComponent("gathered_parameters", ComponentKind.Weights, new ByteSize(2 * blockBytes / plan.Tp),
                $"current and prefetched block: 2 × {new ByteSize(blockBytes)} ({Text.N(block)} params{(states.WeightFormat.Type.IsQuantized ? $" in {states.WeightFormat.Name}" : " × 2 B")}){(plan.Tp > 1 ? $" ÷ {plan.Tp}" : "")}"));
        }

        if (plan.Pp > 1 && scenario.Engine == Engine.Torchtitan && !lora)
        {
            // torchtitan keeps a pipeline stage unsharded between micro-batches (reshard_after_forward off): bf16 parameters
            // and fp32 gradients of the whole stage until the last micro-batch reduce-scatters them.
            long stageParams = stageShare(m.ParameterCount) / plan.Tp;
            components.Add(new MemoryComponent("unsharded_stage", ComponentKind.Gradients, new ByteSize(stageParams * (2 + 4)),
                $"{Text.N(stageParams)} stage params × (2 B bf16 parameters + 4 B fp32 gradients), kept across micro-batches"));
        }

        AddActivations(components, m, scenario, plan, adapters, lora);
        components.Add(new MemoryComponent("cublas_workspaces", ComponentKind.Workspace, Constants.CublasWorkspace(gpu) * 2,
            $"2 GEMM threads (forward and autograd) × {Constants.CublasWorkspace(gpu)}"));
        long transient = components.Where(c => c.Kind is ComponentKind.Activations or ComponentKind.Logits).Sum(c => c.Bytes.Bytes);
        components.Add(new MemoryComponent("allocator_cache", ComponentKind.AllocatorReserve,
            new ByteSize((long)(transient * Constants.DistributedAllocatorShare)),
            $"{Text.N(Constants.DistributedAllocatorShare)} × {new ByteSize(transient)} of activation memory cached by the allocator", Counter: Counter.Reserved));
        int communicators = new[] { plan.Dp * plan.Cp, plan.Tp, plan.Pp }.Count(d => d > 1);
        if (communicators > 0)
        {
            components.Add(new MemoryComponent("nccl_buffers", ComponentKind.Communication, Constants.NcclPerCommunicator * communicators,
                $"{communicators} communicators × {Constants.NcclPerCommunicator}", Counter: Counter.Device));
        }
        components.Add(new MemoryComponent("cuda_context", ComponentKind.Runtime, Constants.CudaContext(gpu, training: true, flashAttention: true),
            "CUDA context, kernels and library handles", Counter: Counter.Device));

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(m.ParameterCount, trainable, m.ActiveParameterCount),
            Components = components,
            PeakPhase = "start of backward (all saved activations and the loss region live)",
            Timeline = Timeline(components),
            DeviceCount = plan.Gpus,
            Device = plan.Pp > 1 ? "a GPU of the first pipeline stage (most in-flight activations)" : "each GPU",
            Comparisons = plan.OptimizerShards > 1 || plan.Offload != OffloadMode.None ? DeepSpeedEstimators.Lines(m, plan, scenario) : [],
            Facts = [new("effective_batch", scenario.EffectiveBatch, "effective batch (micro-batch × accumulation × data-parallel GPUs)")],
            Notes =
            [
                $"{plan.Describe()}. States: {states.Description}.",
                .. scenario.Compile ? ["torch.compile is not modelled: the eager figure is an upper bound."] : Array.Empty<string>(),
                .. scenario.Packed ? ["Packed sequences are estimated as full sequences of seq tokens."] : Array.Empty<string>(),
                .. m.Experts is not null ? ["Mixture-of-experts training is estimated in closed form (each token's top-k experts in the activations), not replayed op by op."] : Array.Empty<string>(),
            ],
        };
    }

    /// <summary>
    /// The closed form's moments of a steady-state step (step 2 on: the optimizer states exist), as the replay draws them:
    /// live tensors plus memory outside the allocator, device-resident parts only. The peak counts every part at once, as
    /// the total does; gathered blocks, activations and the loss region are gone by the optimizer step.
    /// </summary>
    private static IReadOnlyList<TimelinePoint> Timeline(IReadOnlyList<MemoryComponent> components)
    {
        ByteSize Sum(params string[] names) => components
            .Where(c => c.Residence == Residence.Device && c.Counter != Counter.Reserved && names.Contains(c.Name))
            .Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);
        string[] loaded = ["weights", "lora_adapters", "master_weights", "cuda_context", "nccl_buffers"];
        string[] forward = [.. loaded, "optimizer_states", "gathered_parameters", "unsharded_stage", "cublas_workspaces", "activations"];
        return
        [
            new("load", Sum(loaded)),
            new("end of forward", Sum(forward)),
            new("start of backward", Sum([.. forward, "gradients", "logits_and_loss"])),
            new("optimizer step", Sum([.. loaded, "gradients", "optimizer_states", "cublas_workspaces"])),
        ];
    }

    /// <summary>Bytes per trainable parameter of each state, and what the optimizer updates.</summary>
    /// <param name="WeightFormat">The format the (sharded) parameters are kept in.</param>
    /// <param name="AdapterBytes">LoRA adapter weights per adapter parameter.</param>
    /// <param name="MasterBytes">An fp32 master copy apart from the parameters (DeepSpeed's optimizer partition).</param>
    /// <param name="GradientBytes">Gradients per trainable parameter.</param>
    /// <param name="UpdatedBytes">Bytes per element of what the optimizer steps: its states follow that type (the one table).</param>
    /// <param name="Description">The regime in words.</param>
    private sealed record StateBytes(WeightFormat WeightFormat, double AdapterBytes, double MasterBytes, double GradientBytes, double UpdatedBytes,
        string Description);

    /// <summary>
    /// The states of each regime. DeepSpeed ZeRO in mixed precision (engine deepspeed, or any ZeRO stage): 16-bit parameters
    /// and gradients with an fp32 master in the optimizer partition (ZeRO paper: 2 + 2 + 12 B). FSDP and torchtitan in mixed
    /// precision shard fp32 parameters (the master) and gather bf16 copies (FSDP2 <c>MixedPrecisionPolicy(param_dtype=bf16)</c>,
    /// gradients reduced into the fp32 shards): 4 + 4 + 8 B. Pure bf16 keeps parameters, gradients and states in bf16 (2 + 2 + 4 B
    /// for AdamW), fp32 everything in fp32. LoRA trains adapters only, which PEFT creates in fp32 (DeepSpeed casts them to
    /// 16-bit and keeps the fp32 master in its optimizer partition); the frozen base stays in its format.
    /// </summary>
    private static StateBytes StatesFor(Scenario scenario, bool lora)
    {
        Precision precision = scenario.EffectivePrecision;
        bool mixed = precision is Precision.MixedBf16 or Precision.MixedFp16 or Precision.Fp8;
        bool deepspeed = scenario.Engine == Engine.Deepspeed || scenario.Parallel.Zero > 0;
        WeightFormat format = scenario.Weights is WeightFormat w ? w
            : scenario.Mode == Mode.Qlora ? WeightFormats.Nf4
            : precision == Precision.Fp32 || (mixed && !deepspeed && !lora) ? WeightFormats.Fp32 : WeightFormats.Bf16;
        if (lora)
        {
            return deepspeed && mixed
                ? new StateBytes(format, 2, 4, 4, 4, $"frozen base in {format.Name}, 16-bit adapters with an fp32 master copy, fp32 gradients and optimizer states")
                : new StateBytes(format, 4, 0, 4, 4, $"frozen base in {format.Name}, fp32 adapters, gradients and optimizer states");
        }

        double parameter = format.Type.BitsPerElement / 8;
        return deepspeed && mixed
            ? new StateBytes(WeightFormats.Bf16, 0, 4, 2, 4, "16-bit parameters and gradients, an fp32 master copy and optimizer states over it (ZeRO 2 + 2 + 12 B with AdamW)")
            : new StateBytes(format, 0, 0, parameter, parameter, mixed
                ? "fp32 sharded parameters (the master copy; bf16 copies gathered for compute) and gradients, optimizer states over them"
                : $"{format.Name} parameters, gradients and optimizer states");
    }

    /// <summary>Optimizer state bytes per trainable parameter, from the one table, for states of what is updated (<paramref name="updatedBytes"/> per element).</summary>
    private static double OptimizerBytes(ModelArchitecture m, LoraAdapters? adapters, OptimizerKind kind, double updatedBytes)
    {
        IEnumerable<long[]> shapes = adapters?.TrainableShapes() ?? m.Tensors.Tensors.Select(t => t.Shape.ToArray());
        (long Elements, long Bytes, long[] Shape)[] parameters = [.. shapes.Select(shape =>
        {
            long n = shape.Aggregate(1L, (a, x) => checked(a * x));
            return (n, (long)(n * updatedBytes), shape);
        })];
        long count = parameters.Sum(p => p.Elements);
        return count == 0 ? 0 : OptimizerStates.Bytes(parameters, kind) / (double)count;
    }

    private static MemoryComponent States(ShardPlan plan, string name, ComponentKind kind, double parameters, double bytesPerParameter, int shards,
        string what, bool offloaded)
    {
        long bytes = (long)(parameters * bytesPerParameter / shards);
        return new MemoryComponent(name, kind, new ByteSize(bytes),
            $"{Text.N((long)parameters)} params{(plan.Tp > 1 || plan.Pp > 1 ? " on this GPU's slice" : "")} × {Text.Bytes(bytesPerParameter)} ({what}){(shards > 1 ? $" ÷ {shards} shards" : "")}{(offloaded ? ", offloaded to host memory" : "")}",
            offloaded ? Residence.Host : Residence.Device);
    }

    /// <summary>
    /// Activations of the local micro-batch: tokens = batch × seq ÷ cp; tensor parallelism with sequence parallelism divides
    /// them by tp; a 1F1B pipeline keeps up to pp micro-batches (torchtitan's default micro-batch is one sequence) of its
    /// layers in flight on the first stage (Korthikanti et al. 2022 §4.3). Full checkpointing keeps the block inputs plus
    /// one recomputed block; the loss region holds the fp32 log-softmax and two fp32 gradients of the logits, 12 B per
    /// token and vocabulary entry (÷ tp with a vocabulary-parallel loss).
    /// </summary>
    private static void AddActivations(List<MemoryComponent> components, ModelArchitecture m, Scenario scenario, ShardPlan plan,
        LoraAdapters? adapters, bool lora)
    {
        int seq = Math.Max(1, scenario.Seq / plan.Cp);
        int microBatch = plan.Pp > 1 ? 1 : scenario.Batch;
        int inFlight = plan.Pp > 1 ? Math.Min(plan.Pp, scenario.Batch) : 1;
        long tokens = (long)microBatch * seq;
        int layers = (m.LayerCount + plan.Pp - 1) / plan.Pp;
        SavedActivations.Regime regime = lora ? SavedActivations.Regime.LoraHalfAdapters : SavedActivations.Regime.Half;
        (long perToken, string formula) = SavedActivations.PerToken(m, regime, adapters, scenario.Attention, seq);
        long tp = plan.Tp;
        long saved;
        string how;
        if (scenario.GradientCheckpointing == Checkpointing.Selective && scenario.Engine == Engine.Torchtitan)
        {
            long kept = SelectiveOpKept(m);
            saved = (layers * tokens * kept * inFlight + tokens * perToken) / tp;
            how = $"op-level selective checkpointing: {layers} layers × {inFlight} micro-batches × {Text.N(tokens)} tokens × {Text.N(kept)} B kept (half the matmul outputs, attention output and log-sum-exp, block input){TpText(plan)} + one recomputed block {Text.N(tokens)} × ({formula})";
        }
        else if (scenario.GradientCheckpointing is Checkpointing.Full or Checkpointing.Offload)
        {
            long inputs = layers * tokens * m.HiddenSize * 2L * inFlight / tp;
            saved = inputs + tokens * perToken / tp;
            how = $"block inputs {layers} layers × {inFlight} micro-batches × {Text.N(tokens)} tokens × {m.HiddenSize} × 2 B{TpText(plan)} + one recomputed block {Text.N(tokens)} × ({formula})";
        }
        else
        {
            saved = layers * tokens * perToken * inFlight / tp;
            how = $"{layers} layers × {inFlight} micro-batches × {Text.N(tokens)} tokens × ({formula}){TpText(plan)}";
        }

        components.Add(new MemoryComponent("activations", ComponentKind.Activations, new ByteSize(saved), how,
            scenario.GradientCheckpointing == Checkpointing.Offload ? Residence.Host : Residence.Device));
        long loss = Loss(m, scenario, tokens, tp, out string lossFormula);
        components.Add(new MemoryComponent("logits_and_loss", ComponentKind.Logits, new ByteSize(loss), lossFormula));
    }

    private static long Loss(ModelArchitecture m, Scenario scenario, long tokens, long tp, out string formula)
    {
        long vocab = m.VocabularySize;
        if (scenario.CrossEntropy is CrossEntropyKind.Chunked or CrossEntropyKind.Fused)
        {
            // Chunked or fused cross-entropy never holds the full fp32 T × V: one bf16 logits copy and a chunk of fp32 work.
            formula = $"{Text.N(tokens)} tokens × {Text.N(vocab)} vocab × 2 B (bf16 logits; fp32 work per chunk){(tp > 1 ? $" ÷ {tp}" : "")}";
            return tokens * vocab * 2 / tp;
        }

        formula = $"{SavedActivations.LossRegionBytesPerLogit} B × {Text.N(tokens)} tokens × {Text.N(vocab)} vocab (fp32 log-softmax + two fp32 logit gradients){(tp > 1 ? $" ÷ {tp}" : "")}";
        return SavedActivations.LossRegionBytesPerLogit * tokens * vocab / tp;
    }

    /// <summary>
    /// torchtitan's op-level selective checkpointing (<c>selective_ac_option = "op"</c>) keeps the outputs of every other
    /// matmul and of the attention kernel and recomputes the rest: per token per block ½ × (q, k, v, o, gate, up, down
    /// outputs = 2·(3h + 2·h_kv + 2I)) + attention output 2·a·d + fp32 log-sum-exp 4a + the block input 2h, in bf16.
    /// </summary>
    private static long SelectiveOpKept(ModelArchitecture m)
    {
        long h = m.HiddenSize;
        long ffn = SavedActivations.FeedForwardWidth(m);
        long matmuls = 2 * (3 * h + 2 * m.KeyValueWidth + 2 * ffn);
        return matmuls / 2 + 2L * m.AttentionHeadCount * m.HeadDimension + 4L * m.AttentionHeadCount + 2 * h;
    }

    /// <summary>Bytes of the most loaded pipeline stage: its blocks plus the larger of the embedding and the head.</summary>
    private static long StageBytes(ModelArchitecture m, long modelBytes, int pp)
    {
        if (pp <= 1)
        {
            return modelBytes;
        }

        long total = m.ParameterCount;
        long ends = Math.Max(m.Tensors.CountOf(TensorRole.TokenEmbedding), m.Tensors.CountOf(TensorRole.OutputHead));
        long stage = (m.LayerCount + pp - 1) / pp * BlockParameters(m) + ends;
        return (long)(modelBytes * (stage / (double)total));
    }

    /// <summary>Parameters of one transformer block (the FSDP wrapping unit).</summary>
    public static long BlockParameters(ModelArchitecture m) => m.Tensors.CountWhere(t => t.Layer == 0);

    private static string Split(int tp, int shards, int pp) =>
        (pp > 1 ? $", the first stage's share of {pp} stages" : "") + (tp > 1 ? $" ÷ {tp} (tensor parallel)" : "") + (shards > 1 ? $" ÷ {shards} shards" : "");

    private static string TpText(ShardPlan plan) => plan.Tp > 1 ? $" ÷ {plan.Tp} (tensor and sequence parallel)" : "";
}
