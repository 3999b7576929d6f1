using LlmMemory.Hub;

namespace LlmMemory.Cli.Rendering;

/// <summary>A one-line progress bar on stderr while Hub headers arrive; silent when stderr is not a terminal.</summary>
internal sealed class ProgressBar(CliOutput io) : IProgress<HubProgress>, IDisposable
{
    private const int Width = 30;
    private readonly bool _terminal = TerminalWriter.Writes(io.Error, Console.Error) && !Console.IsErrorRedirected;
    private readonly Lock _gate = new();
    private bool _drawn;

    public void Report(HubProgress value)
    {
        if (!_terminal || value.Total <= 0)
        {
            return;
        }

        int filled = (int)((long)Width * value.Done / value.Total);
        lock (_gate)
        {
            io.Error.Write($"\r{value.What} [{new string('#', filled)}{new string('-', Width - filled)}] {value.Done}/{value.Total}");
            _drawn = true;
        }
    }

    public void Dispose()
    {
        if (_drawn)
        {
            io.Error.WriteLine();
        }
    }
}
