namespace LlmMemory.Estimation.Inference;

/// <summary>PyTorch's caching allocator holds more than the live tensors: freed blocks stay cached (docs/memory-model.md §8).</summary>
internal static class AllocatorSlack
{
    /// <summary>Cached-but-free bytes at the peak: a share of the transient (non-weight) memory, which is what churns.</summary>
    public static MemoryComponent For(IReadOnlyList<MemoryComponent> allocated)
    {
        long transient = allocated.Where(c => c.Counter == Counter.Allocated && c.Kind != ComponentKind.Weights).Sum(c => c.Bytes.Bytes);
        long slack = (long)(transient * Constants.AllocatorCacheShare);
        return new MemoryComponent("allocator_cache", ComponentKind.AllocatorReserve, new ByteSize(slack),
            $"{Text.N(Constants.AllocatorCacheShare)} × {new ByteSize(transient)} of transient memory cached by the allocator", Counter: Counter.Reserved);
    }
}
