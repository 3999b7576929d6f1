using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Training;
using LlmMemory.Reporting;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory params MODEL</c>: exact parameter count with its breakdown.</summary>
internal static class ParamsCommand
{
    public static Command Create(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "Catalog id or alias, a .gguf / .safetensors / model.safetensors.index.json / config.json path, a checkpoint folder, a Hugging Face id org/name[@rev][:quant], or a count such as 7B." };
        var json = new Option<bool>("--json") { Description = "Print JSON: {\"model\": {...}, \"parameters\": {\"total\": N, \"trainable\": N, ...}}." };
        var rank = new Option<int?>("--lora-r") { Description = "Count the trainable parameters of LoRA adapters of this rank." };
        var targets = new Option<string?>("--lora-targets") { Description = "all-linear (default), attention, or module names: q_proj,v_proj." };
        var dora = new Option<bool>("--dora") { Description = "DoRA: add a magnitude vector per adapted module." };
        var command = new Command("params", "Exact parameter count, by role (embeddings, attention, MLP or experts, norms, output head), and LoRA's trainable count.")
        {
            model, json, rank, targets, dora,
        };
        command.SetAction(parse =>
        {
            ResolvedModel resolved = ModelSources.Resolve(new ModelReference.Named(parse.GetValue(model)!), null, io);
            LoraAdapters? adapters = Adapters(resolved, parse.GetValue(rank), parse.GetValue(targets), parse.GetValue(dora));
            if (parse.GetValue(json))
            {
                Output.Json(io, new System.Text.Json.Nodes.JsonObject
                {
                    ["model"] = EstimateJson.Model(resolved),
                    ["parameters"] = EstimateJson.Parameters(resolved, adapters?.TrainableParameters ?? 0),
                });
                return 0;
            }

            var rows = new List<string[]>();
            if (resolved.Architecture is { } a)
            {
                rows.AddRange(ParameterBreakdown.Of(a).Select(r => new[] { r.Name, Output.Count(r.Count), Percent(r.Count, a.ParameterCount) }));
                if (a.Experts is not null)
                {
                    rows.Add(["active per token", Output.Count(a.ActiveParameterCount), Percent(a.ActiveParameterCount, a.ParameterCount)]);
                }

                if (a.PredictionLayerParameters > 0)
                {
                    rows.Add(["multi-token prediction (apart)", Output.Count(a.PredictionLayerParameters), "-"]);
                }
            }

            rows.Add(["total", Output.Count(resolved.ParameterCount), "100.00 %"]);
            if (adapters is not null)
            {
                rows.Add([$"trainable: LoRA r={adapters.Rank}{(adapters.Dora ? " + DoRA" : "")} on {adapters.Targets.Count} modules",
                    Output.Count(adapters.TrainableParameters), Percent(adapters.TrainableParameters, resolved.ParameterCount)]);
            }

            Output.Table(io, ["Part", "Parameters", "Share"], rows, rightAligned: [1, 2], caption: $"{resolved.Name} ({resolved.Origin})");
            return 0;
        });
        return command;
    }

    /// <summary>The adapters --lora-r / --lora-targets / --dora describe, or null when none of them is given.</summary>
    private static LoraAdapters? Adapters(ResolvedModel resolved, int? rank, string? targets, bool dora)
    {
        if (rank is null && targets is null && !dora)
        {
            return null;
        }

        if (resolved.Architecture is not { } architecture)
        {
            throw new FormatException("--lora-r needs a model with an architecture (a catalog id, config.json or weights file), not a bare count.");
        }

        if (rank is < 1)
        {
            throw new FormatException($"--lora-r must be at least 1, got {rank}.");
        }

        LoraSettings settings = LoraSettings.Default with
        {
            Rank = rank ?? LoraSettings.Default.Rank,
            Targets = targets is null ? LoraTargets.AllLinear : LoraTargets.Parse(targets),
            Dora = dora,
        };
        return LoraAdapters.For(architecture, settings);
    }

    private static string Percent(long part, long total) =>
        (100.0 * part / total).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " %";
}
