using System.Diagnostics;
using System.Runtime;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Benchmarks;

/// <summary>
/// <c>fresh-process lora|training70b estimate|fit</c>: one question in this (fresh) process, as the CLI asks it, and where its
/// time went: wall time, JIT time and methods compiled (<see cref="JitInfo"/>), garbage collections and their pauses, and
/// replays run. Run it as a new process each time; the figures of a warm process are the BenchmarkDotNet rows.
/// </summary>
internal static class FreshProcess
{
    public static int Print(string name, string what, TextWriter output)
    {
        Scenario scenario = Of(name);
        var clock = Stopwatch.StartNew();
        TimeSpan jitBefore = JitInfo.GetCompilationTime();
        ResolvedModel model = ModelResolver.Resolve(scenario.Model);
        Mark(output, "resolve", clock, jitBefore);
        long replays = Replayer.Runs;
        TimeSpan jit = JitInfo.GetCompilationTime();
        TimeSpan pause = GC.GetTotalPauseDuration();
        int gen0 = GC.CollectionCount(0);
        int gen2 = GC.CollectionCount(2);
        long allocated = GC.GetTotalAllocatedBytes();
        var question = Stopwatch.StartNew();
        _ = what == "fit" ? (object)FitPlanner.Plan(model, scenario) : MemoryEstimator.Estimate(model, scenario);
        question.Stop();
        output.WriteLine($"{what} {name}: {question.Elapsed.TotalMilliseconds:F0} ms; replays {Replayer.Runs - replays}; "
            + $"JIT {(JitInfo.GetCompilationTime() - jit).TotalMilliseconds:F0} ms ({JitInfo.GetCompiledMethodCount()} methods in all); "
            + $"GC {GC.CollectionCount(0) - gen0} gen0, {GC.CollectionCount(2) - gen2} gen2, paused {(GC.GetTotalPauseDuration() - pause).TotalMilliseconds:F0} ms; "
            + $"allocated {(GC.GetTotalAllocatedBytes() - allocated) / 1e6:F0} MB");
        output.WriteLine($"  whole process so far: {(DateTime.Now - Process.GetCurrentProcess().StartTime).TotalMilliseconds:F0} ms, JIT {JitInfo.GetCompilationTime().TotalMilliseconds:F0} ms, "
            + $"CPU {Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds:F0} ms");
        return 0;
    }

    /// <summary><c>fresh-loop NAME estimate|fit SECONDS</c>: the same fresh question again and again (every kept estimate forgotten
    /// each time), for a profiler to sample the replay's warm code.</summary>
    public static int Loop(string name, string what, double seconds, TextWriter output)
    {
        Scenario scenario = Of(name);
        ResolvedModel model = ModelResolver.Resolve(scenario.Model);
        var clock = Stopwatch.StartNew();
        long count = 0;
        long replays = Replayer.Runs;
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            EstimateCache.ClearAll();
            _ = what == "fit" ? (object)FitPlanner.Plan(model, scenario) : MemoryEstimator.Estimate(model, scenario);
            count++;
        }

        output.WriteLine($"{what} {name}: {count:N0} fresh, {clock.Elapsed.TotalMilliseconds / count:F1} ms each, {(Replayer.Runs - replays) / (double)count:F1} replays each");
        return 0;
    }

    /// <summary><c>fresh-alloc NAME estimate|fit SECONDS</c>: <see cref="Loop"/> with the runtime's allocation samples by type.</summary>
    public static int Allocations(string name, string what, double seconds, TextWriter output)
    {
        using var ticks = new AllocationTicks();
        Loop(name, what, seconds, output);
        ticks.Print(output, 25);
        return 0;
    }

    private static Scenario Of(string name) => name switch
    {
        "lora" => FreshBenchmarks.Lora8B,
        "training70b" => FreshBenchmarks.Training70B,
        _ => throw new ArgumentException($"unknown scenario '{name}': lora or training70b"),
    };

    private static void Mark(TextWriter output, string what, Stopwatch clock, TimeSpan jitBefore) =>
        output.WriteLine($"  {what}: {clock.Elapsed.TotalMilliseconds:F0} ms, JIT {(JitInfo.GetCompilationTime() - jitBefore).TotalMilliseconds:F0} ms");
}
