using LlmMemory.Formats.Gguf;
using LlmMemory.Tests.Formats;

namespace LlmMemory.Tests.Performance;

/// <summary>
/// Memory, not time: allocations are counted exactly (the current thread's allocated bytes), so these hold on a loaded CI
/// machine where a timing target would not. Time is measured by the benchmarks (docs/performance.md).
/// </summary>
public sealed class HeaderAllocationTests
{
    [Fact]
    public void A_gguf_header_with_a_400_000_string_tokenizer_is_read_in_a_few_MiB()
    {
        // Llama 3's tokenizer: 128,256 tokens and 280,147 merges. The strings are skipped, never decoded; building each
        // element's error description eagerly once cost about 80 MB per header (docs/performance.md).
        byte[] file = GgufTests.TinyLlama()
            .Strings("tokenizer.ggml.merges", Enumerable.Range(0, 280_147).Select(i => $"m{i % 1000} n{i % 997}").ToArray())
            .Strings("tokenizer.ggml.scores_names", Enumerable.Range(0, 128_256).Select(i => $"t{i}").ToArray())
            .ToBytes();
        using var stream = new MemoryStream(file);

        long before = GC.GetAllocatedBytesForCurrentThread();
        GgufFile header = GgufReader.Read(stream, "llama3-tokenizer.gguf");
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(280_147, header.Metadata["tokenizer.ggml.merges"].Count);
        Assert.True(allocated < 4 << 20, $"reading the header allocated {allocated:N0} bytes");
    }
}
