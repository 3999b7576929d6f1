using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Training;

/// <summary>
/// Training, LoRA and QLoRA on one GPU with transformers/PyTorch, torchtune (and torchtitan or DeepSpeed without
/// parallelism): steps of forward, backward and optimizer replayed op by op through PyTorch's caching allocator
/// (research/torch SPEC §4–§6).
/// </summary>
internal static class TrainingEstimator
{
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario, Gpu? gpu) => ReplayEstimate.Build(model, scenario, gpu);
}
