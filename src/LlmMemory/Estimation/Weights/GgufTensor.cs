using System.Collections.Immutable;
using System.Globalization;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Weights;

/// <summary>One tensor of a GGUF file as llama.cpp names and shapes it (<c>LLM_TN</c>; <c>ne[0]</c> is the row length).</summary>
/// <param name="Name">GGUF name: <c>token_embd.weight</c>, <c>blk.3.attn_v.weight</c>, <c>output_norm.bias</c>.</param>
/// <param name="Ne">ggml dimensions, row first (the reverse of the PyTorch shape).</param>
/// <param name="Layer">
/// The llama.cpp layer it is placed with (<c>llama_model::load_tensors</c>): −1 for the input layer (<c>token_embd</c>, which
/// always stays on the CPU), the block index for <c>blk.N.*</c>, n_layer for the output layer (<c>output</c>, <c>output_norm</c>).
/// </param>
/// <param name="Stored">The type a GGUF file stores it in; null when the tensor list was derived from a config.</param>
/// <param name="Source">The model tensor it stands for; null for tensors only the GGUF has (<c>rope_freqs</c>).</param>
internal sealed record GgufTensor(string Name, ImmutableArray<long> Ne, int Layer, DataType? Stored = null, TensorSpec? Source = null)
{
    /// <summary>The block index in the name (<c>blk.N.</c>), or −1: the key of llama.cpp's <c>weight_name_comparer</c>.</summary>
    public int NameBlock => BlockOf(Name) ?? -1;

    /// <summary><c>ggml_n_dims</c>: dimensions up to the last one larger than 1 (at least 1).</summary>
    public int Dimensions
    {
        get
        {
            int n = Ne.Length;
            while (n > 1 && Ne[n - 1] == 1)
            {
                n--;
            }

            return n;
        }
    }

    public long Elements => Ne.Aggregate(1L, (product, d) => checked(product * d));

    /// <summary>Bytes in <paramref name="type"/>: <c>ggml_row_size(type, ne[0]) × ne[1] × …</c>.</summary>
    public long BytesIn(DataType type) => checked(type.BytesFor(Ne[0]) * (Elements / Ne[0]));

    /// <summary>The order llama.cpp visits tensors in (<c>llama_model_loader::weights_map</c>, a <c>std::map</c> with
    /// <c>weight_name_comparer</c>): the block number, −1 outside the blocks, then the name. llama-quantize writes files in this order.</summary>
    public static int CompareLoaderOrder(GgufTensor a, GgufTensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        int byBlock = a.NameBlock.CompareTo(b.NameBlock);
        return byBlock != 0 ? byBlock : string.CompareOrdinal(a.Name, b.Name);
    }

    /// <summary>N of a <c>blk.N.</c> name, as <c>sscanf(name, "blk.%d.")</c> reads it.</summary>
    public static int? BlockOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!name.StartsWith("blk.", StringComparison.Ordinal))
        {
            return null;
        }

        int end = name.IndexOf('.', 4);
        return end > 4 && int.TryParse(name.AsSpan(4, end - 4), NumberStyles.None, CultureInfo.InvariantCulture, out int block) ? block : null;
    }

    public override string ToString() => $"{Name} [{string.Join(", ", Ne)}]";
}
