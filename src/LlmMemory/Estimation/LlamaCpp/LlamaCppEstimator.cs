using LlmMemory.Sources;
using LlmMemory.Hardware;
using LlmMemory.Models;
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
    /// <summary>Runs already estimated (replaying ggml's graph costs milliseconds; see <see cref="EstimateCache"/>).</summary>
    private static readonly EstimateCache Runs = new();

    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        return Runs.GetOrAdd(resolved, scenario, () =>
        {
            ModelArchitecture model = resolved.Architecture!;
            LlamaCppSettings settings = LlamaCppSettings.Resolve(model, scenario, gpu);
            LlamaCppRun run;
            try
            {
                run = LlamaCppRun.For(model, scenario, settings);
            }
            catch (OverflowException)
            {
                // Every size is checked arithmetic on long: only absurd settings (millions of cells × ubatch × heads) get here.
                throw new ModelFormatException(scenario.Given.OriginOf("engine_options"), "engine_options",
                    "describes a llama.cpp context with a buffer beyond 2^63 bytes; lower n_ctx, n_ubatch or the number of sequences.");
            }

            return Render(resolved, scenario, gpu, settings, run);
        });
    }

    private static MemoryEstimate Render(ResolvedModel resolved, Scenario scenario, Gpu? gpu, LlamaCppSettings settings, LlamaCppRun run)
    {
        ModelArchitecture model = resolved.Architecture!;
        int device = MostLoaded(run);
        var notes = new List<string>(settings.Notes)
        {
            $"Weights: {run.WeightsLabel}; tensor types {TypeMix(run)}.",
            "Every buffer is reserved when the context is created (the compute buffers are planned for a full cache), so this is the memory before the first token.",
        };
        if (run.Model.Repacked > 0)
        {
            notes.Add("Host matrices in Q4_0, Q4_K or IQ4_NL get an interleaved copy for the CPU (CPU_REPACK), assuming an x86 CPU with AVX2; ARM CPUs repack other types.");
        }

        List<MemoryComponent> components = settings.Gpus == 0 ? CpuComponents(run) : GpuComponents(run, device);
        ByteSize loaded = Device(components, c => c.Kind is ComponentKind.Weights or ComponentKind.Runtime);
        ByteSize created = Device(components, _ => true);
        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, 0, model.ActiveParameterCount),
            Components = components,
            // llama.cpp allocates at two moments: the model at load, every context buffer at context creation; decoding adds nothing.
            Timeline = [new("load the model", loaded), new("create the context (KV cache, compute and output buffers)", created), new("prompt and generation", created)],
            PeakPhase = "context creation (llama.cpp reserves every buffer up front)",
            DeviceCount = Math.Max(1, settings.Gpus),
            Device = settings.Gpus switch
            {
                0 => "host (CPU backend)",
                1 => $"{settings.Backend}0",
                _ => $"{settings.Backend}{device}, the most loaded of {settings.Gpus}",
            },
            Facts =
            [
                new("kv_cells", run.Kv.Cells, "KV cells per stream (n_ctx padded as this build pads it)"),
                new("kv_streams", run.Kv.Streams, "KV streams: one per parallel sequence unless the cache is unified"),
                new("ubatch_tokens", run.Batch.Ubatch, "tokens of the worst-case ubatch the compute buffers are sized for"),
                new("gpu_layers", Enumerable.Range(0, model.LayerCount + 1).Count(run.Placement.OnGpu), "layers on GPUs, the output layer counted"),
            ],
            Notes = notes,
        };
    }

    private static ByteSize Device(IEnumerable<MemoryComponent> components, Func<MemoryComponent, bool> include) =>
        components.Where(c => c.Residence == Residence.Device && include(c)).Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);

    /// <summary>The GPU whose buffers (weights, KV, compute) add up to the most; 0 on a CPU run.</summary>
    private static int MostLoaded(LlamaCppRun run) =>
        run.Settings.Gpus == 0 ? 0 : Enumerable.Range(0, run.Settings.Gpus).MaxBy(g => run.Model.PerGpu[g] + run.KvOn(g) + run.Compute[g]);

    private static List<MemoryComponent> CpuComponents(LlamaCppRun run)
    {
        int cpu = run.Cpu;
        var list = new List<MemoryComponent> { new("weights", ComponentKind.Weights, new ByteSize(run.Model.Host), HostWeightsFormula(run)) };
        if (run.Model.Repacked > 0)
        {
            list.Add(new("weights_repacked", ComponentKind.Weights, new ByteSize(run.Model.Repacked), RepackFormula(run)));
        }

        list.Add(new("kv_cache", ComponentKind.KvCache, new ByteSize(run.Kv.Bytes), KvFormula(run, cpu)));
        list.Add(new("compute_buffer", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[cpu]), ComputeFormula(run, "CPU", cpu)));
        list.Add(new("output_buffer", ComponentKind.OutputBuffer, new ByteSize(run.Output), OutputFormula(run, "CPU")));
        return list;
    }

    private static List<MemoryComponent> GpuComponents(LlamaCppRun run, int device)
    {
        LlamaCppSettings s = run.Settings;
        int cpu = run.Cpu;
        int[] gpus = [.. Enumerable.Range(0, s.Gpus)];
        string Name(int g) => $"{s.Backend}{g}";
        ByteSize? Sum(Func<int, long> perGpu) => gpus.Length > 1 ? new ByteSize(gpus.Sum(perGpu)) : null;
        string PerGpu(Func<int, string> describe) => string.Join("; ", gpus.Select(describe));

        var list = new List<MemoryComponent>
        {
            new("weights_gpu", ComponentKind.Weights, new ByteSize(run.Model.PerGpu[device]),
                PerGpu(g => $"{Name(g)}: {run.Placement.Describe(g)}, {Tensors(run.Model.TensorsPerGpu[g])} each padded to 128 B "
                    + $"(quantized rows to 512 elements) = {new ByteSize(run.Model.PerGpu[g])}"),
                AllDevices: Sum(g => run.Model.PerGpu[g])),
            new("weights_host", ComponentKind.Weights, new ByteSize(run.Model.Host), HostWeightsFormula(run), Residence.Host),
        };
        if (run.Model.Repacked > 0)
        {
            list.Add(new("weights_host_repacked", ComponentKind.Weights, new ByteSize(run.Model.Repacked), RepackFormula(run), Residence.Host));
        }

        list.Add(new("kv_cache", ComponentKind.KvCache, new ByteSize(run.KvOn(device)), PerGpu(g => $"{Name(g)}: {KvFormula(run, g)}"),
            AllDevices: Sum(run.KvOn)));
        if (run.KvOn(cpu) > 0)
        {
            list.Add(new("kv_cache_host", ComponentKind.KvCache, new ByteSize(run.KvOn(cpu)), "CPU layers: " + KvFormula(run, cpu), Residence.Host));
        }

        list.Add(new("compute_buffer", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[device]), PerGpu(g => ComputeFormula(run, Name(g), g)),
            AllDevices: Sum(g => run.Compute[g])));
        list.Add(new("compute_buffer_host", ComponentKind.ComputeBuffer, new ByteSize(run.Compute[cpu]), ComputeFormula(run, s.Backend + "_Host", cpu),
            Residence.Host));
        list.Add(new("output_buffer", ComponentKind.OutputBuffer, new ByteSize(run.Output), OutputFormula(run, s.Backend + "_Host"), Residence.Host));
        list.Add(new("cuda_context", ComponentKind.Runtime, Constants.CudaContext(run.Settings.Gpu, training: false, flashAttention: false),
            $"{s.Backend} context, kernels and BLAS handles on each GPU, outside llama.cpp's buffers: only the device total (nvidia-smi) sees it", Counter: Counter.Device));
        return list;
    }

    private static string Tensors(int count) => count == 1 ? "1 tensor" : $"{Text.N(count)} tensors";

    private static string TypeMix(LlamaCppRun run) =>
        string.Join(", ", run.Types.Values.GroupBy(t => t.Name).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} ×{g.Count()}"));

    private static string HostWeightsFormula(LlamaCppRun run)
    {
        string rest = run.Placement.Describe(run.Cpu);
        string what = run.Settings.Gpus == 0 ? "every tensor"
            : "token_embd (always on the CPU)" + (rest == "no layer" ? "" : " and " + rest);
        return run.Settings.Mmap
            ? $"{what}, memory-mapped (CPU_Mapped): the file range of {Tensors(run.Model.HostTensors)}, first to last, not counting repacked ones at the ends = {new ByteSize(run.Model.Host)}"
            : $"{what}: {Tensors(run.Model.HostTensors)}, each padded to 32 B (CPU buffer, no mmap) = {new ByteSize(run.Model.Host)}";
    }

    private static string RepackFormula(LlamaCppRun run) =>
        $"{Tensors(run.Model.RepackedNames.Count)} of the host in {string.Join("/", ModelBuffers.RepackedTypes.Select(t => t.Name))} copied interleaved for the CPU backend (CPU_REPACK) = {new ByteSize(run.Model.Repacked)}";

    /// <summary>"33 layers × 32,768 cells × 2 × 1,024 in Q8_0 (2,176 B per cell and layer) = 2.19 GiB" for the layers on one device.</summary>
    private static string KvFormula(LlamaCppRun run, int device)
    {
        KvCache kv = run.Kv;
        int layers = Enumerable.Range(0, kv.LayerBytes.Length).Count(l => run.Placement.DeviceOf(l) == device);
        string token = kv.Layout.ValueWidth == 0
            ? $"{Text.N(kv.Layout.KeyWidth)} latent in {kv.Layout.KeyType.Name}"
            : kv.Layout.KeyType == kv.Layout.ValueType && kv.Layout.KeyWidth == kv.Layout.ValueWidth
                ? $"2 × {Text.N(kv.Layout.KeyWidth)} in {kv.Layout.KeyType.Name}"
                : $"{Text.N(kv.Layout.KeyWidth)} in {kv.Layout.KeyType.Name} + {Text.N(kv.Layout.ValueWidth)} in {kv.Layout.ValueType.Name}";
        string streams = kv.Streams > 1 ? $" × {kv.Streams} streams" : "";
        string sliding = kv.SlidingCells is int swa ? $" (sliding-window layers {Text.N(swa)} cells)" : "";
        return $"{layers} layers × {Text.N(kv.Cells)} cells{streams}{sliding} × {token} ({Text.N(kv.Layout.BytesPerTokenPerLayer)} B per cell and layer) = {new ByteSize(run.KvOn(device))}";
    }

    private static string ComputeFormula(LlamaCppRun run, string backend, int device)
    {
        ReservedBatch b = run.Batch;
        return $"{backend}: {run.ComputeMethod}, ubatch {b.Ubatch} tokens ({b.Outputs} logit rows) against {Text.N(b.KvCells)} cells"
            + $"{(b.Streams > 1 ? $" × {b.Streams} streams" : "")}, flash attention {(b.FlashAttention ? "on" : "off")} = {new ByteSize(run.Compute[device])}";
    }

    private static string OutputFormula(LlamaCppRun run, string backend)
    {
        int sequences = Math.Max(1, run.Settings.Sequences);
        return $"{backend}: logits for one row per sequence, {Text.N(run.Output / 4 / sequences)} vocab × 4 B × {sequences} = {new ByteSize(run.Output)}";
    }
}
