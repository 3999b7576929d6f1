using System.Collections.Immutable;
using System.Reflection;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Tests.Estimation;

/// <summary>
/// The estimate cache knows a model by <see cref="ArchitectureDigest"/>, whose member list is written by hand. A member
/// added to <see cref="ModelArchitecture"/> (or to a record it holds) and forgotten there would make two different models
/// one cache entry, and the second would get the first one's estimate. These tests change every settable member, found
/// by reflection, one at a time, so a new member fails here until the digest covers it.
/// </summary>
public sealed class ArchitectureDigestTests
{
    /// <summary>A catalog Llama with every optional record present, so their members can be changed too.</summary>
    private static readonly ModelArchitecture Base = ModelCatalog.All.Single(m => m.Alias == "llama-3.1-8b").Architecture with
    {
        Experts = new MixtureOfExperts(8, 2, 1024, 512, [0, 1]),
        LatentAttention = new LatentAttention(1536, 512, 128, 64, 128),
        Quantization = new QuantizationConfig("gptq", 4, 128, [128, 128], ["lm_head"]),
        WeightsFile = new WeightsFile(WeightsFileFormat.Safetensors, ["model.safetensors"], 16, ["note"]),
    };

    /// <summary>Every settable member but the tensor inventory, which the two tensor tests below change.</summary>
    public static TheoryData<string> Members() =>
        new(typeof(ModelArchitecture).GetProperties()
            .Where(p => p.SetMethod is not null && p.PropertyType != typeof(TensorInventory)).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(Members))]
    public void Changing_any_member_of_the_architecture_changes_its_digest(string member)
    {
        PropertyInfo property = typeof(ModelArchitecture).GetProperty(member)!;
        object? value = property.GetValue(Base);

        if (IsRecordOfTheModel(property.PropertyType))
        {
            Assert.NotEqual(ArchitectureDigest.Of(Base), ArchitectureDigest.Of(With(Base, property, null)));
            foreach (PropertyInfo inner in property.PropertyType.GetProperties().Where(p => p.SetMethod is not null))
            {
                object changed = With(value!, inner, Changed(inner.PropertyType, inner.GetValue(value)));
                Assert.True(ArchitectureDigest.Of(Base) != ArchitectureDigest.Of(With(Base, property, changed)),
                    $"{member}.{inner.Name} is not in ArchitectureDigest");
            }

            return;
        }

        ModelArchitecture other = With(Base, property, Changed(property.PropertyType, value));
        Assert.True(ArchitectureDigest.Of(Base) != ArchitectureDigest.Of(other), $"{member} is not in ArchitectureDigest");
    }

    public static TheoryData<string> TensorMembers() =>
        new(typeof(TensorSpec).GetProperties().Where(p => p.SetMethod is not null).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(TensorMembers))]
    public void Changing_any_member_of_one_tensor_changes_the_digest(string member)
    {
        PropertyInfo property = typeof(TensorSpec).GetProperty(member)!;
        IReadOnlyList<TensorSpec> tensors = Base.Tensors.Tensors;
        var first = (TensorSpec)With(tensors[0], property, Changed(property.PropertyType, property.GetValue(tensors[0])));
        var inventory = new TensorInventory([first, .. tensors.Skip(1)]) { Buffers = Base.Tensors.Buffers };

        Assert.True(ArchitectureDigest.Of(Base) != ArchitectureDigest.Of(Base with { Tensors = inventory }),
            $"TensorSpec.{member} is not in ArchitectureDigest");
    }

    [Fact]
    public void A_buffer_more_changes_the_digest()
    {
        TensorSpec scale = new("model.layers.0.self_attn.q_proj.scales", [32, 4096], TensorRole.Attention, TensorForm.LinearWeight, 0, "q_proj", DataTypes.F16);
        var inventory = new TensorInventory(Base.Tensors.Tensors) { Buffers = [.. Base.Tensors.Buffers, scale] };

        Assert.NotEqual(ArchitectureDigest.Of(Base), ArchitectureDigest.Of(Base with { Tensors = inventory }));
    }

    /// <summary>A copy of the record <paramref name="record"/> with <paramref name="property"/> set, as <c>with</c> does.</summary>
    private static T With<T>(T record, PropertyInfo property, object? value)
        where T : notnull
    {
        object copy = record.GetType().GetMethod("<Clone>$")!.Invoke(record, null)!;
        property.SetValue(copy, value);
        return (T)copy;
    }

    private static bool IsRecordOfTheModel(Type type) =>
        type.Namespace == typeof(ModelArchitecture).Namespace && type.GetMethod("<Clone>$") is not null;

    /// <summary>A value of <paramref name="type"/> different from <paramref name="value"/>.</summary>
    private static object Changed(Type type, object? value)
    {
        if (type.IsEnum)
        {
            return Enum.GetValues(type).Cast<object>().First(v => !v.Equals(value));
        }

        return type switch
        {
            _ when type == typeof(int) => (int)value! + 1,
            _ when type == typeof(int?) => ((int?)value ?? 0) + 1,
            _ when type == typeof(long) => (long)value! + 1,
            _ when type == typeof(bool) => !(bool)value!,
            _ when type == typeof(double) => (double)value! + 0.25,
            _ when type == typeof(double?) => ((double?)value ?? 0) + 0.25,
            _ when type == typeof(string) => (string?)value + "x",
            _ when type == typeof(DataType) => ReferenceEquals(value, DataTypes.F32) ? DataTypes.BF16 : DataTypes.F32,
            _ when type == typeof(IReadOnlyList<int>) => (IReadOnlyList<int>)[.. (IReadOnlyList<int>)value!, 7],
            _ when type == typeof(IReadOnlyList<string>) => (IReadOnlyList<string>)[.. (IReadOnlyList<string>)value!, "x"],
            _ when type == typeof(IReadOnlyList<AttentionKind>) =>
                (IReadOnlyList<AttentionKind>)[.. (IReadOnlyList<AttentionKind>)value!, AttentionKind.Full],
            _ when type == typeof(ImmutableArray<long>) => ((ImmutableArray<long>)value!).Add(3),
            _ => throw new InvalidOperationException($"This test cannot change a {type.Name} yet: teach Changed() how, and ArchitectureDigest to hash it."),
        };
    }
}
