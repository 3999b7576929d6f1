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

    /// <summary>
    /// vLLM non-torch memory on one GPU from v0.18.0: 0.25 GiB, where llm-d-planner's version sweep of Qwen3-14B on an H100
    /// reads 0.13 GiB up to v0.17.0 and 0.25 GiB from v0.18.0 (accuracy/accuracy_report.md Part 2).
    /// </summary>
    public static readonly ByteSize VllmNonTorchSingleGpuFrom018 = ByteSize.FromGibibytes(0.25);

    /// <summary>vLLM non-torch memory with tensor parallelism (NCCL and custom all-reduce buffers): 0.55 GiB at TP = 2 (same source).</summary>
    public static readonly ByteSize VllmNonTorchMultiGpu = ByteSize.FromGibibytes(0.55);

    /// <summary>
    /// vLLM non-torch memory with tensor parallelism in v0.19.0: 2.1 GiB, the mean of llm-d-planner's H100 logs of Llama-3.1-8B
    /// and Qwen2.5-7B at TP 2 (2.07, 2.06 GiB) and TP 4 (2.13, 2.13 GiB) (accuracy/accuracy_report.md, "Sensitivity: Tensor
    /// Parallelism"); no release between the 0.55 GiB reading and 0.19.0 is published, so the step is keyed on 0.19.
    /// </summary>
    public static readonly ByteSize VllmNonTorchMultiGpuFrom019 = ByteSize.FromGibibytes(2.1);

    /// <summary>
    /// The widest vocabulary Unsloth's <c>Fast_CrossEntropyLoss</c> runs in one Triton block per row: <c>MAX_FUSED_SIZE = 65536</c>
    /// (unsloth/kernels/cross_entropy_loss.py); a wider one runs in ⌈V ÷ 65,536⌉ column chunks.
    /// </summary>
    public const long UnslothMaxFusedSize = 65_536;

    /// <summary>vLLM's default <c>gpu_memory_utilization</c> (vllm/engine/arg_utils.py).</summary>
    public const double VllmDefaultUtilization = 0.9;

    /// <summary>vLLM's default KV block on CUDA: 16 tokens (CacheConfig; memory-model.md §2.7).</summary>
    public const int VllmDefaultBlockSize = 16;

    /// <summary>
    /// Bytes the vLLM V1 dummy sampler run holds per element of its [max_num_seqs, vocab] logits at its peak while top-k/top-p
    /// sort the vocabulary in PyTorch (vllm/v1/sample/ops/topk_topp_sampler.py <c>apply_top_k_top_p_pytorch</c>, V1 up to
    /// 0.16): the bf16 logits, their fp32 copy and log-probs, the sorted values, their int64 indices, the sorted softmax and its
    /// cumulative sum. Calibrated on llm-d's H100 profiling table (8,192 tokens, 1,024 sequences; not in the validation
    /// corpus), whose peak is the sampler's (it outweighs the forward), on top of the forward's [8,192, hidden] bf16 output:
    /// Llama-3.1-8B (4.76 GiB − 8,192 × 4,096 × 2 B) ÷ (1,024 × 128,256) = 38.4 B; Qwen3-0.6B (5.56 GiB − 8,192 × 1,024 × 2 B)
    /// ÷ (1,024 × 151,936) = 38.3 B (llm-d/llm-d-benchmark config_explorer/empirical-vllm-memory-results.md; memory-model.md
    /// §2.7, §3.3).
    /// </summary>
    public const int VllmSortingSamplerBytesPerLogit = 38;

    /// <summary>
    /// The same per logit once vLLM masks top-k/top-p with its Triton pivot kernel instead of sorting (vLLM PR 33538,
    /// <c>apply_top_k_top_p_triton</c>; llm-d-planner's version sweep finds the profiled activation of Qwen3-14B falling from
    /// 5.64 to 2.23 GiB between v0.16.0 and v0.17.0, accuracy/accuracy_report.md Part 2): the logits, their fp32 copy and
    /// log-probs, the probabilities and the sampling noise, no sorted copies. Calibrated on rows of that report's v0.19.0
    /// table that are not validation cases, as (activation − 8,192 × hidden × 2 B) ÷ (1,024 × vocab): Gemma-7B
    /// (3.63 GiB, hidden 3,072, vocab 256,000) 14.7 B, Phi-4 (1.52 GiB, 5,120, 100,352) 15.0 B, Qwen3-8B (2.21 GiB, 4,096,
    /// 151,936) 14.8 B.
    /// </summary>
    public const int VllmTritonSamplerBytesPerLogit = 15;

    /// <summary>
    /// vLLM V0 (≤ 0.7) profile sampler: fp32 logits and their softmax over [max_num_seqs, vocab], 4 + 4 = 8 B per element
    /// (vllm/model_executor/layers/sampler.py computes probs and logprobs from fp32 logits).
    /// </summary>
    public const int VllmV0SamplerBytesPerLogit = 8;

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
