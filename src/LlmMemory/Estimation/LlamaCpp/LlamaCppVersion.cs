using System.Globalization;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The llama.cpp behaviours that changed between builds and change memory (docs/scenario-extensions.md), resolved from
/// <c>engine_options.version</c>: a build tag <c>bNNNN</c>, a known commit, or nothing for the current master.
/// </summary>
/// <remarks>
/// Only two builds are verified end to end: b4823 (564747bea, 2025-03-05; the ggml-ci V100 log) before the graph refactor,
/// and 71102a73 / c0c7e147 (2026) after every change listed here. Each boundary is the first release build after the pull
/// request's merge; where no log pins that build, it is interpolated between dated builds (b4823 on 2025-03-05, b5913 in
/// issue #14847 in July 2025, b6969 in issue #17058 on 2025-11-07) and marked ≈ in the doc comment.
/// </remarks>
/// <param name="Label">What the scenario said ("b4823", "current").</param>
/// <param name="Build">The build number; null for the current master.</param>
internal sealed record LlamaCppVersion(string Label, int? Build)
{
    /// <summary>≈ b4880: PR #12181 (merged 2025-03-13) moved graph building to llama-graph.cpp and the KV cache behind an interface.</summary>
    private const int GraphRefactor = 4880;

    /// <summary>b5913: non-unified KV cache, one stream per parallel sequence (issue #14847: "appears after b5912 in b5913").</summary>
    private const int SplitKvStreams = 5913;

    /// <summary>≈ b6300: PR #15434 (merged 2025-08-30) made flash attention <c>auto</c> and <c>-ngl</c> all layers the defaults.</summary>
    private const int AutoDefaults = 6300;

    /// <summary>≈ b6860: PR #16812 (2025-10-28) removed the padding of the cache size.</summary>
    private const int KvPaddingRemoved = 6860;

    /// <summary>b6970: PR #17046 (2025-11-07) padded the cache to 256 cells again, fixing the regression reported at b6969 (#17058).</summary>
    private const int KvPadding256 = 6970;

    /// <summary>≈ b7000 (November 2025): <c>-ngl N</c> counts the output layer first (<c>i_gpu_start = n_layer + 1 − N</c>).</summary>
    private const int OutputLayerFirst = 7000;

    /// <summary>≈ b7650: PR #18550 (January 2026) added the vector-embedding input <c>inp_embd</c> to every token graph.</summary>
    private const int EmbeddingInput = 7650;

    /// <summary>≈ b8650: PR #21038 (merged 2026-04-01) rotates Q/K (and V) with a Hadamard matrix for a quantized KV cache.</summary>
    private const int HadamardRotation = 8650;

    /// <summary>Commits seen in the validation corpus, by their short hash.</summary>
    private static readonly (string Prefix, int? Build)[] KnownCommits =
    [
        ("564747bea", 4823),
        ("71102a73", null),
        ("c0c7e147", null),
    ];

    public static LlamaCppVersion Current { get; } = new("current master", null);

    /// <summary>The graph of <c>llm_build_context</c> (before the March 2025 refactor) rather than <c>llm_graph_context</c>.</summary>
    public bool LegacyGraph => Build < GraphRefactor;

    /// <summary>
    /// llama-quant.cpp's fused <c>attn_qkv</c> rule. Older releases gave QKV its own branch (Q4_K_M → Q5_K, Q5_K_M → Q6_K,
    /// Q3_K_M/L → Q4_K); current master counts it with <c>attn_v</c> (<c>category_is_attn_v</c>). Known at b4823 (the ci log's
    /// type counts) and 71102a73 (156 quantized files); the change is dated no closer, so it switches with the graph refactor.
    /// </summary>
    public bool QkvAsAttentionV => !(Build < GraphRefactor);

    /// <summary>A non-unified cache for <c>-np</c> &gt; 1: each sequence gets <c>n_ctx / n_seq</c> cells in its own stream.</summary>
    public bool StreamPerSequence => !(Build < SplitKvStreams);

    /// <summary>Flash attention defaults to <c>auto</c>, which resolves to on where the backend supports it (CPU and CUDA).</summary>
    public bool FlashAttentionByDefault => !(Build < AutoDefaults);

    /// <summary><c>-ngl</c> defaults to every layer (−1); before, to 0 (the estimate still offloads every layer when a GPU is given).</summary>
    public bool AllLayersByDefault => !(Build < AutoDefaults);

    /// <summary><c>-ngl N</c> offloads the output layer and the last N − 1 blocks; before, the last N blocks and the output only when N &gt; n_layer.</summary>
    public bool OutputLayerCountsFirst => !(Build < OutputLayerFirst);

    /// <summary>The graph has the <c>inp_embd</c> input (allocated for the whole graph).</summary>
    public bool EmbeddingInputLeaf => !(Build < EmbeddingInput);

    /// <summary>A quantized K (V) cache with head_dim % 64 = 0 adds the Hadamard rotation matmuls to the graph.</summary>
    public bool RotatesQuantizedCache => !(Build < HadamardRotation);

    /// <summary>Cells the cache size is padded to (<c>llama_context</c> ctor, <c>llama_kv_cache</c> <c>get_padding</c>; memory-model.md §2.6).</summary>
    public int KvPadding(bool flashAttention) => Build switch
    {
        < KvPaddingRemoved => flashAttention ? 256 : 32,
        < KvPadding256 => 1,
        _ => 256,
    };

    /// <summary>Reads <c>engine_options.version</c>.</summary>
    /// <exception cref="FormatException">Neither a build tag, a known commit nor "current".</exception>
    public static LlamaCppVersion Parse(string? text, string origin = "scenario")
    {
        if (text is null || text.Trim().ToLowerInvariant() is "current" or "master" or "latest")
        {
            return Current;
        }

        string trimmed = text.Trim();
        if (trimmed.Length > 1 && trimmed[0] is 'b' or 'B'
            && int.TryParse(trimmed.AsSpan(1), NumberStyles.None, CultureInfo.InvariantCulture, out int build) && build > 0)
        {
            return new LlamaCppVersion(trimmed.ToLowerInvariant(), build);
        }

        if (trimmed.Length >= 7 && trimmed.All(char.IsAsciiHexDigit))
        {
            foreach ((string prefix, int? known) in KnownCommits)
            {
                if (trimmed.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || prefix.StartsWith(trimmed, StringComparison.OrdinalIgnoreCase))
                {
                    return new LlamaCppVersion(trimmed.ToLowerInvariant(), known);
                }
            }
        }

        throw new ModelFormatException(origin, "engine_options.version",
            $"is \"{text}\", which is not a llama.cpp build tag (b4823) or a known commit ({string.Join(", ", KnownCommits.Select(c => c.Prefix))}); give the build number the log prints (\"build: 4823 (564747bea)\").");
    }

    public override string ToString() => Build is int b ? $"b{b}" : Label;
}
