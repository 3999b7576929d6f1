using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation;

/// <summary>
/// A model's value as a cache key: the SHA-256 of every member of its architecture, tensor inventory included, so two
/// separately parsed copies of one config (inline configs in API bodies and <c>validate</c> case files) are the same model.
/// A record's own equality compares its lists by reference, which is why this digest exists. A member added to
/// <see cref="ModelArchitecture"/> belongs here too.
/// </summary>
internal static class ArchitectureDigest
{
    private static readonly ConditionalWeakTable<ModelArchitecture, string> Known = new();

    /// <summary>The digest of <paramref name="model"/>, computed once per instance.</summary>
    public static string Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return Known.GetValue(model, Compute);
    }

    private static string Compute(ModelArchitecture m)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var w = new Writer(hash);
        w.Text(m.ModelType).Int((int)m.Family).Int(m.LayerCount).Int(m.HiddenSize).Int(m.AttentionHeadCount).Int(m.KeyValueHeadCount)
            .Int(m.HeadDimension).Int(m.ValueHeadDimension).Int(m.IntermediateSize).Int(m.VocabularySize).Int(m.MaxPositions)
            .Bool(m.TiedEmbeddings).Bool(m.GatedFeedForward).Bool(m.LayerNormWithBias).Int(m.SlidingWindow).Text(m.RopeScaling)
            .Type(m.StoredType).Real(m.FinalLogitSoftcap).Real(m.AttentionLogitSoftcap).Bool(m.ParallelBlock).Bool(m.UseCache)
            .Real(m.EmbeddingDropout).Real(m.ResidualDropout).Int(m.RotaryDimension).Bool(m.ReluActivation)
            .Int(m.EncoderLayerCount).Long(m.PredictionLayerParameters);
        w.Int(m.LayerAttention.Count);
        foreach (AttentionKind kind in m.LayerAttention)
        {
            w.Int((int)kind);
        }

        w.Bool(m.Experts is not null);
        if (m.Experts is { } e)
        {
            w.Int(e.ExpertCount).Int(e.ActiveExperts).Int(e.ExpertIntermediateSize).Int(e.SharedExpertIntermediateSize).Ints(e.MoeLayers);
        }

        w.Bool(m.LatentAttention is not null);
        if (m.LatentAttention is { } a)
        {
            w.Int(a.QueryRank).Int(a.KeyValueRank).Int(a.NopeHeadDimension).Int(a.RopeHeadDimension).Int(a.ValueHeadDimension);
        }

        w.Bool(m.Quantization is not null);
        if (m.Quantization is { } q)
        {
            w.Text(q.Method).Int(q.Bits).Int(q.GroupSize).Ints(q.BlockSize).Texts(q.NotConverted);
        }

        w.Bool(m.WeightsFile is not null);
        if (m.WeightsFile is { } f)
        {
            w.Int((int)f.Format).Texts(f.Files).Long(f.TensorBytes).Texts(f.Notes);
        }

        w.Tensors(m.Tensors.Tensors).Tensors(m.Tensors.Buffers);
        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>Appends values to the hash, each unambiguously (lengths before contents, a marker for null).</summary>
    private readonly struct Writer(IncrementalHash hash)
    {
        public Writer Long(long value)
        {
            Span<byte> bytes = stackalloc byte[sizeof(long)];
            BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
            hash.AppendData(bytes);
            return this;
        }

        public Writer Int(int value) => Long(value);

        public Writer Int(int? value) => value is int v ? Bool(true).Long(v) : Bool(false);

        public Writer Bool(bool value) => Long(value ? 1 : 0);

        public Writer Real(double? value) => value is double v ? Bool(true).Long(BitConverter.DoubleToInt64Bits(v)) : Bool(false);

        public Writer Text(string? value)
        {
            if (value is null)
            {
                return Long(-1);
            }

            Long(value.Length);
            hash.AppendData(Encoding.UTF8.GetBytes(value));
            return this;
        }

        public Writer Type(DataType? type) => Text(type?.Name);

        public Writer Ints(IReadOnlyList<int> values)
        {
            Long(values.Count);
            foreach (int value in values)
            {
                Long(value);
            }

            return this;
        }

        public Writer Texts(IReadOnlyList<string> values)
        {
            Long(values.Count);
            foreach (string value in values)
            {
                Text(value);
            }

            return this;
        }

        public Writer Tensors(IReadOnlyList<TensorSpec> tensors)
        {
            Long(tensors.Count);
            foreach (TensorSpec t in tensors)
            {
                Text(t.Name).Long(t.Shape.Length);
                foreach (long dimension in t.Shape)
                {
                    Long(dimension);
                }

                Int((int)t.Role).Int((int)t.Form).Int(t.Layer).Text(t.Module).Type(t.Stored);
            }

            return this;
        }
    }
}
