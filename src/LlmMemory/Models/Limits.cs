namespace LlmMemory.Models;

/// <summary>Upper bounds on model dimensions read from any file, each far above every published model.</summary>
/// <remarks>
/// They exist so that a hostile or corrupted file fails with a clear message instead of asking for an absurd
/// tensor (a 70-byte GGUF once claimed 3.4e38 parameters: huggingface.js <c>gguf.ts</c>, MAX_TENSOR_DIM) or
/// overflowing a product. Each comment says how far above today's largest models the bound is.
/// </remarks>
public static class Limits
{
    /// <summary>Transformer blocks: the largest published models have about 128 (Llama-3.1-405B: 126).</summary>
    public const int MaxLayers = 4096;

    /// <summary>Hidden width: Llama-3.1-405B uses 16,384.</summary>
    public const int MaxHidden = 1 << 20;

    /// <summary>FFN width: Llama-3.1-405B uses 53,248.</summary>
    public const int MaxIntermediate = 1 << 22;

    /// <summary>Attention heads: the largest use 128.</summary>
    public const int MaxHeads = 1 << 16;

    /// <summary>Vocabulary rows: Gemma 3 uses 262,208.</summary>
    public const int MaxVocabulary = 1 << 24;

    /// <summary>Routed experts per MoE layer: DeepSeek-V3 uses 256, Kimi-K2 384.</summary>
    public const int MaxExperts = 1 << 16;

    /// <summary>Positions / context length: the longest published contexts are 10 M tokens.</summary>
    public const int MaxPositions = 1 << 28;

    /// <summary>
    /// Tokens in one micro-batch (batch × seq): 2^32, far above any real step (a 405B pre-training step is about 16 M tokens
    /// over all GPUs), low enough that bytes per token × tokens stays inside a long.
    /// </summary>
    public const long MaxTokensPerStep = 1L << 32;

    /// <summary>Total parameters of one model: 10^14 is 100× the largest published (1 T).</summary>
    public const long MaxParameters = 100_000_000_000_000;

    /// <summary>Bytes of a config.json: real ones are a few KiB.</summary>
    public const int MaxConfigBytes = 16 << 20;
}
