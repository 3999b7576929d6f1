using LlmMemory.Estimation.Inference;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
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
        var list = new List<MemoryComponent> { MemoryComponent.Of("weights", ComponentKind.Weights, Formula.Size(new ByteSize(run.Model.Host)), HostWeights(run)) };
        if (run.Model.Repacked > 0)
        {
            list.Add(MemoryComponent.Of("weights_repacked", ComponentKind.Weights, Formula.Size(new ByteSize(run.Model.Repacked)), Repack(run)));
        }

        list.Add(MemoryComponent.Of("kv_cache", ComponentKind.KvCache, KvFormula(run, cpu)));
        list.Add(MemoryComponent.Of("compute_buffer", ComponentKind.ComputeBuffer, Formula.Size(new ByteSize(run.Compute[cpu])).After("CPU:"), Compute(run)));
        list.Add(MemoryComponent.Of("output_buffer", ComponentKind.OutputBuffer, OutputFormula(run).After("CPU:"), "logits for one row per sequence"));
        return list;
    }

    private static List<MemoryComponent> GpuComponents(LlamaCppRun run, int device)
    {
        LlamaCppSettings s = run.Settings;
        int cpu = run.Cpu;
        int[] gpus = [.. Enumerable.Range(0, s.Gpus)];
        string Name(int g) => $"{s.Backend}{g}";
        ByteSize? Sum(Func<int, long> perGpu) => gpus.Length > 1 ? new ByteSize(gpus.Sum(perGpu)) : null;
        // The most loaded GPU's figure is the formula; with several GPUs the others follow in the remark.
        string? Others(Func<int, string> describe) => gpus.Length > 1 ? "the GPUs: " + string.Join(", ", gpus.Select(describe)) : null;
        string Join(string? first, string? second) => first is null ? second ?? "" : second is null ? first : $"{first}; {second}";

        var list = new List<MemoryComponent>
        {
            MemoryComponent.Of("weights_gpu", ComponentKind.Weights, Formula.Size(new ByteSize(run.Model.PerGpu[device])).After($"{Name(device)}:"),
                Join($"{run.Placement.Describe(device)}, {Tensors(run.Model.TensorsPerGpu[device])} each padded to 128 B (quantized rows to 512 elements)",
                    Others(g => $"{Name(g)} {new ByteSize(run.Model.PerGpu[g])} ({run.Placement.Describe(g)})")),
                allDevices: Sum(g => run.Model.PerGpu[g])),
            MemoryComponent.Of("weights_host", ComponentKind.Weights, Formula.Size(new ByteSize(run.Model.Host)), HostWeights(run), Residence.Host),
        };
        if (run.Model.Repacked > 0)
        {
            list.Add(MemoryComponent.Of("weights_host_repacked", ComponentKind.Weights, Formula.Size(new ByteSize(run.Model.Repacked)), Repack(run), Residence.Host));
        }

        list.Add(MemoryComponent.Of("kv_cache", ComponentKind.KvCache, KvFormula(run, device).After($"{Name(device)}:"),
            Others(g => $"{Name(g)} {new ByteSize(run.KvOn(g))}"), allDevices: Sum(run.KvOn)));
        if (run.KvOn(cpu) > 0)
        {
            list.Add(MemoryComponent.Of("kv_cache_host", ComponentKind.KvCache, KvFormula(run, cpu).After("CPU layers:"), residence: Residence.Host));
        }

        list.Add(MemoryComponent.Of("compute_buffer", ComponentKind.ComputeBuffer, Formula.Size(new ByteSize(run.Compute[device])).After($"{Name(device)}:"),
            Join(Compute(run), Others(g => $"{Name(g)} {new ByteSize(run.Compute[g])}")), allDevices: Sum(g => run.Compute[g])));
        list.Add(MemoryComponent.Of("compute_buffer_host", ComponentKind.ComputeBuffer, Formula.Size(new ByteSize(run.Compute[cpu])).After($"{s.Backend}_Host:"),
            Compute(run), Residence.Host));
        list.Add(MemoryComponent.Of("output_buffer", ComponentKind.OutputBuffer, OutputFormula(run).After($"{s.Backend}_Host:"), "logits for one row per sequence",
            Residence.Host));
        list.Add(MemoryComponent.Of("cuda_context", ComponentKind.Runtime, Formula.Size(Constants.CudaContext(run.Settings.Gpu, training: false, flashAttention: false))
                .After($"{s.Backend} context, kernels and BLAS handles:"),
            "on each GPU, outside llama.cpp's buffers: only the device total (nvidia-smi) sees it", counter: Counter.Device));
        return list;
    }

    private static string Tensors(int count) => count == 1 ? "1 tensor" : $"{Text.N(count)} tensors";

    private static string TypeMix(LlamaCppRun run) =>
        string.Join(", ", run.Types.Values.GroupBy(t => t.Name).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} ×{g.Count()}"));

    private static string HostWeights(LlamaCppRun run)
    {
        string rest = run.Placement.Describe(run.Cpu);
        string what = run.Settings.Gpus == 0 ? "every tensor"
            : "token_embd (always on the CPU)" + (rest == "no layer" ? "" : " and " + rest);
        return run.Settings.Mmap
            ? $"{what}, memory-mapped (CPU_Mapped): the file range of {Tensors(run.Model.HostTensors)}, first to last, not counting repacked ones at the ends"
            : $"{what}: {Tensors(run.Model.HostTensors)}, each padded to 32 B (CPU buffer, no mmap)";
    }

    private static string Repack(LlamaCppRun run) =>
        $"{Tensors(run.Model.RepackedNames.Count)} of the host in {string.Join("/", ModelBuffers.RepackedTypes.Select(t => t.Name))} copied interleaved for the CPU backend (CPU_REPACK)";

    /// <summary>"32 layers × 8,192 cells × (1,024 × 1.0625 B + 1,024 × 1.0625 B)" for the layers on one device, by cell count (sliding layers hold fewer).</summary>
    private static Formula KvFormula(LlamaCppRun run, int device)
    {
        KvCache kv = run.Kv;
        KvLayout layout = kv.Layout;
        static Formula Row(long width, DataType type) => Formula.Count(width) * Formula.Bytes(type.BytesFor(width) / (double)width, type.Name);
        Formula perCell = layout.ValueWidth == 0 ? Row(layout.KeyWidth, layout.KeyType).Because("latent") : Row(layout.KeyWidth, layout.KeyType) + Row(layout.ValueWidth, layout.ValueType);
        IEnumerable<Formula> groups = Enumerable.Range(0, kv.LayerBytes.Length).Where(l => run.Placement.DeviceOf(l) == device)
            .GroupBy(l => kv.LayerBytes[l])
            .Select(g =>
            {
                long cells = g.Key / layout.BytesPerTokenPerLayer / kv.Streams;
                Formula f = Formula.Count(g.Count(), g.Count() == 1 ? "layer" : "layers") * Formula.Count(cells, "cells");
                return (kv.Streams > 1 ? f * Formula.Count(kv.Streams, "streams") : f) * perCell;
            });
        return Formula.SumOf(groups);
    }

    private static string Compute(LlamaCppRun run)
    {
        ReservedBatch b = run.Batch;
        return $"{run.ComputeMethod}, ubatch {b.Ubatch} tokens ({b.Outputs} logit rows) against {Text.N(b.KvCells)} cells"
            + $"{(b.Streams > 1 ? $" × {b.Streams} streams" : "")}, flash attention {(b.FlashAttention ? "on" : "off")}";
    }

    private static Formula OutputFormula(LlamaCppRun run)
    {
        int sequences = Math.Max(1, run.Settings.Sequences);
        return Formula.Count(run.Output / 4 / sequences, "vocab") * Formula.Bytes(4) * Formula.Count(sequences, sequences == 1 ? "sequence" : "sequences");
    }
}
