using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace LlmMemory.Tests.Support;

/// <summary>Writes real safetensors files for tests: header as the safetensors library writes it, data left sparse.</summary>
/// <remarks>
/// Format (huggingface/safetensors README): 8-byte little-endian header length, the JSON header (padded with spaces to a
/// multiple of 8, as <c>safetensors.torch.save_file</c> does), then the tensors back to back in header order. The data is
/// never written: <see cref="FileStream.SetLength"/> makes it a sparse hole of the right size, so a 140 GB checkpoint costs
/// a few KiB of disk.
/// </remarks>
internal static class SafetensorsWriter
{
    /// <summary>Bits per element of each safetensors dtype (safetensors <c>Dtype::bitsize</c>).</summary>
    public static long Bits(string dtype) => dtype switch
    {
        "BOOL" or "U8" or "I8" or "F8_E5M2" or "F8_E4M3" or "F8_E8M0" => 8,
        "F4" => 4,
        "F6_E2M3" or "F6_E3M2" => 6,
        "I16" or "U16" or "F16" or "BF16" => 16,
        "I32" or "U32" or "F32" => 32,
        "I64" or "U64" or "F64" => 64,
        _ => throw new ArgumentException(dtype),
    };

    public static long Bytes(string dtype, IReadOnlyList<long> shape) => shape.Aggregate(1L, (p, d) => checked(p * d)) * Bits(dtype) / 8;

    /// <summary>The header JSON for <paramref name="tensors"/> laid out back to back.</summary>
    public static byte[] Header(IEnumerable<(string Name, string DType, long[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is not null)
            {
                json.WriteStartObject("__metadata__");
                foreach ((string key, string value) in metadata)
                {
                    json.WriteString(key, value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach ((string name, string dtype, long[] shape) in tensors)
            {
                long end = offset + Bytes(dtype, shape);
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (long d in shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(end);
                json.WriteEndArray();
                json.WriteEndObject();
                offset = end;
            }

            json.WriteEndObject();
        }

        byte[] header = buffer.ToArray();
        int padded = (header.Length + 7) / 8 * 8;
        return [.. header, .. Enumerable.Repeat((byte)' ', padded - header.Length)];
    }

    /// <summary>Writes a file: length, header, and a sparse data section of exactly the tensors' bytes.</summary>
    public static long Write(string path, IReadOnlyList<(string Name, string DType, long[] Shape)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        byte[] header = Header(tensors, metadata);
        long data = tensors.Sum(t => Bytes(t.DType, t.Shape));
        WriteRaw(path, header, data);
        return data;
    }

    /// <summary>Writes an 8-byte length, <paramref name="header"/>, and <paramref name="dataBytes"/> of sparse data.</summary>
    public static void WriteRaw(string path, byte[] header, long dataBytes)
    {
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        file.Write(length);
        file.Write(header);
        file.SetLength(8 + header.Length + dataBytes);
    }

    public static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);
}
