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
        (ByteSize total, int tp, bool sglang, bool v0) = (settings.Usable, settings.Tp, settings.Sglang, settings.V0);
        (double fraction, int blockSize, int maxModelLen) = (settings.Fraction, settings.BlockSize, settings.MaxModelLen);
        (int maxSeqs, int batchedTokens) = (settings.MaxNumSeqs, settings.BatchedTokens);

        WeightLayout layout = WeightChoice.Layout(model, scenario, out string format);
        // vLLM's get_rope builds the cos/sin cache for max_position_embeddings rows, whatever max_model_len is.
        int rotaryRows = model.MaxPositions ?? maxModelLen;
        int rotaryWidth = model.LatentAttention?.RopeHeadDimension ?? model.HeadDimension;
        Formula rotary = (Formula.Count(rotaryRows, "positions") * Formula.Count(rotaryWidth) * Formula.Bytes(2)).After("rotary cos/sin cache");
        long replicated = Replicated(layout);
        Formula onDevice = tp == 1 ? layout.Formula()
            : ((layout.Formula() - Formula.Size(new ByteSize(replicated), "of norms")) / Formula.Count(tp, "GPUs") + Formula.Size(new ByteSize(replicated), "of norms on every GPU"))
                .Adjusted(PerDevice(layout, model, tp), "each tensor's slice rounded up");
        Formula weightsFormula = onDevice + rotary;
        ByteSize weights = new((long)Math.Round(weightsFormula.Value));
        DataType kvType = KvType(scenario, model);
        int kvHeads = model.LatentAttention is null ? Math.Max(1, model.KeyValueHeadCount / tp) : 1;
        KvLayout kv = KvLayout.For(model, kvType, kvType, compressedLatent: true, kvHeads);
        long perToken = checked(kv.BytesPerTokenPerLayer * model.LayerCount);
        long pageBytes = checked(perToken * blockSize);
        ByteSize budget = new((long)(total.Bytes * fraction));
        ByteSize context = Constants.CudaContext(gpu, training: false, flashAttention: true);

        var components = new List<MemoryComponent>
        {
            MemoryComponent.Of("weights", ComponentKind.Weights, weightsFormula),
        };

        ByteSize activation;
        ByteSize nonTorch;
        ByteSize pool;
        if (sglang)
        {
            // SGLang: rest = free after weights − total × (1 − mem_fraction_static); the fraction covers weights + KV only.
            activation = new ByteSize((long)(total.Bytes * (1 - fraction)));
            nonTorch = ByteSize.Zero;
            pool = budget - weights - context;
            components.Add(MemoryComponent.Of("activation_reserve", ComponentKind.Activations,
                (Formula.Size(total) * (Formula.Count(1) - Formula.Count(fraction))).Adjusted(activation.Bytes, "rounded down"),
                "left free for activations and CUDA graphs (1 − mem_fraction_static)", counter: Counter.Reserved));
        }
        else
        {
            Formula profile = VllmProfilePeak(model, batchedTokens, maxSeqs, tp, v0 ? Constants.VllmV0SamplerBytesPerLogit : Constants.VllmSamplerBytesPerLogit);
            activation = new ByteSize((long)Math.Round(profile.Value));
            nonTorch = tp > 1 ? Constants.VllmNonTorchMultiGpu : Constants.VllmNonTorchSingleGpu;
            pool = budget - weights - activation - nonTorch;
            components.Add(MemoryComponent.Of("profiled_activations", ComponentKind.Activations, profile, "vLLM's profile run: the forward's widest moment and the dummy sampler pass"));
            components.Add(MemoryComponent.Of("non_torch", ComponentKind.Runtime,
                Formula.Size(nonTorch).After($"cuBLAS handles{(tp > 1 ? ", NCCL and custom all-reduce" : "")}:"), "outside torch, as vLLM's log reports it", counter: Counter.Device));
        }

        // vLLM V1 groups layers by attention kind (full, sliding) and checks a request's need layer by layer; V0 and SGLang
        // size one plain pool of whole blocks.
        VllmKvGroups groups = settings.HybridManager
            ? VllmKvGroups.For(model)
            : new VllmKvGroups(model.LayerCount, 0, null, model.LayerCount);
        long pagePerLayer = checked(kv.BytesPerTokenPerLayer * blockSize);
        long blocks = groups.Blocks(pool.Bytes, pagePerLayer);
        long tokens = groups.CapacityTokens(blocks, blockSize);
        var kvBytes = new ByteSize(groups.Bytes(blocks, pagePerLayer));
        string blockRule = $"blocks = ({Text.N(fraction)} × {total} − weights − activations{(sglang ? "" : " − non-torch")}) ÷ {Text.N(checked(pagePerLayer * groups.GroupSize))} B per block, rounded down";
        components.Add(MemoryComponent.Of("kv_cache", ComponentKind.KvCache,
            Formula.Count(blocks, "blocks") * Formula.Count(blockSize, "tokens") * kv.PerToken(groups.GroupSize),
            groups.IsHybrid ? $"{blockRule}; each block takes a page in every layer of a group ({groups.Describe()})" : blockRule));
        components.Add(MemoryComponent.Of("cuda_context", ComponentKind.Runtime, Formula.Size(context).After("CUDA context and kernels:"), "outside the engine's budget",
            counter: Counter.Device));

        // Start-up check: the pool must hold one request of max_model_len tokens (vLLM errors out otherwise, §2.7); V1 counts
        // each layer's own need, so sliding-window layers ask only for their window (with full layers only, this is
        // max_model_len ≤ blocks × block size, V0's check).
        long needed = groups.NeededBytes(maxModelLen, batchedTokens, blockSize, pagePerLayer);
        bool accepts = needed <= pool.Bytes;
        bool windowed = groups.SlidingLayers > 0;
        var notes = new List<string>
        {
            $"Weights in {format}. {Names.Of(scenario.Engine)} reserves {Text.N(fraction)} of the GPU and fills what is left with KV blocks, so its memory use does not depend on the context you send.",
        };
        int replicas = scenario.Parallel.Gpus / tp;
        if (replicas > 1)
        {
            // vLLM --data-parallel-size and SGLang --dp: whole copies of the TP group, each sized as one.
            notes.Add($"{scenario.Parallel.Gpus} GPUs at tp {tp}: {replicas} data-parallel replicas, each GPU sized as above; the KV pool and the concurrency are per replica.");
        }
        // Why the engine would not start, in words a planner can reuse; the note adds what to do.
        string? refusal = accepts ? null
            : blocks == 0 ? $"no room for a KV cache: the {budget} budget minus weights and activations is {pool}"
            : windowed ? $"one request of max_model_len {Text.N(maxModelLen)} tokens needs {new ByteSize(needed)} of KV cache, more than the {new ByteSize(Math.Max(0, pool.Bytes))} available"
            : $"its KV pool holds {Text.N(tokens)} tokens, fewer than max_model_len {Text.N(maxModelLen)}";
        if (refusal is not null)
        {
            notes.Add(blocks == 0
                ? $"No room for a KV cache: the {budget} budget minus weights and activations is {pool}; use a larger GPU, tensor parallelism or a smaller format."
                : $"{char.ToUpperInvariant(refusal[0])}{refusal[1..]}: the engine refuses to start; lower --max-model-len.");
        }

        if (windowed)
        {
            notes.Add($"vLLM V1's KV cache manager: {groups.Describe()} share the pool; a request holds every token in full-attention layers but only window − 1 + {Text.N(batchedTokens)} batched tokens in sliding ones.");
        }

        long longest = groups.LongestAccepted(Math.Max(0, pool.Bytes), batchedTokens, blockSize, pagePerLayer, model.MaxPositions ?? int.MaxValue);
        // V1 counts the blocks a request takes in every group (get_max_concurrency_for_kv_cache_config); V0 divided tokens.
        long concurrency = !sglang && !v0 ? blocks / groups.BlocksPerRequest(maxModelLen, batchedTokens, blockSize) : tokens / Math.Max(1, maxModelLen);

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, 0, model.ActiveParameterCount),
            Components = components,
            EngineAccepts = accepts,
            EngineRefusal = refusal,
            PeakPhase = "steady state (the pool is allocated at start-up)",
            DeviceCount = scenario.Parallel.Gpus,
            Device = tp > 1 ? "each tensor-parallel GPU" : "the GPU",
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

    /// <summary>
    /// vLLM V1 profile run: one forward over <c>max_num_batched_tokens</c> tokens, whose widest moment holds the residual and
    /// hidden states (2·2h), the fused gate/up output (2·2I) and the activation output (2I) per token, ÷ TP; plus a dummy
    /// sampler pass over <c>max_num_seqs</c> rows of the vocabulary (<see cref="Constants.VllmSamplerBytesPerLogit"/>).
    /// </summary>
    private static Formula VllmProfilePeak(ModelArchitecture model, int tokens, int seqs, int tp, int bytesPerLogit)
    {
        long width = model.Experts is { } moe ? (long)moe.ActiveExperts * moe.ExpertIntermediateSize + moe.SharedExpertIntermediateSize : model.IntermediateSize;
        long perToken = 4L * model.HiddenSize + 6 * width / tp;
        Formula mlp = tp > 1 ? Formula.Dot(6, width) / Formula.Count(tp) : Formula.Dot(6, width);
        Formula forward = Formula.Count(tokens, "tokens") * (Formula.Dot(4, model.HiddenSize) + mlp).InBytes();
        Formula sampler = (Formula.Count(seqs, "seqs") * Formula.Count(model.VocabularySize, "vocab") * Formula.Bytes(bytesPerLogit)).After("sampler");
        return (forward + sampler).Adjusted(checked((perToken * tokens) + ((long)seqs * model.VocabularySize * bytesPerLogit)), "rounded down per token");
    }

    /// <summary>Bytes of the tensors every tensor-parallel GPU holds whole: the 1-D norms and biases outside attention.</summary>
    private static long Replicated(WeightLayout layout) =>
        layout.Tensors.Where(IsReplicated).Sum(t => t.Bytes);

    private static bool IsReplicated(StoredTensor t) => t.Tensor.Role == TensorRole.Norm || t.Tensor.Shape.Length == 1 && t.Tensor.Role != TensorRole.Attention;

    /// <summary>Weights on one tensor-parallel GPU: sharded tensors ÷ tp, 1-D norms replicated.</summary>
    private static long PerDevice(WeightLayout layout, ModelArchitecture model, int tp) =>
        layout.Tensors.Sum(t => IsReplicated(t) ? t.Bytes : (t.Bytes + tp - 1) / tp);

    private static DataType KvType(Scenario scenario, ModelArchitecture model) =>
        scenario.KvCacheDtype is DataType given ? given : model.StoredType is DataType s && s.BlockBytes == 2 ? s : DataTypes.BF16;
}
