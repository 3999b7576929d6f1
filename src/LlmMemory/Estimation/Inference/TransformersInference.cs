using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>
/// Hugging Face transformers (and plain PyTorch): one forward over the whole prompt under <c>no_grad</c>, replayed op by
/// op through PyTorch's caching allocator (research/torch SPEC §3).
/// </summary>
internal static class TransformersInference
{
    public static MemoryEstimate Estimate(ResolvedModel resolved, Scenario scenario, Gpu? gpu) =>
        ReplayEstimate.Build(resolved, scenario, gpu);
}
