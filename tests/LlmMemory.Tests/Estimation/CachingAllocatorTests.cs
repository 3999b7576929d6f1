using LlmMemory.Estimation.Replay;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// The rules of PyTorch's CUDA caching allocator (c10/cuda/CUDACachingAllocator.cpp, default config; research/torch SPEC §8):
/// kMinBlockSize = 512, kSmallSize = 1 MiB, kSmallBuffer = 2 MiB, kMinLargeAlloc = 10 MiB, kLargeBuffer = 20 MiB,
/// kRoundLarge = 2 MiB; best fit; a small block splits when ≥ 512 B remain, a large one when more than 1 MiB remains.
/// </summary>
public sealed class CachingAllocatorTests
{
    private const long MiB = 1 << 20;

    [Theory]
    [InlineData(1, 512)]
    [InlineData(512, 512)]
    [InlineData(513, 1024)]
    [InlineData(4 * MiB + 1, 4 * MiB + 512)]
    public void Requests_are_rounded_up_to_512_bytes(long request, long rounded) =>
        Assert.Equal(rounded, CachingAllocator.RoundSize(request));

    [Theory]
    [InlineData(512, 2 * MiB)]            // small pool: a 2 MiB segment
    [InlineData(1 * MiB, 2 * MiB)]
    [InlineData(1 * MiB + 512, 20 * MiB)] // 1–10 MiB: a 20 MiB segment
    [InlineData(10 * MiB - 512, 20 * MiB)]
    [InlineData(10 * MiB, 10 * MiB)]      // ≥ 10 MiB: rounded up to 2 MiB
    [InlineData(11 * MiB, 12 * MiB)]
    public void A_cache_miss_reserves_a_segment_by_size_class(long size, long segment) =>
        Assert.Equal(segment, CachingAllocator.SegmentSize(size));

    [Fact]
    public void Small_blocks_are_carved_out_of_one_2_MiB_segment()
    {
        var allocator = new CachingAllocator();
        for (int i = 0; i < 4; i++)
        {
            allocator.Malloc(100_000);
        }

        // 4 × round512(100,000) = 4 × 100,352 B, all in the same small segment.
        Assert.Equal(4 * 100_352, allocator.Allocated);
        Assert.Equal(2 * MiB, allocator.Reserved);
    }

    [Fact]
    public void Requests_between_1_and_10_MiB_share_a_20_MiB_segment()
    {
        var allocator = new CachingAllocator();
        allocator.Malloc(3 * MiB);
        allocator.Malloc(3 * MiB);
        allocator.Malloc(3 * MiB);

        // The first 3 MiB request reserves 20 MiB and splits (17 MiB remain, more than 1 MiB); the next two reuse it.
        Assert.Equal(20 * MiB, allocator.Reserved);
        Assert.Equal(9 * MiB, allocator.Allocated);
    }

    [Fact]
    public void A_large_block_is_not_split_when_at_most_1_MiB_would_remain()
    {
        var allocator = new CachingAllocator();
        CachingAllocator.Block block = allocator.Malloc((11 * MiB) + 512);

        // Segment: 11 MiB + 512 rounded up to 12 MiB; the remainder (1 MiB − 512 B) stays in the block and counts as allocated.
        Assert.Equal(12 * MiB, allocator.Reserved);
        Assert.Equal(12 * MiB, block.Size);
        Assert.Equal(12 * MiB, allocator.Allocated);
    }

    [Fact]
    public void Freed_blocks_stay_reserved_merge_with_free_neighbours_and_serve_the_best_fit()
    {
        var allocator = new CachingAllocator();
        CachingAllocator.Block a = allocator.Malloc(20 * MiB);
        CachingAllocator.Block b = allocator.Malloc(40 * MiB);
        allocator.Free(a);
        allocator.Free(b);

        Assert.Equal(0, allocator.Allocated);
        Assert.Equal(60 * MiB, allocator.Reserved);

        // The 20 MiB free block is the smallest that fits 16 MiB: it is split (4 MiB remain), no new segment.
        CachingAllocator.Block c = allocator.Malloc(16 * MiB);
        Assert.Equal(a.Segment, c.Segment);
        Assert.Equal(60 * MiB, allocator.Reserved);

        // 4 MiB remain in segment 0 and 40 MiB in segment 1; 30 MiB fits only the second.
        Assert.Equal(b.Segment, allocator.Malloc(30 * MiB).Segment);
        Assert.Equal(60 * MiB, allocator.Reserved);
    }

    [Fact]
    public void Split_halves_of_one_segment_merge_back_when_both_are_free()
    {
        var allocator = new CachingAllocator();
        CachingAllocator.Block first = allocator.Malloc(3 * MiB);
        CachingAllocator.Block second = allocator.Malloc(3 * MiB);
        allocator.Free(first);
        allocator.Free(second);

        // The whole 20 MiB segment is one free block again: a 19 MiB request fits without a new segment.
        allocator.Malloc(19 * MiB);
        Assert.Equal(20 * MiB, allocator.Reserved);
    }

    [Fact]
    public void Out_of_memory_releases_free_segments_first_and_only_then_fails()
    {
        var allocator = new CachingAllocator(capacity: 100 * MiB);
        CachingAllocator.Block cached = allocator.Malloc(40 * MiB);
        allocator.Free(cached);

        // The cached 40 MiB block cannot serve 70 MiB, and 40 + 70 MiB exceed 100 MiB: the free segment is released first.
        allocator.Malloc(70 * MiB);
        Assert.Equal(70 * MiB, allocator.Reserved);

        // Nothing is free now: 70 + 40 MiB does not fit.
        Assert.Throws<ReplayOutOfMemoryException>(() => allocator.Malloc(40 * MiB));
    }
}
