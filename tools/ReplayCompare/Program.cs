using System.Diagnostics;
using System.Text.Json;
using LlmMemory;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Sources;
using LlmMemory.Workloads;

// One JSON scenario (or case) per stdin line -> one JSON result per stdout line: the replay's raw counters, or with
// "validate" the estimate of the case's measured quantity (MemoryEstimate.Quantity).
var extra = new HashSet<string>(["id", "measured"]);
bool validate = args.Length > 0 && args[0] == "validate";
string? line;
while ((line = Console.ReadLine()) is not null)
{
    if (line.Trim().Length == 0)
    {
        continue;
    }

    using JsonDocument document = JsonDocument.Parse(line);
    string id = document.RootElement.TryGetProperty("id", out JsonElement idElement) ? idElement.GetString()! : "";
    try
    {
        Scenario scenario = ScenarioReader.Read(document.RootElement, "stdin", Environment.CurrentDirectory, extra);
        ResolvedModel model = ModelResolver.Resolve(scenario.Model, scenario.BaseDirectory);
        Gpu? gpu = scenario.Gpu;
        if (validate)
        {
            string what = document.RootElement.GetProperty("measured").GetProperty("what").GetString()!;
            MeasuredQuantity quantity = Enum.Parse<MeasuredQuantity>(what.Replace("_", "", StringComparison.Ordinal), ignoreCase: true);
            var timer = Stopwatch.StartNew();
            MemoryEstimate estimate = MemoryEstimator.Estimate(model, scenario);
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                id,
                what,
                measured = document.RootElement.GetProperty("measured").GetProperty("bytes").GetInt64(),
                estimated = estimate.Quantity(quantity),
                phase = estimate.PeakPhase,
                ms = timer.Elapsed.TotalMilliseconds,
            }));
            continue;
        }

        ReplayPlan plan = ReplayPlan.For(model.Architecture!, scenario, gpu);
        var watch = Stopwatch.StartNew();
        ReplayResult result = Replayer.Run(model.Architecture!, plan.Options);
        watch.Stop();
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            id,
            weights = result.LoadedBytes,
            peak_allocated = result.PeakAllocated,
            peak_reserved = result.PeakReserved,
            device_used = result.PeakReserved + plan.Context.Bytes,
            phase = result.PeakPhase,
            oom = result.OutOfMemory,
            breakdown = Enum.GetValues<MemoryTag>().ToDictionary(t => t.ToString(), result.Live),
            ms = watch.Elapsed.TotalMilliseconds,
        }));
    }
    catch (Exception e) when (e is ModelFormatException or FormatException or InvalidOperationException)
    {
        Console.WriteLine(JsonSerializer.Serialize(new { id, error = e.Message }));
    }
}
