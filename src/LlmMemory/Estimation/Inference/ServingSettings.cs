using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>A vLLM or SGLang server with every default resolved as the engine resolves it, by version and GPU.</summary>
/// <param name="Sglang">SGLang rather than vLLM.</param>
/// <param name="Usable">What the GPU reports as its total (the fraction is taken of it).</param>
/// <param name="Tp">Tensor-parallel degree.</param>
/// <param name="Fraction">vLLM <c>gpu_memory_utilization</c>, SGLang <c>mem_fraction_static</c>.</param>
/// <param name="BlockSize">Tokens per KV block (page).</param>
/// <param name="MaxModelLen">The longest request the server must accept.</param>
/// <param name="V0">vLLM's V0 engine (before 0.8).</param>
/// <param name="HybridManager">vLLM V1's hybrid KV cache manager (0.10 on), which sizes sliding-window layers by their window.</param>
/// <param name="MaxNumSeqs"><c>max_num_seqs</c>: rows of the profile run's dummy sampler.</param>
/// <param name="BatchedTokens"><c>max_num_batched_tokens</c>: tokens of the profile run's forward.</param>
internal sealed record ServingSettings(bool Sglang, ByteSize Usable, int Tp, double Fraction, int BlockSize, int MaxModelLen, bool V0, bool HybridManager,
    int MaxNumSeqs, int BatchedTokens)
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
        bool v0 = version is { Major: 0, Minor: < 8 };
        bool large = total.Gibibytes >= 70;
        int maxModelLen = MaxModelLenOf(model, scenario);
        return new ServingSettings(
            sglang,
            total,
            scenario.Parallel.Tp,
            options.GpuMemoryUtilization ?? (sglang ? Constants.SglangDefaultMemFraction : Constants.VllmDefaultUtilization),
            options.BlockSize ?? (sglang ? 1 : Constants.VllmDefaultBlockSize),
            maxModelLen,
            v0,
            !sglang && version is not { Major: 0, Minor: < 10 },
            options.MaxNumSeqs ?? (large && !v0 ? 1024 : 256),
            options.MaxNumBatchedTokens ?? DefaultBatchedTokens(v0, large, maxModelLen));
    }

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
    /// OpenAI server): 8192 on GPUs of ≥ 70 GiB, 2048 otherwise. V0 (≤ 0.7): chunked prefill was off up to 32k contexts,
    /// so the profile ran a whole max_model_len sequence (max(max_model_len, 2048)); on longer contexts it was on with 2048.
    /// </summary>
    private static int DefaultBatchedTokens(bool v0, bool large, int maxModelLen) =>
        v0 ? maxModelLen <= 32768 ? Math.Max(maxModelLen, 2048) : 2048 : large ? 8192 : 2048;

    /// <summary>A vLLM release ("0.6.4", "v0.10.1"); null when none is given (current). Anything else is refused, not ignored.</summary>
    private static Version? VllmVersion(string? text, Scenario scenario) =>
        text is null ? null
        : Version.TryParse(text.Trim().TrimStart('v'), out Version? parsed) ? parsed
        : throw new ModelFormatException(scenario.Given.OriginOf("engine_options.version"), "engine_options.version",
            $"is \"{text}\", which is not a vLLM release (such as 0.6.4 or 0.10.1).");
}
