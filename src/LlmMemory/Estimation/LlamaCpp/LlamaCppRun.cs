using LlmMemory.Estimation.Weights;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>Every buffer of one llama.cpp context, per backend: the numbers the estimate's components are made of.</summary>
internal sealed record LlamaCppRun
{
    public required LlamaCppSettings Settings { get; init; }

    public required Placement Placement { get; init; }

    /// <summary>The file's tensors and their types.</summary>
    public required IReadOnlyList<GgufTensor> Tensors { get; init; }

    public required IReadOnlyDictionary<string, DataType> Types { get; init; }

    /// <summary>What the weights are: "q4_k_m (llama-quant.cpp rules)", "as stored in the GGUF file".</summary>
    public required string WeightsLabel { get; init; }

    public required ModelBuffers Model { get; init; }

    public required KvCache Kv { get; init; }

    public required ReservedBatch Batch { get; init; }

    /// <summary>Compute buffer of each GPU, then the CPU (CUDA_Host on a GPU run; the only one on a CPU run).</summary>
    public required long[] Compute { get; init; }

    /// <summary>How the compute buffers were obtained, for the formula.</summary>
    public required string ComputeMethod { get; init; }

    /// <summary>Logits reserved for n_seq_max rows (<c>llama_context::output_reserve</c>).</summary>
    public required long Output { get; init; }

    public int Cpu => Settings.Gpus;

    /// <summary>KV bytes of the blocks on <paramref name="device"/>.</summary>
    public long KvOn(int device) => Enumerable.Range(0, Kv.LayerBytes.Length).Where(l => Placement.DeviceOf(l) == device).Sum(l => Kv.LayerBytes[l]);

    /// <summary>Sizes every buffer of a llama.cpp context for <paramref name="model"/> under <paramref name="settings"/>.</summary>
    public static LlamaCppRun For(ModelArchitecture model, Scenario scenario, LlamaCppSettings settings)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(settings);
        LlamaCppVersion version = settings.Version;
        IReadOnlyList<GgufTensor> tensors = GgufTensorList.Of(model);
        (IReadOnlyDictionary<string, DataType> types, string label) = WeightTypes(model, scenario, tensors, version);
        var placement = new Placement(settings.Gpus, model.LayerCount, settings.GpuLayers, version.OutputLayerCountsFirst);
        bool tied = !tensors.Any(t => t.Name == "output.weight");
        ModelBuffers buffers = ModelBuffers.Of(tensors, types, placement, tied, settings.Mmap, repack: true);
        KvCache kv = KvCache.For(model, settings.Context, settings.Sequences, settings.UnifiedCache, version.KvPadding(settings.FlashAttention),
            settings.Ubatch, settings.KeyType, settings.ValueType);

        // llama_context: n_batch is at most the (padded) context, n_ubatch at most n_batch; sched_reserve rounds the worst-case
        // ubatch up to a multiple of n_seq_max (the pre-2025 reserve had one sequence).
        int batchCap = Math.Min(checked(kv.Cells * kv.Streams), settings.Batch);
        int ubatch = Math.Min(batchCap, settings.Ubatch);
        int sequences = version.LegacyGraph ? 1 : Math.Max(1, settings.Sequences);
        var batch = new ReservedBatch((ubatch + sequences - 1) / sequences * sequences, ubatch, sequences, kv.Cells, kv.Streams,
            settings.FlashAttention, settings.KeyType, settings.ValueType);
        (long[] compute, string method) = SizeCompute(model, tensors, types, placement, buffers, batch, settings);
        return new LlamaCppRun
        {
            Settings = settings,
            Placement = placement,
            Tensors = tensors,
            Types = types,
            WeightsLabel = label,
            Model = buffers,
            Kv = kv,
            Batch = batch,
            Compute = compute,
            ComputeMethod = method,
            Output = checked(4L * model.VocabularySize * Math.Max(1, settings.Sequences)),
        };
    }

    /// <summary>
    /// The scenario's <c>weights</c> typed by llama-quant.cpp's rules; else a GGUF file's own types; else F16, what
    /// <c>convert_hf_to_gguf.py</c> writes by default.
    /// </summary>
    private static (IReadOnlyDictionary<string, DataType> Types, string Label) WeightTypes(ModelArchitecture model, Scenario scenario,
        IReadOnlyList<GgufTensor> tensors, LlamaCppVersion version)
    {
        if (scenario.Weights is null && tensors.All(t => t.Stored is not null))
        {
            return (tensors.ToDictionary(t => t.Name, t => t.Stored!, StringComparer.Ordinal), "as stored in the GGUF file");
        }

        WeightFormat requested = scenario.Weights ?? WeightFormats.Fp16;
        GgufFileType file;
        try
        {
            file = GgufFileType.From(requested);
        }
        catch (FormatException error) when (error is not ModelFormatException)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("weights"), "weights", $"is {requested.Name}: {error.Message}");
        }

        IReadOnlyDictionary<string, DataType> types = QuantRules.TypesOf(tensors, LlamaCppArch.Of(model), file, version.QkvAsAttentionV);
        string label = scenario.Weights is null ? "f16 (convert_hf_to_gguf.py's default)" : file.IsQuantized && !file.Pure ? $"{file.Name} (llama-quant.cpp rules)" : file.Name;
        return (types, label);
    }

    private static (long[] Compute, string Method) SizeCompute(ModelArchitecture model, IReadOnlyList<GgufTensor> tensors,
        IReadOnlyDictionary<string, DataType> types, Placement placement, ModelBuffers buffers, ReservedBatch batch, LlamaCppSettings settings)
    {
        long[] compute = new long[settings.Gpus + 1];
        int cpu = settings.Gpus;
        LlamaCppVersion version = settings.Version;
        if (GraphFamilies.Of(model) is GraphFamily family)
        {
            var shape = new GraphShape(family, model.HiddenSize, model.LayerCount, model.VocabularySize, model.IntermediateSize,
                model.AttentionHeadCount, model.KeyValueHeadCount, model.HeadDimension, !tensors.Any(t => t.Name == "output.weight"));
            string graph = $"the {(version.LegacyGraph ? "pre-2025 " : "")}{family.ToString().ToLowerInvariant()} graph";
            if (settings.Gpus == 0)
            {
                compute[cpu] = ComputeBuffers.OnCpu(shape, batch, types, version);
                return (compute, $"ggml-alloc run over {graph}");
            }

            // Pipeline parallelism keeps GGML_SCHED_MAX_COPIES = 4 copies of every split input when several GPUs hold all layers.
            int copies = settings.Gpus > 1 && placement.FullOffload ? 4 : 1;
            var layout = new BackendLayout(settings.Gpus, model.LayerCount, placement.DeviceOf, placement.OutputDevice, placement.FullOffload,
                buffers.RepackedNames);
            foreach ((int backend, long bytes) in ComputeBuffers.OnGpus(shape, batch, types, version, layout, copies))
            {
                compute[backend] = bytes;
            }

            return (compute, $"ggml-alloc run over {graph} as the scheduler splits it{(copies > 1 ? $" (pipeline parallel, {copies} copies of the split inputs)" : "")}");
        }

        long device = ComputeBufferApproximation.Bytes(model, batch, out string formula);
        if (settings.Gpus == 0)
        {
            compute[cpu] = device;
            return (compute, formula);
        }

        // Partial offload: each op of a CPU layer whose weight is in host memory runs on GPU 0 with a copy of that weight.
        long weightCopy = placement.FullOffload || batch.Ubatch < 32 ? 0 : tensors
            .Where(t => !placement.OnGpu(t.Layer) && t.Dimensions == 2 && t.Name != "token_embd.weight" && !buffers.RepackedNames.Contains(t.Name))
            .Select(t => t.BytesIn(types[t.Name]))
            .DefaultIfEmpty(0)
            .Max();
        for (int gpu = 0; gpu < settings.Gpus; gpu++)
        {
            compute[gpu] = device + (gpu == 0 ? weightCopy : 0);
        }

        long t = batch.Ubatch;
        long kvWidth = model.KeyValueWidth;
        // Host side: the graph inputs and the embedding rows (GET_ROWS runs where token_embd lives, on the CPU).
        compute[cpu] = checked((4 * t) + (version.EmbeddingInputLeaf ? 4 * model.HiddenSize * t : 0) + (4 * t) + (8 * t)
            + (batch.FlashAttention ? 8 * t : 8 * t * kvWidth) + ((batch.FlashAttention ? 2 : 4) * (long)batch.KvCells * t) + (4 * batch.Outputs)
            + (4 * model.HiddenSize * t));
        return (compute, formula + (weightCopy > 0 ? $", plus on GPU 0 the copy of the largest host weight ({new ByteSize(weightCopy)}) for op offload" : ""));
    }
}
