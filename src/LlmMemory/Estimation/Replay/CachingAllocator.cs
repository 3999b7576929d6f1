namespace LlmMemory.Estimation.Replay;

/// <summary>
/// PyTorch's CUDA caching allocator, with the settings of <c>PYTORCH_CUDA_ALLOC_CONF</c> that change device memory
/// (<see cref="AllocatorSettings"/>): the rules that decide <c>memory_allocated</c> and <c>memory_reserved</c>
/// (docs/memory-model.md §8; research/torch SPEC §8).
/// </summary>
/// <remarks>
/// Constants and rules of <c>c10/cuda/CUDACachingAllocator.cpp</c>: every request is rounded up to 512 B
/// (<c>kMinBlockSize</c>), or to a power-of-two division with <c>roundup_power2_divisions</c> (<c>round_size</c>); requests of
/// at most 1 MiB (<c>kSmallSize</c>) are served from 2 MiB segments (<c>kSmallBuffer</c>); larger requests below 10 MiB
/// (<c>kMinLargeAlloc</c>) get a 20 MiB segment (<c>kLargeBuffer</c>), others a segment rounded up to 2 MiB (<c>kRoundLarge</c>;
/// <c>get_allocation_size</c>). A request takes the smallest cached free block of its pool that is large enough (best fit,
/// <c>get_free_block</c>) — but never a block of at least <c>max_split_size</c> for a smaller request, nor one
/// <c>max_non_split_rounding</c> or more larger than a request of at least <c>max_split_size</c>. The block is split
/// (<c>should_split</c>) when the remainder is at least 512 B (small pool, or expandable segments) or, for a large request
/// below <c>max_split_size</c>, more than 1 MiB; otherwise the remainder stays in the allocated block and counts as
/// allocated. A freed block merges with free neighbours of its segment and stays cached: segments are never returned to the
/// driver, except that a segment that does not fit the device first releases cached oversize blocks
/// (<c>release_available_cached_blocks</c>), then every fully free segment (<c>release_cached_blocks</c>), and retries.
/// With <c>expandable_segments</c>, each pool has one segment that maps pages (2 MiB small, 20 MiB large) at its lowest
/// free address as it grows (<c>try_allocate_expandable_block</c>); reserved memory is the pages mapped, and only the out of
/// memory path unmaps the pages of free blocks (<c>unmap_block</c>). Every pool is per stream: a block freed by one stream
/// serves only that stream's later requests (FSDP2's all-gather and reduce-scatter streams keep their own segments).
/// </remarks>
internal sealed class CachingAllocator(long? capacity = null, AllocatorSettings? settings = null)
{
    public const long MinBlockSize = 512;
    public const long SmallSize = 1L << 20;
    public const long SmallBuffer = 2L << 20;
    public const long LargeBuffer = 20L << 20;
    public const long MinLargeAlloc = 10L << 20;
    public const long RoundLarge = 2L << 20;

    /// <summary>
    /// The virtual size of an expandable segment. PyTorch reserves 9/8 of the device's memory (<c>find_expandable_block</c>);
    /// the replay takes it as unbounded, which differs only when pages unmapped by an out-of-memory retry leave holes and
    /// the rest of that range is too small for the request.
    /// </summary>
    private const long ExpandableAddressSpace = 1L << 50;

    private readonly AllocatorSettings _settings = settings ?? AllocatorSettings.Default;
    /// <summary>The small and large pools of each stream: a stream's requests are served only from blocks of its own segments.</summary>
    private readonly Dictionary<int, (Pool Small, Pool Large)> _pools = [];
    private readonly List<Block> _segments = [];
    private int _nextSegment;

    /// <summary>Bytes of live blocks (<c>memory_allocated</c>).</summary>
    public long Allocated { get; private set; }

    /// <summary>Bytes of all segments, or of the mapped pages of expandable segments (<c>memory_reserved</c>).</summary>
    public long Reserved { get; private set; }

    public long PeakAllocated { get; private set; }

    public long PeakReserved { get; private set; }

    /// <summary>
    /// The request size after rounding (<c>round_size</c>): to 512 B, or, when the request's interval has divisions and the
    /// request exceeds 512 B × divisions, up to the next of the equal steps between the powers of two around it
    /// (<c>roundup_power2_next_division</c>: 1,200 B with 4 divisions of 1,024–2,048 rounds to 1,280 B).
    /// </summary>
    public static long RoundSize(long bytes, AllocatorSettings? settings = null)
    {
        if (bytes < MinBlockSize)
        {
            return MinBlockSize;
        }

        int divisions = (settings ?? AllocatorSettings.Default).DivisionsFor(bytes);
        if (divisions <= 1 || bytes <= MinBlockSize * divisions)
        {
            return (bytes + MinBlockSize - 1) / MinBlockSize * MinBlockSize;
        }

        if ((bytes & (bytes - 1)) == 0)
        {
            return bytes;
        }

        long floor = 1L << (63 - (int)ulong.LeadingZeroCount((ulong)bytes));
        long step = floor >> (63 - (int)ulong.LeadingZeroCount((ulong)divisions));
        if (step == 0)
        {
            return floor << 1;
        }

        long down = bytes & ~(step - 1);
        return down == bytes ? bytes : down + step;
    }

    /// <summary>The segment a cache miss of <paramref name="size"/> rounded bytes creates (<c>get_allocation_size</c>).</summary>
    public static long SegmentSize(long size) =>
        size <= SmallSize ? SmallBuffer : size < MinLargeAlloc ? LargeBuffer : (size + RoundLarge - 1) / RoundLarge * RoundLarge;

    /// <summary>
    /// A block of at least <paramref name="bytes"/> for work on <paramref name="stream"/> (0: the default stream). Free blocks
    /// are cached per stream: <c>BlockComparatorSize</c> orders a pool by stream first and <c>get_free_block</c> fails when the
    /// best fit belongs to another stream, so a request never takes a block another stream freed, and a cache miss makes a
    /// segment of its own stream (expandable segments too: <c>find_expandable_block</c> looks only at the stream's own).
    /// </summary>
    /// <exception cref="ReplayOutOfMemoryException">The request does not fit the capacity even after releasing the cache.</exception>
    public Block Malloc(long bytes, int stream = 0)
    {
        long size = RoundSize(bytes, _settings);
        bool small = size <= SmallSize;
        Pool pool = PoolOf(small, stream);
        Block block = FreeBlock(pool, size)
            ?? (_settings.ExpandableSegments ? ExpandableBlock(pool, size, small, stream) : NewSegment(pool, size, small, stream));
        long remainder = block.Size - size;
        if (small || _settings.ExpandableSegments ? remainder >= MinBlockSize : size < _settings.MaxSplitSize && remainder > SmallSize)
        {
            var rest = new Block(block.Segment, block.Offset + size, remainder, small, stream) { Previous = block, Next = block.Next };
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
        Pool pool = PoolOf(block.IsSmall, block.Stream);
        pool.Add(Merge(pool, block));
    }

    private Pool PoolOf(bool small, int stream)
    {
        if (!_pools.TryGetValue(stream, out (Pool Small, Pool Large) pools))
        {
            pools = (new Pool(), new Pool());
            _pools[stream] = pools;
        }

        return small ? pools.Small : pools.Large;
    }

    /// <summary>Starts the peak counters from the current state (<c>torch.cuda.reset_peak_memory_stats</c>).</summary>
    public void ResetPeaks()
    {
        PeakAllocated = Allocated;
        PeakReserved = Reserved;
    }

    /// <summary>
    /// <c>get_free_block</c>: the best fit of the pool, where a free block at the end of an expandable segment's mapped pages
    /// counts with the unmapped space after it (so any other fitting block is taken first); refused when it is an oversize
    /// block for a smaller request or too much larger than an oversize request.
    /// </summary>
    private Block? FreeBlock(Pool pool, long size)
    {
        int index = pool.FirstFitting(size);
        if (index == pool.Count)
        {
            return null;
        }

        while (pool[index].Next is { IsMapped: false } && index + 1 < pool.Count && Expandable(pool[index + 1]) < Expandable(pool[index]))
        {
            index++;
        }

        Block block = pool[index];
        if ((size < _settings.MaxSplitSize && block.Size >= _settings.MaxSplitSize)
            || (size >= _settings.MaxSplitSize && block.Size >= size + _settings.MaxNonSplitRounding))
        {
            return null;
        }

        pool.RemoveAt(index);
        return block;
    }

    private static long Expandable(Block block) => block.Size + (block.Next is { IsMapped: false } next ? next.Size : 0);

    /// <summary>A new segment for a cache miss (<c>alloc_block</c>), releasing cached blocks first when it would not fit.</summary>
    private Block NewSegment(Pool pool, long size, bool small, int stream)
    {
        long segment = SegmentSize(size);
        if (!Fits(segment) && !(ReleaseOversize(pool, size) && Fits(segment)))
        {
            ReleaseCached();
            if (!Fits(segment))
            {
                throw new ReplayOutOfMemoryException(segment, Reserved, Allocated, capacity!.Value);
            }
        }

        var block = new Block(_nextSegment++, 0, segment, small, stream);
        _segments.Add(block);
        Grow(segment);
        return block;
    }

    private bool Fits(long bytes) => capacity is not long limit || Reserved + bytes <= limit;

    private void Grow(long bytes)
    {
        Reserved += bytes;
        PeakReserved = Math.Max(PeakReserved, Reserved);
    }

    /// <summary>
    /// <c>release_available_cached_blocks</c> (only with <c>max_split_size</c>): frees the smallest cached oversize segment of at
    /// least the request (and at least <c>max_split_size</c>), or else oversize segments from the largest down until as
    /// many bytes are freed; false when that is not enough.
    /// </summary>
    private bool ReleaseOversize(Pool pool, long size)
    {
        if (_settings.MaxSplitSize == long.MaxValue || _settings.ExpandableSegments)
        {
            return false;
        }

        long key = Math.Max(size, _settings.MaxSplitSize);
        int index = pool.FirstFitting(key);
        if (index < pool.Count)
        {
            Release(pool, pool[index]);
            return true;
        }

        long released = 0;
        for (int i = pool.Count - 1; i >= 0 && released < key && pool[i].Size >= _settings.MaxSplitSize; i--)
        {
            released += pool[i].Size;
            Release(pool, pool[i]);
        }

        return released >= key;
    }

    /// <summary><c>release_block</c>: returns one cached whole segment to the driver.</summary>
    private void Release(Pool pool, Block segment)
    {
        pool.Remove(segment);
        _segments.Remove(segment);
        Reserved -= segment.Size;
    }

    /// <summary>
    /// <c>release_cached_blocks</c>: frees every entirely free segment, and unmaps the whole pages of every free block of
    /// the expandable segments (what the allocator does before it reports out of memory).
    /// </summary>
    private void ReleaseCached()
    {
        foreach (Block first in _segments.Where(b => b.IsFree && b.Next is null && b.Previous is null).ToArray())
        {
            Release(PoolOf(first.IsSmall, first.Stream), first);
        }

        if (_settings.ExpandableSegments)
        {
            foreach (Pool pool in _pools.Values.SelectMany(p => new[] { p.Large, p.Small }).ToArray())
            {
                foreach (Block block in pool.ToArray())
                {
                    Unmap(pool, block);
                }
            }
        }
    }

    /// <summary>
    /// <c>try_allocate_expandable_block</c>: at the lowest address of an expandable segment where a free block and the unmapped
    /// space after it hold the request, maps the pages it lacks and merges them into one free block; when the pages do not
    /// fit the device, unmaps the free pages (<see cref="ReleaseCached"/>) and tries once more.
    /// </summary>
    private Block ExpandableBlock(Pool pool, long size, bool small, int stream)
    {
        for (int attempt = 0; ; attempt++)
        {
            Block? candidate = ExpandableCandidate(pool, size, small, stream);
            if (!candidate.IsMapped)
            {
                candidate = Map(pool, candidate, Math.Min(candidate.Size, size), small);
            }

            while (candidate is not null && candidate.Size < size)
            {
                candidate = Map(pool, candidate.Next!, Math.Min(size - candidate.Size, candidate.Next!.Size), small);
            }

            if (candidate is not null)
            {
                pool.Remove(candidate);
                return candidate;
            }

            if (attempt == 1)
            {
                throw new ReplayOutOfMemoryException(size, Reserved, Allocated, capacity!.Value);
            }

            ReleaseCached();
        }
    }

    /// <summary>
    /// <c>find_expandable_block</c>: the first unmapped range (by address) which, with the free block before it and the free or
    /// unmapped blocks after it, has room for <paramref name="size"/>; a new segment when none has.
    /// </summary>
    private Block ExpandableCandidate(Pool pool, long size, bool small, int stream)
    {
        foreach (Block unmapped in pool.Unmapped)
        {
            Block start = unmapped.Previous is { IsFree: true, IsMapped: true } before ? before : unmapped;
            long room = 0;
            for (Block? b = start; b is { IsFree: true } && room < size; b = b.Next)
            {
                room += b.Size;
            }

            if (room >= size)
            {
                return start;
            }
        }

        var segment = new Block(_nextSegment++, 0, ExpandableAddressSpace, small, stream) { IsMapped = false };
        pool.AddUnmapped(segment);
        return segment;
    }

    /// <summary>
    /// <c>map_block</c>: maps whole pages (2 MiB small pool, 20 MiB large) at the start of an unmapped block to cover
    /// <paramref name="bytes"/>, merged with the free mapped blocks beside it; null when the pages do not fit the device.
    /// </summary>
    private Block? Map(Pool pool, Block unmapped, long bytes, bool small)
    {
        long page = small ? SmallBuffer : LargeBuffer;
        long mapped = Math.Min((bytes + page - 1) / page * page, unmapped.Size);
        if (!Fits(mapped))
        {
            return null;
        }

        pool.RemoveUnmapped(unmapped);
        if (mapped < unmapped.Size)
        {
            var rest = new Block(unmapped.Segment, unmapped.Offset + mapped, unmapped.Size - mapped, small, unmapped.Stream)
            {
                IsMapped = false, Previous = unmapped, Next = unmapped.Next,
            };
            if (unmapped.Next is not null)
            {
                unmapped.Next.Previous = rest;
            }

            unmapped.Next = rest;
            unmapped.Size = mapped;
            pool.AddUnmapped(rest);
        }

        unmapped.IsMapped = true;
        Grow(mapped);
        Block block = Merge(pool, unmapped);
        pool.Add(block);
        return block;
    }

    /// <summary><c>unmap_block</c>: the whole pages inside a free block of an expandable segment go back to the driver.</summary>
    private void Unmap(Pool pool, Block block)
    {
        long page = block.IsSmall ? SmallBuffer : LargeBuffer;
        long begin = (block.Offset + page - 1) / page * page;
        long end = (block.Offset + block.Size) / page * page;
        if (begin >= end)
        {
            return;
        }

        pool.Remove(block);
        if (begin > block.Offset)
        {
            pool.Add(Insert(block, before: true, begin - block.Offset));
        }

        if (end < block.Offset + block.Size)
        {
            pool.Add(Insert(block, before: false, block.Offset + block.Size - end));
        }

        block.IsMapped = false;
        Reserved -= block.Size;
        foreach (Block? neighbour in new[] { block.Previous, block.Next })
        {
            if (neighbour is { IsMapped: false })
            {
                pool.RemoveUnmapped(neighbour);
            }
        }

        pool.AddUnmapped(Merge(pool, block));
    }

    /// <summary>Cuts <paramref name="bytes"/> off the start or the end of <paramref name="block"/> as a free block of its own.</summary>
    private static Block Insert(Block block, bool before, long bytes)
    {
        var piece = new Block(block.Segment, before ? block.Offset : block.Offset + block.Size - bytes, bytes, block.IsSmall, block.Stream);
        if (before)
        {
            piece.Previous = block.Previous;
            piece.Next = block;
            if (block.Previous is not null)
            {
                block.Previous.Next = piece;
            }

            block.Previous = piece;
            block.Offset += bytes;
        }
        else
        {
            piece.Next = block.Next;
            piece.Previous = block;
            if (block.Next is not null)
            {
                block.Next.Previous = piece;
            }

            block.Next = piece;
        }

        block.Size -= bytes;
        return piece;
    }

    /// <summary>
    /// <c>try_merge_blocks</c>: merges a free block with its free neighbours of the same mapping state (removing them from the
    /// pool) and returns the merged block, which is in no pool.
    /// </summary>
    private static Block Merge(Pool pool, Block block)
    {
        if (block.Next is { IsFree: true } next && next.IsMapped == block.IsMapped)
        {
            if (next.IsMapped)
            {
                pool.Remove(next);
            }

            Absorb(block, next);
        }

        if (block.Previous is { IsFree: true } previous && previous.IsMapped == block.IsMapped)
        {
            if (previous.IsMapped)
            {
                pool.Remove(previous);
            }

            Absorb(previous, block);
            block = previous;
        }

        return block;
    }

    /// <summary>Joins <paramref name="second"/>, the block after <paramref name="first"/> in its segment, into <paramref name="first"/>.</summary>
    private static void Absorb(Block first, Block second)
    {
        first.Size += second.Size;
        first.Next = second.Next;
        if (second.Next is not null)
        {
            second.Next.Previous = first;
        }
    }

    /// <summary>A block of a segment: allocated, free and cached in its pool, or (expandable segments) unmapped address space.</summary>
    internal sealed class Block(int segment, long offset, long size, bool small, int stream = 0)
    {
        public int Segment { get; } = segment;

        /// <summary>The stream whose segment this is (0: the default stream); its blocks serve that stream only.</summary>
        public int Stream { get; } = stream;

        public long Offset { get; set; } = offset;

        public long Size { get; set; } = size;

        public bool IsSmall { get; } = small;

        public bool IsFree { get; set; } = true;

        /// <summary>Backed by physical pages; false only for the unmapped ranges of expandable segments.</summary>
        public bool IsMapped { get; set; } = true;

        public Block? Previous { get; set; }

        public Block? Next { get; set; }
    }

    /// <summary>
    /// The cached free blocks of one pool, ordered by size, then segment, then offset (<c>BlockComparatorSize</c>), and the
    /// unmapped ranges of its expandable segments, ordered by address (<c>BlockComparatorAddress</c>).
    /// </summary>
    /// <remarks>
    /// A training replay caches thousands of free blocks (2,128 at once for Llama-3.1-70B) and adds or removes one at
    /// every allocation and free (about 41,000 each in one 70B training step), so one sorted array spent most of a replay
    /// moving its tail (<c>List.Insert</c>/<c>RemoveAt</c>). The order lives in sorted chunks of at most
    /// <see cref="ChunkLimit"/> blocks instead: an insert or removal moves at most one chunk, and an index is found by
    /// counting whole chunks. The order, and so every block the allocator picks, is the same.
    /// </remarks>
    private sealed class Pool : IEnumerable<Block>
    {
        /// <summary>A chunk that grows past this many blocks is split in two halves.</summary>
        private const int ChunkLimit = 256;

        private readonly List<List<Block>> _chunks = [];
        private readonly SortedSet<Block> _unmapped = new(Comparer<Block>.Create((a, b) => (a.Segment, a.Offset).CompareTo((b.Segment, b.Offset))));

        public int Count { get; private set; }

        public IEnumerable<Block> Unmapped => _unmapped;

        public Block this[int index]
        {
            get
            {
                (int chunk, int at) = Locate(index);
                return _chunks[chunk][at];
            }
        }

        public void Add(Block block)
        {
            (int chunk, int at, bool found) = Find(block.Size, block.Segment, block.Offset);
            if (found)
            {
                throw new InvalidOperationException("Block cached twice.");
            }

            if (_chunks.Count == 0)
            {
                _chunks.Add([]);
            }

            if (chunk == _chunks.Count)
            {
                chunk--;
                at = _chunks[chunk].Count;
            }

            List<Block> blocks = _chunks[chunk];
            blocks.Insert(at, block);
            Count++;
            if (blocks.Count > ChunkLimit)
            {
                int half = blocks.Count / 2;
                _chunks.Insert(chunk + 1, blocks.GetRange(half, blocks.Count - half));
                blocks.RemoveRange(half, blocks.Count - half);
            }
        }

        public void Remove(Block block)
        {
            (int chunk, int at, bool found) = Find(block.Size, block.Segment, block.Offset);
            if (!found)
            {
                throw new InvalidOperationException("Block not cached.");
            }

            RemoveFrom(chunk, at);
        }

        public void RemoveAt(int index)
        {
            (int chunk, int at) = Locate(index);
            RemoveFrom(chunk, at);
        }

        public void AddUnmapped(Block block) => _unmapped.Add(block);

        public void RemoveUnmapped(Block block) => _unmapped.Remove(block);

        /// <summary>The index of the smallest block of at least <paramref name="size"/> bytes (ties: older segment, lower offset); <see cref="Count"/> when none.</summary>
        public int FirstFitting(long size)
        {
            (int chunk, int at, _) = Find(size, -1, -1);
            int index = at;
            for (int c = 0; c < chunk; c++)
            {
                index += _chunks[c].Count;
            }

            return index;
        }

        public IEnumerator<Block> GetEnumerator() => _chunks.SelectMany(blocks => blocks).GetEnumerator();

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        private void RemoveFrom(int chunk, int at)
        {
            _chunks[chunk].RemoveAt(at);
            if (_chunks[chunk].Count == 0)
            {
                _chunks.RemoveAt(chunk);
            }

            Count--;
        }

        /// <summary>The chunk and position of the <paramref name="index"/>-th block in order.</summary>
        private (int Chunk, int At) Locate(int index)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(index);
            ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
            int chunk = 0;
            while (index >= _chunks[chunk].Count)
            {
                index -= _chunks[chunk].Count;
                chunk++;
            }

            return (chunk, index);
        }

        /// <summary>
        /// Where the key is (found) or would be inserted: the first chunk whose last block is not below the key, and the
        /// position in it; the chunk count when every block is below the key.
        /// </summary>
        private (int Chunk, int At, bool Found) Find(long size, int segment, long offset)
        {
            int low = 0;
            int high = _chunks.Count - 1;
            while (low <= high)
            {
                int middle = (low + high) >>> 1;
                List<Block> candidate = _chunks[middle];
                if (Compare(candidate[^1], size, segment, offset) < 0)
                {
                    low = middle + 1;
                }
                else
                {
                    high = middle - 1;
                }
            }

            if (low == _chunks.Count)
            {
                return (low, 0, false);
            }

            List<Block> blocks = _chunks[low];
            int first = 0;
            int last = blocks.Count - 1;
            while (first <= last)
            {
                int middle = (first + last) >>> 1;
                int order = Compare(blocks[middle], size, segment, offset);
                if (order == 0)
                {
                    return (low, middle, true);
                }

                if (order < 0)
                {
                    first = middle + 1;
                }
                else
                {
                    last = middle - 1;
                }
            }

            return (low, first, false);
        }

        private static int Compare(Block block, long size, int segment, long offset) =>
            block.Size != size ? block.Size.CompareTo(size)
            : block.Segment != segment ? block.Segment.CompareTo(segment)
            : block.Offset.CompareTo(offset);
    }
}

/// <summary>The replayed run needs a segment the device cannot hold (<c>torch.OutOfMemoryError</c>).</summary>
internal sealed class ReplayOutOfMemoryException(long request, long reserved, long allocated, long capacity)
    : Exception($"cannot reserve {request / (double)(1 << 20):0.#} MiB: reserved {reserved / (double)(1 << 20):0.#} MiB, allocated {allocated / (double)(1 << 20):0.#} MiB, capacity {capacity / (double)(1 << 20):0.#} MiB");
