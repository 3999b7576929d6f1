using System.CommandLine;
using LlmMemory.Cli.Rendering;
using LlmMemory.Reporting;
using LlmMemory.Validation;

namespace LlmMemory.Cli.Commands;

/// <summary><c>llm-memory validate FILE.jsonl… [--json | --markdown]</c>: every case estimated and compared with its measurement.</summary>
internal static class ValidateCommand
{
    public static Command Create(CliOutput io)
    {
        var files = new Argument<string[]>("files")
        {
            Description = "Case files (JSON Lines, one case per line, docs/scenario.md); ids must be unique across them.",
            Arity = ArgumentArity.OneOrMore,
        };
        var json = new Option<bool>("--json") { Description = "Print {\"cases\": [...], \"summary\": {...}} as docs/scenario.md defines it." };
        var markdown = new Option<bool>("--markdown") { Description = "Print the accuracy report (docs/accuracy.md): per-case table, summaries, naive rules side by side." };
        var command = new Command("validate", "Estimate every case of measurement files and report how far each estimate is from its measurement.")
        {
            files, json, markdown,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(json) && result.GetValue(markdown))
            {
                result.AddError("--json and --markdown cannot be used together.");
            }
        });
        command.SetAction(parse =>
        {
            string[] paths = parse.GetValue(files)!;
            // A line that is not a case costs that case alone: the others run, and each bad line is one error line below.
            CaseSet read = CaseReader.ReadAll(paths);
            ValidationReport report = CaseValidator.Validate(read.Cases);
            if (parse.GetValue(json))
            {
                Output.Json(io, ValidationJson.Report(report));
            }
            else if (parse.GetValue(markdown))
            {
                AccuracyMarkdown.Write(io, report, paths);
            }
            else
            {
                ValidationTable.Write(io, report);
            }

            foreach (ModelFormatException bad in read.BadLines)
            {
                io.Error.WriteLine($"error: {bad.Message}");
            }

            return read.BadLines.Count == 0 ? 0 : CliApp.BadInput;
        });
        return command;
    }
}
