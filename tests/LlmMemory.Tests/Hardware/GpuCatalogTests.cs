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
    public void A_spelling_that_names_one_device_finds_it(string spelling, string id)
    {
        Assert.True(GpuCatalog.TryFind(spelling, out Gpu gpu));
        Assert.Equal(id, gpu.Id);
    }

    [Theory]
    [InlineData("h100", "h100-80gb, h100-pcie, h100-94gb")]
    [InlineData("a100", "a100-40gb, a100-80gb")]
    public void A_spelling_that_could_mean_several_devices_is_refused_with_them(string spelling, string candidates)
    {
        // The H100 comes as SXM5 80 GB, PCIe 80 GB and NVL 94 GB, the A100 with 40 or 80 GB (data/gpus.json): the usable
        // memory differs, so the tool asks instead of picking one.
        Assert.False(GpuCatalog.TryFind(spelling, out _));
        Assert.Equal($"It could be {candidates}.", GpuCatalog.Suggestion(spelling));
    }
}
