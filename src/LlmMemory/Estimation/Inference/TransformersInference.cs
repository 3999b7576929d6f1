using LlmMemory.Estimation.Weights;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// Hugging Face transformers (and plain PyTorch): the peak of a forward pass over the prompt, the prefill
/// (docs/memory-model.md §3.1): weights + the KV cache of every prompt token + the widest transient of the pass.
/// </summary>
internal static class TransformersInference
{
    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ModelArchitecture model = resolved.Architecture!;
        WeightLayout layout = WeightChoice.Layout(model, scenario, out string format);
        DataType compute = ComputeType(model, layout);
        DataType kvType = scenario.KvCacheDtype is string kvName ? DataTypes.Parse(kvName) : compute;
        long tokens = checked((long)scenario.Batch * scenario.Seq);
        KvLayout kv = KvLayout.For(model, kvType, kvType, compressedLatent: false, model.KeyValueHeadCount);
        long kvBytes = KvBytes(model, kv, scenario.Batch, scenario.Seq);

        var components = new List<MemoryComponent>
        {
            new("weights", ComponentKind.Weights, new ByteSize(layout.Bytes), layout.Formula()),
            new("kv_cache", ComponentKind.KvCache, new ByteSize(kvBytes),
                $"{scenario.Batch} × {Text.N(scenario.Seq)} tokens × {kv.Describe(model.LayerCount)}{SlidingNote(model, scenario.Seq)}"),
        };
        components.AddRange(PrefillTransients.Of(model, scenario, compute, tokens));
        components.Add(AllocatorSlack.For(components));
        if (gpu?.IsHost != true)
        {
            components.Add(new MemoryComponent("cuda_context", ComponentKind.Runtime, Constants.CudaContext,
                "CUDA context, kernels and library handles (outside torch's allocator)", Counter: Counter.Device));
        }

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, 0, model.ActiveParameterCount),
            Components = components,
            PeakPhase = "prefill (forward over the whole prompt)",
            Facts = [new("kv_bytes_per_token", kvBytes / Math.Max(1, tokens), "KV cache bytes per token")],
            Notes = [$"Weights in {format}; KV cache in {kvType.Name.ToLowerInvariant()}. Generation after the prefill adds one token of KV per step and needs less transient memory."],
        };
    }

    /// <summary>The activation dtype: the 16-bit type of the unquantized tensors (fp32 only for an fp32 model).</summary>
    internal static DataType ComputeType(ModelArchitecture model, WeightLayout layout) =>
        layout.Tensors.FirstOrDefault(t => t.Tensor.Role == TensorRole.Norm)?.Storage switch
        {
            "f32" => DataTypes.F32,
            "f16" => DataTypes.F16,
            _ => model.StoredType == DataTypes.F16 ? DataTypes.F16 : DataTypes.BF16,
        };

    /// <summary>
    /// KV of a dense cache: every full-attention block holds batch × seq tokens; a sliding block of the transformers 5
    /// cache holds at most the window (<c>DynamicSlidingWindowLayer</c>).
    /// </summary>
    internal static long KvBytes(ModelArchitecture model, KvLayout kv, int batch, int seq)
    {
        long total = 0;
        foreach (AttentionKind kind in model.LayerAttention)
        {
            long cells = kind == AttentionKind.Sliding && model.SlidingWindow is int window ? Math.Min(seq, window) : seq;
            total = checked(total + batch * cells * kv.BytesPerTokenPerLayer);
        }

        return total;
    }

    private static string SlidingNote(ModelArchitecture model, int seq) =>
        model.SlidingWindow is int window && seq > window
            ? $"; {model.LayerAttention.Count(k => k == AttentionKind.Sliding)} sliding layers keep only {Text.N(window)} tokens"
            : "";
}
