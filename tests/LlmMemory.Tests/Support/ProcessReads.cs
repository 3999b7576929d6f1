namespace LlmMemory.Tests.Support;

/// <summary>
/// Bytes this process has read so far: the <c>rchar</c> line of Linux's <c>/proc/self/io</c>, "the number of bytes which this
/// task has caused to be read from storage […] the sum of bytes which this process passed to read() and pread()" (proc(5)),
/// page cache or not. A reader that reads a file's data section shows it here whatever the machine's load, where a clock would not.
/// </summary>
internal static class ProcessReads
{
    public static long Bytes()
    {
        foreach (string line in File.ReadLines("/proc/self/io"))
        {
            if (line.StartsWith("rchar:", StringComparison.Ordinal))
            {
                return long.Parse(line.AsSpan("rchar:".Length).Trim(), System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException("/proc/self/io has no rchar line");
    }
}
