using LlmMemory.Hardware;

namespace LlmMemory.Estimation;

/// <summary>
/// Every empirical constant of the estimators, in one place, each with its source. Everything else is arithmetic on the
/// model and the scenario.
/// </summary>
public static class Constants
{
    /// <summary>
    /// vLLM memory outside torch's allocator on one GPU (NCCL off, cuBLAS handles, custom all-reduce off): 0.13 GiB,
    /// "non-torch memory" in the vLLM V1 profiling log on an H100 (llm-d/llm-d-benchmark
    /// config_explorer/empirical-vllm-memory-results.md; docs/memory-model.md §3.4).
    /// </summary>
    public static readonly ByteSize VllmNonTorchSingleGpu = ByteSize.FromGibibytes(0.13);

    /// <summary>vLLM non-torch memory with tensor parallelism (NCCL and custom all-reduce buffers): 0.55 GiB at TP = 2 (same source).</summary>
    public static readonly ByteSize VllmNonTorchMultiGpu = ByteSize.FromGibibytes(0.55);

    /// <summary>vLLM's default <c>gpu_memory_utilization</c> (vllm/engine/arg_utils.py).</summary>
    public const double VllmDefaultUtilization = 0.9;

    /// <summary>vLLM's default KV block on CUDA: 16 tokens (CacheConfig; memory-model.md §2.7).</summary>
    public const int VllmDefaultBlockSize = 16;

    /// <summary>
    /// Bytes the vLLM V1 dummy sampler run holds per element of its [max_num_seqs, vocab] logits at its peak (fp32 logits,
    /// penalties, probabilities, sorted values and int64 indices for top-k/top-p, cumulative sums, log-probs). Calibrated
    /// on llm-d's published H100 profiling table, which is not in the validation corpus: with the forward term of
    /// <c>VllmProfilePeak</c>, 35 B gives Llama-3.1-8B 5.06 GiB (logged 4.76) and Qwen3-0.6B 5.24 GiB (logged 5.56) at
    /// 8192 tokens and 1024 sequences (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md;
    /// memory-model.md §2.7, §3.3).
    /// </summary>
    public const int VllmSamplerBytesPerLogit = 35;

    /// <summary>
    /// vLLM V0 (≤ 0.7) profile sampler: fp32 logits and their softmax over [max_num_seqs, vocab], 4 + 4 = 8 B per element
    /// (vllm/model_executor/layers/sampler.py computes probs and logprobs from fp32 logits).
    /// </summary>
    public const int VllmV0SamplerBytesPerLogit = 8;

    /// <summary>SGLang's fallback <c>mem_fraction_static</c> (python/sglang/srt/server_args.py; memory-model.md §2.8).</summary>
    public const double SglangDefaultMemFraction = 0.88;

    /// <summary>
    /// CUDA context, loaded kernel modules and library handles outside PyTorch's allocator: <c>device_used − peak_reserved</c>,
    /// which is the same across every model and size within each regime of this project's H100 runs (torch 2.11, CUDA 13,
    /// lazy module loading; data/validation/gpu-h100-cases.jsonl, research/torch SPEC §7): 686.8 MiB for inference without
    /// the flash kernel (eager or fp32), +8 MiB once the flash forward module loads, 750.8 MiB for training (backward and
    /// optimizer kernels), +16 MiB with the flash forward and backward modules. On a Volta V100 the only reading is the HF
    /// single-GPU guide's 1343 MiB (CUDA 11.2 without lazy loading: a 1×1 tensor alone); other GPUs take the H100 values.
    /// </summary>
    public static ByteSize CudaContext(Gpu? gpu, bool training, bool flashAttention)
    {
        if (gpu?.ComputeCapability is { Major: 7, Minor: 0 })
        {
            return new ByteSize(1343L << 20);
        }

        double mebibytes = (training, flashAttention) switch
        {
            (false, false) => 686.8,
            (false, true) => 694.8,
            (true, false) => 750.8,
            (true, true) => 766.8,
        };
        return new ByteSize((long)(mebibytes * (1 << 20)));
    }

    /// <summary>
    /// cuBLAS workspace of one GEMM thread, allocated through PyTorch's caching allocator at the thread's first GEMM and kept
    /// (torch <c>CublasHandlePool.cpp</c>, default <c>CUBLAS_WORKSPACE_CONFIG</c>): <c>:4096:8</c> = 32 MiB on Hopper and
    /// later, which the H100 runs pin (peak-allocated residuals: median +2 MiB at 32 MiB, −22 MiB at 8 MiB; SPEC §7);
    /// <c>:4096:2:16:8</c> = 8.125 MiB elsewhere. Training has two threads: the forward's and autograd's device thread.
    /// </summary>
    public static ByteSize CublasWorkspace(Gpu? gpu) =>
        gpu?.ComputeCapability is { Major: < 9 } ? new ByteSize((4096 * 2 * 1024) + (16 * 8 * 1024)) : new ByteSize(32L << 20);

    /// <summary>
    /// NCCL buffers per communicator (data, tensor, pipeline groups): 0.5 GiB — "+0.5 GiB per process for NCCL with one
    /// communicator" (memory-model.md §3.4 from NVIDIA/nccl issues #285, #864, #986: FIFOs of 4 MiB per channel per peer).
    /// </summary>
    public static readonly ByteSize NcclPerCommunicator = ByteSize.FromGibibytes(0.5);

    /// <summary>
    /// Share of activation memory the caching allocator keeps cached but free at the peak of a sharded run, where FSDP's
    /// all-gather buffers and per-layer activations of varying lifetimes interleave: 0.10, the middle of the 0.05–0.15
    /// band memory-model.md §8 gives for static shapes.
    /// </summary>
    public const double DistributedAllocatorShare = 0.10;
}
