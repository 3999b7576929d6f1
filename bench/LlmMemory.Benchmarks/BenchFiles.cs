namespace LlmMemory.Benchmarks;

/// <summary>The sparse files the reader benchmarks read, written on first use under <c>$BENCH_FILES</c> (default /tmp/llm-memory-bench).</summary>
public static class BenchFiles
{
    public static string Folder { get; } = Environment.GetEnvironmentVariable("BENCH_FILES") is { Length: > 0 } folder
        ? folder : Path.Combine(Path.GetTempPath(), "llm-memory-bench");

    /// <summary>Llama 3.1 Q4_K_M GGUF: <c>8b</c> (4.92 GB) or <c>70b</c> (42.5 GB).</summary>
    public static string Gguf(string size)
    {
        string path = Path.Combine(Folder, $"llama-3.1-{size}-q4_k_m.gguf");
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Folder);
            SparseGguf.Write(path, size == "70b" ? SparseGguf.Llama3170B : SparseGguf.Llama318B);
        }

        return path;
    }

    /// <summary>The sharded bf16 checkpoint of Llama-3.1-70B: 30 shards, 141 GB.</summary>
    public static string Llama70BCheckpoint()
    {
        string folder = Path.Combine(Folder, "llama-3.1-70b");
        if (!File.Exists(Path.Combine(folder, "model.safetensors.index.json")))
        {
            SparseSafetensors.Write(folder, "llama-3.1-70b");
        }

        return folder;
    }
}
