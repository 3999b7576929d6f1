using LlmMemory.Estimation.LlamaCpp;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>Layers per device (llama-model.cpp load_tensors; memory-model.md §1.9).</summary>
public sealed class PlacementTests
{
    [Fact]
    public void Current_ngl_1_offloads_only_the_output_layer()
    {
        // i_gpu_start = max(n_layer + 1 − N, 0) = 32; act_gpu_layers = min(N, n_layer + 1) = 1: only il = 32, the output layer.
        var placement = new Placement(gpus: 1, layers: 32, gpuLayers: 1, outputLayerFirst: true);
        Assert.True(placement.OnGpu(32));
        Assert.Equal(0, placement.BlocksOnGpus);
    }

    [Fact]
    public void Before_November_2025_ngl_10_offloads_the_last_ten_blocks_and_not_the_output_layer()
    {
        // ggml-ci b4823 log, save-load-state -ngl 10 on pythia-2.8b: "offloading 10 repeating layers to GPU",
        // "offloaded 10/33 layers to GPU" — i_gpu_start = max(32 − 10, 0) = 22: blocks 22–31.
        var placement = new Placement(gpus: 1, layers: 32, gpuLayers: 10, outputLayerFirst: false);
        Assert.Equal(10, placement.BlocksOnGpus);
        Assert.False(placement.OnGpu(32));
        Assert.True(placement.OnGpu(22));
        Assert.False(placement.OnGpu(21));
    }

    [Fact]
    public void Two_equal_GPUs_split_64_blocks_33_and_31_with_the_output_layer_on_the_second()
    {
        // splits = [0.5, 1.0]; layer il goes to upper_bound(splits, il / 65): il = 0..32 (32/65 = 0.492) → GPU 0, 33..64 → GPU 1.
        var placement = new Placement(gpus: 2, layers: 64, gpuLayers: 99, outputLayerFirst: true);
        Assert.Equal(33, Enumerable.Range(0, 64).Count(l => placement.DeviceOf(l) == 0));
        Assert.Equal(31, Enumerable.Range(0, 64).Count(l => placement.DeviceOf(l) == 1));
        Assert.Equal(1, placement.OutputDevice);
        Assert.True(placement.FullOffload);
    }

    [Fact]
    public void Without_GPUs_every_layer_is_on_the_CPU()
    {
        var placement = new Placement(gpus: 0, layers: 4, gpuLayers: 99, outputLayerFirst: true);
        Assert.All(Enumerable.Range(-1, 6), l => Assert.Equal(placement.Cpu, placement.DeviceOf(l)));
        Assert.False(placement.FullOffload);
    }
}
