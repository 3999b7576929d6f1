namespace LlmMemory.Formats.Safetensors;

/// <summary>Bounds on what a safetensors header may ask for, each with its reason.</summary>
public static class SafetensorsLimits
{
    /// <summary>
    /// Largest JSON header: 100,000,000 bytes, the <c>MAX_HEADER_SIZE</c> of the safetensors library itself
    /// (huggingface/safetensors <c>safetensors/src/tensor.rs</c>), which refuses larger headers.
    /// </summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>Dimensions of one tensor: PyTorch checkpoints use at most 5 (conv3d); 16 leaves room and stops absurd ranks.</summary>
    public const int MaxRank = 16;

    /// <summary>Tensors in one header: DeepSeek-V3's largest shard holds a few thousand, its whole checkpoint 91,991 (per-expert fp8 weights and scales).</summary>
    public const int MaxTensors = 1 << 20;

    /// <summary>Nesting of the header JSON: object → tensor entry → shape array is 3 levels; deeper input is not a safetensors header.</summary>
    public const int MaxJsonDepth = 3;

    /// <summary>Bytes of a <c>model.safetensors.index.json</c>: DeepSeek-V3's weight map of 91,991 names is about 8.9 MB.</summary>
    public const int MaxIndexBytes = 64 << 20;

    /// <summary>Shards one index may name: the largest public checkpoints have a few hundred (DeepSeek-V3: 163).</summary>
    public const int MaxShards = 65_536;
}
