using System.CommandLine;
using LlmMemory.Cli.Commands;
using LlmMemory.Cli.Rendering;

namespace LlmMemory.Cli;

/// <summary>Builds the command tree and runs it; every domain error becomes one line on stderr and exit code 2.</summary>
public static class CliApp
{
    /// <summary>Exit code for bad input (unknown model, malformed file, bad option).</summary>
    public const int BadInput = 2;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        // Everything printed, tables, JSON, errors and help alike, goes through the escaping writers: the one place where
        // control characters from a file (ESC, BEL in a model_type or tensor name) are made visible instead of obeyed.
        stdout = new TerminalWriter(stdout);
        stderr = new TerminalWriter(stderr);
        var io = new CliOutput(stdout, stderr);
        var root = new RootCommand("llm-memory: how much GPU memory an LLM needs to run, train or fine-tune, with every part explained.")
        {
            ModelsCommand.Create(io),
            ParamsCommand.Create(io),
            DtypesCommand.Create(io),
            EstimateCommand.Create(io),
            ValidateCommand.Create(io),
            GpusCommand.Create(io),
            FitCommand.Create(io),
            ExplainCommand.Create(io),
            ServeCommand.Create(io),
        };
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            stderr.WriteLine($"error: {parsed.Errors[0].Message}");
            return BadInput;
        }

        try
        {
            return parsed.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
        }
        catch (Exception error) when (error is FormatException or IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            stderr.WriteLine($"error: {error.Message}");
            return BadInput;
        }
    }
}

/// <summary>The writers a command prints to.</summary>
public sealed record CliOutput(TextWriter Out, TextWriter Error);
