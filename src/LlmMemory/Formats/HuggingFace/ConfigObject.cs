using System.Text.Json;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>Typed, checked access to one JSON object of a Hugging Face <c>config.json</c>.</summary>
/// <remarks>
/// Every failure names the file and the key. Sizes are bounded by <see cref="Models.Limits"/>, so a hostile file cannot ask
/// the estimator for an absurd tensor or make a product overflow silently.
/// </remarks>
internal sealed class ConfigObject
{
    private readonly JsonElement _element;
    private readonly IReadOnlyDictionary<string, int> _defaults;

    /// <param name="element">The JSON object.</param>
    /// <param name="source">File name used in messages.</param>
    /// <param name="defaults">Values the transformers config class supplies when a key is absent (see <see cref="ConfigDefaults"/>).</param>
    public ConfigObject(JsonElement element, string source, IReadOnlyDictionary<string, int>? defaults = null)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new ModelFormatException(source, null, $"is not a JSON object (found {element.ValueKind}).");
        }

        _element = element;
        Source = source;
        _defaults = defaults ?? new Dictionary<string, int>();
    }

    public string Source { get; }

    /// <summary>The underlying JSON object.</summary>
    public JsonElement Element => _element;

    public bool Has(string key) => _element.TryGetProperty(key, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

    /// <summary>Whether <paramref name="key"/> is given as JSON null (which some config classes read differently from absent).</summary>
    public bool IsNull(string key) => _element.TryGetProperty(key, out JsonElement value) && value.ValueKind == JsonValueKind.Null;

    /// <summary>The first present key among <paramref name="keys"/>, or null.</summary>
    public string? FirstPresent(params string[] keys) => keys.FirstOrDefault(Has);

    /// <summary>A required size: a positive integer not above <paramref name="max"/>, read from the first present key.</summary>
    public int Size(int max, params string[] keys) =>
        OptionalSize(max, keys)
        ?? throw new ModelFormatException(Source, keys[0],
            keys.Length > 1 ? $"is missing (also tried {string.Join(", ", keys.Skip(1).Select(k => $"'{k}'"))})." : "is missing.");

    /// <summary>An optional size: null when absent, else a positive integer not above <paramref name="max"/>.</summary>
    public int? OptionalSize(int max, params string[] keys)
    {
        string? key = FirstPresent(keys);
        if (key is null)
        {
            return keys.Select(k => _defaults.TryGetValue(k, out int d) ? d : (int?)null).FirstOrDefault(d => d is not null);
        }

        long value = Integer(key);
        return value >= 1 && value <= max
            ? (int)value
            : throw new ModelFormatException(Source, key, $"must be between 1 and {max:N0}, found {value}.");
    }

    /// <summary>An optional count that may be zero (e.g. shared experts, dense layers).</summary>
    public int? OptionalCount(int max, params string[] keys)
    {
        string? key = FirstPresent(keys);
        if (key is null)
        {
            return null;
        }

        long value = Integer(key);
        return value >= 0 && value <= max
            ? (int)value
            : throw new ModelFormatException(Source, key, $"must be between 0 and {max:N0}, found {value}.");
    }

    public bool Bool(string key, bool fallback)
    {
        if (!Has(key))
        {
            return fallback;
        }

        JsonElement value = _element.GetProperty(key);
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ModelFormatException(Source, key, $"must be true or false, found {Describe(value)}."),
        };
    }

    public string? String(string key)
    {
        if (!Has(key))
        {
            return null;
        }

        JsonElement value = _element.GetProperty(key);
        return value.ValueKind == JsonValueKind.String
            ? Text(value, key)
            : throw new ModelFormatException(Source, key, $"must be a string, found {Describe(value)}.");
    }

    public double? Number(string key)
    {
        if (!Has(key))
        {
            return null;
        }

        JsonElement value = _element.GetProperty(key);
        return value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double number) && double.IsFinite(number)
            ? number
            : throw new ModelFormatException(Source, key, $"must be a number, found {Describe(value)}.");
    }

    public ConfigObject? Object(string key)
    {
        if (!Has(key))
        {
            return null;
        }

        JsonElement value = _element.GetProperty(key);
        return value.ValueKind == JsonValueKind.Object
            ? new ConfigObject(value, $"{Source} ({key})")
            : throw new ModelFormatException(Source, key, $"must be an object, found {Describe(value)}.");
    }

    /// <summary>An array of strings (e.g. <c>architectures</c>, <c>layer_types</c>), bounded in length.</summary>
    public IReadOnlyList<string> Strings(string key, int maxCount)
    {
        if (!Has(key))
        {
            return [];
        }

        JsonElement value = _element.GetProperty(key);
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw new ModelFormatException(Source, key, $"must be an array of strings, found {Describe(value)}.");
        }

        if (value.GetArrayLength() > maxCount)
        {
            throw new ModelFormatException(Source, key, $"has {value.GetArrayLength()} entries; at most {maxCount} are allowed.");
        }

        return value.EnumerateArray()
            .Select(item => item.ValueKind == JsonValueKind.String
                ? Text(item, key)
                : throw new ModelFormatException(Source, key, $"must hold only strings, found {Describe(item)}."))
            .ToArray();
    }

    /// <summary>An array of integers (e.g. <c>mlp_only_layers</c>), bounded in length and value.</summary>
    public IReadOnlyList<int> Integers(string key, int maxCount, int maxValue)
    {
        if (!Has(key))
        {
            return [];
        }

        JsonElement value = _element.GetProperty(key);
        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() > maxCount)
        {
            throw new ModelFormatException(Source, key, $"must be an array of at most {maxCount} integers, found {Describe(value)}.");
        }

        return value.EnumerateArray()
            .Select(item => item.ValueKind == JsonValueKind.Number && item.TryGetInt64(out long n) && n >= 0 && n <= maxValue
                ? (int)n
                : throw new ModelFormatException(Source, key, $"must hold integers between 0 and {maxValue}, found {Describe(item)}."))
            .ToArray();
    }

    private long Integer(string key)
    {
        JsonElement value = _element.GetProperty(key);
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long integer))
        {
            return integer;
        }

        // Some configs write sizes as floats ("hidden_size": 4096.0); accept exact integers only.
        if (value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double number) && number == Math.Floor(number)
            && Math.Abs(number) < 1e15)
        {
            return (long)number;
        }

        throw new ModelFormatException(Source, key, $"must be an integer, found {Describe(value)}.");
    }

    /// <summary>A string value; an escaped lone surrogate (<c>"\ud800"</c>) cannot become a .NET string and is a format error.</summary>
    private string Text(JsonElement value, string key)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new ModelFormatException(Source, key, $"holds the string {Truncate(value.GetRawText())}, which is not valid Unicode text.");
        }
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"the string {Truncate(value.GetRawText())}",
        JsonValueKind.Number => value.GetRawText(),
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        JsonValueKind.True or JsonValueKind.False => value.GetRawText(),
        _ => value.ValueKind.ToString().ToLowerInvariant(),
    };

    private static string Truncate(string text) => text.Length <= 40 ? text : text[..40] + "…";
}
