using System.Buffers.Binary;
using System.Text;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Tests.Cli;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests.Formats;

/// <summary>Each failure class of a hostile weights file ends in one <see cref="ModelFormatException"/> line naming the file and the problem.</summary>
public sealed class HostileInputTests
{
    private static readonly (string, string, long[])[] TwoTensors = [("a.weight", "F16", [4, 4]), ("b.weight", "F32", [4])];

    private static ModelFormatException Safetensors(byte[] file, string expected)
    {
        var error = Assert.Throws<ModelFormatException>(() => SafetensorsHeaderReader.Read(new MemoryStream(file), "hostile.safetensors"));
        Assert.StartsWith("hostile.safetensors", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        return error;
    }

    private static byte[] SafetensorsFile(string json, long dataBytes)
    {
        byte[] header = Encoding.UTF8.GetBytes(json);
        byte[] file = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)header.Length);
        header.CopyTo(file, 8);
        return file;
    }

    [Fact]
    public void Safetensors_truncated_file()
    {
        byte[] header = SafetensorsWriter.Header(TwoTensors);
        Safetensors(SafetensorsFile(Encoding.UTF8.GetString(header), 32 + 16)[..20], "is truncated");
        Safetensors(SafetensorsFile(Encoding.UTF8.GetString(header), 40), "is truncated");
        Safetensors([1, 2, 3], "is truncated");
    }

    [Fact]
    public void Safetensors_garbage()
    {
        Safetensors(SafetensorsFile("not json at all", 0), "does not start with '{'");
        Safetensors(SafetensorsFile("{\"a\": [1, 2", 0), "not valid JSON");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [[[[1]]]], \"data_offsets\": [0, 2]}}", 2), "not valid JSON");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"Q9\", \"shape\": [1], \"data_offsets\": [0, 2]}}", 2), "not a safetensors dtype");
    }

    [Fact]
    public void Safetensors_absurd_header_length()
    {
        byte[] file = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(file, ulong.MaxValue);
        Safetensors(file, "above the safetensors limit of 100,000,000");
        BinaryPrimitives.WriteUInt64LittleEndian(file, 99_000_000);
        Safetensors(file, "is truncated");
    }

    [Fact]
    public void Safetensors_inconsistent_offsets_and_sizes()
    {
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [4], \"data_offsets\": [0, 6]}}", 6), "takes 8");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}, \"b\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [2, 6]}}", 6), "overlaps");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [4, 8]}}", 8), "leaving a hole");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [8, 4]}}", 8), "end before they begin");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 100), "after its last tensor");
    }

    [Fact]
    public void Safetensors_offsets_out_of_range()
    {
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [1000000], \"data_offsets\": [0, 2000000]}}", 16), "is truncated");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [-1, 1]}}", 2), "non-negative");
    }

    [Fact]
    public void Safetensors_overflowing_shapes_and_huge_ranks()
    {
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [4294967296, 4294967296, 4], \"data_offsets\": [0, 2]}}", 2), "overflows");
        string rank = string.Join(", ", Enumerable.Repeat("1", 17));
        Safetensors(SafetensorsFile($"{{\"a\": {{\"dtype\": \"F16\", \"shape\": [{rank}], \"data_offsets\": [0, 2]}}}}", 2), "at most 16");
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F4\", \"shape\": [3], \"data_offsets\": [0, 2]}}", 2), "do not fill whole bytes");
    }

    [Fact]
    public void Safetensors_duplicate_names()
    {
        Safetensors(SafetensorsFile("{\"a\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [0, 2]}, \"a\": {\"dtype\": \"F16\", \"shape\": [1], \"data_offsets\": [2, 4]}}", 4), "appears twice");
    }

    private static ModelFormatException Gguf(byte[] file, string expected)
    {
        var error = Assert.Throws<ModelFormatException>(() => GgufReader.Read(new MemoryStream(file), "hostile.gguf"));
        Assert.StartsWith("hostile.gguf", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', error.Message);
        return error;
    }

    private static byte[] GgufHead(uint version, ulong tensors, ulong keys)
    {
        byte[] head = new byte[24];
        Encoding.ASCII.GetBytes("GGUF").CopyTo(head, 0);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), version);
        BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(8), tensors);
        BinaryPrimitives.WriteUInt64LittleEndian(head.AsSpan(16), keys);
        return head;
    }

    [Fact]
    public void Gguf_truncated_file()
    {
        byte[] whole = GgufTests.TinyLlama().ToBytes();
        (byte[] header, _) = GgufTests.TinyLlama().Build();
        Gguf(whole[..(header.Length / 2)], "is truncated");
        Gguf(whole[..(header.Length - 40)], "is truncated");
        Gguf(whole[..(header.Length + 1000)], "past the end of the file");
        Gguf(whole[..6], "is truncated");
    }

    [Fact]
    public void Gguf_garbage_and_versions()
    {
        Gguf(Encoding.ASCII.GetBytes("PK\u0003\u0004 this is a zip file, not a model"), "is not a GGUF file");
        Gguf(GgufHead(1, 0, 0), "version 1");
        Gguf(GgufHead(0x03000000, 0, 0), "big-endian");
        Gguf(GgufHead(7, 0, 0), "versions 2 and 3");
        byte[] badType = [.. GgufHead(3, 0, 1), .. BitConverter.GetBytes(1UL), (byte)'k', .. BitConverter.GetBytes(99u), 0, 0, 0, 0];
        Gguf(badType, "not a GGUF type");
    }

    [Fact]
    public void Gguf_huge_counts_are_refused_before_allocating()
    {
        Gguf(GgufHead(3, ulong.MaxValue, 0), "above the limit");
        Gguf(GgufHead(3, 1000, 0), "could hold at most");
        Gguf(GgufHead(3, 0, 1_000_000), "could hold at most");
        // An array claiming 2^40 strings.
        byte[] array = [.. GgufHead(3, 0, 1), .. BitConverter.GetBytes(1UL), (byte)'k', .. BitConverter.GetBytes(9u), .. BitConverter.GetBytes(8u),
            .. BitConverter.GetBytes(1UL << 40)];
        Gguf(array, "above the limit");
        byte[] longString = [.. GgufHead(3, 0, 1), .. BitConverter.GetBytes(ulong.MaxValue), .. new byte[64]];
        Gguf(longString, "above the limit");
        byte[] nested = [.. GgufHead(3, 0, 1), .. BitConverter.GetBytes(1UL), (byte)'k', .. BitConverter.GetBytes(9u), .. BitConverter.GetBytes(9u),
            .. BitConverter.GetBytes(1UL)];
        Gguf(nested, "array of arrays");
    }

    [Fact]
    public void Gguf_absurd_and_overflowing_shapes()
    {
        Gguf(new GgufWriter().Tensor("a", [1L << 32, 1L << 32, 1L << 32], GgufWriter.F32).Build().Header, "overflows");
        Gguf(new GgufWriter().Tensor("a", [1L << 30, 1L << 30], GgufWriter.F32).Build().Header, "above the limit");
        Gguf(new GgufWriter().Tensor("a", [100, 3], GgufWriter.Q4_K).Build().Header, "not a whole number of Q4_K blocks");
        Gguf(new GgufWriter().Tensor("a", [1, 1, 1, 1, 1], GgufWriter.F32).Build().Header, "1 to 4");
        // The same tensor info with its type id (the uint32 after the dimensions) set to 77.
        byte[] unknownType = new GgufWriter().Tensor("abc", [4], GgufWriter.F32).Build().Header;
        int typeAt = unknownType.AsSpan().IndexOf("abc"u8) + 3 + 4 + 8;
        BinaryPrimitives.WriteUInt32LittleEndian(unknownType.AsSpan(typeAt), 77);
        Gguf(unknownType, "ggml type id 77");
    }

    [Fact]
    public void Gguf_inconsistent_offsets()
    {
        byte[] overlap = RewriteOffset(new GgufWriter().Tensor("a", [64], GgufWriter.F32).Tensor("b", [64], GgufWriter.F32), "b", 32);
        Gguf(overlap, "overlaps 'a'");
        byte[] unaligned = RewriteOffset(new GgufWriter().Tensor("a", [64], GgufWriter.F32).Tensor("b", [64], GgufWriter.F32), "b", 260);
        Gguf(unaligned, "not a multiple of the alignment");
        byte[] outside = RewriteOffset(new GgufWriter().Tensor("a", [64], GgufWriter.F32), "a", 1L << 40);
        Gguf(outside, "past the end of the file");
    }

    [Fact]
    public void Gguf_duplicate_names_and_keys()
    {
        Gguf(new GgufWriter().Tensor("a", [4], GgufWriter.F32).Tensor("a", [4], GgufWriter.F32).ToBytes(), "appears twice among the tensors");
        Gguf(new GgufWriter().UInt32("k", 1).UInt32("k", 2).ToBytes(), "appears twice in the metadata");
    }

    [Fact]
    public void Gguf_metadata_that_contradicts_its_tensors_is_refused()
    {
        using var folder = new TempFolder();
        string path = folder.File("liar.gguf");
        var w = new GgufWriter().String("general.architecture", "llama").UInt32("llama.block_count", 1).UInt32("llama.embedding_length", 512)
            .UInt32("llama.feed_forward_length", 512).UInt32("llama.attention.head_count", 4)
            .Tensor("token_embd.weight", [256, 100], GgufWriter.F16).Tensor("blk.3.attn_q.weight", [256, 256], GgufWriter.F16);
        w.Write(path);
        var error = Assert.Throws<ModelFormatException>(() => GgufModel.ReadFile(path));
        Assert.Contains("blk.3.attn_q.weight", error.Message, StringComparison.Ordinal);
        var unknown = new GgufWriter().String("general.architecture", "mamba9").Tensor("x", [4], GgufWriter.F32);
        unknown.Write(path);
        Assert.Contains("\"mamba9\", which is not supported", Assert.Throws<ModelFormatException>(() => GgufModel.ReadFile(path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_cli_prints_one_line_and_exits_2_for_a_hostile_file()
    {
        using var folder = new TempFolder();
        string gguf = folder.File("bad.gguf");
        File.WriteAllBytes(gguf, GgufHead(3, 1000, 0));
        string safetensors = folder.File("bad.safetensors");
        File.WriteAllBytes(safetensors, SafetensorsFile("{\"a\": 1}", 0));
        foreach (string path in new[] { gguf, safetensors })
        {
            (int code, string output, string error) = CliTests.Run("params", path);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Single(error.Trim().Split('\n'));
            Assert.Contains(path, error, StringComparison.Ordinal);
        }
    }

    /// <summary>Writes the header with tensor <paramref name="name"/>'s offset replaced (the writer always lays tensors out correctly).</summary>
    private static byte[] RewriteOffset(GgufWriter writer, string name, long offset)
    {
        byte[] file = writer.ToBytes();
        byte[] needle = [.. BitConverter.GetBytes((ulong)name.Length), .. Encoding.UTF8.GetBytes(name)];
        int at = file.AsSpan().IndexOf(needle);
        int rank = BitConverter.ToInt32(file, at + needle.Length);
        int offsetAt = at + needle.Length + 4 + (8 * rank) + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(offsetAt), (ulong)offset);
        return file;
    }
}
