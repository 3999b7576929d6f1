using System.CommandLine;
using LlmMemory.Cli.Commands;
using LlmMemory.Cli.Rendering;

namespace LlmMemory.Cli;

/// <summary>Builds the command tree and runs it; every domain error becomes one line on stderr and exit code 2.</summary>
public static class CliApp
{
    /// <summary>Exit code for bad input (unknown model, malformed file, bad option).</summary>
    public const int BadInput = 2;

    /// <summary>Runs a command; <paramref name="width"/> is the columns output may use (by default <see cref="CliOutput.DefaultWidth"/>).</summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, int? width = null)
    {
        ArgumentNullException.ThrowIfNull(stdout);
        ArgumentNullException.ThrowIfNull(stderr);
        // The width is the real terminal's, so it is taken before stdout is wrapped.
        int columns = Math.Max(CliOutput.MinWidth, width ?? CliOutput.DefaultWidth(stdout));
        // Everything printed, tables, JSON, errors and help alike, goes through the escaping writers: the one place where
        // control characters from a file (ESC, BEL in a model_type or tensor name) are made visible instead of obeyed.
        stdout = new TerminalWriter(stdout);
        stderr = new TerminalWriter(stderr);
        var io = new CliOutput(stdout, stderr) { Width = columns };
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

/// <summary>The writers a command prints to, and the columns every line of output fits in.</summary>
public sealed record CliOutput(TextWriter Out, TextWriter Error)
{
    /// <summary>The narrowest width honoured: below it tables cannot show a formula column at all.</summary>
    public const int MinWidth = 40;

    /// <summary>Columns every printed line fits in (tables wrap their cells, prose wraps, the timeline scales to it).</summary>
    public int Width { get; init; } = 80;

    /// <summary>
    /// The terminal's width when writing to one; else (output redirected, or a writer other than the console) the
    /// <c>COLUMNS</c> environment variable when it is a positive number, as shells set it; else 80.
    /// </summary>
    public static int DefaultWidth(TextWriter stdout)
    {
        if (ReferenceEquals(stdout, Console.Out) && !Console.IsOutputRedirected)
        {
            try
            {
                if (Console.WindowWidth > 0)
                {
                    return Console.WindowWidth;
                }
            }
            catch (IOException)
            {
                // No console attached after all: fall through to COLUMNS.
            }
        }

        return int.TryParse(Environment.GetEnvironmentVariable("COLUMNS"), out int columns) && columns > 0 ? columns : 80;
    }

    /// <summary>Writes <paramref name="text"/> wrapped at spaces to <see cref="Width"/>, continuation lines indented by <paramref name="indent"/>.</summary>
    public void WriteWrapped(string text, int indent = 2)
    {
        ArgumentNullException.ThrowIfNull(text);
        foreach (string line in Rendering.Prose.Wrap(text, Width, indent))
        {
            Out.WriteLine(line);
        }
    }
}
