using LlmMemory.Estimation.Inference;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// llama.cpp's KV cache (<c>llama_context</c> ctor, <c>llama_kv_cache</c>, <c>llama_kv_cache_iswa</c>; memory-model.md §2.6):
/// cells per stream, streams, and the bytes of every layer.
/// </summary>
/// <param name="Cells">kv_size: cells per stream.</param>
/// <param name="Streams">n_stream: one per parallel sequence for a non-unified cache, else 1.</param>
/// <param name="SlidingCells">Cells of the sliding-window layers; null when no layer slides.</param>
/// <param name="LayerBytes">K + V bytes of each layer.</param>
/// <param name="Layout">Width and type of K and V per token and layer.</param>
internal sealed record KvCache(int Cells, int Streams, int? SlidingCells, long[] LayerBytes, KvLayout Layout)
{
    /// <summary>Architectures whose llama.cpp graph uses a sliding-window cache (<c>llama_kv_cache_iswa</c>). llama.cpp's
    /// llama and qwen2 graphs have none: Mistral-7B-v0.1's window is ignored there.</summary>
    private static readonly HashSet<string> SlidingArchitectures = ["gemma2", "gemma3", "gemma3_text", "gpt_oss", "cohere2"];

    public long Bytes => LayerBytes.Sum();

    /// <summary>The cache for a context of <paramref name="contextTokens"/> (<c>-c</c>) shared by <paramref name="sequences"/> (<c>-np</c>).</summary>
    /// <param name="model">The model.</param>
    /// <param name="contextTokens">n_ctx as requested.</param>
    /// <param name="sequences">n_seq_max.</param>
    /// <param name="unified">One stream for all sequences (<c>-kvu</c>, or <c>-np 1</c>).</param>
    /// <param name="padding">Cells the size is padded to (version-dependent).</param>
    /// <param name="ubatch">n_ubatch, which a sliding-window cache adds to the window.</param>
    /// <param name="keyType">K type (<c>-ctk</c>).</param>
    /// <param name="valueType">V type (<c>-ctv</c>).</param>
    public static KvCache For(ModelArchitecture model, int contextTokens, int sequences, bool unified, int padding, int ubatch, DataType keyType,
        DataType valueType)
    {
        ArgumentNullException.ThrowIfNull(model);
        int cells = Pad(contextTokens, padding);
        int streams = 1;
        if (!unified)
        {
            // n_ctx_seq = PAD(n_ctx / n_seq_max, 256): e.g. -c 6000 -np 3 gives 2048 cells in each of 3 streams.
            cells = Pad(cells / sequences, padding);
            streams = sequences;
        }

        // MLA caches the compressed latent and no V (llama.cpp since the MLA rework); others n_head_kv × head_dim each.
        ModelArchitecture shaped = model.LatentAttention is null && model.ValueHeadDimension == 0 ? model with { ValueHeadDimension = model.HeadDimension } : model;
        KvLayout layout = KvLayout.For(shaped, keyType, valueType, compressedLatent: true, model.KeyValueHeadCount);
        bool sliding = SlidingArchitectures.Contains(model.ModelType) && model.SlidingWindow is int && model.LayerAttention.Contains(AttentionKind.Sliding);
        int? slidingCells = null;
        if (sliding)
        {
            // llama_kv_cache_iswa: the sliding layers keep min(kv_size, PAD(n_swa · (unified ? n_seq : 1) + n_ubatch, 256)) cells
            // (swa_full off, as llama-server and llama-completion set it); checked on 11 gemma3-shaped runs.
            slidingCells = Math.Min(cells, Pad(checked((model.SlidingWindow!.Value * (unified ? sequences : 1)) + ubatch), padding));
        }

        long[] layers = new long[model.LayerCount];
        for (int il = 0; il < layers.Length; il++)
        {
            int layerCells = sliding && model.LayerAttention[il] == AttentionKind.Sliding ? slidingCells!.Value : cells;
            layers[il] = checked(layout.BytesPerTokenPerLayer * layerCells * streams);
        }

        return new KvCache(cells, streams, slidingCells, layers, layout);
    }

    private static int Pad(int value, int alignment) => checked((value + alignment - 1) / alignment * alignment);
}
