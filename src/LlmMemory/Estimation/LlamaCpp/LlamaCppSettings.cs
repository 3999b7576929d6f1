using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>A llama.cpp run with every default resolved the way the chosen build resolves it.</summary>
/// <param name="Version">Which build's behaviour.</param>
/// <param name="Gpus">GPUs used (0: the CPU backend alone).</param>
/// <param name="Gpu">The catalog device, when given.</param>
/// <param name="Context">n_ctx as requested (<c>-c</c>), before padding.</param>
/// <param name="Sequences">n_seq_max (<c>-np</c>).</param>
/// <param name="Batch">n_batch (<c>-b</c>).</param>
/// <param name="Ubatch">n_ubatch (<c>-ub</c>).</param>
/// <param name="FlashAttention">Whether flash attention is on.</param>
/// <param name="KeyType">K cache type (<c>-ctk</c>).</param>
/// <param name="ValueType">V cache type (<c>-ctv</c>).</param>
/// <param name="GpuLayers">n_gpu_layers (<c>-ngl</c>).</param>
/// <param name="Mmap">Whether the model file is memory-mapped.</param>
/// <param name="Notes">The defaults applied, one sentence each.</param>
internal sealed record LlamaCppSettings(LlamaCppVersion Version, int Gpus, Gpu? Gpu, int Context, int Sequences, int Batch, int Ubatch,
    bool FlashAttention, DataType KeyType, DataType ValueType, int GpuLayers, bool Mmap, IReadOnlyList<string> Notes)
{
    /// <summary>llama.cpp's <c>n_batch</c> default (<c>common_params</c>).</summary>
    public const int DefaultBatch = 2048;

    /// <summary>llama.cpp's <c>n_ubatch</c> default (<c>common_params</c>).</summary>
    public const int DefaultUbatch = 512;

    /// <summary>One stream for every sequence: <c>-np 1</c>, or any build before per-sequence streams.</summary>
    public bool UnifiedCache => Sequences == 1 || !Version.StreamPerSequence;

    /// <summary>The backend llama.cpp names GPU buffers after.</summary>
    public string Backend => Gpu?.Vendor switch
    {
        "amd" => "ROCm",
        "apple" => "Metal",
        _ => "CUDA",
    };

    public static LlamaCppSettings Resolve(ModelArchitecture model, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        EngineOptions o = scenario.EngineOptions;
        var notes = new List<string>();
        LlamaCppVersion version = LlamaCppVersion.Parse(o.Version, scenario.Given.OriginOf("engine_options.version"));
        notes.Add(version.Build is null
            ? "llama.cpp current master (2026 accounting; engine_options.version names an older build)."
            : $"llama.cpp {version}: {(version.LegacyGraph ? "graph, quantization and -ngl rules before the March 2025 refactor" : "the accounting of that build")}.");
        int gpus = gpu?.IsHost == true ? 0 : scenario.Parallel.Gpus;
        if (gpu is null)
        {
            notes.Add($"No gpu given: assumed {(gpus == 1 ? "one CUDA GPU" : $"{gpus} CUDA GPUs")} (gpu: cpu for the CPU backend).");
        }

        // llama.cpp splits several GPUs by layer (-sm layer, its default) and runs them as a pipeline (ggml_sched's n_copies):
        // one stage per GPU, so a pipeline degree is the GPU count or nothing.
        int pp = scenario.Parallel.Pp;
        if (pp > 1 && pp != gpus)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.pp"), "parallel.pp",
                $"is {pp}, but llama.cpp runs one pipeline stage per GPU ({gpus}); give parallel.gpus alone.");
        }

        int sequences = o.NSeq ?? scenario.Batch;
        int context = o.NCtx switch
        {
            null => (long)scenario.Seq * sequences <= Limits.MaxPositions ? scenario.Seq * sequences
                : throw new ModelFormatException(scenario.Given.OriginOf("seq"), "seq", $"× {sequences} sequences is {(long)scenario.Seq * sequences:N0} cells, above the limit of {Limits.MaxPositions:N0}."),
            0 => model.MaxPositions ?? throw new ModelFormatException(scenario.Given.OriginOf("engine_options.n_ctx"), "engine_options.n_ctx",
                "is 0 (use the training context), but the model's config gives no max_position_embeddings."),
            int n => n,
        };
        bool flash = o.FlashAttn ?? version.FlashAttentionByDefault;
        if (o.FlashAttn is null)
        {
            notes.Add(version.FlashAttentionByDefault
                ? "Flash attention auto: on (current llama.cpp resolves auto to on where the backend supports it, CUDA and CPU)."
                : "Flash attention off (this build's default).");
        }

        DataType keyType = CacheType(scenario, scenario.KvCacheDtype, "kv_cache_dtype");
        DataType valueType = scenario.VCacheDtype is null ? keyType : CacheType(scenario, scenario.VCacheDtype, "v_cache_dtype");
        if (valueType.IsQuantized && !flash)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("v_cache_dtype"), "v_cache_dtype",
                $"is {valueType.Name.ToLowerInvariant()}: llama.cpp needs flash attention for a quantized V cache (engine_options.flash_attn: true).");
        }

        int headDim = model.LatentAttention?.LatentWidth ?? model.HeadDimension;
        if (keyType.IsQuantized && headDim % keyType.BlockSize != 0)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("kv_cache_dtype"), "kv_cache_dtype",
                $"is {keyType.Name.ToLowerInvariant()}, whose blocks of {keyType.BlockSize} do not divide head_dim {headDim}; llama.cpp refuses to create that context.");
        }

        int all = model.LayerCount + 1;
        int gpuLayers = o.NGpuLayers ?? (gpus > 0 ? all : 0);
        if (o.NGpuLayers is null && gpus > 0)
        {
            notes.Add(version.AllLayersByDefault
                ? $"-ngl all ({all} layers: {model.LayerCount} blocks and the output layer), the current default."
                : $"-ngl all ({all} layers), as GPU runs of {version} passed it (that build defaulted to 0, before PR #15434).");
        }

        notes.Add($"n_ctx {Text.N(context)}{(o.NCtx is null ? $" (seq {Text.N(scenario.Seq)} × {sequences} sequence{(sequences == 1 ? "" : "s")})" : "")}, "
            + $"n_batch {o.NBatch ?? DefaultBatch}, n_ubatch {o.NUbatch ?? DefaultUbatch}{(o.NBatch is null && o.NUbatch is null ? " (defaults)" : "")}.");
        return new LlamaCppSettings(version, gpus, gpu, context, sequences, o.NBatch ?? DefaultBatch, o.NUbatch ?? DefaultUbatch, flash, keyType,
            valueType, gpuLayers, o.Mmap ?? true, notes);
    }

    private static DataType CacheType(Scenario scenario, DataType? type, string field)
    {
        IReadOnlyList<DataType> accepted = KvCacheTypes.Of(Engine.LlamaCpp);
        return type is null ? DataTypes.F16
            : accepted.Contains(type) ? type
            : throw new ModelFormatException(scenario.Given.OriginOf(field), field,
                $"is {KvCacheTypes.Spelling(type)}, which llama.cpp cannot store its cache in (known: {string.Join(", ", accepted.Select(KvCacheTypes.Spelling))}).");
    }
}
