using LlmMemory.Formats.Gguf;

namespace LlmMemory.Benchmarks;

/// <summary>The calls into the readers, in one place so the benchmarks and the timing commands call the same thing.</summary>
public static class ReaderProbe
{
    /// <summary>Reads a GGUF file's header into an architecture (what <c>llm-memory params FILE.gguf</c> does) and returns its parameter count.</summary>
    public static long ReadGguf(string path) => GgufModel.ReadFile(path).ParameterCount;

    /// <summary>The I/O floor of a header read: open the file, read its first <paramref name="bytes"/> bytes, close it.</summary>
    public static int ReadHead(string path, int bytes)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        byte[] buffer = new byte[bytes];
        file.ReadExactly(buffer);
        return buffer[^1];
    }
}
