namespace LlmMemory.Planning;

/// <summary>Gradient accumulation: how many micro-batches to add up so that each optimizer step sees the target batch.</summary>
/// <remarks>
/// Effective batch = micro-batch × accumulation steps × data-parallel replicas (Unsloth's LoRA hyper-parameter guide,
/// "effective batch size"). Memory grows with the micro-batch only, so the planner takes the largest micro-batch that fits
/// and divides the target per replica evenly — the largest divisor of ⌈target ÷ replicas⌉ not above it — so the
/// effective batch is exactly the target whenever the replicas divide it, rather than overshooting.
/// </remarks>
internal static class Accumulation
{
    public static AccumulationPlan Plan(int targetBatch, int largestMicroBatch, int dataParallel)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(targetBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(largestMicroBatch, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(dataParallel, 1);
        int perReplica = (int)Math.Ceiling(targetBatch / (double)dataParallel);
        int micro = Enumerable.Range(1, Math.Min(perReplica, largestMicroBatch)).Last(d => perReplica % d == 0);
        int steps = perReplica / micro;
        string replicas = dataParallel > 1 ? $" × {dataParallel} replicas" : "";
        string reason = micro == largestMicroBatch || micro == perReplica
            ? $"micro-batch {micro} × {steps} steps{replicas}"
            : $"micro-batch {micro} (largest that fits: {largestMicroBatch}, but {micro} divides {perReplica} evenly) × {steps} steps{replicas}";
        return new AccumulationPlan(targetBatch, micro, steps, dataParallel, reason);
    }
}
