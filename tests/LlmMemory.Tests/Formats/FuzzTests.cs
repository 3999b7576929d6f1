using CsCheck;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Tests.Support;

namespace LlmMemory.Tests.Formats;

/// <summary>Mutated valid files: every input ends in a value or a <see cref="ModelFormatException"/>, quickly and without other exceptions.</summary>
public sealed class FuzzTests
{
    /// <summary>One mutation: flip a byte, write a random 64-bit value (lengths, counts, offsets), or cut the file short.</summary>
    private static Gen<byte[]> Mutated(byte[] valid) =>
        Gen.Select(Gen.Int[0, 2], Gen.Int[0, valid.Length - 1], Gen.Byte, Gen.ULong, (kind, at, value, big) =>
        {
            byte[] copy = (byte[])valid.Clone();
            switch (kind)
            {
                case 0:
                    copy[at] ^= (byte)(value | 1);
                    return copy;
                case 1:
                    int start = Math.Min(at, copy.Length - 8);
                    BitConverter.TryWriteBytes(copy.AsSpan(start), big % 4 == 0 ? big : big % 4096);
                    return copy;
                default:
                    return copy[..at];
            }
        });

    private static void EndsInValueOrFormatError(Action read)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        try
        {
            read();
        }
        catch (ModelFormatException)
        {
        }

        // Bounded work without a clock (load can stretch any deadline): the headers here are a few KiB, so a read that allocates
        // 64 MiB sized something by a hostile count.
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 64 << 20, $"{allocated:N0} bytes allocated");
    }

    [Fact]
    public void Mutated_safetensors_headers_end_in_a_value_or_a_format_error()
    {
        byte[] header = SafetensorsWriter.Header(
        [
            ("model.embed_tokens.weight", "BF16", [32, 16]), ("model.layers.0.self_attn.q_proj.weight", "F16", [16, 16]),
            ("model.layers.0.mlp.down_proj.qweight", "I32", [2, 16]), ("model.norm.weight", "F32", [16]),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        long data = (32 * 16 * 2) + (16 * 16 * 2) + (2 * 16 * 4) + (16 * 4);
        byte[] valid = [.. BitConverter.GetBytes((ulong)header.Length), .. header, .. new byte[data]];
        Mutated(valid).Sample(file => EndsInValueOrFormatError(() => SafetensorsHeaderReader.Read(new MemoryStream(file), "fuzz.safetensors")),
            iter: 3000, threads: 1);
    }

    [Fact]
    public void Mutated_gguf_files_end_in_a_value_or_a_format_error()
    {
        byte[] valid = GgufTests.TinyLlama().ToBytes();
        Mutated(valid).Sample(file => EndsInValueOrFormatError(() =>
        {
            GgufFile read = GgufReader.Read(new MemoryStream(file), "fuzz.gguf");
            GgufModel.FromFiles([read], "fuzz.gguf");
        }), iter: 2000, threads: 1);
    }

    [Fact]
    public void Mutated_moe_and_latent_attention_gguf_files_end_in_a_value_or_a_format_error()
    {
        // DeepSeek-V2-Lite as convert_hf_to_gguf.py writes it: MLA, routed and shared experts, a dense first layer.
        Assert.True(LlmMemory.Catalog.ModelCatalog.TryFind("deepseek-v2-lite", out var model));
        (byte[] header, _) = GgufFromConfig.Writer(model.Architecture).Build();
        Mutated(header).Sample(file => EndsInValueOrFormatError(() =>
        {
            GgufFile read = GgufReader.Read(new MemoryStream(file), "fuzz.gguf");
            GgufModel.FromFiles([read], "fuzz.gguf");
        }), iter: 1000, threads: 1);
    }
}
