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

    /// <summary>
    /// CUDA context, loaded kernels and library handles outside torch's allocator: device used − peak reserved of this
    /// project's H100 inference runs (torch 2.11, CUDA 13, lazy module loading): 0.68 GiB (data/validation/gpu-h100-cases.jsonl).
    /// PyTorch reports 287 MB lazy / 667 MB eager for the bare context (pytorch/pytorch#86509, memory-model.md §3.4).
    /// </summary>
    public static readonly ByteSize CudaContext = ByteSize.FromGibibytes(0.68);

    /// <summary>SGLang's fallback <c>mem_fraction_static</c> (python/sglang/srt/server_args.py; memory-model.md §2.8).</summary>
    public const double SglangDefaultMemFraction = 0.88;

    /// <summary>
    /// Share of the non-weight memory that PyTorch's caching allocator keeps cached but free at the peak
    /// (reserved − allocated), memory-model.md §8: 0.05–0.15 for static shapes. Provisional until the allocator model lands.
    /// </summary>
    public const double AllocatorCacheShare = 0.10;

    /// <summary>
    /// cuBLAS workspace of one GEMM thread, allocated through the caching allocator at its first GEMM and kept: 32 MiB on
    /// Hopper with cuBLASLt (pytorch/pytorch#120925; memory-model.md §3.4). Pinned by this project's H100 runs: 8 or
    /// 64 MiB would shift every inference residual by −22 or +34 MiB (research notes, docs/estimation.md).
    /// </summary>
    public static readonly ByteSize CublasWorkspace = ByteSize.FromMebibytes(32);

    /// <summary>
    /// CUDA context of a training process (backward and optimizer kernels loaded): device used − peak reserved of this
    /// project's H100 training runs with flash attention, identical across models: 766.8 MiB (gpu-h100-cases.jsonl).
    /// </summary>
    public static readonly ByteSize CudaContextTraining = ByteSize.FromMebibytes(766.8);

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
