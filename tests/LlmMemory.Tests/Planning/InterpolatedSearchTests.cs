using LlmMemory.Estimation.Engines;
using LlmMemory.Hardware;
using LlmMemory.Planning;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>
/// The solvers interpolate between estimates to ask fewer of them; their answers are the ones a plain search finds:
/// doubling from 1 until a value does not fit, then bisection, asking the estimator directly.
/// </summary>
public sealed class InterpolatedSearchTests
{
    public static TheoryData<string, Mode, string> Scenarios => new()
    {
        { "llama-3.1-8b", Mode.Lora, "rtx-4090" },
        { "llama-3.1-8b", Mode.Inference, "rtx-4090" },
        { "llama-3.2-1b", Mode.Training, "rtx-4090" },
        { "qwen2.5-0.5b", Mode.Qlora, "rtx-4090" },
        { "llama-3.1-70b", Mode.Training, "h100-80gb" },
        { "gpt2", Mode.Training, "rtx-4090" },
        { "gemma-2-2b", Mode.Lora, "rtx-4090" },
    };

    [Theory]
    [MemberData(nameof(Scenarios))]
    public void Longest_context_and_largest_batch_are_those_a_plain_search_finds(string model, Mode mode, string gpu)
    {
        var scenario = new Scenario { Model = new ModelReference.Named(model), Mode = mode, Gpu = GpuCatalog.Find(gpu), Seq = 1024 };

        FitPlan plan = Plans.For(scenario);

        Assert.Equal(PlainSearch(n => scenario with { Seq = n }, FitPlanner.MaxSeq), plan.MaxSeq.Value);
        Assert.Equal(PlainSearch(n => scenario with { Batch = n }, FitPlanner.MaxBatch), plan.MaxBatch.Value);
    }

    /// <summary>The largest n ≤ cap whose estimate fits: double from 1 until one does not, then bisect between the last two.</summary>
    private static int? PlainSearch(Func<int, Scenario> at, int cap)
    {
        if (!Fits(at(1)))
        {
            return null;
        }

        long low = 1;
        long high = 2;
        while (high <= cap && Fits(at((int)high)))
        {
            low = high;
            high *= 2;
        }

        if (low == cap || (high > cap && Fits(at(cap))))
        {
            return cap;
        }

        high = Math.Min(high, cap);
        while (high - low > 1)
        {
            long middle = (low + high) / 2;
            (low, high) = Fits(at((int)middle)) ? (middle, high) : (low, middle);
        }

        return (int)low;
    }

    private static bool Fits(Scenario scenario)
    {
        try
        {
            return MemoryEstimator.Estimate(scenario).Fits == true;
        }
        catch (Exception refused) when (refused is OverflowException or FormatException or NotSupportedException)
        {
            return false;
        }
    }
}
