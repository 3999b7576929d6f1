using System.Buffers.Binary;
using System.Text;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Fuzz;

namespace LlmMemory.Tests.Fuzzing;

/// <summary>Inputs the fuzzer found that once ended in something other than a <see cref="ModelFormatException"/>, kept as regressions.</summary>
public sealed class FuzzFindingTests
{
    private const string Llama = """
        "model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
        "num_hidden_layers": 32, "num_key_value_heads": 8, "vocab_size": 128256
        """;

    [Fact]
    public void Invalid_utf8_inside_a_string_is_a_format_error()
    {
        // 0xE1 starts a three-byte UTF-8 sequence that "l" cannot continue; JsonDocument.Parse accepts it and GetString threw
        // InvalidOperationException ("Cannot transcode invalid UTF-8 JSON text to UTF-16 string").
        byte[] json = [.. "{\"architectures\": [\"Llama"u8, 0xE1, .. "lForCausalLM\"]}"u8];

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        // The message names the field the bad bytes are in.
        Assert.Equal("config.json: 'architectures' is not valid UTF-8.", error.Message);
    }

    [Fact]
    public void An_escaped_lone_surrogate_in_a_key_is_a_format_error()
    {
        // "\ud800" is valid JSON but no .NET string: looking up any key of the object threw InvalidOperationException
        // ("Cannot read incomplete UTF-16 JSON text as string with missing low surrogate").
        byte[] json = Encoding.UTF8.GetBytes("{" + Llama + ", \"torch_\\ud800dtype\": \"bfloat16\"}");

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        Assert.Contains("not valid Unicode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_escaped_lone_surrogate_in_a_value_is_a_format_error()
    {
        byte[] json = Encoding.UTF8.GetBytes("{" + Llama.Replace("\"llama\"", "\"lla\\udc00ma\"", StringComparison.Ordinal) + "}");

        var error = Assert.Throws<ModelFormatException>(() => ConfigJsonReader.Read(json, "config.json"));

        Assert.Contains("not valid Unicode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_escaped_lone_surrogate_in_a_safetensors_tensor_name_is_a_format_error()
    {
        // Enumerating the header's names threw InvalidOperationException for "model.embed\ud800_tokens.weight".
        byte[] header = Encoding.UTF8.GetBytes("""{"model.embed\ud800_tokens.weight": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}}""");
        byte[] file = [.. BitConverter.GetBytes((ulong)header.Length), .. header, 0, 0, 0, 0];

        var error = Assert.Throws<ModelFormatException>(() => SafetensorsHeaderReader.Read(new MemoryStream(file), "model.safetensors"));

        Assert.Contains("not valid Unicode", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_negative_int32_value_in_gguf_metadata_is_read_as_its_signed_value()
    {
        // GGUF type 5 is int32: the bytes FF FF FF FF are -1. A checked cast from uint threw OverflowException.
        byte[] file = TinySeeds.Gguf[0];
        int at = IndexOf(file, "general.quantization_version"u8) + "general.quantization_version".Length;
        byte[] edited = (byte[])file.Clone();
        BinaryPrimitives.WriteUInt32LittleEndian(edited.AsSpan(at), 5);
        BinaryPrimitives.WriteUInt32LittleEndian(edited.AsSpan(at + 4), 0xFFFF_FFFF);

        GgufFile read = GgufReader.Read(new MemoryStream(edited), "model.gguf", edited.Length + TinySeeds.GgufDataBytes);

        Assert.Equal(-1, read.Metadata["general.quantization_version"].Number);
    }

    private static int IndexOf(byte[] haystack, ReadOnlySpan<byte> needle) => haystack.AsSpan().IndexOf(needle);
}
