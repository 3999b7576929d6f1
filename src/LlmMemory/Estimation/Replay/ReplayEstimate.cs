using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Replay;

/// <summary>Runs the replay of a scenario and turns its counters into an estimate.</summary>
internal static class ReplayEstimate
{
    public static MemoryEstimate Build(ResolvedModel resolved, Scenario scenario, Gpu? gpu)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        ModelArchitecture model = resolved.Architecture!;
        ReplayPlan plan = ReplayPlan.For(model, scenario, gpu);
        ReplayResult result = Replayer.Run(model, plan.Options);
        var components = new List<MemoryComponent>
        {
            new("allocated", ComponentKind.Activations, new ByteSize(result.PeakAllocated), "replayed"),
            new("allocator_cache", ComponentKind.AllocatorReserve, new ByteSize(result.PeakReserved - result.PeakAllocated), "replayed", Counter: Counter.Reserved),
            new("cuda_context", ComponentKind.Runtime, plan.Context, "context", Counter: Counter.Device),
        };
        return new MemoryEstimate
        {
            Model = resolved,
            Parameters = new ParameterSummary(model.ParameterCount, plan.Adapters?.TrainableParameters ?? (scenario.Mode == Mode.Training ? model.ParameterCount : 0), model.ActiveParameterCount),
            Components = components,
            PeakPhase = result.PeakPhase,
        };
    }
}
