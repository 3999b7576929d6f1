using LlmMemory.Hardware;

namespace LlmMemory.Tests.Hardware;

public sealed class GpuCatalogTests
{
    [Theory]
    [InlineData("rtx-4090", "rtx-4090")]
    [InlineData("RTX 4090", "rtx-4090")]
    [InlineData("4090", "rtx-4090")]
    [InlineData("NVIDIA GeForce RTX 4090", "rtx-4090")]
    [InlineData("h200-141gb", "h200")]
    [InlineData("nvidia-h100-80gb", "h100-80gb")]
    [InlineData("A10", "a10")]
    [InlineData("MI300X", "mi300x")]
    [InlineData("mi300x", "mi300x")]
    [InlineData("t4", "t4")]
    [InlineData("l40s", "l40s")]
    [InlineData("a100 40gb", "a100-40gb")]
    [InlineData("a100-80gb", "a100-80gb")]
    [InlineData("A100_80GB", "a100-80gb")]
    [InlineData("h100 sxm", "h100-80gb")]
    [InlineData("H100-SXM5-80GB", "h100-80gb")]
    [InlineData("rtx 3090", "rtx-3090")]
    [InlineData("rtx 3090 ti", "rtx-3090-ti")]
    public void A_spelling_that_names_one_device_finds_it(string spelling, string id)
    {
        Assert.True(GpuCatalog.TryFind(spelling, out Gpu gpu));
        Assert.Equal(id, gpu.Id);
    }

    [Theory]
    [InlineData("L4", "l4-24gb")]
    [InlineData("l4", "l4-24gb")]
    [InlineData("nvidia l4", "l4-24gb")]
    public void A_whole_name_wins_over_a_longer_name_it_starts(string spelling, string id)
    {
        // "L4" is the whole model name of the NVIDIA L4 (data/gpus.json: "NVIDIA L4 24GB"); the L40S only starts with
        // the same letters, so it is not a second candidate.
        Assert.True(GpuCatalog.TryFind(spelling, out Gpu gpu));
        Assert.Equal(id, gpu.Id);
    }

    [Theory]
    [InlineData("h100", "h100-80gb, h100-pcie, h100-94gb")]
    [InlineData("a100", "a100-40gb, a100-80gb")]
    [InlineData("A100-SXM4", "a100-40gb, a100-80gb")]
    public void A_spelling_that_could_mean_several_devices_is_refused_with_them(string spelling, string candidates)
    {
        // The H100 comes as SXM5 80 GB, PCIe 80 GB and NVL 94 GB, the A100 (SXM4 or PCIe) with 40 or 80 GB (data/gpus.json): the usable
        // memory differs, so the tool asks instead of picking one.
        Assert.False(GpuCatalog.TryFind(spelling, out _));
        Assert.Equal($"It could be {candidates}.", GpuCatalog.Suggestion(spelling));
    }
}
