using System.Diagnostics;

namespace LlmMemory.Tests.Support;

/// <summary>Files that are not regular files, made under a <see cref="TempFolder"/>: a symlink to /dev/zero and a FIFO.</summary>
internal static class SpecialFiles
{
    /// <summary>Whether this OS has /dev/zero, symlinks and FIFOs (every Unix the tests run on; not Windows).</summary>
    public static bool Available => !OperatingSystem.IsWindows() && File.Exists("/dev/zero");

    /// <summary>A symlink named <paramref name="name"/> to /dev/zero, a file that reports 0 bytes and never ends.</summary>
    public static string Zero(TempFolder folder, string name)
    {
        string path = folder.File(name);
        File.CreateSymbolicLink(path, "/dev/zero");
        return path;
    }

    /// <summary>A FIFO named <paramref name="name"/>; opening it for reading blocks until a writer opens it.</summary>
    public static Fifo Fifo(TempFolder folder, string name) => new(folder.File(name));
}

/// <summary>
/// A named pipe with a writer waiting on it, so that a reader that opens it (a regression) gets an empty file instead of
/// blocking forever; disposing releases the waiting writer when no reader came.
/// </summary>
internal sealed class Fifo : IDisposable
{
    private readonly Thread _writer;

    public Fifo(string path)
    {
        Path = path;
        using (Process make = Process.Start(new ProcessStartInfo("mkfifo", [path]) { UseShellExecute = false })!)
        {
            make.WaitForExit();
            Assert.Equal(0, make.ExitCode);
        }

        _writer = new Thread(() =>
        {
            using var open = new FileStream(path, FileMode.Open, FileAccess.Write);
        }) { IsBackground = true };
        _writer.Start();
    }

    public string Path { get; }

    /// <summary>Whether some reader opened the pipe (the writer's open returned).</summary>
    public bool Opened => !_writer.IsAlive;

    public void Dispose()
    {
        if (!Opened)
        {
            // Opening for reading meets the waiting writer, so both opens return and the thread ends.
            using var release = new FileStream(Path, FileMode.Open, FileAccess.Read);
        }

        _writer.Join();
    }
}
