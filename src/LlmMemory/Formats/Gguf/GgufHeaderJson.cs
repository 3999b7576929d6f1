using System.Collections.Immutable;
using System.Text;
using System.Text.Json;

namespace LlmMemory.Formats.Gguf;

/// <summary>
/// Reads a GGUF header sent as JSON, what the web page sends after reading a dropped file's header in the browser
/// (docs/sources.md): <c>{"metadata": {key: value, …}, "tensors": [{"name": …, "shape": [ne0, ne1, …], "type": ggml id}, …]}</c>.
/// </summary>
/// <remarks>
/// A metadata value is a number, a string, a bool, an array of numbers (bools count as 0 and 1), or <c>{"length": N}</c>
/// for an array sent without its values (a vocabulary). A shape lists the dimensions as the header stores them, row length
/// first. Everything is bounded as in a file (<see cref="GgufLimits"/>) and each tensor is checked as the file reader checks
/// it; messages name the JSON field (<c>tensors[3].shape</c>) or the metadata key.
/// </remarks>
public static class GgufHeaderJson
{
    /// <exception cref="ModelFormatException">A field is missing, mistyped, unknown or beyond a limit.</exception>
    public static (IReadOnlyDictionary<string, GgufValue> Metadata, IReadOnlyList<GgufTensor> Tensors) Read(JsonElement header, string source)
    {
        if (header.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(source, null, "must be an object with \"metadata\" and \"tensors\".");
        }

        foreach (JsonProperty field in header.EnumerateObject())
        {
            if (field.Name is not ("metadata" or "tensors"))
            {
                throw new ModelFormatException(source, field.Name, "is not a field of a GGUF header; expected \"metadata\" and \"tensors\".");
            }
        }

        return (ReadMetadata(Field(header, "metadata", JsonValueKind.Object, source), source),
            ReadTensors(Field(header, "tensors", JsonValueKind.Array, source), source));
    }

    private static JsonElement Field(JsonElement header, string name, JsonValueKind kind, string source) =>
        header.TryGetProperty(name, out JsonElement value) && value.ValueKind == kind ? value
            : throw new ModelFormatException(source, name, $"must be {(kind == JsonValueKind.Object ? "an object" : "an array")}.");

    private static Dictionary<string, GgufValue> ReadMetadata(JsonElement metadata, string source)
    {
        int count = metadata.EnumerateObject().Count();
        if (count > GgufLimits.MaxKeys)
        {
            throw new ModelFormatException(source, "metadata", $"has {count:N0} keys, above the limit of {GgufLimits.MaxKeys:N0}.");
        }

        var values = new Dictionary<string, GgufValue>(count, StringComparer.Ordinal);
        foreach (JsonProperty entry in metadata.EnumerateObject())
        {
            string key = entry.Name;
            CheckLength(key, GgufLimits.MaxNameBytes, source, "metadata", "a key");
            if (!values.TryAdd(key, Value(entry.Value, source, key)))
            {
                throw new ModelFormatException(source, key, "appears twice in the metadata.");
            }
        }

        return values;
    }

    private static GgufValue Value(JsonElement value, string source, string key)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Number:
                return value.TryGetInt64(out long integer) ? new GgufValue(GgufValueType.Int64, Number: integer)
                    : new GgufValue(GgufValueType.Float64, Real: Real(value, source, key));
            case JsonValueKind.True or JsonValueKind.False:
                return new GgufValue(GgufValueType.Bool, Number: value.GetBoolean() ? 1 : 0);
            case JsonValueKind.String:
                string text = value.GetString()!;
                CheckLength(text, GgufLimits.MaxStringBytes, source, key, "its string");
                return new GgufValue(GgufValueType.String, Text: text);
            case JsonValueKind.Array:
                return Numbers(value, source, key);
            case JsonValueKind.Object when value.EnumerateObject().Count() == 1 && value.TryGetProperty("length", out JsonElement length):
                long count = Whole(length, out long n) && n is >= 0 and <= GgufLimits.MaxArrayElements ? n
                    : throw new ModelFormatException(source, key, $"has a length that is not a whole number from 0 to {GgufLimits.MaxArrayElements:N0}.");
                return new GgufValue(GgufValueType.Array, Count: count);
            default:
                throw new ModelFormatException(source, key, "must be a number, a string, a bool, an array of numbers, or {\"length\": N} for an array sent without its values.");
        }
    }

    /// <summary>A numeric array; its values are kept up to <see cref="GgufLimits.MaxKeptArray"/> elements, as the file reader keeps them.</summary>
    private static GgufValue Numbers(JsonElement array, string source, string key)
    {
        int count = array.GetArrayLength();
        if (count > GgufLimits.MaxArrayElements)
        {
            throw new ModelFormatException(source, key, $"has {count:N0} elements, above the limit of {GgufLimits.MaxArrayElements:N0}.");
        }

        double[] values = array.EnumerateArray().Select(v => v.ValueKind switch
        {
            JsonValueKind.Number => Real(v, source, key),
            JsonValueKind.True => 1,
            JsonValueKind.False => 0,
            _ => throw new ModelFormatException(source, key, "must hold numbers or bools; send other arrays as {\"length\": N}."),
        }).ToArray();
        return new GgufValue(GgufValueType.Array, ElementType: GgufValueType.Float64, Count: count,
            Values: count <= GgufLimits.MaxKeptArray ? values : null);
    }

    private static double Real(JsonElement number, string source, string key) =>
        number.TryGetDouble(out double real) && double.IsFinite(real) ? real
            : throw new ModelFormatException(source, key, $"holds {number.GetRawText()}, which is not a finite 64-bit number.");

    private static List<GgufTensor> ReadTensors(JsonElement tensors, string source)
    {
        int count = tensors.GetArrayLength();
        if (count > GgufLimits.MaxTensors)
        {
            throw new ModelFormatException(source, "tensors", $"has {count:N0} entries, above the limit of {GgufLimits.MaxTensors:N0}.");
        }

        var read = new List<GgufTensor>(count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (JsonElement entry in tensors.EnumerateArray())
        {
            string at = $"tensors[{read.Count}]";
            GgufTensor tensor = ReadTensor(entry, source, at);
            read.Add(names.Add(tensor.Name) ? tensor
                : throw new ModelFormatException(source, at + ".name", $"is \"{tensor.Name}\", which appears twice among the tensors."));
        }

        return read;
    }

    private static GgufTensor ReadTensor(JsonElement entry, string source, string at)
    {
        if (entry.ValueKind != JsonValueKind.Object || entry.EnumerateObject().Any(f => f.Name is not ("name" or "shape" or "type")))
        {
            throw new ModelFormatException(source, at, "must be an object with \"name\", \"shape\" and \"type\" only.");
        }

        string name = entry.TryGetProperty("name", out JsonElement n) && n.ValueKind == JsonValueKind.String && n.GetString() is { Length: > 0 } text
            ? text : throw new ModelFormatException(source, at + ".name", "must be a non-empty string.");
        CheckLength(name, GgufLimits.MaxNameBytes, source, at + ".name", "the name");
        if (!entry.TryGetProperty("shape", out JsonElement shape) || shape.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(source, at + ".shape", "must be an array of dimensions, row length first.");
        }

        GgufTensor.CheckRank(shape.GetArrayLength(), source, at + ".shape");
        ImmutableArray<long> dimensions = [.. shape.EnumerateArray().Select(d => Whole(d, out long value) && value >= 0 ? value
            : throw new ModelFormatException(source, at + ".shape", $"holds {d.GetRawText()}, which is not a whole number of 0 or more."))];
        long typeId = entry.TryGetProperty("type", out JsonElement type) && Whole(type, out long id) ? id
            : throw new ModelFormatException(source, at + ".type", "must be a ggml type id (a whole number, ggml.h enum ggml_type).");
        return GgufTensor.Checked(name, dimensions, typeId, source, at + ".type", at + ".shape");
    }

    private static bool Whole(JsonElement value, out long whole)
    {
        whole = 0;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out whole);
    }

    private static void CheckLength(string text, long limit, string source, string key, string what)
    {
        if (Encoding.UTF8.GetByteCount(text) > limit)
        {
            throw new ModelFormatException(source, key, $"has {what} longer than {limit:N0} bytes.");
        }
    }
}
