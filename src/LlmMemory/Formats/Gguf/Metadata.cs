using System.Globalization;

namespace LlmMemory.Formats.Gguf;

/// <summary>Typed access to GGUF metadata, with <c>{arch}</c> keys expanded; failures name the source and key.</summary>
internal sealed class Metadata(IReadOnlyDictionary<string, GgufValue> metadata, string source, string architecture)
{
    public string Source => source;

    public string Key(string pattern) => string.Format(CultureInfo.InvariantCulture, pattern, architecture);

    public bool Has(string pattern) => metadata.ContainsKey(Key(pattern));

    /// <summary>An integer value; an array whose values are all equal counts as that value (per-layer settings that do not vary).</summary>
    public long? Integer(string pattern)
    {
        string key = Key(pattern);
        if (!metadata.TryGetValue(key, out GgufValue? value))
        {
            return null;
        }

        if (value.Type == GgufValueType.Array && value.Values is { Count: > 0 } values && values.All(v => v == values[0])
            && values[0] == Math.Floor(values[0]) && Math.Abs(values[0]) < 1e15)
        {
            return (long)values[0];
        }

        return value.Number ?? (value.Real is double real && real == Math.Floor(real) && Math.Abs(real) < 1e15 ? (long)real
            : throw new ModelFormatException(Source, key, value.Type == GgufValueType.Array
                ? "varies per layer (or is empty), which this reader does not support."
                : $"must be an integer, found a {value.Type}."));
    }

    public double? Real(string pattern)
    {
        string key = Key(pattern);
        return !metadata.TryGetValue(key, out GgufValue? value) ? null
            : value.Real ?? value.Number ?? throw new ModelFormatException(Source, key, $"must be a number, found a {value.Type}.");
    }

    /// <summary>Element count of an array value (e.g. the tokenizer's tokens).</summary>
    public long? ArrayLength(string key) =>
        metadata.TryGetValue(key, out GgufValue? value) && value.Type == GgufValueType.Array ? value.Count : null;
}
