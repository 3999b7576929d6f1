using System.Globalization;
using System.Text.RegularExpressions;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// SGLang's memory defaults as <c>python/sglang/srt/server_args.py</c> resolves them for a release and a GPU (docs/sglang.md):
/// <c>chunked_prefill_size</c> and <c>cuda_graph_max_bs</c> by the GPU's memory, and <c>mem_fraction_static</c> as
/// (gpu_mem − reserved_mem) ÷ gpu_mem, rounded to three places, where gpu_mem is the device total in MiB as
/// <c>nvidia-smi --query-gpu=memory.total</c> prints it (<c>get_nvgpu_memory_capacity</c>; AMD: the device total ÷ 2²⁰).
/// </summary>
/// <param name="MemFractionStatic">The fraction of the GPU the weights and the KV pool may take.</param>
/// <param name="GpuMemMib">The gpu_mem SGLang reads, in MiB.</param>
/// <param name="ReservedMib">reserved_mem: what the rule leaves for activations and CUDA graphs, in MiB.</param>
/// <param name="ChunkedPrefillSize">chunked_prefill_size where the rule reads it; null where the fraction does not depend on it.</param>
/// <param name="CudaGraphMaxBs">cuda_graph_max_bs where the rule reads it; null where the fraction does not depend on it.</param>
/// <param name="Rule">The rule in words, with its source.</param>
internal sealed record SglangDefaults(double MemFractionStatic, long GpuMemMib, double ReservedMib, int? ChunkedPrefillSize, int? CudaGraphMaxBs, string Rule)
{
    /// <summary>
    /// The first release with the reserved-memory rule: PR 7054 ("Simplify the heuristics for setting
    /// --mem-fraction-static", merged 2025-06-10) came after the v0.4.7 bump (PR 7038, 2025-06-10) and before v0.4.7.post1
    /// (PR 7248, 2025-06-16). Earlier releases chose the fraction from a tensor-parallel table with GPU exceptions that
    /// changed from release to release (PRs 2044, 5604, 5893, 6718), which are not modelled.
    /// </summary>
    internal static readonly Version Oldest = new(0, 4, 7, 1);

    /// <summary>
    /// The first release with the general rule of PR 10975 ("Use more general heuristics to set the default value of
    /// --mem-fraction-static", 2025-09-27), merged after 0.5.2 was out (verl moved to it on 2025-09-25, PR 3613).
    /// </summary>
    internal static readonly Version GeneralRule = new(0, 5, 3, 0);

    /// <summary>
    /// The newest release series modelled. From December 2025 <c>piecewise_cuda_graph_max_tokens</c> defaults to
    /// <c>chunked_prefill_size</c> (PR 15700) and the piecewise graphs reserve 8 MiB per captured size; an H100's 0.828 at
    /// Qwen3-32B (sglang issue 29092, June 2026) is no longer the 0.835 the rule below gives. Newer releases are refused.
    /// </summary>
    internal static readonly Version Newest = new(0, 5, 4);

    private const long MiB = 1L << 20;

    /// <summary>An SGLang release ("0.4.7.post1", "v0.5.3"); null when none is given (the newest modelled). Anything else is refused.</summary>
    public static Version? Release(string? text, Scenario scenario)
    {
        if (text is null)
        {
            return null;
        }

        ModelFormatException Refused(string why) => new(scenario.Given.OriginOf("engine_options.version"), "engine_options.version", $"is \"{text}\", {why}");
        Match m = Regex.Match(text.Trim(), @"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.post(\d+))?$");
        if (!m.Success)
        {
            throw Refused("which is not an SGLang release (such as 0.4.7.post1 or 0.5.3).");
        }

        int Part(int i) => m.Groups[i].Success ? int.Parse(m.Groups[i].Value, CultureInfo.InvariantCulture) : 0;
        var release = new Version(Part(1), Part(2), Part(3), Part(4));
        return release.Major > Newest.Major || (release.Major == Newest.Major && release.Minor > Newest.Minor)
            || (release.Major == Newest.Major && release.Minor == Newest.Minor && release.Build > Newest.Build)
            ? throw Refused($"newer than the SGLang releases modelled (up to {Newest}.x, docs/sglang.md): later releases reserve memory for piecewise CUDA graphs; give {Newest} or leave the version out.")
            : release;
    }

    /// <summary>
    /// The defaults of <paramref name="release"/> (null: the newest modelled) on <paramref name="gpu"/> at tensor parallelism
    /// <paramref name="tp"/> and <paramref name="pp"/> pipeline stages (reserved_mem grows with parallel_size = tp × pp).
    /// Releases before <see cref="Oldest"/> are refused: their table is not modelled.
    /// </summary>
    public static SglangDefaults For(Version? release, Gpu gpu, int tp, Scenario scenario, int pp = 1)
    {
        ArgumentNullException.ThrowIfNull(gpu);
        if (release is not null && release < Oldest)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("engine_options.version"), "engine_options.version",
                $"is \"{scenario.EngineOptions.Version}\", older than the SGLang releases whose mem_fraction_static default is modelled (0.4.7.post1 to {Newest}.x, docs/sglang.md); "
                + "give engine_options.gpu_memory_utilization (SGLang's --mem-fraction-static) as that release chose it.");
        }

        long gpuMem = GpuMemOf(gpu);
        return release is not null && release < GeneralRule ? ByTier(gpuMem, tp * pp) : General(gpuMem, tp, tp * pp);
    }

    /// <summary>
    /// gpu_mem in MiB: nvidia-smi's memory.total where the catalog has it (H100 80GB 81,559 MiB), else the device total ÷ 2²⁰
    /// (AMD: <c>get_amdgpu_memory_capacity</c>, torch's total_memory // 2²⁰).
    /// </summary>
    internal static long GpuMemOf(Gpu gpu) =>
        gpu.NvidiaSmiTotalMib ?? (gpu.Usable ?? gpu.Memory ?? throw new ArgumentException("the GPU has no memory size", nameof(gpu))).Bytes / MiB;

    /// <summary>
    /// 0.4.7.post1 to 0.5.2 (PR 7054, server_args.py <c>__post_init__</c>): reserved_mem by the GPU's memory and
    /// parallel_size = tp × pp — below 35 GiB (2.8 + parallel_size ÷ 10) GiB; below 90 GiB (9.5 + parallel_size ÷ 2) GiB;
    /// below 160 GiB (12 + parallel_size ÷ 2) GiB; else 32 GiB. (Speculative decoding adds 2 GiB and DP attention 4 GiB;
    /// the scenario has neither.)
    /// </summary>
    private static SglangDefaults ByTier(long gpuMem, int parallelSize)
    {
        double parallel = parallelSize;
        double reserved = gpuMem < 35 * 1024 ? (2.8 + (parallel / 10)) * 1024
            : gpuMem < 90 * 1024 ? (9.5 + (parallel / 2)) * 1024
            : gpuMem < 160 * 1024 ? (12 + (parallel / 2)) * 1024
            : 32 * 1024;
        return new SglangDefaults(Fraction(gpuMem, reserved), gpuMem, reserved, null, null,
            "server_args.py, PR 7054, 0.4.7.post1 to 0.5.2: reserved_mem by GPU memory and tp × pp");
    }

    /// <summary>
    /// 0.5.3 on (PR 10975, <c>_handle_gpu_memory_settings</c>): first chunked_prefill_size and cuda_graph_max_bs by the GPU's
    /// memory — below 20 GiB 2,048 and 8; below 35 GiB 2,048 and 24 (80 from tp 4); below 60 GiB 4,096 and 32 (160 from tp 4);
    /// below 160 GiB 8,192 and 256 (512 from tp 4); else 16,384 and 512 — then reserved_mem = 512 MiB of attention metadata
    /// + max(chunked_prefill_size, 2048) × 1.5 + cuda_graph_max_bs × 2 + tp × pp ÷ 8 × 1024, at least 10 GiB on a GPU of more
    /// than 60 GiB. (DP attention, speculative decoding and multimodal models add more; the scenario has none of them.)
    /// </summary>
    private static SglangDefaults General(long gpuMem, int tp, int parallelSize)
    {
        (int chunked, int graphs) = gpuMem < 20 * 1024 ? (2048, 8)
            : gpuMem < 35 * 1024 ? (2048, tp < 4 ? 24 : 80)
            : gpuMem < 60 * 1024 ? (4096, tp < 4 ? 32 : 160)
            : gpuMem < 160 * 1024 ? (8192, tp < 4 ? 256 : 512)
            : (16384, 512);
        double reserved = 512 + (Math.Max(chunked, 2048) * 1.5) + (graphs * 2) + (parallelSize / 8.0 * 1024);
        reserved = gpuMem > 60 * 1024 ? Math.Max(reserved, 10 * 1024) : reserved;
        return new SglangDefaults(Fraction(gpuMem, reserved), gpuMem, reserved, chunked, graphs,
            "server_args.py, PR 10975, 0.5.3 on: 512 + max(chunked_prefill_size, 2048) × 1.5 + cuda_graph_max_bs × 2 + tp × pp × 128 MiB, at least 10 GiB above 60 GiB");
    }

    /// <summary><c>round((gpu_mem - reserved_mem) / gpu_mem, 3)</c>.</summary>
    private static double Fraction(long gpuMem, double reserved) => Math.Round((gpuMem - reserved) / gpuMem, 3, MidpointRounding.ToEven);
}
