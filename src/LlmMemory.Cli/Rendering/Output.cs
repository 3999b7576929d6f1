using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Spectre.Console;

namespace LlmMemory.Cli.Rendering;

/// <summary>Tables and JSON on the command's writer: plain box characters when piped, no colour codes, invariant numbers.</summary>
internal static class Output
{
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Json(CliOutput io, JsonNode node) => io.Out.WriteLine(node.ToJsonString(Indented));

    public static string Count(long value) => value.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>A Spectre console over the command's writer, <see cref="CliOutput.Width"/> columns wide (tables wrap their cells to it).</summary>
    public static IAnsiConsole Console(CliOutput io)
    {
        bool terminal = TerminalWriter.Writes(io.Out, System.Console.Out) && !System.Console.IsOutputRedirected;
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(io.Out),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
        });
        console.Profile.Width = io.Width;
        return console;
    }

    public static void Table(CliOutput io, string[] headers, IEnumerable<string[]> rows, int[]? rightAligned = null, string? caption = null)
    {
        var table = new Table().Border(TableBorder.Rounded);
        for (int i = 0; i < headers.Length; i++)
        {
            var column = new TableColumn(Markup.Escape(headers[i]));
            if (i == 0)
            {
                // The first column names the row (a component, a GPU id, a case): kept whole, the others wrap.
                column.NoWrap();
            }

            if (rightAligned?.Contains(i) == true)
            {
                column.RightAligned();
            }

            table.AddColumn(column);
        }

        foreach (string[] row in rows)
        {
            table.AddRow(row.Select(cell => (Spectre.Console.Rendering.IRenderable)new Text(TerminalWriter.Escape(cell))).ToArray());
        }

        if (caption is not null)
        {
            table.Caption(Markup.Escape(caption));
        }

        Console(io).Write(table);
    }
}
