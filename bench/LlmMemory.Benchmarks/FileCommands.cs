using System.Diagnostics;
using System.Globalization;

namespace LlmMemory.Benchmarks;

/// <summary>Commands that write the sparse files and time reading them outside BenchmarkDotNet (for the peer comparison).</summary>
public static class GgufCommands
{
    /// <summary><c>gguf-file 8b|70b PATH</c>: writes a sparse Llama 3.1 Q4_K_M GGUF.</summary>
    public static int Write(string[] args)
    {
        if (args is not [string size, string path])
        {
            Console.Error.WriteLine("usage: gguf-file 8b|70b PATH");
            return 2;
        }

        SparseGguf.Shape shape = size.ToUpperInvariant() switch
        {
            "8B" => SparseGguf.Llama318B,
            "70B" => SparseGguf.Llama3170B,
            _ => throw new ArgumentException($"size '{size}' is not 8b or 70b."),
        };
        long length = SparseGguf.Write(path, shape);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{path}: {length:N0} bytes ({length / 1e9:F2} GB)"));
        return 0;
    }

    /// <summary>
    /// <c>gguf-time PATH [RUNS] [--naive]</c>: median wall time of our header reader over RUNS reads after 30 warm-ups (past tiered compilation's 30 calls, so the code timed is the optimized one), and with
    /// <c>--naive</c> the time to read the whole file once (1 MiB reads), which is what a tool that loads the file to parse it pays.
    /// Prints one JSON object per line.
    /// </summary>
    public static int Time(string[] args)
    {
        string path = args[0];
        int runs = args.Length > 1 && int.TryParse(args[1], CultureInfo.InvariantCulture, out int n) ? n : 50;
        long length = new FileInfo(path).Length;
        double[] times = Measure(() => ReaderProbe.ReadGguf(path), runs, out long parameters);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{{\"tool\":\"llm-memory\",\"file\":\"{Path.GetFileName(path)}\",\"bytes\":{length},\"runs\":{runs},\"median_ms\":{Median(times):F3},\"min_ms\":{times.Min():F3},\"parameters\":{parameters}}}"));
        if (args.Contains("--naive"))
        {
            var clock = Stopwatch.StartNew();
            long read = ReadWhole(path);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{{\"tool\":\"naive (read whole file)\",\"file\":\"{Path.GetFileName(path)}\",\"bytes\":{read},\"runs\":1,\"median_ms\":{clock.Elapsed.TotalMilliseconds:F1}}}"));
        }

        return 0;
    }

    private static double[] Measure(Func<long> action, int runs, out long result)
    {
        result = 0;
        for (int i = 0; i < 30; i++)
        {
            result = action();
        }

        var times = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long start = Stopwatch.GetTimestamp();
            result = action();
            times[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
        }

        return times;
    }

    private static double Median(double[] values)
    {
        double[] sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Reads every byte of the file, as a parser that loads the file first does.</summary>
    public static long ReadWhole(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.SequentialScan);
        byte[] buffer = new byte[1 << 20];
        long total = 0;
        int read;
        while ((read = file.Read(buffer)) > 0)
        {
            total += read;
        }

        return total;
    }
}

/// <summary><c>safetensors-files ALIAS FOLDER</c>: writes a sparse sharded checkpoint of a catalog model.</summary>
public static class SafetensorsCommands
{
    public static int Write(string[] args)
    {
        if (args is not [string alias, string folder])
        {
            Console.Error.WriteLine("usage: safetensors-files ALIAS FOLDER");
            return 2;
        }

        (int shards, long bytes) = SparseSafetensors.Write(folder, alias);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{folder}: {shards} shards, {bytes:N0} bytes of tensors ({bytes / 1e9:F1} GB)"));
        return 0;
    }
}
