using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;
using LlmMemory.Benchmarks;

// dotnet run -c Release --project bench/LlmMemory.Benchmarks -- [--filter '*'] | --smoke | paths | replays | fresh-process | fresh-loop | gguf-file | gguf-time
// (docs/performance.md says what each figure is and how to rerun it).
return args switch
{
    ["paths", ..] => EstimatePaths.Print(Console.Out),
    ["replays", ..] => ReplayCounts.Print(Console.Out),
    ["fresh-process", string name, string what] => FreshProcess.Print(name, what, Console.Out),
    ["fresh-alloc", string name, string what, string seconds] => FreshProcess.Allocations(name, what, double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture), Console.Out),
    ["fresh-loop", string name, string what, string seconds] => FreshProcess.Loop(name, what, double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture), Console.Out),
    ["loop", string name, string seconds] => EstimatePaths.Loop(name, double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture)),
    ["gguf-file", ..] => GgufCommands.Write(args[1..]),
    ["gguf-time", ..] => GgufCommands.Time(args[1..]),
    ["safetensors-files", ..] => SafetensorsCommands.Write(args[1..]),
    _ => RunBenchmarks(args),
};

static int RunBenchmarks(string[] args)
{
    bool smoke = args.Contains("--smoke");
    // In-process: the machine has 2 cores and other builds run beside it, so no child project is generated and built.
    // 5 warm-up and 20 measured iterations: ShortRun's 3 are too few for medians on a loaded machine.
    Job job = smoke
        ? Job.Dry.WithToolchain(InProcessEmitToolchain.Instance)
        : Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(5).WithIterationCount(20).WithLaunchCount(1);
    IConfig config = DefaultConfig.Instance.AddJob(job.AsDefault()).WithOptions(ConfigOptions.DisableOptimizationsValidator);
    string[] rest = args.Where(a => a != "--smoke").ToArray();
    if (rest.Length == 0)
    {
        rest = ["--filter", "*"];
    }

    var summaries = BenchmarkSwitcher.FromAssembly(typeof(EstimateBenchmarks).Assembly).Run(rest, config);
    return summaries.Any(s => s.HasCriticalValidationErrors || s.Reports.Any(r => !r.Success)) ? 1 : 0;
}
