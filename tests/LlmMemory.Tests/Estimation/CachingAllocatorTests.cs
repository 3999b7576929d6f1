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

    [Theory]
    [InlineData(5 * MiB, 5 * MiB)]                        // a multiple of the 1 MiB step: kept
    [InlineData(5 * MiB + 1, 6 * MiB)]                    // 4–8 MiB in 4 divisions: steps of 1 MiB
    [InlineData(8 * MiB, 8 * MiB)]                        // a power of two: kept
    [InlineData(1536, 1536)]                              // ≤ 512 B × 4 = 2,048 B: rounded to 512 B only
    [InlineData(3000, 3072)]                              // 2,048–4,096 B in 4 divisions: steps of 512 B
    [InlineData(100 * MiB + 1, 112 * MiB)]                // 64–128 MiB in 4 divisions: steps of 16 MiB
    public void Roundup_power2_divisions_rounds_a_request_up_to_the_next_division_of_its_power_of_two_interval(long request, long rounded) =>
        Assert.Equal(rounded, CachingAllocator.RoundSize(request, AllocatorSettings.Parse("roundup_power2_divisions:4", "test")));

    [Fact]
    public void Expandable_segments_grow_one_segment_by_20_MiB_pages_so_a_slightly_larger_request_reuses_the_freed_block()
    {
        var expandable = new CachingAllocator(settings: AllocatorSettings.Parse("expandable_segments:True", "test"));
        var standard = new CachingAllocator();
        foreach (CachingAllocator allocator in new[] { expandable, standard })
        {
            allocator.Free(allocator.Malloc(30 * MiB));
            allocator.Malloc(32 * MiB);
        }

        // Expandable: 30 MiB maps ⌈30 / 20⌉ = 2 pages (40 MiB); freed, the whole 40 MiB is one free block, which serves
        // 32 MiB (split: 8 MiB remain). Reserved 40 MiB.
        Assert.Equal(40 * MiB, expandable.Reserved);
        Assert.Equal(32 * MiB, expandable.Allocated);

        // Default: a 30 MiB segment, cached; 32 MiB does not fit it and cudaMallocs a 32 MiB segment: 62 MiB.
        Assert.Equal(62 * MiB, standard.Reserved);
    }

    [Fact]
    public void Expandable_segments_map_requests_of_at_most_1_MiB_in_2_MiB_pages_of_the_small_pool()
    {
        var allocator = new CachingAllocator(settings: AllocatorSettings.Parse("expandable_segments:True", "test"));
        allocator.Malloc(100_000);
        allocator.Malloc(3 * MiB);

        // 100,352 B (rounded to 512 B) maps one 2 MiB page of the small pool's segment; 3 MiB maps one 20 MiB page of the large pool's.
        Assert.Equal((2 * MiB) + (20 * MiB), allocator.Reserved);
    }

    [Fact]
    public void Out_of_memory_unmaps_the_free_pages_of_an_expandable_segment_and_maps_the_request_after_them()
    {
        var allocator = new CachingAllocator(capacity: 100 * MiB, settings: AllocatorSettings.Parse("expandable_segments:True", "test"));
        CachingAllocator.Block a = allocator.Malloc(40 * MiB);
        allocator.Malloc(20 * MiB);
        allocator.Free(a);

        // Mapped: [0, 40) free, [40, 60) live; 50 MiB needs 3 more pages after them (60 MiB): 60 + 60 > 100 MiB. The allocator
        // unmaps the free pages [0, 40) (reserved 20 MiB) and retries: [0, 40) is too small, so the 3 pages go after [40, 60).
        allocator.Malloc(50 * MiB);
        Assert.Equal(20 * MiB + (60 * MiB), allocator.Reserved);
        Assert.Equal(70 * MiB, allocator.Allocated);
    }

    [Fact]
    public void Max_split_size_keeps_oversize_blocks_whole_and_serves_only_requests_within_20_MiB_of_them()
    {
        var allocator = new CachingAllocator(settings: AllocatorSettings.Parse("max_split_size_mb:40", "test"));
        CachingAllocator.Block a = allocator.Malloc(100 * MiB);
        allocator.Free(a);

        // 90 MiB ≥ max_split_size and the cached 100 MiB block < 90 + 20 MiB (max_non_split_rounding): it serves the request
        // whole, unsplit, and all 100 MiB count as allocated.
        CachingAllocator.Block b = allocator.Malloc(90 * MiB);
        Assert.Equal(a.Segment, b.Segment);
        Assert.Equal(100 * MiB, allocator.Allocated);
        allocator.Free(b);

        // 70 MiB: the 100 MiB block is ≥ 70 + 20 MiB, refused; a new 70 MiB segment (170 MiB). 30 MiB < 40 MiB may not take an
        // oversize block at all: another segment (200 MiB). The default allocator would have split the cached 100 MiB for both.
        allocator.Malloc(70 * MiB);
        Assert.Equal(170 * MiB, allocator.Reserved);
        allocator.Malloc(30 * MiB);
        Assert.Equal(200 * MiB, allocator.Reserved);
    }

    [Fact]
    public void Max_split_size_out_of_memory_releases_a_cached_oversize_segment_before_failing()
    {
        var allocator = new CachingAllocator(capacity: 150 * MiB, settings: AllocatorSettings.Parse("max_split_size_mb:40", "test"));
        allocator.Free(allocator.Malloc(100 * MiB));

        // 60 MiB cannot use the cached 100 MiB block (100 ≥ 60 + 20) and 100 + 60 > 150 MiB: release_available_cached_blocks
        // frees the smallest cached oversize block of at least max(60, 40) MiB, the 100 MiB one; the new 60 MiB segment fits.
        allocator.Malloc(60 * MiB);
        Assert.Equal(60 * MiB, allocator.Reserved);
    }

    [Fact]
    public void A_block_freed_on_one_stream_does_not_serve_another_stream()
    {
        // BlockComparatorSize orders a pool by stream before size, and get_free_block fails when the best fit belongs to
        // another stream: the 40 MiB freed on stream 1 stays cached for stream 1, so the default stream's 40 MiB request
        // makes a second 40 MiB segment (80 MiB reserved); stream 1 then reuses its own block without a new segment.
        var allocator = new CachingAllocator();
        allocator.Free(allocator.Malloc(40 * MiB, stream: 1));
        allocator.Malloc(40 * MiB);
        Assert.Equal(80 * MiB, allocator.Reserved);

        allocator.Malloc(40 * MiB, stream: 1);
        Assert.Equal(80 * MiB, allocator.Reserved);
        Assert.Equal(80 * MiB, allocator.Allocated);
    }

    [Fact]
    public void Each_stream_grows_an_expandable_segment_of_its_own()
    {
        // find_expandable_block considers only the segments of the request's stream: 30 MiB on stream 1 and 30 MiB on the
        // default stream map 2 × 40 MiB (whole 20 MiB pages each), where one shared segment would map 60 MiB.
        var allocator = new CachingAllocator(settings: AllocatorSettings.Parse("expandable_segments:True", "test"));
        allocator.Malloc(30 * MiB, stream: 1);
        allocator.Malloc(30 * MiB);
        Assert.Equal(80 * MiB, allocator.Reserved);
    }
}
