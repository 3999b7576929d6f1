using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;

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

    /// <summary><c>loop NAME SECONDS</c>: estimates one scenario over and over, for a profiler (<c>dotnet-trace collect -- …</c>).</summary>
    public static int Loop(string name, double seconds)
    {
        Workloads.Scenario scenario = Scenarios.All.Single(s => s.Name == name).Scenario;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long count = 0;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            _ = MemoryEstimator.Estimate(scenario);
            count++;
        }

        Console.WriteLine($"{name}: {count:N0} estimates, {clock.Elapsed.TotalMicroseconds / count:F2} µs each");
        return 0;
    }
}
