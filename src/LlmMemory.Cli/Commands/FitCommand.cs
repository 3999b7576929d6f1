using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Planning;
using LlmMemory.Reporting;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory fit MODEL --gpu G [options]</c>: does it fit, how far does it stretch, and what to change.</summary>
internal static class FitCommand
{
    public static Command Create(CliOutput io)
    {
        var options = new ScenarioOptions();
        var targetBatch = new Option<int?>("--target-batch")
        {
            Description = $"Training: effective batch to reach with gradient accumulation (default {FitPlanner.DefaultTargetBatch}, the top of the 4-16 range).",
        };
        var json = new Option<bool>("--json") { Description = "Print JSON: fits, max_seq, max_batch, min_gpus, gpu_bytes, formats or changes, with reasons." };
        var command = new Command("fit",
            "Does it fit this GPU? The largest context and batch that fit, the weight format or training change needed, the fewest GPUs.");
        options.AddTo(command);
        command.Options.Add(targetBatch);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            (Scenario scenario, IReadOnlyList<string> configNotes) = options.Input(parse);
            FitPlan plan = FitPlanner.Plan(ModelSources.Resolve(scenario.Model, scenario.BaseDirectory, io), scenario, parse.GetValue(targetBatch) ?? FitPlanner.DefaultTargetBatch);
            plan = plan with { Notes = [.. configNotes, .. plan.Notes] };
            if (parse.GetValue(json))
            {
                Output.Json(io, FitJson.Plan(plan));
            }
            else
            {
                FitReport.Write(io, plan);
            }

            return 0;
        });
        return command;
    }
}
