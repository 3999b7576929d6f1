using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>The worst case <c>llama_context::sched_reserve</c> plans for: the ubatch shape and the KV cache it attends to.</summary>
/// <param name="Ubatch">Tokens of the prompt-processing ubatch: min(n_ubatch, n_batch, cells), rounded up to a multiple of the sequences.</param>
/// <param name="Outputs">Logit rows of that ubatch (every token outputs).</param>
/// <param name="Sequences">n_seq_max: the token-generation graph has one token per sequence.</param>
/// <param name="KvCells">Cells per stream; the cache is assumed full.</param>
/// <param name="Streams">KV streams.</param>
/// <param name="FlashAttention">Whether attention is fused.</param>
/// <param name="KeyType">K cache type.</param>
/// <param name="ValueType">V cache type.</param>
internal sealed record ReservedBatch(int Ubatch, int Outputs, int Sequences, int KvCells, int Streams, bool FlashAttention, DataType KeyType, DataType ValueType);

/// <summary>
/// Compute buffers: the graph allocator run over the graphs llama.cpp reserves at context creation — prompt processing (the
/// ubatch against a full cache) and token generation — each buffer ending at its maximum over them (research/llamacpp SPEC §4.1).
/// </summary>
internal static class ComputeBuffers
{
    /// <summary>The CPU backend's compute buffer when the host is the only device.</summary>
    public static long OnCpu(GraphShape shape, ReservedBatch batch, IReadOnlyDictionary<string, DataType> weightTypes, LlamaCppVersion version) =>
        Graphs(shape, batch, weightTypes, version).Max(g => GraphAllocator.Run(g, 32));

    /// <summary>Compute buffer per backend (GPUs 0..n−1, then CUDA_Host) with the layers placed as <paramref name="layout"/> says.</summary>
    public static IReadOnlyDictionary<int, long> OnGpus(GraphShape shape, ReservedBatch batch, IReadOnlyDictionary<string, DataType> weightTypes,
        LlamaCppVersion version, BackendLayout layout, int copies)
    {
        var sizes = new Dictionary<int, long>();
        foreach (ComputeGraph graph in Graphs(shape, batch, weightTypes, version))
        {
            foreach ((int backend, long bytes) in Scheduler.Reserve(graph, layout, copies))
            {
                sizes[backend] = Math.Max(sizes.GetValueOrDefault(backend), bytes);
            }
        }

        return sizes;
    }

    /// <summary>The prompt-processing graph, then the token-generation graph (one token per sequence).</summary>
    private static IEnumerable<ComputeGraph> Graphs(GraphShape shape, ReservedBatch batch, IReadOnlyDictionary<string, DataType> weightTypes,
        LlamaCppVersion version)
    {
        foreach ((int tokens, int outputs) in new[] { (batch.Ubatch, batch.Outputs), (batch.Sequences, batch.Sequences) })
        {
            var request = new GraphRequest(tokens, outputs, batch.KvCells, batch.Streams, batch.FlashAttention, batch.KeyType, batch.ValueType,
                weightTypes, version);
            yield return GraphBuilder.Build(shape, request);
        }
    }
}
