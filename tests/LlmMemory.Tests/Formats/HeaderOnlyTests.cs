using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Sources;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Formats;

/// <summary>Reading a checkpoint costs what its header costs: a 140 GB file is read as fast, and in as little memory, as a small one.</summary>
public sealed class HeaderOnlyTests
{
    /// <summary>
    /// Bytes read and managed bytes allocated while resolving <paramref name="path"/>. Reads are counted for the whole process
    /// (other tests run beside this one), so the bound below leaves them room; the data section is over 100 times that bound.
    /// </summary>
    private static (long Read, long Allocated, long Parameters) Measure(string path)
    {
        ModelResolver.Resolve(new ModelReference.Named(path));
        long read = ProcessReads.Bytes();
        long before = GC.GetAllocatedBytesForCurrentThread();
        long parameters = ModelResolver.Resolve(new ModelReference.Named(path)).ParameterCount;
        return (ProcessReads.Bytes() - read, GC.GetAllocatedBytesForCurrentThread() - before, parameters);
    }

    /// <summary>A bound on bytes read that a header read meets with room for the reads of tests running beside it: 1 GiB, 1/140 of the data.</summary>
    private const long ReadBound = 1L << 30;

    [Fact]
    public void A_140_GB_safetensors_checkpoint_is_read_from_its_header_alone()
    {
        // Llama-3.1-70B in BF16: 70,553,706,496 parameters (data/models/llama-3.1-70b.json) = 141.1 GB of tensor data.
        Assert.True(ModelCatalog.TryFind("llama-3.1-70b", out CatalogModel model));
        using var folder = new TempFolder();
        SafetensorsTests.WriteCheckpoint(folder, model);
        long length = new FileInfo(folder.File("model.safetensors")).Length;
        Assert.True(length > 140_000_000_000, $"{length}");
        (long read, long allocated, long parameters) = Measure(folder.Path);
        Assert.Equal(70_553_706_496, parameters);
        // The header is 88 KiB: reading it reads a few hundred KiB and allocates a few MiB whatever the data section holds.
        Assert.True(read < ReadBound, $"{read:N0} bytes read");
        Assert.True(allocated < 64 << 20, $"{allocated:N0} bytes allocated");
    }

    [Fact]
    public void A_140_GB_gguf_is_read_from_its_header_alone()
    {
        Assert.True(ModelCatalog.TryFind("llama-3.1-70b", out CatalogModel model));
        using var folder = new TempFolder();
        string path = folder.File("llama-3.1-70b-F16.gguf");
        GgufFromConfig.Writer(model.Architecture).Write(path);
        Assert.True(new FileInfo(path).Length > 140_000_000_000);
        (long read, long allocated, long parameters) = Measure(path);
        Assert.Equal(70_553_706_496, parameters);
        Assert.True(read < ReadBound, $"{read:N0} bytes read");
        Assert.True(allocated < 64 << 20, $"{allocated:N0} bytes allocated");
    }

    [Fact]
    public void Cost_does_not_grow_with_the_data_section()
    {
        // The same one-tensor header over 8 × 8192 BF16 = 128 KiB and over 8,600,000 × 8192 × 2 B = 140.9 GB of data: the reads allocate the same to within a page.
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("config.json"), """
            {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 1, "intermediate_size": 64, "vocab_size": 8,
             "tie_word_embeddings": true}
            """);
        long[] costs = new long[2];
        foreach ((long rows, int i) in new[] { (8L, 0), (8_600_000L, 1) })
        {
            string path = folder.File($"model-{i}.safetensors");
            SafetensorsWriter.Write(path, [("x.weight", "BF16", [rows, 8192])]);
            long read = ProcessReads.Bytes();
            long before = GC.GetAllocatedBytesForCurrentThread();
            LlmMemory.Formats.Safetensors.SafetensorsHeaderReader.ReadFile(path);
            costs[i] = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(ProcessReads.Bytes() - read < ReadBound, "the data section was read");
        }

        Assert.True(new FileInfo(folder.File("model-1.safetensors")).Length > 140_000_000_000);
        Assert.InRange(costs[1] - costs[0], -4096, 4096);
    }
}
