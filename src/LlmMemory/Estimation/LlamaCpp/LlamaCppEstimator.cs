using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// llama.cpp inference memory as llama.cpp itself allocates and prints it (research/llamacpp SPEC): model buffers per device,
/// the KV cache, compute buffers per backend and the output buffer, all reserved when the context is created.
/// </summary>
/// <remarks>
/// On a GPU run the components marked <see cref="Residence.Host"/> are the CPU-side buffers (<c>CPU_Mapped</c>,
/// <c>CPU_REPACK</c>, <c>CUDA_Host</c>); with <c>gpu: cpu</c> the host is the device and every buffer is
/// <see cref="Residence.Device"/>. With several GPUs each component's bytes are those of the most loaded GPU and
/// <see cref="MemoryComponent.AllDevices"/> sums the GPUs.
/// </remarks>
internal static class LlamaCppEstimator
{
    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ModelArchitecture model = resolved.Architecture!;
        LlamaCppSettings settings = LlamaCppSettings.Resolve(model, scenario, gpu);
        LlamaCppRun run = LlamaCppRun.For(model, scenario, settings);
        IReadOnlyList<MemoryComponent> components = settings.Gpus == 0 ? CpuComponents(run) : GpuComponents(run, out int device);
        string deviceLabel = settings.Gpus == 0 ? "host (CPU backend)" : settings.Gpus == 1 ? $"{settings.Backend}0" : $"{settings.Backend}{MostLoaded(run)} (most loaded of {settings.Gpus})";
        var notes = new List<string>(settings.Notes)
        {
            $"Weights: {run.WeightsLabel}.",
            "Every buffer is reserved when the context is created (llama.cpp plans the compute buffers for a full cache), so this is the memory before the first token.",
        };
        if (run.Model.Repacked > 0)
        {
            notes.Add("Host matrices in Q4_0, Q4_K or IQ4_NL get an interleaved copy for the CPU (CPU_REPACK), assuming an x86 CPU with AVX2; ARM CPUs repack other types.");
        }

        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, 0, model.ActiveParameterCount),
            Components = components,
            PeakPhase = "context creation (llama.cpp reserves every buffer up front)",
            DeviceCount = Math.Max(1, settings.Gpus),
            Device = deviceLabel,
            Facts =
            [
                new("kv_cells", run.Kv.Cells, "KV cells per stream (n_ctx padded as this build pads it)"),
                new("kv_streams", run.Kv.Streams, "KV streams: one per parallel sequence unless the cache is unified"),
                new("ubatch_tokens", run.Batch.Ubatch, "tokens of the worst-case ubatch the compute buffers are sized for"),
                new("gpu_layers", run.Placement.BlocksOnGpus + (run.Placement.OnGpu(model.LayerCount) ? 1 : 0), "layers on GPUs, the output layer counted"),
            ],
            Notes = notes,
        };
    }

    private static int MostLoaded(LlamaCppRun run) =>
        Enumerable.Range(0, run.Settings.Gpus).MaxBy(g => run.Model.PerGpu[g] + run.KvOn(g) + run.Compute[g]);

    private static List<MemoryComponent> CpuComponents(LlamaCppRun run)
    {
        int cpu = run.Cpu;
        var list = new List<MemoryComponent>
        {
            new("weights", ComponentKind.Weights, new ByteSize(run.Model.Host), HostWeightsFormula(run)),
        };
        if (run.Model.Repacked > 0)
        {
            list.Add(new("weights_repacked", ComponentKind.Weights, new ByteSize(run.Model.Repacked), RepackFormula(run)));
        }

        list.Add(new("kv_cache", ComponentKind.KvCache, new ByteSize(run.Kv.Bytes), KvFormula(run, run.Kv.LayerBytes.Length, run.Kv.Bytes)));
        list.Add(new("compute_buffer", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[cpu]), ComputeFormula(run, "CPU", run.Compute[cpu])));
        list.Add(new("output_buffer", ComponentKind.OutputBuffer, new ByteSize(run.Output), OutputFormula(run, "CPU")));
        return list;
    }

    private static List<MemoryComponent> GpuComponents(LlamaCppRun run, out int device)
    {
        LlamaCppSettings s = run.Settings;
        int gpus = s.Gpus;
        int cpu = run.Cpu;
        device = MostLoaded(run);
        int d = device;
        string name(int g) => $"{s.Backend}{g}";
        ByteSize? all(Func<int, long> perGpu) => gpus > 1 ? new ByteSize(Enumerable.Range(0, gpus).Sum(perGpu)) : null;
        string perDevice(Func<int, string> describe) => string.Join("; ", Enumerable.Range(0, gpus).Select(describe));

        var list = new List<MemoryComponent>
        {
            new("weights_gpu", ComponentKind.Weights, new ByteSize(run.Model.PerGpu[d]),
                perDevice(g => $"{name(g)}: {run.Placement.Describe(g)}, {run.Model.TensorsPerGpu[g]} tensors each padded to 128 B "
                    + $"(quantized rows to 512 elements) = {new ByteSize(run.Model.PerGpu[g])}"),
                AllDevices: all(g => run.Model.PerGpu[g])),
            new("weights_host", ComponentKind.Weights, new ByteSize(run.Model.Host), HostWeightsFormula(run), Residence.Host),
        };
        if (run.Model.Repacked > 0)
        {
            list.Add(new("weights_host_repacked", ComponentKind.Weights, new ByteSize(run.Model.Repacked), RepackFormula(run), Residence.Host));
        }

        list.Add(new("kv_cache", ComponentKind.KvCache, new ByteSize(run.KvOn(d)),
            perDevice(g => $"{name(g)}: {KvFormula(run, Layers(run, g), run.KvOn(g))}"), AllDevices: all(run.KvOn)));
        long hostKv = run.KvOn(cpu);
        if (hostKv > 0)
        {
            list.Add(new("kv_cache_host", ComponentKind.KvCache, new ByteSize(hostKv), "CPU layers: " + KvFormula(run, Layers(run, cpu), hostKv), Residence.Host));
        }

        list.Add(new("compute_buffer", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[d]),
            perDevice(g => ComputeFormula(run, name(g), run.Compute[g])), AllDevices: all(g => run.Compute[g])));
        list.Add(new("compute_buffer_host", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[cpu]),
            ComputeFormula(run, s.Backend + "_Host", run.Compute[cpu]), Residence.Host));
        list.Add(new("output_buffer", ComponentKind.OutputBuffer, new ByteSize(run.Output), OutputFormula(run, s.Backend + "_Host"), Residence.Host));
        list.Add(new("cuda_context", ComponentKind.Runtime, Constants.CudaContext,
            "CUDA context, kernels and cuBLAS handles on each GPU (outside llama.cpp's buffers; visible in nvidia-smi)", Counter: Counter.Device));
        return list;
    }

    private static int Layers(LlamaCppRun run, int device) => Enumerable.Range(0, run.Kv.LayerBytes.Length).Count(l => run.Placement.DeviceOf(l) == device);

    private static string HostWeightsFormula(LlamaCppRun run)
    {
        string what = run.Settings.Gpus == 0 ? "every tensor" : $"token_embd (always on the CPU){(run.Placement.Describe(run.Cpu) is var rest && rest != "no layer" ? " and " + rest : "")}";
        return run.Settings.Mmap
            ? $"{what}: CPU_Mapped spans the file from the first to the last of {run.Model.HostTensors} tensors not repacked = {new ByteSize(run.Model.Host)}"
            : $"{what}: {run.Model.HostTensors} tensors, each padded to 32 B (CPU buffer, no mmap) = {new ByteSize(run.Model.Host)}";
    }

    private static string RepackFormula(LlamaCppRun run) =>
        $"{run.Model.RepackedNames.Count} host matrices in {string.Join("/", ModelBuffers.RepackedTypes.Select(t => t.Name))} copied interleaved for the CPU backend (CPU_REPACK) = {new ByteSize(run.Model.Repacked)}";

    private static string KvFormula(LlamaCppRun run, int layers, long bytes)
    {
        KvCache kv = run.Kv;
        string token = kv.Layout.ValueWidth == 0
            ? $"{Text.N(kv.Layout.KeyWidth)} latent in {kv.Layout.KeyType.Name}"
            : kv.Layout.KeyType == kv.Layout.ValueType
                ? $"2 × {Text.N(kv.Layout.KeyWidth)} in {kv.Layout.KeyType.Name}"
                : $"{Text.N(kv.Layout.KeyWidth)} in {kv.Layout.KeyType.Name} + {Text.N(kv.Layout.ValueWidth)} in {kv.Layout.ValueType.Name}";
        string streams = kv.Streams > 1 ? $" × {kv.Streams} streams" : "";
        string sliding = kv.SlidingCells is int swa ? $" (sliding-window layers {Text.N(swa)} cells)" : "";
        return $"{layers} layers × {Text.N(kv.Cells)} cells{streams}{sliding} × {token} ({Text.N(kv.Layout.BytesPerTokenPerLayer)} B per cell and layer) = {new ByteSize(bytes)}";
    }

    private static string ComputeFormula(LlamaCppRun run, string backend, long bytes)
    {
        ReservedBatch b = run.Batch;
        return $"{backend}: {run.ComputeMethod}, ubatch {b.Ubatch} tokens ({b.Outputs} logit rows) against {Text.N(b.KvCells)} cells"
            + $"{(b.Streams > 1 ? $" × {b.Streams} streams" : "")}, flash attention {(b.FlashAttention ? "on" : "off")} = {new ByteSize(bytes)}";
    }

    private static string OutputFormula(LlamaCppRun run, string backend) =>
        $"{backend}: logits for one row per sequence, {Text.N(run.Output / 4 / Math.Max(1, run.Settings.Sequences))} vocab × 4 B × {Math.Max(1, run.Settings.Sequences)} sequence(s) = {new ByteSize(run.Output)}";
}
