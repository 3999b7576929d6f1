using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Estimation.Replay;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// A server passes its request's token down so that a client who gives up stops the work it asked for (issue 19): the
/// replay checks it at every phase and layer boundary, every estimate checks it before it starts (cached or not), and
/// the solvers pass it to every estimate they make.
/// </summary>
public sealed class CancellationTests
{
    private static readonly Scenario Training = new() { Model = new ModelReference.Named("llama-3.2-1b"), Mode = Mode.Training, Seq = 512 };

    private static CancellationToken Cancelled => new(canceled: true);

    [Fact]
    public void A_cancelled_token_stops_the_replay_itself()
    {
        ResolvedModel model = ModelResolver.Resolve(Training.Model, null);
        ReplayPlan plan = ReplayPlan.For(model.Architecture!, Training, gpu: null);

        // Replayer.Run has no check of its own at the start: the first phase boundary of the replay is what throws.
        Assert.Throws<OperationCanceledException>(() => Replayer.Run(model.Architecture!, plan.Options, Cancelled));
        Assert.True(Replayer.Run(model.Architecture!, plan.Options).PeakAllocated > 0);
    }

    [Fact]
    public void A_cancelled_estimate_throws_even_when_its_answer_is_cached()
    {
        ResolvedModel model = ModelResolver.Resolve(Training.Model, null);
        _ = MemoryEstimator.Estimate(model, Training);

        Assert.Throws<OperationCanceledException>(() => MemoryEstimator.Estimate(model, Training, Cancelled));
    }

    [Fact]
    public void A_cancelled_fit_stops_instead_of_answering()
    {
        Scenario scenario = Training with { Gpu = GpuCatalog.Find("rtx-4090") };
        ResolvedModel model = ModelResolver.Resolve(scenario.Model, null);

        Assert.Throws<OperationCanceledException>(() => FitPlanner.Plan(model, scenario, cancellationToken: Cancelled));
    }
}
