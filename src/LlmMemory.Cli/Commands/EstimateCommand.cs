using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Reporting;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory estimate MODEL [options]</c>: the memory breakdown of one scenario.</summary>
internal static class EstimateCommand
{
    public static Command Create(CliOutput io)
    {
        var options = new ScenarioOptions();
        var json = new Option<bool>("--json") { Description = "Print the estimate as JSON (components with bytes and formula, total_bytes)." };
        var timeline = new Option<bool>("--timeline") { Description = "Also chart device memory over one step (load, forward, loss, backward, optimizer; prefill, decode)." };
        var command = new Command("estimate", "Estimate the memory of running, training or fine-tuning a model, part by part.");
        options.AddTo(command);
        command.Options.Add(json);
        command.Options.Add(timeline);
        command.SetAction(parse =>
        {
            (Scenario scenario, IReadOnlyList<string> configNotes) = options.Input(parse);
            MemoryEstimate estimate = MemoryEstimator.Estimate(ModelSources.Resolve(scenario.Model, scenario.BaseDirectory, io), scenario);
            estimate = estimate with { Notes = [.. configNotes, .. estimate.Notes] };
            if (parse.GetValue(json))
            {
                Output.Json(io, EstimateJson.Estimate(estimate, scenario));
            }
            else
            {
                EstimateTable.Write(io, estimate, scenario);
                if (parse.GetValue(timeline))
                {
                    TimelineChart.Write(io, estimate);
                }
            }

            return 0;
        });
        return command;
    }
}
