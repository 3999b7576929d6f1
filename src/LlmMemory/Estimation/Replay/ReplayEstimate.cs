using LlmMemory.Estimation.Training;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>
/// Runs the replay of a scenario and turns what was live at its peak into the estimate's components, in the essay's order,
/// each with the closed form of research/torch SPEC §2–§6 as its formula.
/// </summary>
internal static class ReplayEstimate
{
    /// <summary>Replays already rendered (a replay costs milliseconds; see <see cref="EstimateCache"/>).</summary>
    private static readonly EstimateCache Runs = new();

    public static MemoryEstimate Build(ResolvedModel resolved, Scenario scenario, Gpu? gpu, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        return Runs.GetOrAdd(resolved, scenario, () =>
        {
            ReplayPlan plan = ReplayPlan.For(resolved.Architecture!, scenario, gpu);
            string? spread = null;
            if (plan.Devices is { } map)
            {
                (plan, spread) = MostLoaded(resolved.Architecture!, plan, map, cancellation);
            }

            (ReplayResult result, string? outOfMemory) = Replay(resolved.Architecture!, plan, cancellation);
            MemoryEstimate estimate = Finish(resolved, scenario, gpu, plan, result, outOfMemory, cancellation);
            return spread is null ? estimate : estimate with { Notes = [spread, .. estimate.Notes] };
        });
    }

    /// <summary>
    /// Whether the replay under the device limit runs out of memory, answered by that replay alone: what a search needs
    /// where only "does it fit" matters (<see cref="Engines.MemoryEstimator.Fits"/>). <see cref="Build"/> would replay such
    /// a run a second time without the limit, for figures that cannot fit either. A run that does not run out is kept as
    /// <see cref="Build"/> would have made it, so the estimate that follows costs no replay.
    /// </summary>
    /// <remarks>
    /// The limit only acts when a new segment would take the reserved bytes past it (<see cref="CachingAllocator"/>), so a
    /// run whose unlimited replay never reserves more than the limit replays identically under it. One that runs out
    /// under the limit therefore reserves more than the limit (device budget − CUDA context) without it, and its estimate,
    /// whose device total holds the peak reserved plus the CUDA context, does not fit: the answer is
    /// <c>Build(...).Fits == false</c> without its second replay (pinned over the catalog by <c>FitsOnlyTests</c>). Runs of
    /// several replays (a model spread by <c>device_map="auto"</c>) and runs without a limit are left to <see cref="Build"/>.
    /// </remarks>
    public static bool RunsOutOfMemory(ResolvedModel resolved, Scenario scenario, Gpu? gpu, CancellationToken cancellation)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        if (Runs.Contains(resolved, scenario))
        {
            return false;
        }

        ReplayPlan plan = ReplayPlan.For(resolved.Architecture!, scenario, gpu);
        if (plan.Devices is not null || plan.Options.Capacity is null)
        {
            return false;
        }

        ReplayResult result = Replayer.Run(resolved.Architecture!, plan.Options, cancellation);
        if (result.OutOfMemory is not null)
        {
            return true;
        }

        Runs.GetOrAdd(resolved, scenario, () => Finish(resolved, scenario, gpu, plan, result, null, cancellation));
        return false;
    }

    /// <summary>The estimate of a replayed run: the allocator note where the scenario sets one, then the components.</summary>
    private static MemoryEstimate Finish(ResolvedModel resolved, Scenario scenario, Gpu? gpu, ReplayPlan plan, ReplayResult result, string? outOfMemory,
        CancellationToken cancellation)
    {
        string? allocator = AllocatorNote(resolved.Architecture!, scenario, plan, result, cancellation);
        return Render(resolved, scenario, gpu, plan, result, outOfMemory, allocator);
    }

    /// <summary>The replay, again without the device limit when it runs out of memory (to say what the run would need).</summary>
    private static (ReplayResult, string?) Replay(ModelArchitecture model, ReplayPlan plan, CancellationToken cancellation)
    {
        ReplayResult result = Replayer.Run(model, plan.Options, cancellation);
        return result.OutOfMemory is string oom ? (Replayer.Run(model, plan.Options with { Capacity = null }, cancellation), oom) : (result, null);
    }

    /// <summary>
    /// A model spread over GPUs by <c>device_map="auto"</c>: the forward replayed once per GPU, each counting what its own
    /// allocator holds; the plan of the GPU with the highest peak reserved (the first of equals), and a note of every GPU.
    /// </summary>
    private static (ReplayPlan, string) MostLoaded(ModelArchitecture model, ReplayPlan plan, DeviceMap map, CancellationToken cancellation)
    {
        ReplayPlan[] plans = [.. Enumerable.Range(0, map.Gpus).Select(d => plan with { Options = plan.Options with { Placement = new Placement(map, d) } })];
        ReplayResult[] results = [.. plans.Select(p => Replay(model, p, cancellation).Item1)];
        int most = Enumerable.Range(0, map.Gpus).MaxBy(d => results[d].PeakReserved);
        string gpus = string.Join("; ", Enumerable.Range(0, map.Gpus).Select(d =>
            $"GPU {d}: {map.Describe(d)}, peak reserved {new ByteSize(results[d].PeakReserved)}"));
        string caps = map.MaxMemory[^1] == DeviceMap.Unbounded
            ? $"max_memory {new ByteSize(map.MaxMemory[0])} for every GPU but the last, from the balance alone: no GPU is named"
            : $"max_memory {string.Join(", ", map.MaxMemory.Select(m => new ByteSize(m).ToString()))}";
        return (plans[most], $"device_map=\"auto\" over {map.Gpus} GPUs, as transformers' get_balanced_memory and accelerate's infer_auto_device_map place the modules ({caps}): {gpus}. "
            + "Each module runs on its GPU; accelerate's hooks copy the hidden states to the next GPU, cos and sin and the mask to each layer's GPU, and the outputs back to GPU " + map.Embedding + ".");
    }

    /// <summary>
    /// What the scenario's <c>alloc_conf</c> changes: the same run replayed on the default allocator, peak reserved against
    /// peak reserved; null without one.
    /// </summary>
    private static string? AllocatorNote(ModelArchitecture model, Scenario scenario, ReplayPlan plan, ReplayResult result, CancellationToken cancellation)
    {
        if (scenario.AllocConf is not string conf)
        {
            return null;
        }

        AllocatorSettings settings = plan.Options.Allocator;
        long with = result.PeakReserved;
        long without = Replayer.Run(model, plan.Options with { Allocator = AllocatorSettings.Default, Capacity = null }, cancellation).PeakReserved;
        string change = with == without ? "the same as"
            : with < without ? $"{new ByteSize(without - with)} less than" : $"{new ByteSize(with - without)} more than";
        string gc = settings.GarbageCollectionThreshold > 0
            ? " garbage_collection_threshold acts only under torch.cuda.set_per_process_memory_fraction(), which the run does not call: it changes nothing, in PyTorch as here."
            : "";
        return $"alloc_conf \"{conf}\": peak reserved {new ByteSize(with)} instead of {new ByteSize(without)} with PyTorch's default allocator ({change} the default).{gc}";
    }

    private static MemoryEstimate Render(ResolvedModel resolved, Scenario scenario, Gpu? gpu, ReplayPlan plan, ReplayResult result, string? outOfMemory,
        string? allocator)
    {
        ModelArchitecture model = resolved.Architecture!;
        var notes = new List<string>(plan.Notes);
        if (allocator is not null)
        {
            notes.Add(allocator);
        }

        if (outOfMemory is not null)
        {
            notes.Add($"The replay ran out of memory on the {gpu?.Name}: {outOfMemory}. The figures are from a replay without the device limit.");
        }

        var parts = new ReplayParts(model, scenario, plan, result, gpu?.IsHost == true);
        IReadOnlyList<MemoryComponent> components = scenario.IsTraining ? parts.Training() : parts.Inference();
        ByteSize outside = components.Where(c => c.Counter == Counter.Device && c.Residence == Residence.Device)
            .Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);
        var estimate = new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, Trainable(model, scenario, plan), model.ActiveParameterCount),
            Components = components,
            PeakPhase = PeakMoment.Describe(result, model.LayerCount),
            Timeline = PeakMoment.Timeline(result, outside),
            Comparisons = scenario.IsTraining ? parts.Comparisons() : [],
            Facts = scenario.IsTraining
                ? [new("effective_batch", scenario.EffectiveBatch, "sequences per optimizer step (micro-batch × gradient accumulation × data-parallel GPUs); memory depends on the micro-batch")]
                : [new("kv_bytes_per_token", parts.KvBytesPerToken, "KV cache bytes per token")],
            Notes = [.. notes, .. Assumptions(scenario, plan)],
        };
        if (plan.Options.Placement is { } placement)
        {
            return estimate with
            {
                DeviceCount = placement.Map.Gpus,
                Device = $"GPU {placement.Counted} of {placement.Map.Gpus}, the most loaded: it holds {placement.Map.Describe(placement.Counted)} (device_map=\"auto\")",
            };
        }

        return plan.Options.Sharding switch
        {
            { Zero: { Stage: < 3 } } zero => estimate with
            {
                DeviceCount = scenario.Parallel.Gpus,
                Device = $"rank 0 of {zero.World}: every rank keeps the whole 16-bit model and an equal 1/{zero.World} of the padded flat buffer's master and optimizer states",
            },
            { Zero: not null } zero => estimate with
            {
                DeviceCount = scenario.Parallel.Gpus,
                Device = $"rank 0 of {zero.World}, the most loaded: it keeps ⌈n ÷ {zero.World}⌉ elements of every parameter, the padding falls to the last rank",
            },
            { } sharding => estimate with
            {
                DeviceCount = scenario.Parallel.Gpus,
                Device = $"rank 0 of {sharding.World}, the most loaded: it keeps ⌈rows ÷ {sharding.World}⌉ rows of every parameter, an uneven split leaves the short chunks to the last ranks",
            },
            null => estimate,
        };
    }

    /// <summary>The torch.optim implementation the step replays, where it has several.</summary>
    private static string? Implementation(ReplayOptimizer optimizer) => optimizer switch
    {
        ReplayOptimizer.AdamW => "torch.optim.AdamW, foreach (torch's default on CUDA: one copy of the second moments at the step)",
        ReplayOptimizer.AdamWFused => "torch.optim.AdamW, fused (no temporaries at the step)",
        ReplayOptimizer.AdamWSingleTensor => "torch.optim.AdamW, foreach=False (one parameter at a time: its root and quotient at the step)",
        _ => null,
    };

    private static string Torch(ScalarType type) => type switch
    {
        ScalarType.BFloat16 => "torch.bfloat16",
        ScalarType.Float16 => "torch.float16",
        _ => "torch.float32",
    };

    /// <summary>Parameters with gradients: the adapters (exact, PEFT's count), every parameter for full training, none for inference.</summary>
    private static long Trainable(ModelArchitecture model, Scenario scenario, ReplayPlan plan) =>
        plan.Adapters?.TrainableParameters ?? (scenario.Mode == Mode.Training ? model.ParameterCount : 0);

    private static IEnumerable<string> Assumptions(Scenario scenario, ReplayPlan plan)
    {
        string run = scenario.IsTraining ? $"{plan.Options.Steps} steps of forward, backward, optimizer step and zero_grad"
            : plan.Options.NewTokens is int newTokens ? $"generate() with greedy search and the dynamic cache: a prefill of {Text.N(plan.Options.Seq)} prompt tokens with logits_to_keep=1, then {Text.N(newTokens - 1)} decode steps, {Text.N(newTokens)} new tokens per sequence"
            : "one forward over the whole prompt with use_cache=True";
        yield return $"Weights in {plan.Format}; replayed on PyTorch's caching allocator: {run}.";
        if (plan.Options.NewTokens > DecoderProgram.ReplayedDecodeSteps + 1)
        {
            yield return $"The cache grows by the first {Text.N(plan.Options.NewTokens.Value - 1 - DecoderProgram.ReplayedDecodeSteps)} decode steps at once; the last {DecoderProgram.ReplayedDecodeSteps} are replayed one by one (the peak of a long generation is at its end).";
        }

        if (scenario.Compile)
        {
            yield return "torch.compile: each RMSNorm and the cross-entropy are replayed as single fused kernels; the other ops as eager, an upper bound (inductor may also recompute pointwise ops instead of saving them).";
        }

        if (scenario.IsTraining && Implementation(plan.Options.Optimizer) is string implementation)
        {
            yield return $"Optimizer: {implementation}.";
        }

        if (scenario.KbitPreparation)
        {
            yield return plan.Options.KbitPreparationFrom is { } loaded
                ? $"PEFT's prepare_model_for_kbit_training: the unquantized {Torch(loaded)} parameters (embeddings, norms, head) cast to fp32 after loading, so the residual stream, its checkpoints and the head run in fp32; the 4-bit linears cast their input to the compute type and their output back."
                : "PEFT's prepare_model_for_kbit_training: the model is already in fp32, so it casts nothing.";
        }

        if (scenario.UseCache is bool useCache)
        {
            yield return useCache
                ? "use_cache: the training forward builds a KV cache (copies of every layer's K and V), alive until its output is dropped."
                : "use_cache false: the training forward builds no KV cache.";
        }

        if (scenario.BitsandbytesVersion is { } release)
        {
            yield return plan.Options.FourBitKeepsInput
                ? $"bitsandbytes {release} (before 0.43.2): each 4-bit matmul keeps its input (MatMul4Bit's ctx.tensors = (A, B)), where nothing else saves it, until the graph is freed after backward."
                : $"bitsandbytes {release}: a 4-bit matmul keeps only its packed weight for backward.";
        }

        if (plan.Options.TorchtuneInit is { } init)
        {
            string build = init.ClonedLayers
                ? "one layer built and deep-copied per layer (_get_clones), each copy with its own rotary cache, the template freed"
                : "each layer built in turn";
            string quantize = !plan.Options.Weights.Any(w => w.Type == ScalarType.Nf4) ? ""
                : init.Chunked ? "; each NF4 weight quantized from its bf16 nn.Linear weight and again from the checkpoint's in load_state_dict, torchao quantizing 1024² elements at a time"
                : "; each NF4 weight quantized from its bf16 nn.Linear weight, again per copy (to_nf4(get_original_weight())) and from the checkpoint's in load_state_dict, torchao 0.1 quantizing each weight whole ((value - nf4).abs(): two [numel, 16] bf16 tensors)";
            yield return $"torchtune {scenario.EngineOptions.Version ?? "current"}: the model is built on the GPU before the step, {build}{quantize}; the step starts from the segments that leaves cached.";
        }

        if (scenario.EngineOptions.Version is { } transformers && scenario.Engine != Engine.Torchtune)
        {
            yield return plan.Options.Loss switch
            {
                LossStyle.TransformersInModel => $"transformers {transformers} (before 4.46): the model's forward upcasts its logits (logits = logits.float(); the 16-bit ones die there) and CrossEntropyLoss takes a shifted fp32 copy of them.",
                LossStyle.TransformersShifted => $"transformers {transformers} (4.46 to 4.48): ForCausalLMLoss takes logits.float() and a shifted fp32 copy while the model's output keeps the 16-bit logits.",
                LossStyle.InPlace => $"transformers {transformers} (before 4.46): FOAK's FastCrossEntropyLoss replaces the model's CrossEntropyLoss; the forward upcasts the logits (the 16-bit ones die there) and the kernel takes a shifted fp32 copy.",
                LossStyle.InPlaceLossFunction => $"transformers {transformers} (4.46 on): FOAK's FastForCausalLMLoss is the model's loss_function; it takes logits.float() and a shifted fp32 copy into the kernel while the model's output keeps the 16-bit logits.",
                _ => $"transformers {transformers}: ForCausalLMLoss upcasts the logits and pads the labels, with no shifted copy of the logits.",
            };
        }

        if (plan.Options.Loss == LossStyle.FloatShiftedTransposed)
        {
            yield return $"torchtune {scenario.EngineOptions.Version} (before 0.3.0): the recipe takes logits[..., :-1, :].contiguous() of the fp32 output and passes its transpose(1, 2) to CrossEntropyLoss, whose log_softmax makes a contiguous copy of it"
                + (plan.Options.HoldPreviousLogits ? "; before 0.2.0 the loop keeps that copy through the backward until the next forward returns (no del logits)." : ".");
        }

        if (plan.Options.HoldPreviousLogits && scenario.HoldPreviousLogits)
        {
            yield return plan.Options.FourBitKeepsInput
                ? "hold_previous_logits: the loop keeps the previous micro-batch's logits until the next forward returns, and through their grad_fn every 4-bit matmul input of that graph."
                : "hold_previous_logits: the loop keeps the previous micro-batch's logits until the next forward returns.";
        }

        if (plan.Options.LitGpt)
        {
            yield return "model_code litgpt: LitGPT's own GPT and LoRA modules (one fused qkv, grouped k and v copied to all heads, adapters in the model type"
                + (plan.Options.Lora is { Dropout: > 0 } ? " with one dropout per LoRA module" : "")
                + ", the head in 128-token chunks cast to fp32 by Fabric's convert_output).";
        }

        if (scenario.Packed)
        {
            yield return "Packed sequences are replayed as full sequences of seq tokens (flash attention's variable-length path saves the same tensors).";
        }

        if (scenario.GradientCheckpointing == Checkpointing.Selective)
        {
            yield return "Selective checkpointing is replayed as full per-layer checkpointing.";
        }

        if (scenario.Precision == Precision.Fp8)
        {
            yield return "fp8 training is replayed as bf16 autocast over fp32 parameters; float8 linears (which save fp8 inputs) are not simulated.";
        }

        if (plan.Options.Sharding is { Zero: { } zero } zeroSharding)
        {
            string type = Torch(zeroSharding.ParamType ?? ScalarType.Float32);
            string offload = zero.OffloadParameters ? "; offload_param and offload_optimizer to the CPU: partitions, fp32 master, moments and fp32 gradients in host memory"
                : zero.OffloadOptimizer ? "; offload_optimizer to the CPU: fp32 master, moments and fp32 gradients in host memory" : "";
            yield return $"DeepSpeed ZeRO-{zero.Stage} on {zeroSharding.World} ranks: the module in {type}, the optimizer over the fp32 master of rank 0's partition; "
                + $"DeepSpeedZeroConfig's defaults: reduce_bucket_size {Text.N(ZeroSettings.ReduceBucketSize)}, contiguous_gradients, overlap_comm {(zero.OverlapComm ? "on" : "off")}"
                + (zero.Stage == 3 ? $", stage3_prefetch_bucket_size {Text.N(ZeroSettings.PrefetchBucketSize)}, stage3_max_live_parameters and stage3_max_reuse_distance {Text.N(ZeroSettings.MaxReuseDistance)}, stage3_param_persistence_threshold {Text.N(ZeroSettings.PersistenceThreshold)}; gathered and released block by block" : "")
                + $" (the transformers Trainer's \"auto\" values differ); the optimizer states created at initialization, as DeepSpeed creates them{offload}.";
        }
        else if (plan.Options.Sharding is { } sharding)
        {
            string precision = sharding.ParamType is null ? "no mixed-precision policy (gathered and reduced in the sharded type)"
                : $"MixedPrecisionPolicy(param_dtype={Torch(sharding.ParamType.Value)}, reduce_dtype={Torch(sharding.ReduceType!.Value)}) over fp32 shards, no autocast";
            string own = sharding.OwnUnits == CustomShardedLayers.None ? "" : $", on {ScenarioFields.Value(scenario, "custom_sharded_layers")} (custom_sharded_layers)";
            yield return $"FSDP2 on {sharding.World} ranks: fully_shard on each block{own} and the root; {precision}; blocks {(sharding.ReshardAfterForward ? "resharded after forward and gathered again for backward" : "kept gathered from forward to backward (SHARD_GRAD_OP)")}, the previous block prefetched in backward"
                + (sharding.Offload ? "; CPUOffloadPolicy: shards, gradients and the optimizer step in host memory." : ".");
        }

        if (scenario.GradientAccumulation > 2)
        {
            yield return $"Two of the {scenario.GradientAccumulation} micro-batches are replayed; the rest repeat the second.";
        }
    }
}
