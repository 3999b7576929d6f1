using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>A vLLM or SGLang server with every default resolved as the engine resolves it, by version and GPU.</summary>
/// <param name="Sglang">SGLang rather than vLLM.</param>
/// <param name="Usable">What the GPU reports as its total (the fraction is taken of it).</param>
/// <param name="Tp">Tensor-parallel degree.</param>
/// <param name="Pp">Pipeline-parallel degree (vLLM <c>--pipeline-parallel-size</c>, SGLang <c>--pp-size</c>).</param>
/// <param name="Fraction">vLLM <c>gpu_memory_utilization</c>, SGLang <c>mem_fraction_static</c>.</param>
/// <param name="BlockSize">Tokens per KV block (page).</param>
/// <param name="MaxModelLen">The longest request the server must accept.</param>
/// <param name="V0">vLLM's V0 engine (before 0.8).</param>
/// <param name="HybridManager">vLLM V1's hybrid KV cache manager (0.10 on), which sizes sliding-window layers by their window.</param>
/// <param name="MaxNumSeqs"><c>max_num_seqs</c>: rows of the profile run's dummy sampler.</param>
/// <param name="BatchedTokens"><c>max_num_batched_tokens</c>: tokens of the profile run's forward.</param>
/// <param name="SamplerBytesPerLogit">What the profile run's dummy sampler holds per element of its logits, by release.</param>
/// <param name="NonTorch">vLLM's memory outside torch's allocator, by release and tensor parallelism.</param>
/// <param name="KvCacheMemory">vLLM's <c>--kv-cache-memory</c>: the pool per GPU in bytes, given instead of the fraction; null otherwise.</param>
/// <param name="SglangDefault">SGLang's own mem_fraction_static for the release and GPU, when the scenario does not give one.</param>
internal sealed record ServingSettings(bool Sglang, ByteSize Usable, int Tp, int Pp, double Fraction, int BlockSize, int MaxModelLen, bool V0,
    bool HybridManager, int MaxNumSeqs, int BatchedTokens, int SamplerBytesPerLogit, ByteSize NonTorch, ByteSize? KvCacheMemory = null,
    SglangDefaults? SglangDefault = null)
{
    public static ServingSettings Resolve(ModelArchitecture model, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        if (gpu?.Usable is not ByteSize total || gpu.IsHost)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("gpu"), "gpu",
                $"is required for {Names.Of(scenario.Engine)}, which sizes its KV cache from the GPU's memory (e.g. --gpu h100-80gb).");
        }

        bool sglang = scenario.Engine == Engine.Sglang;
        EngineOptions options = scenario.EngineOptions;
        Version? version = sglang ? null : VllmVersion(options.Version, scenario);
        // SGLang's release is read (and refused when unknown) whether or not the fraction is given; it picks the default.
        Version? sglangRelease = sglang ? SglangDefaults.Release(options.Version, scenario) : null;
        SglangDefaults? sglangDefault = sglang && options.GpuMemoryUtilization is null ? SglangDefaults.For(sglangRelease, gpu, scenario.Parallel.Tp, scenario, scenario.Parallel.Pp) : null;
        bool v0 = Before(version, 0, 8);
        bool large = !v0 && LargeDefaults(version, gpu.Name, total);
        int maxModelLen = MaxModelLenOf(model, scenario);
        int tp = scenario.Parallel.Tp;
        if (scenario.Parallel.Pp > 1 && Before(version, 0, 5, 1))
        {
            // --pipeline-parallel-size serves from 0.5.1 (vLLM issue 6054: "supported in the latest main (and incoming 0.5.1 release)").
            throw new ModelFormatException(scenario.Given.OriginOf("parallel.pp"), "parallel.pp",
                $"is {scenario.Parallel.Pp}, but vLLM {options.Version} has no pipeline parallelism (it serves with it from 0.5.1); use tp.");
        }

        ByteSize? kvCacheMemory = KvCacheMemoryOf(options, version, scenario);
        return new ServingSettings(
            sglang,
            total,
            tp,
            scenario.Parallel.Pp,
            options.GpuMemoryUtilization ?? sglangDefault?.MemFractionStatic ?? Constants.VllmDefaultUtilization,
            options.BlockSize ?? (sglang ? 1 : Constants.VllmDefaultBlockSize),
            maxModelLen,
            v0,
            !sglang && !Before(version, 0, 10),
            options.MaxNumSeqs ?? (large ? 1024 : 256),
            options.MaxNumBatchedTokens ?? DefaultBatchedTokens(v0, large, maxModelLen),
            v0 ? Constants.VllmV0SamplerBytesPerLogit : Before(version, 0, 17) ? Constants.VllmSortingSamplerBytesPerLogit : Constants.VllmTritonSamplerBytesPerLogit,
            tp > 1 ? Before(version, 0, 19) ? Constants.VllmNonTorchMultiGpu : Constants.VllmNonTorchMultiGpuFrom019
            : Before(version, 0, 18) ? Constants.VllmNonTorchSingleGpu : Constants.VllmNonTorchSingleGpuFrom018,
            kvCacheMemory,
            sglangDefault);
    }

    /// <summary>
    /// vLLM's <c>--kv-cache-memory</c> (<c>CacheConfig.kv_cache_memory_bytes</c>, PR 21489 "Allow users to specify kv cache
    /// memory size", merged after the 0.10.0 release, so 0.10.1 is taken as its first): <c>gpu_worker.determine_available_memory</c>
    /// still runs the profile (to compile the model) but returns the given bytes as the pool, so
    /// <c>gpu_memory_utilization</c> no longer sizes anything. Giving both is refused: one would be ignored.
    /// </summary>
    private static ByteSize? KvCacheMemoryOf(EngineOptions options, Version? version, Scenario scenario)
    {
        if (options.KvCacheMemory is not long bytes)
        {
            return null;
        }

        if (Before(version, 0, 10, 1))
        {
            throw new ModelFormatException(scenario.Given.OriginOf("engine_options.kv_cache_memory"), "engine_options.kv_cache_memory",
                $"is given, but vLLM {options.Version} has no --kv-cache-memory (it sizes the pool that way from 0.10.1); use gpu_memory_utilization.");
        }

        return options.GpuMemoryUtilization is null ? new ByteSize(bytes)
            : throw new ModelFormatException(scenario.Given.OriginOf("engine_options.gpu_memory_utilization"), "engine_options.gpu_memory_utilization",
                "is ignored by vLLM when engine_options.kv_cache_memory sizes the KV pool (--kv-cache-memory replaces it); give one of the two.");
    }

    /// <summary>
    /// Whether vLLM V1 gives the GPU its large scheduler defaults (max_num_seqs 1,024 and, for the OpenAI server,
    /// max_num_batched_tokens 8,192) rather than the small ones (256, 2,048), as vllm/engine/arg_utils.py decides by release:
    /// 0.8.0–0.8.4 by name, H100 and H200 (PR 12369); 0.8.5 by memory, a device total of at least 70 GiB (PR 17073); from
    /// 0.9.0 at least 70 GiB and not an A100 (PR 17885: the small defaults serve Llama-3.1-70B at TP 2 36 % faster there;
    /// tests/engine/test_arg_utils.py <c>test_defaults_with_usage_context</c> pins the rule to this day). The name is the
    /// device's (torch.cuda.get_device_name), matched without case as vLLM lowers it.
    /// </summary>
    internal static bool LargeDefaults(Version? version, string gpuName, ByteSize total)
    {
        bool big = total.Bytes >= 70L << 30;
        bool Named(string part) => gpuName.Contains(part, StringComparison.OrdinalIgnoreCase);
        return Before(version, 0, 8, 5) ? Named("h100") || Named("h200")
            : Before(version, 0, 9) ? big
            : big && !Named("a100");
    }

    /// <summary>True when a release is given and is older than <paramref name="major"/>.<paramref name="minor"/>.<paramref name="patch"/>; no release means the current one.</summary>
    private static bool Before(Version? version, int major, int minor, int patch = 0) =>
        version is not null && version < new Version(major, minor, patch);

    /// <summary>
    /// The server's max_model_len: the context the user asks for (seq, --context) is the engine's max_model_len unless
    /// engine_options.max_model_len is given; else the engine's default, the model's max_position_embeddings. Both given
    /// and different is refused: one of them would be ignored.
    /// </summary>
    internal static int MaxModelLenOf(ModelArchitecture model, Scenario scenario)
    {
        int? given = scenario.EngineOptions.MaxModelLen;
        if (given is int len && scenario.SeqIsSet && scenario.Seq != len)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("seq"), "seq",
                $"is {Text.N(scenario.Seq)} while engine_options.max_model_len is {Text.N(len)}: a serving engine's context is its max_model_len; give one of them.");
        }

        return given ?? (scenario.SeqIsSet ? scenario.Seq : model.MaxPositions ?? scenario.Seq);
    }

    /// <summary>
    /// Tokens of the profile run. V1 (chunked prefill always on; vllm/engine/arg_utils.py usage-context defaults for the
    /// OpenAI server, <c>vllm serve</c>): 8192 with the large defaults, 2048 otherwise (<see cref="LargeDefaults"/>). V0 (≤ 0.7): chunked prefill was off up to 32k contexts,
    /// so the profile ran a whole max_model_len sequence (max(max_model_len, 2048)); on longer contexts it was on with 2048.
    /// </summary>
    private static int DefaultBatchedTokens(bool v0, bool large, int maxModelLen) =>
        v0 ? maxModelLen <= 32768 ? Math.Max(maxModelLen, 2048) : 2048 : large ? 8192 : 2048;

    /// <summary>
    /// The newest vLLM release series whose accounting is modelled (docs/vllm.md); no version means it. Later releases changed
    /// their defaults again (vllm/config/cache.py gives gpu_memory_utilization 0.92 by v0.25), so a newer one is refused
    /// rather than estimated with 0.19's rules.
    /// </summary>
    private static readonly Version NewestModelled = new(0, 19);

    /// <summary>A vLLM release ("0.6.4", "v0.10.1"); null when none is given (current). Anything else is refused, not ignored.</summary>
    private static Version? VllmVersion(string? text, Scenario scenario)
    {
        if (text is null)
        {
            return null;
        }

        ModelFormatException Refused(string why) => new(scenario.Given.OriginOf("engine_options.version"), "engine_options.version", $"is \"{text}\", {why}");
        Version parsed = Version.TryParse(text.Trim().TrimStart('v'), out Version? v) ? new Version(v.Major, v.Minor, Math.Max(0, v.Build))
            : throw Refused("which is not a vLLM release (such as 0.6.4 or 0.10.1).");
        return parsed.Major > NewestModelled.Major || (parsed.Major == NewestModelled.Major && parsed.Minor > NewestModelled.Minor)
            ? throw Refused($"newer than the releases modelled (up to {NewestModelled.Major}.{NewestModelled.Minor}, docs/vllm.md); give {NewestModelled.Major}.{NewestModelled.Minor} or leave the version out.")
            : parsed;
    }
}
