namespace LlmMemory.Estimation.Replay;

/// <summary>
/// PyTorch's CUDA caching allocator with its default configuration (no expandable segments, no
/// <c>max_split_size_mb</c>, no garbage-collection threshold): the rules that decide <c>memory_allocated</c> and
/// <c>memory_reserved</c> (docs/memory-model.md §8; research/torch SPEC §8).
/// </summary>
/// <remarks>
/// Constants and rules of <c>c10/cuda/CUDACachingAllocator.cpp</c>: every request is rounded up to 512 B
/// (<c>kMinBlockSize</c>); requests of at most 1 MiB (<c>kSmallSize</c>) are served from 2 MiB segments
/// (<c>kSmallBuffer</c>); larger requests below 10 MiB (<c>kMinLargeAlloc</c>) get a 20 MiB segment (<c>kLargeBuffer</c>),
/// others a segment rounded up to 2 MiB (<c>kRoundLarge</c>). A request takes the smallest cached free block of its pool
/// that is large enough (best fit); the block is split when the remainder is at least 512 B (small pool) or more than
/// 1 MiB (large pool), otherwise the remainder stays in the allocated block and counts as allocated. A freed block
/// merges with free neighbours of its segment and stays cached: segments are never returned to the driver, except that
/// a segment that does not fit the device first releases every fully free segment and retries once.
/// </remarks>
internal sealed class CachingAllocator(long? capacity = null)
{
    public const long MinBlockSize = 512;
    public const long SmallSize = 1L << 20;
    public const long SmallBuffer = 2L << 20;
    public const long LargeBuffer = 20L << 20;
    public const long MinLargeAlloc = 10L << 20;
    public const long RoundLarge = 2L << 20;

    private readonly Pool _smallPool = new();
    private readonly Pool _largePool = new();
    private readonly List<Block> _segments = [];
    private int _nextSegment;

    /// <summary>Bytes of live blocks (<c>memory_allocated</c>).</summary>
    public long Allocated { get; private set; }

    /// <summary>Bytes of all segments (<c>memory_reserved</c>).</summary>
    public long Reserved { get; private set; }

    public long PeakAllocated { get; private set; }

    public long PeakReserved { get; private set; }

    /// <summary>The request size after rounding to <see cref="MinBlockSize"/>.</summary>
    public static long RoundSize(long bytes) => bytes < MinBlockSize ? MinBlockSize : (bytes + MinBlockSize - 1) / MinBlockSize * MinBlockSize;

    /// <summary>The segment a cache miss of <paramref name="size"/> rounded bytes creates.</summary>
    public static long SegmentSize(long size) =>
        size <= SmallSize ? SmallBuffer : size < MinLargeAlloc ? LargeBuffer : (size + RoundLarge - 1) / RoundLarge * RoundLarge;

    /// <exception cref="ReplayOutOfMemoryException">A new segment does not fit the capacity even after releasing the cache.</exception>
    public Block Malloc(long bytes)
    {
        long size = RoundSize(bytes);
        bool small = size <= SmallSize;
        Pool pool = small ? _smallPool : _largePool;
        Block? block = pool.TakeBestFit(size);
        if (block is null)
        {
            block = NewSegment(SegmentSize(size), small);
        }

        long remainder = block.Size - size;
        if (small ? remainder >= MinBlockSize : remainder > SmallSize)
        {
            var rest = new Block(block.Segment, block.Offset + size, remainder, small) { Previous = block, Next = block.Next };
            if (block.Next is not null)
            {
                block.Next.Previous = rest;
            }

            block.Next = rest;
            block.Size = size;
            pool.Add(rest);
        }

        block.IsFree = false;
        Allocated += block.Size;
        PeakAllocated = Math.Max(PeakAllocated, Allocated);
        return block;
    }

    public void Free(Block block)
    {
        ArgumentNullException.ThrowIfNull(block);
        if (block.IsFree)
        {
            throw new InvalidOperationException("Block freed twice.");
        }

        Allocated -= block.Size;
        block.IsFree = true;
        Pool pool = block.IsSmall ? _smallPool : _largePool;
        if (block.Next is { IsFree: true } next)
        {
            pool.Remove(next);
            block.Size += next.Size;
            block.Next = next.Next;
            if (next.Next is not null)
            {
                next.Next.Previous = block;
            }
        }

        if (block.Previous is { IsFree: true } previous)
        {
            pool.Remove(previous);
            previous.Size += block.Size;
            previous.Next = block.Next;
            if (block.Next is not null)
            {
                block.Next.Previous = previous;
            }

            block = previous;
        }

        pool.Add(block);
    }

    /// <summary>Starts the peak counters from the current state (<c>torch.cuda.reset_peak_memory_stats</c>).</summary>
    public void ResetPeaks()
    {
        PeakAllocated = Allocated;
        PeakReserved = Reserved;
    }

    /// <summary>Frees every entirely free segment (what the allocator does before it reports out of memory).</summary>
    private void ReleaseCached()
    {
        foreach (Block first in _segments.Where(b => b.IsFree && b.Next is null && b.Previous is null).ToArray())
        {
            (first.IsSmall ? _smallPool : _largePool).Remove(first);
            _segments.Remove(first);
            Reserved -= first.Size;
        }
    }

    private Block NewSegment(long size, bool small)
    {
        if (capacity is long limit && Reserved + size > limit)
        {
            ReleaseCached();
            if (Reserved + size > limit)
            {
                throw new ReplayOutOfMemoryException(size, Reserved, Allocated, limit);
            }
        }

        var block = new Block(_nextSegment++, 0, size, small);
        _segments.Add(block);
        Reserved += size;
        PeakReserved = Math.Max(PeakReserved, Reserved);
        return block;
    }

    /// <summary>A block of a segment: allocated, or free and cached in its pool.</summary>
    internal sealed class Block(int segment, long offset, long size, bool small)
    {
        public int Segment { get; } = segment;

        public long Offset { get; } = offset;

        public long Size { get; set; } = size;

        public bool IsSmall { get; } = small;

        public bool IsFree { get; set; } = true;

        public Block? Previous { get; set; }

        public Block? Next { get; set; }
    }

    /// <summary>The cached free blocks of one pool, ordered by size, then segment, then offset (<c>BlockComparatorSize</c>).</summary>
    private sealed class Pool
    {
        private readonly List<Block> _blocks = [];

        public void Add(Block block) => _blocks.Insert(~Search(block.Size, block.Segment, block.Offset), block);

        public void Remove(Block block) => _blocks.RemoveAt(Search(block.Size, block.Segment, block.Offset));

        /// <summary>Removes and returns the smallest block of at least <paramref name="size"/> bytes (ties: older segment, lower offset).</summary>
        public Block? TakeBestFit(long size)
        {
            int index = ~Search(size, -1, -1);
            if (index == _blocks.Count)
            {
                return null;
            }

            Block block = _blocks[index];
            _blocks.RemoveAt(index);
            return block;
        }

        /// <summary>The index of the key, or the complement of where it would be inserted.</summary>
        private int Search(long size, int segment, long offset)
        {
            int low = 0;
            int high = _blocks.Count - 1;
            while (low <= high)
            {
                int middle = (low + high) >>> 1;
                Block b = _blocks[middle];
                int order = (b.Size, b.Segment, b.Offset).CompareTo((size, segment, offset));
                if (order == 0)
                {
                    return middle;
                }

                if (order < 0)
                {
                    low = middle + 1;
                }
                else
                {
                    high = middle - 1;
                }
            }

            return ~low;
        }
    }
}

/// <summary>The replayed run needs a segment the device cannot hold (<c>torch.OutOfMemoryError</c>).</summary>
internal sealed class ReplayOutOfMemoryException(long request, long reserved, long allocated, long capacity)
    : Exception($"cannot reserve {request / (double)(1 << 20):0.#} MiB: reserved {reserved / (double)(1 << 20):0.#} MiB, allocated {allocated / (double)(1 << 20):0.#} MiB, capacity {capacity / (double)(1 << 20):0.#} MiB");
