using LlmMemory.Models;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// vLLM V1's hybrid KV cache manager for models that mix full-attention and sliding-window layers
/// (vllm/v1/core/kv_cache_utils.py <c>_get_kv_cache_config_uniform_page_size</c>, <c>_report_kv_cache_config</c>,
/// <c>get_max_concurrency_for_kv_cache_config</c>; vllm/v1/kv_cache_interface.py <c>max_memory_usage_bytes</c>).
/// </summary>
/// <remarks>
/// Layers of one kind are split into groups of <see cref="GroupSize"/> layers, the smallest kind's count (Gemma 3's 5:1 or
/// gpt-oss's 1:1 patterns give whole groups; the last group of a kind is padded). The pool is divided equally among the
/// layers of one group, so one block of every group costs <c>GroupSize</c> pages. A request holds every token in full
/// layers, but only <c>window − 1 + max_num_batched_tokens</c> tokens (+ 1 block) in sliding ones, which is what the
/// start-up check and the concurrency count; the printed token capacity divides the blocks by the number of groups.
/// A model with one kind of layer is one group of all its layers: the plain pool.
/// </remarks>
/// <param name="FullLayers">Layers that keep every token.</param>
/// <param name="SlidingLayers">Layers that keep a window.</param>
/// <param name="Window">The sliding window in tokens (null without sliding layers).</param>
/// <param name="GroupSize">Layers per group.</param>
internal sealed record VllmKvGroups(int FullLayers, int SlidingLayers, int? Window, int GroupSize)
{
    public static VllmKvGroups For(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        int sliding = model.SlidingWindow is null ? 0 : model.LayerAttention.Count(k => k == AttentionKind.Sliding);
        int full = model.LayerCount - sliding;
        int groupSize = full > 0 && sliding > 0 ? Math.Min(full, sliding) : model.LayerCount;
        return new VllmKvGroups(full, sliding, sliding > 0 ? model.SlidingWindow : null, groupSize);
    }

    /// <summary>True when full and sliding layers are mixed, so the pool is shared by several groups.</summary>
    public bool IsHybrid => FullLayers > 0 && SlidingLayers > 0;

    private int FullGroups => Ceiling(FullLayers, GroupSize);

    private int SlidingGroups => Ceiling(SlidingLayers, GroupSize);

    /// <summary>KV cache groups (one per full group of layers of a kind).</summary>
    public int Groups => FullGroups + SlidingGroups;

    /// <summary>Blocks the pool holds: every block of a group takes one page in each of its layers.</summary>
    public long Blocks(long poolBytes, long pagePerLayer) => Math.Max(0, poolBytes) / checked(pagePerLayer * GroupSize);

    /// <summary>Bytes the blocks take.</summary>
    public long Bytes(long blocks, long pagePerLayer) => checked(blocks * pagePerLayer * GroupSize);

    /// <summary>"GPU KV cache size: N tokens" as vLLM prints it: blocks ÷ groups × block size.</summary>
    public long CapacityTokens(long blocks, int blockSize) => blocks / Groups * blockSize;

    /// <summary>The start-up check's need: every layer's most memory for one request of <paramref name="maxModelLen"/> tokens.</summary>
    public long NeededBytes(long maxModelLen, int batchedTokens, int blockSize, long pagePerLayer) =>
        checked(((FullLayers * FullBlocks(maxModelLen, blockSize)) + (SlidingLayers * SlidingBlocks(maxModelLen, batchedTokens, blockSize))) * pagePerLayer);

    /// <summary>Blocks one request of <paramref name="maxModelLen"/> tokens takes from the shared pool, over all groups.</summary>
    public long BlocksPerRequest(long maxModelLen, int batchedTokens, int blockSize) =>
        checked((FullGroups * FullBlocks(maxModelLen, blockSize)) + (SlidingGroups * SlidingBlocks(maxModelLen, batchedTokens, blockSize)));

    /// <summary>The longest <c>max_model_len</c> (up to <paramref name="limit"/>) whose need fits <paramref name="poolBytes"/>.</summary>
    public long LongestAccepted(long poolBytes, int batchedTokens, int blockSize, long pagePerLayer, long limit)
    {
        (long lo, long hi) = (0, limit);
        while (lo < hi)
        {
            long mid = lo + ((hi - lo + 1) / 2);
            (lo, hi) = NeededBytes(mid, batchedTokens, blockSize, pagePerLayer) <= poolBytes ? (mid, hi) : (lo, mid - 1);
        }

        return lo;
    }

    /// <summary>"8 full-attention layers and 18 sliding-window layers (window 128) in 2 groups of 18"-style text.</summary>
    public string Describe() =>
        $"{FullLayers} full-attention and {SlidingLayers} sliding-window layers (window {Window}) in {Groups} group{(Groups == 1 ? "" : "s")} of {GroupSize}";

    private static long FullBlocks(long maxModelLen, int blockSize) => Ceiling(maxModelLen, blockSize);

    // A sliding layer holds the last window − 1 tokens plus the tokens being scheduled, never more than max_model_len,
    // and one more block because the window need not start at a block boundary.
    private long SlidingBlocks(long maxModelLen, int batchedTokens, int blockSize) =>
        SlidingLayers == 0 ? 0 : Ceiling(Math.Min((long)Window!.Value - 1 + batchedTokens, maxModelLen), blockSize) + 1;

    private static int Ceiling(int a, int b) => (a + b - 1) / b;

    private static long Ceiling(long a, long b) => (a + b - 1) / b;
}
