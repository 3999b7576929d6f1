using LlmMemory.Estimation.Weights;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>The model buffers llama.cpp prints at load: one per GPU, and the host's mapped (or plain) and repacked buffers.</summary>
/// <param name="PerGpu">Bytes of each GPU's model buffer.</param>
/// <param name="TensorsPerGpu">Tensors in each GPU's buffer.</param>
/// <param name="Host">The <c>CPU_Mapped</c> buffer (mmap: the file range of the host tensors) or the <c>CPU</c> buffer (no mmap).</param>
/// <param name="HostTensors">Tensors kept on the host.</param>
/// <param name="Repacked">The <c>CPU_REPACK</c> buffer: interleaved copies of the host matrices the CPU backend repacks.</param>
/// <param name="RepackedNames">Names of the repacked tensors: their ops stay on the CPU (a repacked buffer is not host memory a GPU can read).</param>
internal sealed record ModelBuffers(long[] PerGpu, int[] TensorsPerGpu, long Host, int HostTensors, long Repacked, IReadOnlySet<string> RepackedNames)
{
    /// <summary>CUDA buffer alignment (ggml-cuda <c>get_alignment</c>).</summary>
    private const long GpuAlignment = 128;

    /// <summary>GGUF data alignment (<c>GGUF_DEFAULT_ALIGNMENT</c>): every tensor's data starts on a multiple of 32 B.</summary>
    private const long FileAlignment = 32;

    /// <summary>ggml-cuda <c>MATRIX_ROW_PADDING</c>: a quantized row is padded to a multiple of 512 elements (<c>get_alloc_size</c>).</summary>
    private const long MatrixRowPadding = 512;

    /// <summary>
    /// Types the CPU backend repacks into interleaved layouts on x86 with AVX2/AVX-512 (<c>ggml-cpu/repack.cpp</c>; observed at
    /// 71102a73: Q4_0, Q4_K and IQ4_NL repacked, Q8_0 and Q6_K not). ARM CPUs repack other types.
    /// </summary>
    public static IReadOnlyList<DataType> RepackedTypes { get; } = [DataTypes.Q4_0, DataTypes.Q4_K, DataTypes.IQ4_NL];

    /// <summary>The model buffers for <paramref name="tensors"/> typed by <paramref name="types"/> and placed by <paramref name="placement"/>.</summary>
    /// <param name="tensors">The GGUF tensors.</param>
    /// <param name="types">Type of each tensor by name.</param>
    /// <param name="placement">Which device holds each layer.</param>
    /// <param name="tiedEmbeddings">No <c>output.weight</c>: an offloaded output layer gets a duplicate of <c>token_embd</c>.</param>
    /// <param name="mmap">Whether the file is memory-mapped (llama.cpp's default).</param>
    /// <param name="repack">Whether the CPU backend repacks (x86 AVX2 assumed).</param>
    public static ModelBuffers Of(IReadOnlyList<GgufTensor> tensors, IReadOnlyDictionary<string, DataType> types, Placement placement,
        bool tiedEmbeddings, bool mmap, bool repack)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(types);
        ArgumentNullException.ThrowIfNull(placement);
        long[] perGpu = new long[placement.Gpus];
        int[] counts = new int[placement.Gpus];
        var host = new List<GgufTensor>();
        foreach (GgufTensor t in tensors)
        {
            if (placement.OnGpu(t.Layer))
            {
                int device = placement.DeviceOf(t.Layer);
                perGpu[device] = checked(perGpu[device] + GpuBytes(t, types[t.Name]));
                counts[device]++;
            }
            else
            {
                host.Add(t);
            }
        }

        GgufTensor? embedding = tensors.FirstOrDefault(t => t.Name == "token_embd.weight");
        if (tiedEmbeddings && embedding is not null && placement.OnGpu(placement.Layers))
        {
            // No output.weight: llama.cpp creates it as a TENSOR_DUPLICATED copy of token_embd in the output layer's buffer.
            int device = placement.OutputDevice;
            perGpu[device] = checked(perGpu[device] + GpuBytes(embedding, types[embedding.Name]));
            counts[device]++;
        }

        (long mapped, long repacked, HashSet<string> repackedNames) = HostBuffers(host, types, mmap, repack);
        return new ModelBuffers(perGpu, counts, mapped, host.Count - repackedNames.Count, repacked, repackedNames);
    }

    /// <summary>Bytes of one tensor in a CUDA buffer: quantized rows padded to 512 elements, then the buffer's 128-byte alignment.</summary>
    private static long GpuBytes(GgufTensor t, DataType type)
    {
        long bytes = t.BytesIn(type);
        if (type.IsQuantized && t.Ne[0] % MatrixRowPadding != 0)
        {
            bytes += type.BytesFor(MatrixRowPadding - (t.Ne[0] % MatrixRowPadding));
        }

        return Pad(bytes, GpuAlignment);
    }

    /// <summary>
    /// Host weights in llama-quantize's file order. Repacked matrices (never <c>token_embd</c>, which only feeds GET_ROWS) get an
    /// interleaved copy in <c>CPU_REPACK</c>. With mmap, <c>CPU_Mapped</c> is the file range from the first to the last
    /// non-repacked host tensor, so repacked tensors inside the range count twice; without mmap, <c>CPU</c> holds the
    /// non-repacked tensors, each padded to 32 B.
    /// </summary>
    private static (long Mapped, long Repacked, HashSet<string> RepackedNames) HostBuffers(List<GgufTensor> host, IReadOnlyDictionary<string, DataType> types,
        bool mmap, bool repack)
    {
        host.Sort(GgufTensor.CompareLoaderOrder);
        long offset = 0;
        long repacked = 0;
        var repackedNames = new HashSet<string>(StringComparer.Ordinal);
        long? first = null;
        long last = 0;
        long plain = 0;
        foreach (GgufTensor t in host)
        {
            DataType type = types[t.Name];
            long bytes = t.BytesIn(type);
            bool isRepacked = repack && RepackedTypes.Contains(type) && t.Dimensions == 2 && t.Name != "token_embd.weight" && t.Ne[1] % 8 == 0;
            if (isRepacked)
            {
                repacked = checked(repacked + bytes);
                repackedNames.Add(t.Name);
            }
            else
            {
                first ??= offset;
                last = offset + bytes;
                plain = checked(plain + Pad(bytes, FileAlignment));
            }

            offset = Pad(checked(offset + bytes), FileAlignment);
        }

        long mapped = mmap ? first is long start ? last - start : 0 : plain;
        return (mapped, repacked, repackedNames);
    }

    private static long Pad(long value, long alignment) => (value + alignment - 1) / alignment * alignment;
}
