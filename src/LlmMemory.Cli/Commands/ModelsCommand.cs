using System.CommandLine;
using LlmMemory.Catalog;
using LlmMemory.Cli.Rendering;
using LlmMemory.Reporting;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory models</c>: the embedded catalog.</summary>
internal static class ModelsCommand
{
    public static Command Create(CliOutput io)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON instead of a table." };
        var command = new Command("models", "List the embedded model catalog: id, alias, parameters, type, dtype.") { json };
        command.SetAction(parse =>
        {
            // The instruct, chat and -it releases that share a base's shapes follow their base, marked "(variant)".
            IEnumerable<CatalogModel> models = ModelCatalog.All.SelectMany(m => ModelCatalog.Variants.Where(v => v.VariantOf == m).Prepend(m));
            if (parse.GetValue(json))
            {
                Output.Json(io, CatalogJson.Models());
                return 0;
            }

            Output.Table(io, ["Alias", "Hugging Face id", "Parameters", "Type", "Dtype"],
                models.Select(m => new[]
                {
                    m.VariantOf is null ? m.Alias : $"{m.Alias} (variant)", m.HfId, Output.Count(m.Architecture.ParameterCount), m.Architecture.ModelType,
                    m.Architecture.StoredType?.Name.ToLowerInvariant() ?? "-",
                }),
                rightAligned: [2]);
            return 0;
        });
        return command;
    }
}
