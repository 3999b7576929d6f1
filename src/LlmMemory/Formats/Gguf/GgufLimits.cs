namespace LlmMemory.Formats.Gguf;

/// <summary>Bounds on what a GGUF header may ask for, each with its reason; every count is also bounded by the bytes that remain.</summary>
public static class GgufLimits
{
    /// <summary>Tensors in one file: DeepSeek-V3/Kimi-K2 GGUFs hold about 1,100 (experts are fused per layer); 1 M stops absurd counts.</summary>
    public const long MaxTensors = 1 << 20;

    /// <summary>Metadata keys: real files have 20–60; 1 M stops absurd counts before anything is allocated.</summary>
    public const long MaxKeys = 1 << 20;

    /// <summary>Elements of one metadata array: the largest vocabularies (Gemma 3: 262,144 tokens) and merge lists are below 1 M.</summary>
    public const long MaxArrayElements = 1 << 26;

    /// <summary>Bytes of one string: chat templates are tens of KiB; 16 MiB stops a hostile length before it is allocated.</summary>
    public const long MaxStringBytes = 16 << 20;

    /// <summary>Bytes of a key or tensor name: llama.cpp caps tensor names at GGML_MAX_NAME = 64; keys are shorter than 100.</summary>
    public const long MaxNameBytes = 1 << 16;

    /// <summary>Tensor dimensions: GGML_MAX_DIMS = 4 (ggml.h).</summary>
    public const int MaxDimensions = 4;

    /// <summary>Bytes of the whole header (metadata and tensor infos): a 262k-token tokenizer with merges takes about 20 MB.</summary>
    public const long MaxHeaderBytes = 1L << 30;

    /// <summary>Largest numeric array whose values are kept (per-layer settings); longer arrays keep only their length.</summary>
    public const int MaxKeptArray = 4096;

    /// <summary>Split files of one model (<c>-00001-of-0000N.gguf</c>): gguf-split numbers them with 5 digits.</summary>
    public const int MaxSplits = 99_999;
}
