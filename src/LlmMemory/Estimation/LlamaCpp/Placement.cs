namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// Which device holds each layer (<c>llama_model::load_tensors</c>, memory-model.md §1.9): layers 0..n_layer−1 are the blocks,
/// layer n_layer is the output layer (<c>output</c>, <c>output_norm</c>); the input layer (<c>token_embd</c>) is always on the CPU.
/// </summary>
/// <remarks>
/// <c>-ngl N</c> offloads layers <c>i_gpu_start ≤ il &lt; i_gpu_start + min(N, n_layer + 1)</c>, with <c>i_gpu_start =
/// max(n_layer + 1 − N, 0)</c> on current builds (the output layer goes first) and <c>max(n_layer − N, 0)</c> on older ones
/// (the output layer only when N &gt; n_layer). Offloaded layers are split over the GPUs by
/// <c>upper_bound(splits, float(il − i_gpu_start) / act_gpu_layers)</c>, where <c>splits</c> are the cumulative shares of
/// <c>--tensor-split</c>, by default proportional to each GPU's free memory: equal shares for equal GPUs.
/// </remarks>
internal sealed class Placement
{
    private readonly int _start;
    private readonly int _active;
    private readonly float[] _splits;

    public Placement(int gpus, int layers, int gpuLayers, bool outputLayerFirst)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(gpus);
        ArgumentOutOfRangeException.ThrowIfNegative(gpuLayers);
        Gpus = gpus;
        Layers = layers;
        int n = gpus == 0 ? 0 : gpuLayers;
        _start = Math.Max((outputLayerFirst ? layers + 1 : layers) - n, 0);
        _active = Math.Min(n, layers + 1);
        _splits = new float[gpus];
        float sum = 0;
        for (int i = 0; i < gpus; i++)
        {
            sum += 1f;
            _splits[i] = sum;
        }

        for (int i = 0; i < gpus; i++)
        {
            _splits[i] /= sum;
        }
    }

    public int Gpus { get; }

    public int Layers { get; }

    /// <summary>The CPU backend's number (after the GPUs).</summary>
    public int Cpu => Gpus;

    /// <summary>Every block and the output layer are on GPUs.</summary>
    public bool FullOffload => Gpus > 0 && _start == 0 && _active == Layers + 1;

    public int OutputDevice => DeviceOf(Layers);

    /// <summary>Blocks (not counting the output layer) on GPUs.</summary>
    public int BlocksOnGpus => Enumerable.Range(0, Layers).Count(OnGpu);

    public bool OnGpu(int layer) => layer >= 0 && DeviceOf(layer) != Cpu;

    /// <summary>The device of layer <paramref name="layer"/> (−1, the input layer, is on the CPU).</summary>
    public int DeviceOf(int layer)
    {
        if (layer < _start || layer - _start >= _active)
        {
            return Cpu;
        }

        float share = (float)(layer - _start) / _active;
        int gpu = 0;
        while (gpu < Gpus && _splits[gpu] <= share)
        {
            gpu++;
        }

        return Math.Min(gpu, Gpus - 1);
    }

    /// <summary>"blocks 22–31", "blocks 0–32 and the output layer", "the output layer", "no layer".</summary>
    public string Describe(int device)
    {
        int[] blocks = Enumerable.Range(0, Layers).Where(l => DeviceOf(l) == device).ToArray();
        bool output = DeviceOf(Layers) == device;
        string range = blocks.Length == 0 ? "" : blocks.Length == 1 ? $"block {blocks[0]}" : $"blocks {blocks[0]}–{blocks[^1]}";
        return (range.Length, output) switch
        {
            (0, true) => "the output layer",
            (0, false) => "no layer",
            (_, true) => range + " and the output layer",
            _ => range,
        };
    }
}
