using LlmMemory.Estimation;

namespace LlmMemory.Benchmarks;

/// <summary>Says which estimator path each benchmarked scenario takes: its peak phase, components and the estimator's first note.</summary>
public static class EstimatePaths
{
    public static int Print(TextWriter output)
    {
        ArgumentNullException.ThrowIfNull(output);
        foreach ((string name, Workloads.Scenario scenario) in Scenarios.All)
        {
            MemoryEstimate estimate = MemoryEstimator.Estimate(scenario);
            string components = string.Join(", ", estimate.Components.Select(c => c.Kind).Distinct());
            output.WriteLine($"{name}: mode {scenario.Mode}, engine {scenario.Engine}; peak at \"{estimate.PeakPhase}\"; " +
                $"{estimate.Components.Count} components ({components}); device total {estimate.DeviceTotal}");
            foreach (string note in estimate.Notes.Take(2))
            {
                output.WriteLine($"    note: {note}");
            }
        }

        return 0;
    }
}
