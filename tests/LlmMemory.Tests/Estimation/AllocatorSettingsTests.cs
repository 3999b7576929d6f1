using LlmMemory.Estimation.Replay;
using LlmMemory.Tests.Cli;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// <c>alloc_conf</c> is read as PyTorch reads <c>PYTORCH_CUDA_ALLOC_CONF</c>: <c>ConfigTokenizer</c> (',', ':', '[', ']' are
/// tokens, whitespace is dropped) and the checks of <c>AcceleratorAllocatorConfig::parseArgs</c> / <c>CUDAAllocatorConfig::parseArgs</c>
/// (c10/core/AllocatorConfig.{h,cpp}, c10/cuda/CUDAAllocatorConfig.cpp).
/// </summary>
public sealed class AllocatorSettingsTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void Keys_and_values_are_read_with_whitespace_dropped_and_sizes_in_MiB()
    {
        AllocatorSettings s = AllocatorSettings.Parse(" expandable_segments : True , max_split_size_mb:512,max_non_split_rounding_mb:64 ", "test");

        Assert.True(s.ExpandableSegments);
        Assert.Equal(512 * MiB, s.MaxSplitSize);
        Assert.Equal(64 * MiB, s.MaxNonSplitRounding);
    }

    [Fact]
    public void The_defaults_are_PyTorchs_no_split_limit_and_20_MiB_rounding()
    {
        AllocatorSettings s = AllocatorSettings.Parse("backend:native", "test");

        Assert.Equal(AllocatorSettings.Default.MaxSplitSize, s.MaxSplitSize);
        Assert.Equal(long.MaxValue, s.MaxSplitSize);
        Assert.Equal(20 * MiB, s.MaxNonSplitRounding); // max_non_split_rounding_size_{kLargeBuffer}
        Assert.False(s.ExpandableSegments);
    }

    [Fact]
    public void One_division_count_applies_to_every_interval_and_a_list_sets_intervals_by_boundary()
    {
        Assert.All(Enumerable.Range(0, 16), i => Assert.Equal(4, AllocatorSettings.Parse("roundup_power2_divisions:4", "test").RoundupDivisions[i]));

        // [64:8,256:4,>:1]: 64 MiB is interval log2(64) = 6 and, being the first, also fills 0–5 with 8; 256 MiB is interval 8
        // (interval 7 keeps 0); '>' fills 9–15 with 1.
        IReadOnlyList<int> d = AllocatorSettings.Parse("roundup_power2_divisions:[64:8,256:4,>:1]", "test").RoundupDivisions;
        Assert.Equal([8, 8, 8, 8, 8, 8, 8, 0, 4, 1, 1, 1, 1, 1, 1, 1], d);
    }

    [Theory]
    [InlineData("expandable_segments:true", "PyTorch takes True or False")]
    [InlineData("max_split_size_mb:10", "at least 20")]
    [InlineData("max_split_size_mb:lots", "not a whole number")]
    [InlineData("roundup_power2_divisions:3", "must be a power of two")]
    [InlineData("garbage_collection_threshold:1.5", "(0.0, 1.0)")]
    [InlineData("backend:cudaMallocAsync", "does not model")]
    [InlineData("pinned_use_cuda_host_register:True", "changes no device memory here")]
    [InlineData("max_split_mb:512", "'max_split_mb', which is not a key")]
    [InlineData("expandable_segments", "ends inside expandable_segments")]
    [InlineData("expandable_segments:True;max_split_size_mb:512", "PyTorch takes True or False")]
    public void A_bad_setting_is_one_line_naming_alloc_conf_and_what_is_wrong(string conf, string problem)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => AllocatorSettings.Parse(conf, "--alloc-conf"));

        Assert.Equal("alloc_conf", e.Key);
        Assert.Contains(problem, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void The_CLI_refuses_an_unknown_key_with_exit_2_and_one_line()
    {
        (int code, string output, string error) = CliTests.Run("estimate", "tinyllama-1.1b", "--alloc-conf", "expandable:True");

        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("'alloc_conf' has 'expandable', which is not a key of PyTorch's CUDA allocator config", error, StringComparison.Ordinal);
    }
}
