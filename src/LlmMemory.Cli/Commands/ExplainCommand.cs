using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Reporting;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory explain MODEL [options]</c>: the essay's walk-through with this model's and workload's numbers.</summary>
internal static class ExplainCommand
{
    public static Command Create(CliOutput io)
    {
        var options = new ScenarioOptions();
        var json = new Option<bool>("--json") { Description = "Print JSON: sections with text and steps (label, formula, result), the estimate and its timeline." };
        var command = new Command("explain",
            "Walk through where the memory goes: weights, precision, quantization, training states, activations, LoRA, effective batch, KV cache.");
        options.AddTo(command);
        command.Options.Add(json);
        command.SetAction(parse =>
        {
            (Scenario scenario, IReadOnlyList<string> configNotes) = options.Input(parse);
            Explanation explanation = Explainer.Explain(ModelSources.Resolve(scenario.Model, scenario.BaseDirectory, io), scenario);
            if (configNotes.Count > 0)
            {
                explanation = explanation with { Sections = [new ExplanationSection("config", "What the config files say", configNotes, []), .. explanation.Sections] };
            }
            if (parse.GetValue(json))
            {
                Output.Json(io, ExplanationJson.Of(explanation));
            }
            else
            {
                ExplanationText.Write(io, explanation);
            }

            return 0;
        });
        return command;
    }
}
