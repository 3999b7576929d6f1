using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// vLLM and SGLang, which size themselves: they take a fixed fraction of the GPU and fill what the model and the
/// profiled activations leave with KV blocks (docs/memory-model.md §2.7, §2.8, §3.3).
/// </summary>
internal static class ServingEngines
{
    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ModelArchitecture model = resolved.Architecture!;
        ServingSettings settings = ServingSettings.Resolve(model, scenario, gpu);
        (ByteSize total, int tp, int pp, bool sglang) = (settings.Usable, settings.Tp, settings.Pp, settings.Sglang);
        (double fraction, int blockSize, int maxModelLen) = (settings.Fraction, settings.BlockSize, settings.MaxModelLen);
        (int maxSeqs, int batchedTokens) = (settings.MaxNumSeqs, settings.BatchedTokens);
        VllmKvGroups wholeModel = settings.HybridManager ? VllmKvGroups.For(model) : Plain(model.LayerCount);
        if (pp > model.LayerCount || (pp > 1 && wholeModel.IsHybrid))
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.pp"), "parallel.pp",
                pp > model.LayerCount ? $"is {pp}, more pipeline stages than the model's {model.LayerCount} layers."
                    : $"is {pp}: vLLM's hybrid KV cache manager across pipeline stages ({wholeModel.Describe()}) is not modelled; use tp.");
        }

        WeightLayout layout = WeightChoice.Layout(model, scenario, out string format);
        // vLLM shards a mixture-of-experts model's routed experts over every GPU of the data-parallel replicas, with or without
        // --enable-expert-parallel (fused_moe/config.py FusedMoEParallelConfig.make: flatten_tp_across_dp makes the MoE tp size
        // dp × tp); attention, embeddings and head stay whole in each replica. SGLang's plain --dp launches whole replicas.
        int replicas = scenario.Parallel.Gpus / (tp * pp);
        int expertShards = !sglang && model.Experts is not null && replicas > 1 ? tp * replicas : tp;
        layout = sglang ? layout : VllmMxfp4Layout.OnGpu(layout, model, gpu, expertShards);
        IReadOnlyList<PipelineStage> stages = PipelineStages.Of(model, layout, StageSplit(model, scenario, pp));
        // vLLM's get_rope builds the cos/sin cache for max_position_embeddings rows, whatever max_model_len is; every stage
        // with attention layers builds one.
        int rotaryRows = model.MaxPositions ?? maxModelLen;
        int rotaryWidth = model.LatentAttention?.RopeHeadDimension ?? model.HeadDimension;
        Formula rotary = (Formula.Count(rotaryRows, "positions") * Formula.Count(rotaryWidth) * Formula.Bytes(2)).After("rotary cos/sin cache");
        DataType kvType = KvType(scenario, model);
        int kvHeads = model.LatentAttention is null ? Math.Max(1, model.KeyValueHeadCount / tp) : 1;
        KvLayout kv = KvLayout.For(model, kvType, kvType, compressedLatent: true, kvHeads);
        long pagePerLayer = checked(kv.BytesPerTokenPerLayer * blockSize);
        ByteSize budget = new((long)(total.Bytes * fraction));
        ByteSize context = Constants.CudaContext(gpu, training: false, flashAttention: true);
        // The model's activations and logits are in its dtype: fp32 when the server runs --dtype float32.
        int activationBytes = scenario.Weights is { Scheme: WeightScheme.Dense } w && w.Type == DataTypes.F32 ? 4 : 2;

        // SGLang reads the free memory after loading as the minimum over every rank (model_runner.py profile_max_num_token:
        // get_available_gpu_memory(distributed=world_size > 1)), so with pipeline stages the heaviest stage's weights set
        // every stage's pool.
        ByteSize heaviest = stages.Select(stage => Rounded(OnDevice(stage.Weights, tp, expertShards) + rotary)).MaxBy(b => b.Bytes);
        StageMemory[] sized = [.. stages.Select(stage =>
        {
            Formula weights = OnDevice(stage.Weights, tp, expertShards) + rotary;
            VllmKvGroups groups = pp == 1 ? wholeModel : Plain(stage.Layers);
            if (sglang)
            {
                // SGLang: rest = free after weights − total × (1 − mem_fraction_static); the fraction covers weights + KV only.
                Formula reserve = (Formula.Size(total) * (Formula.Count(1) - Formula.Count(fraction))).Adjusted((long)(total.Bytes * (1 - fraction)), "rounded down");
                return new StageMemory(stage, weights, reserve, ByteSize.Zero, budget - heaviest - context, groups);
            }

            // Every stage runs the forward over its layers; only the last samples (vllm/v1/worker/gpu_model_runner.py profile_run).
            Formula profile = VllmProfilePeak(model, settings, activationBytes, sampler: stage.Index == pp - 1);
            // --kv-cache-memory: the profile still runs (it compiles the model) but the pool is the bytes given (ServingSettings).
            ByteSize pool = settings.KvCacheMemory ?? budget - Rounded(weights) - Rounded(profile) - settings.NonTorch;
            return new StageMemory(stage, weights, profile, settings.NonTorch, pool, groups);
        })];

        // Every stage takes the fewest blocks any stage has room for (vllm/v1/core/kv_cache_utils.py get_kv_cache_configs:
        // "Change the num_blocks of each rank to the smallest among all ranks"; V0's executor took the minimum likewise).
        StageMemory binding = sized.MinBy(m => m.Groups.Blocks(m.Pool.Bytes, pagePerLayer))!;
        long blocks = binding.Groups.Blocks(binding.Pool.Bytes, pagePerLayer);
        StageMemory shown = sized.MaxBy(m => Rounded(m.Weights).Bytes + Rounded(m.Activation).Bytes + m.Groups.Bytes(blocks, pagePerLayer))!;
        (VllmKvGroups groups, ByteSize pool) = (binding.Groups, binding.Pool);
        long tokens = groups.CapacityTokens(blocks, blockSize);

        var components = new List<MemoryComponent> { MemoryComponent.Of("weights", ComponentKind.Weights, shown.Weights) };
        if (sglang)
        {
            components.Add(MemoryComponent.Of("activation_reserve", ComponentKind.Activations, shown.Activation,
                "left free for activations and CUDA graphs (1 − mem_fraction_static)", counter: Counter.Reserved));
        }
        else
        {
            components.Add(MemoryComponent.Of("profiled_activations", ComponentKind.Activations, shown.Activation,
                shown.Stage.Index == pp - 1 ? "vLLM's profile run: the forward's widest moment and the dummy sampler pass" : "vLLM's profile run: the forward's widest moment (the last stage samples)"));
            components.Add(MemoryComponent.Of("non_torch", ComponentKind.Runtime,
                Formula.Size(shown.NonTorch).After($"cuBLAS handles{(tp > 1 ? ", NCCL and custom all-reduce" : "")}:"), "outside torch, as vLLM's log reports it", counter: Counter.Device));
        }

        string pooled = settings.KvCacheMemory is ByteSize given ? $"kv_cache_memory {Text.N(given.Bytes)} B"
            : $"{Text.N(fraction)} × {total} − weights − activations{(sglang ? "" : " − non-torch")}";
        string blockRule = $"blocks = ({pooled}) ÷ {Text.N(checked(pagePerLayer * groups.GroupSize))} B per block, rounded down"
            + (pp > 1 ? $", the fewest of any stage (stage {binding.Stage.Index + 1})" : "");
        components.Add(MemoryComponent.Of("kv_cache", ComponentKind.KvCache,
            Formula.Count(blocks, "blocks") * Formula.Count(blockSize, "tokens") * kv.PerToken(shown.Groups.GroupSize),
            groups.IsHybrid ? $"{blockRule}; each block takes a page in every layer of a group ({groups.Describe()})" : blockRule));
        components.Add(MemoryComponent.Of("cuda_context", ComponentKind.Runtime, Formula.Size(context).After("CUDA context and kernels:"), "outside the engine's budget",
            counter: Counter.Device));

        // Start-up check: the pool must hold one request of max_model_len tokens (vLLM errors out otherwise, §2.7); V1 counts
        // each layer's own need, so sliding-window layers ask only for their window (with full layers only, this is
        // max_model_len ≤ blocks × block size, V0's check). Each stage checks its own layers; the one with the fewest blocks binds.
        long needed = groups.NeededBytes(maxModelLen, batchedTokens, blockSize, pagePerLayer);
        bool accepts = needed <= pool.Bytes;
        bool windowed = groups.SlidingLayers > 0;
        var notes = new List<string>
        {
            settings.KvCacheMemory is ByteSize pinned
                ? $"Weights in {format}. vLLM's KV pool is the {pinned} --kv-cache-memory gives, whatever the GPU has left; gpu_memory_utilization sizes nothing, so check the total against the GPU."
                : $"Weights in {format}. {Names.Of(scenario.Engine)} reserves {Text.N(fraction)} of the GPU and fills what is left with KV blocks, so its memory use does not depend on the context you send.",
        };
        if (sglang)
        {
            notes.Add(SglangFractionNote(settings, scenario.EngineOptions.Version));
        }

        if (pp > 1)
        {
            string split = scenario.EngineOptions.PpLayerPartition is null ? $"{(sglang ? "SGLang's copy of " : "")}vLLM's get_pp_indices"
                : sglang ? "SGLANG_PP_LAYER_PARTITION" : "VLLM_PP_LAYER_PARTITION";
            notes.Add($"Pipeline parallel over {pp} stages of {string.Join(", ", stages.Select(st => st.Layers))} layers ({split}): the embedding on the first stage, "
                + (sglang
                    ? $"the final norm and head on the last. SGLang sizes every stage's pool from the least free memory of any rank (after stage {sized.MaxBy(m => Rounded(m.Weights).Bytes)!.Stage.Index + 1}'s weights, the heaviest); "
                        + $"every stage is taken to keep the {Text.N(tokens)} tokens stage {binding.Stage.Index + 1} has room for, as its schedulers take the same decisions (assumed, as vLLM does it). "
                    : $"the final norm and head on the last, which also runs the sampler; every stage keeps {Text.N(blocks)} blocks, the most stage {binding.Stage.Index + 1} has room for. ")
                + $"The figures are stage {shown.Stage.Index + 1}'s, the most loaded.");
        }

        if (replicas > 1)
        {
            // vLLM --data-parallel-size and SGLang --dp: copies of the model-parallel group, each sized as one (vLLM's routed
            // experts excepted, sharded over every replica's GPUs).
            notes.Add($"{scenario.Parallel.Gpus} GPUs at tp {tp}{(pp > 1 ? $" × pp {pp}" : "")}: {replicas} data-parallel replicas, each GPU sized as above; the KV pool and the concurrency are per replica."
                + (expertShards > tp ? $" vLLM shards the routed experts over all {Text.N(expertShards)} GPUs of the replicas (the MoE layers' tp is dp × tp, with or without --enable-expert-parallel); the rest of the model is whole in each replica. The profiled activations are sized as for one replica." : ""));
        }

        // Why the engine would not start, in words a planner can reuse; the note adds what to do.
        string? refusal = accepts ? null
            : blocks == 0 && settings.KvCacheMemory is not null ? $"the kv_cache_memory of {pool} is less than one block"
            : blocks == 0 ? $"no room for a KV cache: the {budget} budget minus weights and activations is {pool}"
            : windowed ? $"one request of max_model_len {Text.N(maxModelLen)} tokens needs {new ByteSize(needed)} of KV cache, more than the {new ByteSize(Math.Max(0, pool.Bytes))} available"
            : $"its KV pool holds {Text.N(tokens)} tokens, fewer than max_model_len {Text.N(maxModelLen)}";
        if (refusal is not null)
        {
            notes.Add(blocks == 0 && settings.KvCacheMemory is not null ? $"{char.ToUpperInvariant(refusal[0])}{refusal[1..]}: the engine refuses to start; give more."
                : blocks == 0
                ? $"No room for a KV cache: the {budget} budget minus weights and activations is {pool}; use a larger GPU, tensor parallelism or a smaller format."
                : $"{char.ToUpperInvariant(refusal[0])}{refusal[1..]}: the engine refuses to start; lower --max-model-len.");
        }

        if (windowed)
        {
            notes.Add($"vLLM V1's KV cache manager: {groups.Describe()} share the pool; a request holds every token in full-attention layers but only window − 1 + {Text.N(batchedTokens)} batched tokens in sliding ones.");
        }

        long longest = sized.Min(m => m.Groups.LongestAccepted(Math.Max(0, m.Pool.Bytes), batchedTokens, blockSize, pagePerLayer, model.MaxPositions ?? int.MaxValue));
        // V1 counts the blocks a request takes in every group (get_max_concurrency_for_kv_cache_config); V0 divided tokens.
        long concurrency = !sglang && !settings.V0 ? blocks / groups.BlocksPerRequest(maxModelLen, batchedTokens, blockSize) : tokens / Math.Max(1, maxModelLen);

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, 0, model.ActiveParameterCount),
            Components = components,
            EngineAccepts = accepts,
            EngineRefusal = refusal,
            PeakPhase = "steady state (the pool is allocated at start-up)",
            DeviceCount = scenario.Parallel.Gpus,
            Device = pp > 1 ? $"{(tp > 1 ? "each tensor-parallel GPU" : "the GPU")} of pipeline stage {shown.Stage.Index + 1} of {pp}, the most loaded"
                : tp > 1 ? "each tensor-parallel GPU" : "the GPU",
            Facts =
            [
                new("kv_tokens", tokens, "KV cache capacity in tokens"),
                new("kv_blocks", blocks, "KV cache blocks"),
                new("max_model_len", maxModelLen, "max_model_len the server is started with (--max-model-len, else --context, else the model's max_position_embeddings)"),
                new("longest_max_model_len", longest, "largest max_model_len one request can use"),
                new("max_concurrency", concurrency, $"concurrent requests of {maxModelLen} tokens"),
            ],
            Notes = notes,
        };
    }

    /// <summary>Where SGLang's mem_fraction_static comes from: the user's, or the release's default for the GPU worked out.</summary>
    private static string SglangFractionNote(ServingSettings settings, string? release)
    {
        if (settings.SglangDefault is not SglangDefaults d)
        {
            return $"mem_fraction_static {Text.N(settings.Fraction)} as given{(release is null ? "" : $" to SGLang {release}")}.";
        }

        string which = release is null ? $"SGLang's default (releases up to {SglangDefaults.Newest}; engine_options.version picks another)" : $"SGLang {release}'s default";
        string inputs = d.ChunkedPrefillSize is int chunked && d.CudaGraphMaxBs is int graphs
            ? $"chunked_prefill_size {Text.N(chunked)} and cuda_graph_max_bs {Text.N(graphs)} give " : "";
        return $"mem_fraction_static {Text.N(d.MemFractionStatic)} is {which} for this GPU: gpu_mem {Text.N(d.GpuMemMib)} MiB (nvidia-smi's total) at tp {settings.Tp}{(settings.Pp > 1 ? $" × pp {settings.Pp}" : "")}; "
            + $"{inputs}reserved_mem {Mib(d.ReservedMib)} MiB, and ({Text.N(d.GpuMemMib)} − {Mib(d.ReservedMib)}) ÷ {Text.N(d.GpuMemMib)} rounded to 3 places ({d.Rule}). "
            + "gpu_memory_utilization (--mem-fraction-static) sets it.";
    }

    private static string Mib(double mib) => mib.ToString("#,##0.###", System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Layers per pipeline stage: engine_options.pp_layer_partition when given (with pp above 1), else vLLM's even split.</summary>
    private static int[] StageSplit(ModelArchitecture model, Scenario scenario, int pp)
    {
        if (scenario.EngineOptions.PpLayerPartition is not string partition)
        {
            return PipelineStages.Split(model.LayerCount, pp);
        }

        string? reason = pp == 1 ? "but there is one pipeline stage: give parallel.pp above 1" : null;
        int[]? split = reason is null ? PipelineStages.Given(partition, model.LayerCount, pp, out reason) : null;
        return split ?? throw new ModelFormatException(scenario.Given.OriginOf("engine_options.pp_layer_partition"), "engine_options.pp_layer_partition",
            $"is \"{partition}\", {reason}.");
    }

    /// <summary>One stage's share: its weights on one GPU, the activations its profile run holds, and the pool left for KV.</summary>
    private sealed record StageMemory(PipelineStage Stage, Formula Weights, Formula Activation, ByteSize NonTorch, ByteSize Pool, VllmKvGroups Groups);

    /// <summary>A plain pool: one group of every layer, whole blocks, no windows.</summary>
    private static VllmKvGroups Plain(int layers) => new(layers, 0, null, layers);

    private static ByteSize Rounded(Formula f) => new((long)Math.Round(f.Value));

    /// <summary>
    /// A layout on one GPU of a tensor-parallel group: sharded tensors ÷ tp, 1-D norms replicated, and routed experts ÷
    /// <paramref name="expertShards"/> (tp, or dp × tp where vLLM flattens the data-parallel replicas into the MoE group).
    /// </summary>
    private static Formula OnDevice(WeightLayout layout, int tp, int expertShards)
    {
        if (expertShards != tp)
        {
            long experts = layout.Tensors.Where(IsRoutedExpert).Sum(t => t.Bytes);
            long norms = Replicated(layout);
            Formula rest = Formula.Size(new ByteSize(layout.Bytes - experts - norms), "of attention, embeddings and head") / Formula.Count(tp, "tp");
            return (rest + Formula.Size(new ByteSize(experts), "of routed experts") / Formula.Count(expertShards, "dp × tp GPUs") + Formula.Size(new ByteSize(norms), "of norms on every GPU"))
                .Adjusted(PerDevice(layout, tp, expertShards), "each tensor's slice rounded up");
        }

        if (tp == 1)
        {
            return layout.Formula();
        }

        long replicated = Replicated(layout);
        return ((layout.Formula() - Formula.Size(new ByteSize(replicated), "of norms")) / Formula.Count(tp, "GPUs") + Formula.Size(new ByteSize(replicated), "of norms on every GPU"))
            .Adjusted(PerDevice(layout, tp, tp), "each tensor's slice rounded up");
    }

    private static bool IsRoutedExpert(StoredTensor t) => t.Tensor.Role == TensorRole.Expert && !IsReplicated(t);

    /// <summary>
    /// vLLM's profile run: one forward over <c>max_num_batched_tokens</c> tokens, whose widest moment holds the residual and
    /// hidden states (2·2h), the fused gate/up output (2·2I) and the activation output (2I) per token, ÷ TP (in the model's
    /// dtype); then, on the last pipeline stage, a dummy sampler pass over min(max_num_seqs, tokens) rows of the vocabulary
    /// (<see cref="ServingSettings.SamplerBytesPerLogit"/>, bf16 logits counted; fp32 logits add 2 B). V1 runs the sampler after
    /// the forward has freed its intermediates and holds only its [tokens, hidden] output
    /// (vllm/v1/worker/gpu_model_runner.py <c>profile_run</c>, <c>_dummy_sampler_run</c>), so the peak is the larger of the
    /// two moments. V0 (≤ 0.7) keeps the sum its 8 B per logit was set with.
    /// </summary>
    private static Formula VllmProfilePeak(ModelArchitecture model, ServingSettings settings, int activationBytes, bool sampler)
    {
        (int tokens, int tp) = (settings.BatchedTokens, settings.Tp);
        long width = model.Experts is { } moe ? (long)moe.ActiveExperts * moe.ExpertIntermediateSize + moe.SharedExpertIntermediateSize : model.IntermediateSize;
        long perToken = (2L * model.HiddenSize + (3 * width / tp)) * activationBytes;
        Formula mlp = tp > 1 ? Formula.Dot(3, width) / Formula.Count(tp) : Formula.Dot(3, width);
        Formula forward = (Formula.Count(tokens, "tokens") * (Formula.Dot(2, model.HiddenSize) + mlp) * Formula.Bytes(activationBytes))
            .Adjusted(checked(perToken * tokens), "rounded down per token").After("forward");
        if (!sampler)
        {
            return forward;
        }

        long rows = Math.Min(settings.MaxNumSeqs, tokens);
        int perLogit = settings.SamplerBytesPerLogit + activationBytes - 2;
        Formula logits = (Formula.Count(rows, "seqs") * Formula.Count(model.VocabularySize, "vocab") * Formula.Bytes(perLogit)).After("sampler");
        if (settings.V0)
        {
            return forward + logits;
        }

        Formula output = (Formula.Count(tokens, "tokens") * Formula.Count(model.HiddenSize) * Formula.Bytes(activationBytes)).After("forward output");
        return output.Value + logits.Value >= forward.Value
            ? (output + logits).Because("the sampler outweighs the forward's widest moment")
            : forward.Because("the forward outweighs its output and the sampler");
    }

    /// <summary>Bytes of the tensors every tensor-parallel GPU holds whole: the 1-D norms and biases outside attention.</summary>
    private static long Replicated(WeightLayout layout) =>
        layout.Tensors.Where(IsReplicated).Sum(t => t.Bytes);

    private static bool IsReplicated(StoredTensor t) => t.Tensor.Role == TensorRole.Norm || t.Tensor.Shape.Length == 1 && t.Tensor.Role != TensorRole.Attention;

    /// <summary>Weights on one tensor-parallel GPU: sharded tensors ÷ tp, routed experts ÷ their shards, 1-D norms replicated.</summary>
    private static long PerDevice(WeightLayout layout, int tp, int expertShards) =>
        layout.Tensors.Sum(t => IsReplicated(t) ? t.Bytes : IsRoutedExpert(t) ? (t.Bytes + expertShards - 1) / expertShards : (t.Bytes + tp - 1) / tp);

    private static DataType KvType(Scenario scenario, ModelArchitecture model) =>
        scenario.KvCacheDtype is DataType given ? given : model.StoredType is DataType s && s.BlockBytes == 2 ? s : DataTypes.BF16;
}
