using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Estimation;
using LlmMemory.Reporting;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory params MODEL</c>: exact parameter count with its breakdown.</summary>
internal static class ParamsCommand
{
    public static Command Create(CliOutput io)
    {
        var model = new Argument<string>("model") { Description = "Catalog id or alias, a .gguf / .safetensors / model.safetensors.index.json / config.json path, a checkpoint folder, a Hugging Face id org/name[@rev][:quant], or a count such as 7B." };
        var json = new Option<bool>("--json") { Description = "Print JSON: {\"model\": {...}, \"parameters\": {\"total\": N, ...}}." };
        var command = new Command("params", "Exact parameter count, by role (embeddings, attention, MLP or experts, norms, output head).") { model, json };
        command.SetAction(parse =>
        {
            ResolvedModel resolved = ModelSources.Resolve(new ModelReference.Named(parse.GetValue(model)!), null, io);
            if (parse.GetValue(json))
            {
                Output.Json(io, new System.Text.Json.Nodes.JsonObject
                {
                    ["model"] = EstimateJson.Model(resolved),
                    ["parameters"] = EstimateJson.Parameters(resolved, 0),
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
            Output.Table(io, ["Part", "Parameters", "Share"], rows, rightAligned: [1, 2], caption: $"{resolved.Name} ({resolved.Origin})");
            return 0;
        });
        return command;
    }

    private static string Percent(long part, long total) =>
        (100.0 * part / total).ToString("0.00", System.Globalization.CultureInfo.InvariantCulture) + " %";
}
