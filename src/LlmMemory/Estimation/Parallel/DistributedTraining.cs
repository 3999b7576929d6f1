using LlmMemory.Estimation.Replay;
using LlmMemory.Estimation.Training;
using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
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
        if (scenario.Parallel.Schedule == PipelineSchedule.Interleaved && scenario.Engine != Engine.Torchtitan)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.schedule"), "parallel.schedule",
                "is interleaved-1f1b, which is modelled for torchtitan's pipeline (its micro-batch count and stages per rank) only; use engine torchtitan or 1f1b.");
        }

        if (scenario.Lora is { Dropout: > 0 })
        {
            throw new ModelFormatException(scenario.Given.OriginOf("lora.dropout"), "lora.dropout",
                "is above 0, but the adapters' dropout copies and masks are replayed on one GPU; the sharded closed form does not count them (give 0 or leave it out).");
        }

        ShardPlan plan = ShardPlan.For(scenario);
        bool lora = scenario.IsAdapterTraining;
        LoraAdapters? adapters = scenario.EffectiveLora is LoraSettings settings ? LoraAdapters.For(m, settings) : null;
        long trainable = adapters?.TrainableParameters ?? m.ParameterCount;
        StateBytes states = StatesFor(scenario, lora);
        WeightLayout layout = WeightStorage.Layout(m, states.WeightFormat, DataTypes.BF16);

        long stageShare(long bytes) => StageBytes(m, bytes, plan.Pp);
        bool paramsOffloaded = plan.Offload == OffloadMode.OptimizerAndParams;
        Formula OnThisGpu(Formula whole, int shards)
        {
            Formula share = plan.Pp > 1 ? whole * Formula.Count(StageParameters(m, plan.Pp), "params of the first stage") / Formula.Count(m.ParameterCount, "params") : whole;
            share = plan.Tp > 1 ? share / Formula.Count(plan.Tp, "tensor-parallel GPUs") : share;
            return shards > 1 ? share / Formula.Count(shards, "shards") : share;
        }

        // bitsandbytes keeps a 4-bit weight's absmax, nested absmax and offset in a QuantState object held by the module, not
        // in the Params4bit parameter (bitsandbytes nn/modules.py fix_4bit_weight_quant_state_from_module: "the quant state got
        // lost when the parameter got converted. This happens for example for fsdp", so Linear4bit restores it from
        // module.quant_state), and FSDP and ZeRO-3 shard parameters only (FSDP1's FlatParamHandle flattens the
        // module's parameters, FSDP2 fully_shard its nn.Parameters, DeepSpeed's zero.Init partitions nn.Parameters): every rank
        // keeps the whole quant state and gathers only the codes. Under parameter offload where the quant state lives is not
        // modelled (it is taken to move with the parameters). torchtune's NF4 is torchao's NF4Tensor, whose scalers are inner
        // tensors of the parameter that FSDP2 splits with it (torchao/dtypes/nf4tensor.py _INNER_TENSOR_NAMES_FOR_SHARDING =
        // quantized_scalers, quantization_factor, quantized_data; nf4_split chunks each): no whole quant state there.
        long quantState = plan.ParameterShards > 1 && !paramsOffloaded && scenario.Engine != Engine.Torchtune
            ? layout.Tensors.Sum(t => t.QuantStateBytes) : 0;
        Formula wholeQuantState = Formula.Size(new ByteSize(quantState), "of bitsandbytes quant state");
        MemoryComponent weights = MemoryComponent.Of("weights", ComponentKind.Weights,
            OnThisGpu(quantState > 0 ? layout.Formula() - wholeQuantState : layout.Formula(), plan.ParameterShards)
                .Adjusted(stageShare(layout.Bytes - quantState) / (plan.Tp * (long)plan.ParameterShards), "rounded down"),
            residence: paramsOffloaded ? Residence.Host : Residence.Device);
        MemoryComponent? quantStates = quantState > 0
            ? MemoryComponent.Of("quant_state", ComponentKind.Weights, OnThisGpu(wholeQuantState, 1).Adjusted(stageShare(quantState) / plan.Tp, "rounded down"),
                "absmax of every 4-bit weight, kept whole on each rank: not a parameter, so not sharded")
            : null;
        var components = new List<MemoryComponent?> { weights, quantStates }.OfType<MemoryComponent>().ToList();
        Formula trainableParams = Formula.Count(trainable, lora ? "adapter params" : "params");
        MemoryComponent State(string name, ComponentKind kind, double bytesPerParameter, string what, int shards, bool offloaded) =>
            MemoryComponent.Of(name, kind, OnThisGpu(trainableParams * Formula.Bytes(bytesPerParameter, what), shards),
                offloaded ? "offloaded to host memory" : null, offloaded ? Residence.Host : Residence.Device);

        MemoryComponent? adapterWeights = states.AdapterBytes > 0
            ? State("lora_adapters", ComponentKind.Adapters, states.AdapterBytes, "adapter weights", plan.ParameterShards, paramsOffloaded) : null;
        MemoryComponent? master = states.MasterBytes > 0
            ? State("master_weights", ComponentKind.MasterWeights, states.MasterBytes, "fp32 master copy", plan.OptimizerShards, plan.Offload != OffloadMode.None) : null;
        MemoryComponent gradients = State("gradients", ComponentKind.Gradients, states.GradientBytes, "gradients", plan.GradientShards,
            plan.Offload != OffloadMode.None && scenario.Engine == Engine.Deepspeed);
        OptimizerKind optimizer = scenario.Optimizer ?? OptimizerKind.AdamW;
        MemoryComponent optimizerStates = State("optimizer_states", ComponentKind.OptimizerStates, OptimizerBytes(m, adapters, optimizer, states.UpdatedBytes),
            $"{Names.Of(optimizer)} states", plan.OptimizerShards, plan.Offload != OffloadMode.None);
        components.AddRange(new[] { adapterWeights, master, gradients, optimizerStates }.OfType<MemoryComponent>());

        // DeepSpeed's gathered parameters and gradient bucket are in its 16-bit type (fp32 in an fp32 run).
        int zeroElementBytes = scenario.EffectivePrecision == Precision.Fp32 ? 4 : 2;
        Formula zeroElement = Formula.Bytes(zeroElementBytes, zeroElementBytes == 2 ? "16-bit" : "fp32");
        MemoryComponent? gathered = null;
        if (plan.ParameterShards > 1 || paramsOffloaded)
        {
            // FSDP/ZeRO-3 all-gather the unit being computed and prefetch the next: two blocks, cast to bf16 when the
            // shards are full precision and the run is mixed (fp32 in an fp32 run: no 16-bit copy exists), in their stored
            // bytes when quantized (FSDP gathers the NF4 storage as is).
            long block = BlockParameters(m);
            long stored = layout.Tensors.Where(t => t.Tensor.Layer == 0).Sum(t => t.Bytes - (quantState > 0 ? t.QuantStateBytes : 0));
            bool quantized = states.WeightFormat.Type.IsQuantized;
            Formula one = quantized ? Formula.Size(new ByteSize(stored), $"of {states.WeightFormat.Name} storage") : Formula.Count(block, "params") * zeroElement;
            Formula two = Formula.Count(2, "blocks") * one;
            gathered = MemoryComponent.Of("gathered_parameters", ComponentKind.Weights,
                (plan.Tp > 1 ? two / Formula.Count(plan.Tp, "tensor-parallel GPUs") : two).Adjusted(2 * (quantized ? stored : block * zeroElementBytes) / plan.Tp, "rounded down"),
                "the block being computed and the prefetched next one");
            components.Add(gathered);
        }

        MemoryComponent? head = null;
        if (scenario.Parallel.Zero == 3 && plan.Pp == 1)
        {
            // DeepSpeed ZeRO-3 all-gathers a module's partitioned parameters before its forward and again before its backward
            // (parameter_offload.py pre_sub_module_backward_function -> fetch_sub_module), and after the forward releases
            // them only if their next use is farther than stage3_max_reuse_distance (1e9 elements, ZeroSettings) away
            // (partitioned_param_coordinator.py release_sub_module; the head's backward follows its forward at once). So
            // the output head's weight (the embedding's when tied) is whole from its forward to its backward, beside the
            // blocks above.
            long headParameters = m.Tensors.CountOf(TensorRole.OutputHead) is > 0 and long untied ? untied : m.Tensors.CountOf(TensorRole.TokenEmbedding);
            Formula whole = Formula.Count(headParameters, "head params") * zeroElement;
            head = MemoryComponent.Of("gathered_head", ComponentKind.Weights,
                (plan.Tp > 1 ? whole / Formula.Count(plan.Tp, "tensor-parallel GPUs") : whole).Adjusted(headParameters * zeroElementBytes / plan.Tp, "rounded down"),
                "the output head, gathered from its forward through its backward");
            components.Add(head);
        }

        MemoryComponent? root = null;
        if (plan.ParameterShards > 1 && scenario.Engine == Engine.Transformers && scenario.Parallel.Zero == 0 && plan.Pp == 1)
        {
            // accelerate's FSDP (TRANSFORMER_BASED_WRAP: each decoder layer of _no_split_modules is a unit, PEFT's
            // fsdp_auto_wrap_policy adds the adapters) leaves the embeddings, final norm and untied head in the root unit.
            // torchtune and torchtitan wrap those as units of their own in some versions and configs (custom_sharded_layers,
            // torchtitan's later apply_fsdp), which is not modelled: they keep the blocks only.
            // The root FSDP unit is not resharded after forward:
            // FSDP1 torch/distributed/fsdp/_runtime_utils.py _post_forward_reshard frees the unsharded flat parameter only
            // `if not state._is_root`, and FSDP2 _fsdp_state.py _lazy_init sets the root group's post_forward_mesh_info = None
            // ("the parameters would be freed and all-gathered immediately"). So it stays gathered from the forward through
            // backward, in the same bytes per element as the blocks (bf16, or its stored bytes in a quantized model).
            StoredTensor[] ends = [.. layout.Tensors.Where(t => t.Tensor.Layer is null)];
            Formula whole = states.WeightFormat.Type.IsQuantized
                ? Formula.Size(new ByteSize(ends.Sum(t => t.Bytes)), "of embeddings, final norm and head as stored")
                : Formula.Count(ends.Sum(t => t.Tensor.Elements), "params of embeddings, final norm and head") * Formula.Bytes(2);
            root = MemoryComponent.Of("gathered_root_unit", ComponentKind.Weights,
                (plan.Tp > 1 ? whole / Formula.Count(plan.Tp, "tensor-parallel GPUs") : whole).Adjusted((long)whole.Value / plan.Tp, "rounded down"),
                "the root FSDP unit, kept gathered from forward to the end of backward");
            components.Add(root);
        }

        MemoryComponent? unsharded = null;
        if (plan.Pp > 1 && scenario.Engine == Engine.Torchtitan && !lora)
        {
            // torchtitan keeps a pipeline stage unsharded between micro-batches (reshard_after_forward off): bf16 parameters
            // and fp32 gradients of the whole stage until the last micro-batch reduce-scatters them.
            long stageParams = stageShare(m.ParameterCount) / plan.Tp;
            unsharded = MemoryComponent.Of("unsharded_stage", ComponentKind.Gradients,
                Formula.Count(stageParams, "stage params") * Formula.Bytes(2 + 4, "bf16 parameters and fp32 gradients"), "kept across micro-batches");
            components.Add(unsharded);
        }

        MemoryComponent? bucket = null;
        if (scenario.Parallel.Zero > 0)
        {
            // DeepSpeed's contiguous gradient bucket (contiguous_gradients defaults to True): ZeRO-3 allocates it when the
            // optimizer is set up (stage3.py _setup_for_real_optimizer: `self.__ipg_bucket_flat_buffer = torch.empty(
            // self.reduce_bucket_size, dtype=self.dtype, ...)`), ZeRO-1/2 at each backward (stage_1_and_2.py backward: ipg_buffer,
            // one without overlap_comm, their default), however few parameters train. reduce_bucket_size is DeepSpeedZeroConfig's
            // default (accelerate's DeepSpeedPlugin leaves it unset).
            bucket = MemoryComponent.Of("zero_gradient_bucket", ComponentKind.Communication,
                Formula.Count(ZeroSettings.ReduceBucketSize, "reduce_bucket_size elements") * zeroElement,
                "DeepSpeed's contiguous gradient bucket");
            components.Add(bucket);
        }

        (MemoryComponent activations, MemoryComponent loss) = Activations(m, scenario, plan, adapters, lora);
        components.Add(activations);
        components.Add(loss);
        MemoryComponent workspaces = MemoryComponent.Of("cublas_workspaces", ComponentKind.Workspace,
            Formula.Count(2, "GEMM threads (forward and autograd)") * Formula.Size(Constants.CublasWorkspace(gpu)));
        components.Add(workspaces);
        long transient = activations.Bytes.Bytes + loss.Bytes.Bytes;
        components.Add(MemoryComponent.Of("allocator_cache", ComponentKind.AllocatorReserve,
            (Formula.Count(Constants.DistributedAllocatorShare) * Formula.Size(new ByteSize(transient), "of activation memory"))
                .Adjusted((long)(transient * Constants.DistributedAllocatorShare), "rounded down"),
            "cached by the allocator", counter: Counter.Reserved));
        int communicators = new[] { plan.Dp * plan.Cp, plan.Tp, plan.Pp }.Count(d => d > 1);
        MemoryComponent? nccl = communicators > 0
            ? MemoryComponent.Of("nccl_buffers", ComponentKind.Communication,
                Formula.Count(communicators, communicators == 1 ? "communicator" : "communicators") * Formula.Size(Constants.NcclPerCommunicator), counter: Counter.Device)
            : null;
        MemoryComponent context = MemoryComponent.Of("cuda_context", ComponentKind.Runtime,
            Formula.Size(Constants.CudaContext(gpu, training: true, flashAttention: true)).After("CUDA context, kernels and library handles:"), counter: Counter.Device);
        components.AddRange(new[] { nccl, context }.OfType<MemoryComponent>());

        // The moments of a steady-state step (step 2 on: the optimizer states exist), as the replay draws them: live
        // tensors and memory outside the allocator, device-resident parts only; gathered blocks, activations and the loss
        // region are gone by the optimizer step.
        // ZeRO-3's bucket exists from the optimizer's setup on, ZeRO-1/2's during backward only.
        MemoryComponent? setupBucket = scenario.Parallel.Zero == 3 ? bucket : null;
        MemoryComponent?[] loaded = [weights, quantStates, adapterWeights, master, context, nccl];
        MemoryComponent?[] forward = [.. loaded, optimizerStates, setupBucket, gathered, head, root, unsharded, workspaces, activations];
        IReadOnlyList<TimelinePoint> timeline =
        [
            new("load", Resident(loaded)),
            new("end of forward", Resident(forward)),
            new("start of backward", Resident([.. forward, setupBucket is null ? bucket : null, gradients, loss])),
            new("optimizer step", Resident([.. loaded, gradients, optimizerStates, setupBucket, workspaces])),
        ];

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(m.ParameterCount, trainable, m.ActiveParameterCount),
            Components = components,
            PeakPhase = "start of backward (all saved activations and the loss region live)",
            Timeline = timeline,
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

    /// <summary>Device memory of the parts present at a moment.</summary>
    private static ByteSize Resident(IEnumerable<MemoryComponent?> parts) => parts.OfType<MemoryComponent>()
        .Where(c => c.Residence == Residence.Device)
        .Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);

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

    /// <summary>
    /// Activations of the local micro-batch: tokens = batch × seq ÷ cp; tensor parallelism with sequence parallelism divides
    /// them by tp; a 1F1B pipeline keeps up to pp micro-batches of its layers in flight on the first stage (Korthikanti et
    /// al. 2022 §4.3), an interleaved one the stage forwards of <see cref="PipelineFlight"/>. torchtitan splits the local
    /// batch into as many micro-batches as there are stages, so a 1F1B micro-batch is batch ÷ pp sequences; other engines
    /// are taken with one sequence per micro-batch (a field for their micro-batch count is missing). Full checkpointing keeps the block inputs plus
    /// one recomputed block; the loss region holds the fp32 log-softmax and two fp32 gradients of the logits, 12 B per
    /// token and vocabulary entry (÷ tp with a vocabulary-parallel loss). torchtitan's sequence parallelism all-gathers the
    /// input of the attention and of the feed-forward to the full sequence before their column-parallel linears
    /// (torchtitan models/llama parallelize_llama: <c>PrepareModuleInput(..., desired_input_layouts=(Replicate(), ...))</c>
    /// on <c>attention</c> and <c>feed_forward</c>, <c>ColwiseParallel</c> on wq, wk, wv, w1 and w3), and the matmul saves
    /// that gathered input for its backward (<c>aten.mm</c> saves its operands; Megatron instead keeps the shard and gathers
    /// again, Korthikanti et al. 2022 §4.2.2): those two tensors, 2 × 2h bytes per token, are kept whole, not ÷ tp, in every
    /// block whose activations are saved (the recomputed one under checkpointing).
    /// </summary>
    private static (MemoryComponent Activations, MemoryComponent Loss) Activations(ModelArchitecture m, Scenario scenario, ShardPlan plan,
        LoraAdapters? adapters, bool lora)
    {
        int seq = Math.Max(1, scenario.Seq / plan.Cp);
        (int microBatches, int inFlight, int stages) = PipelineFlight(scenario, plan.Pp);
        int microBatch = plan.Pp == 1 ? scenario.Batch
            : scenario.Engine == Engine.Torchtitan ? (scenario.Batch + microBatches - 1) / microBatches : 1;
        long tokens = (long)microBatch * seq;
        int layers = (m.LayerCount + stages - 1) / stages;
        // An fp32 run saves fp32 activations: Korthikanti's 16-bit count doubled (SavedActivations' Fp32 regime), LoRA or not
        // where the family's closed form is that count (non-Llama blocks).
        bool fp32 = scenario.EffectivePrecision == Precision.Fp32 && (!lora || m.Family != ModelFamily.LlamaLike);
        SavedActivations.Regime regime = fp32 ? SavedActivations.Regime.Fp32 : lora ? SavedActivations.Regime.LoraHalfAdapters : SavedActivations.Regime.Half;
        Formula perToken = SavedActivations.PerToken(m, regime, adapters, scenario.Attention, seq);
        long perTokenBytes = (long)Math.Round(perToken.Value);
        long tp = plan.Tp;
        bool gatheredInputs = tp > 1 && scenario.Engine == Engine.Torchtitan && m.Family == ModelFamily.LlamaLike;
        long gatheredExtra = gatheredInputs ? tokens * 4L * m.HiddenSize * (tp - 1) / tp : 0;
        Formula gathered = (Formula.Count(tokens, "tokens") * Formula.Bytes(4L * m.HiddenSize, "attention and MLP inputs, 2 × 2h") * Formula.Count(tp - 1)
            / Formula.Count(tp, "tensor-parallel GPUs")).After("sequence-parallel inputs all-gathered for the linears, beyond their shards:");
        string held = stages > plan.Pp ? "stage forwards of a micro-batch" : inFlight == 1 ? "micro-batch" : "micro-batches";
        Formula stack = Formula.Count(layers, "layers") * Formula.Count(inFlight, held) * Formula.Count(tokens, "tokens");
        Formula recomputed = (Formula.Count(tokens, "tokens") * perToken.InBytes()).After("one recomputed block");
        Formula PerTp(Formula f) => tp > 1 ? f / Formula.Count(tp, "tensor-parallel GPUs (sequence parallel)") : f;
        long saved;
        Formula formula;
        string? remark = null;
        if (scenario.GradientCheckpointing == Checkpointing.Selective && scenario.Engine == Engine.Torchtitan)
        {
            long kept = SelectiveOpKept(m);
            saved = (((layers * tokens * kept * inFlight) + (tokens * perTokenBytes)) / tp) + gatheredExtra;
            formula = PerTp(stack * Formula.Bytes(kept) + recomputed);
            formula = gatheredInputs ? formula + gathered : formula;
            remark = "op-level selective checkpointing keeps half the matmul outputs, the attention output and log-sum-exp, and the block input";
        }
        else if (scenario.GradientCheckpointing is Checkpointing.Full or Checkpointing.Offload)
        {
            saved = (layers * tokens * m.HiddenSize * 2L * inFlight / tp) + (tokens * perTokenBytes / tp) + gatheredExtra;
            formula = PerTp((stack * Formula.Count(m.HiddenSize) * Formula.Bytes(2)).After("block inputs") + recomputed);
            formula = gatheredInputs ? formula + gathered : formula;
        }
        else
        {
            saved = (layers * tokens * perTokenBytes * inFlight / tp) + (layers * inFlight * gatheredExtra);
            formula = PerTp(stack * perToken.InBytes());
            formula = gatheredInputs ? formula + (Formula.Count(layers, "layers") * Formula.Count(inFlight, held) * gathered) : formula;
        }

        MemoryComponent activations = MemoryComponent.Of("activations", ComponentKind.Activations, formula.Adjusted(saved, "rounded down"), remark,
            scenario.GradientCheckpointing == Checkpointing.Offload ? Residence.Host : Residence.Device);
        return (activations, Loss(m, scenario, tokens, tp));
    }

    /// <summary>torchtitan's interleaved schedules put this many stages on each rank (<c>generate_split_points</c>:
    /// <c>num_stages_per_rank = 2</c> for a <c>PipelineScheduleMulti</c> when no split points are given).</summary>
    private const int InterleavedStagesPerRank = 2;

    /// <summary>
    /// The first rank's pipeline: micro-batches per step, stage forwards whose activations are held at once, and stages in
    /// all. torchtitan's <c>build_pipeline_schedule</c> sets <c>n_microbatches</c> to the number of stages, pp × stages per
    /// rank (<c>num_total_stages</c>), when <c>pipeline_parallel_microbatches</c> is unset; other engines are taken with one
    /// sequence per micro-batch, up to pp of them. 1F1B holds pp micro-batches on the first rank (pp − 1 warm-up forwards and
    /// the forward of the first 1F1B step). PyTorch's <c>ScheduleInterleaved1F1B._calculate_single_rank_operations</c>
    /// runs <c>warmup_ops = (n_local_stages − 1) · pp + 2 · (pp − 1 − rank)</c> forwards, capped at n_microbatches ×
    /// n_local_stages, then each 1F1B step runs a forward before its backward: rank 0 holds one stage-forward more. Each
    /// stage-forward is taken as ⌈layers ÷ stages⌉ layers of one micro-batch.
    /// </summary>
    private static (int MicroBatches, int InFlight, int Stages) PipelineFlight(Scenario scenario, int pp)
    {
        if (pp == 1)
        {
            return (1, 1, 1);
        }

        int perRank = scenario.Parallel.Schedule == PipelineSchedule.Interleaved ? InterleavedStagesPerRank : 1;
        int stages = pp * perRank;
        int microBatches = Math.Min(scenario.Engine == Engine.Torchtitan ? stages : pp, scenario.Batch);
        int forwards = microBatches * perRank;
        int inFlight = perRank == 1 ? microBatches : Math.Min(((perRank - 1) * pp) + (2 * (pp - 1)) + 1, forwards);
        return (microBatches, inFlight, stages);
    }

    private static MemoryComponent Loss(ModelArchitecture m, Scenario scenario, long tokens, long tp)
    {
        long vocab = m.VocabularySize;
        Formula logits = Formula.Count(tokens, "tokens") * Formula.Count(vocab, "vocab");
        // Neither holds the full fp32 T × V. Chunked cross-entropy: one bf16 logits copy and a chunk of fp32 work. A fused
        // (compiled) cross-entropy over the whole output keeps the fp32 upcast and log-softmax inside the kernel: it saves
        // the bf16 logits (and a per-row log-sum-exp) and its backward writes a bf16 gradient of their shape, as the
        // replay's Blocks.FusedCrossEntropy does.
        (long perLogit, string what) = scenario.CrossEntropy switch
        {
            CrossEntropyKind.Chunked => (2L, "bf16 logits, fp32 work per chunk"),
            CrossEntropyKind.Fused => (4L, "bf16 logits saved by the fused kernel and their bf16 gradient"),
            _ => ((long)SavedActivations.LossRegionBytesPerLogit, "fp32 log-softmax and two fp32 logit gradients"),
        };
        Formula bytes = logits * Formula.Bytes(perLogit, what);
        return MemoryComponent.Of("logits_and_loss", ComponentKind.Logits,
            (tp > 1 ? bytes / Formula.Count(tp, "tensor-parallel GPUs") : bytes).Adjusted(tokens * vocab * perLogit / tp, "rounded down"));
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

    /// <summary>Bytes of the most loaded pipeline stage: its share of the parameters (<see cref="StageParameters"/>).</summary>
    private static long StageBytes(ModelArchitecture m, long modelBytes, int pp) =>
        pp <= 1 ? modelBytes : (long)(modelBytes * (StageParameters(m, pp) / (double)m.ParameterCount));

    /// <summary>Parameters of the most loaded pipeline stage: its blocks plus the larger of the embedding and the head.</summary>
    private static long StageParameters(ModelArchitecture m, int pp)
    {
        long ends = Math.Max(m.Tensors.CountOf(TensorRole.TokenEmbedding), m.Tensors.CountOf(TensorRole.OutputHead));
        return ((m.LayerCount + pp - 1) / pp * BlockParameters(m)) + ends;
    }

    /// <summary>Parameters of one transformer block (the FSDP wrapping unit).</summary>
    public static long BlockParameters(ModelArchitecture m) => m.Tensors.CountWhere(t => t.Layer == 0);
}
