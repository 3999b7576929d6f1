using System.CommandLine;
using System.Globalization;
using LlmMemory.Cli.Rendering;
using LlmMemory.Hardware;
using LlmMemory.Reporting;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory gpus</c>: the GPU catalog, with the memory each device states and the memory software can use.</summary>
internal static class GpusCommand
{
    public static Command Create(CliOutput io)
    {
        var json = new Option<bool>("--json") { Description = "Print JSON: every device with memory_bytes, usable_bytes, bf16, fp8 and source." };
        var command = new Command("gpus", "List the GPU catalog: memory as the vendor states it, the usable total estimates must fit in, bf16/fp8, source.") { json };
        command.SetAction(parse =>
        {
            if (parse.GetValue(json))
            {
                Output.Json(io, CatalogJson.Gpus());
                return 0;
            }

            Output.Table(io, ["Id", "Name", "Vendor states", "Memory", "Usable", "bf16", "fp8", "Usable from"],
                GpuCatalog.All.Select(g => new[]
                {
                    g.Id, g.Name, g.Marketed ?? "-", g.Memory?.ToString() ?? "-", g.Usable?.ToString() ?? "-", Flag(g.Bf16), Flag(g.Fp8),
                    Short(g.UsableBasis ?? "-"),
                }),
                rightAligned: [3, 4],
                caption: "Memory: the vendor's GB are binary (GiB). Usable: what CUDA/ROCm/Metal reports, the budget every estimate must fit in. "
                    + "Sources per device: --json or data/GPUS.md.");
            return 0;
        });
        return command;
    }

    private static string Flag(bool? value) => value switch
    {
        true => "yes",
        false => "no",
        null => "depends",
    };

    /// <summary>The reading's name without its long provenance (which --json keeps).</summary>
    private static string Short(string text)
    {
        int cut = text.IndexOfAny(['(', ';']);
        string head = (cut > 0 ? text[..cut] : text).Trim();
        return head.Length <= 48 ? head : string.Create(CultureInfo.InvariantCulture, $"{head[..47]}…");
    }
}
