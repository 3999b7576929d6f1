using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// The keys of one config file as a mapping reads them: each key read is remembered, so what no mapping read is listed as
/// not used, and each setting, confirmation and unmodelled key is collected for the <see cref="StackConfig"/>. Keys are
/// dotted paths (<c>zero_optimization.stage</c>); errors name the file and the key.
/// </summary>
internal sealed class ConfigKeys(JsonObject root, string file)
{
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);
    private readonly List<StackSetting> _settings = [];
    private readonly List<string> _confirmed = [];
    private readonly List<UnmodelledKey> _unmodelled = [];

    public string File => file;

    /// <summary>The value at <paramref name="key"/> (null when absent or null), marked as read.</summary>
    public JsonNode? Take(string key)
    {
        JsonNode? node = Peek(key);
        if (node is not null)
        {
            _read.Add(key);
        }

        return node;
    }

    /// <summary>The value at <paramref name="key"/> without marking it read.</summary>
    public JsonNode? Peek(string key)
    {
        JsonNode? node = root;
        foreach (string part in key.Split('.'))
        {
            node = node is JsonObject o ? o[part] : null;
        }

        return node;
    }

    /// <summary>
    /// A true/false key; null when absent, or "auto" (the tool decides at run time) where allowed. Not marked read: the caller
    /// that acts on the value marks it (<see cref="Set"/>, <see cref="Confirm"/>), so a false that changes nothing is listed as not used.
    /// </summary>
    public bool? Bool(string key, bool allowAuto = false)
    {
        JsonNode? node = Peek(key);
        if (node is null || (allowAuto && IsAuto(node)))
        {
            return null;
        }

        return node.GetValueKind() switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(key, $"must be true or false, found {Shown(node)}"),
        };
    }

    /// <summary>A text key, read; null when absent.</summary>
    public string? Text(string key)
    {
        JsonNode? node = Peek(key);
        if (node is null)
        {
            return null;
        }

        _read.Add(key);
        return node.GetValueKind() == JsonValueKind.String ? node.GetValue<string>() : throw Error(key, $"must be a string, found {Shown(node)}");
    }

    /// <summary>A whole number, read; null when absent or "auto" (left unread).</summary>
    public long? Integer(string key)
    {
        JsonNode? node = Peek(key);
        if (node is null || IsAuto(node))
        {
            return null;
        }

        _read.Add(key);
        return node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue(out long n) ? n
            : node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < 1e18 ? (long)d
            : throw Error(key, $"must be a whole number, found {Shown(node)}");
    }

    /// <summary>Sets a scenario field from <paramref name="key"/>'s value as it stands (the reader checks its type and range).</summary>
    public void Pass(string key, string field)
    {
        JsonNode? node = Peek(key);
        if (node is not null && !IsAuto(node))
        {
            Set(field, node.DeepClone(), key);
        }
    }

    public void Set(string field, JsonNode? value, string? key, bool isDefault = false)
    {
        if (key is not null)
        {
            _read.Add(key);
        }

        if (_settings.Find(s => s.Field == field) is { } earlier)
        {
            // Two keys of one file set the same field: the later one read wins, and the earlier is still listed as read.
            _settings.Remove(earlier);
            if (earlier.Key is not null && earlier.Key != key)
            {
                _confirmed.Add($"{earlier.Key} (also {field}; {key ?? "the file's kind"} wins)");
            }
        }

        _settings.Add(new StackSetting(field, value, key, isDefault));
    }

    /// <summary>A key that was read and agrees with a setting without a field of its own (<c>load_in_4bit</c> under QLoRA).</summary>
    public void Confirm(string key, string meaning)
    {
        _read.Add(key);
        _confirmed.Add($"{key} ({meaning})");
    }

    /// <summary>A key that moves memory but that no scenario field expresses yet.</summary>
    public void Unmodelled(string key, string why)
    {
        _read.Add(key);
        _unmodelled.Add(new UnmodelledKey(key, why));
    }

    public bool IsSet(string field) => _settings.Any(s => s.Field == field);

    public ModelFormatException Error(string key, string problem) => new(file, key, problem + ".");

    public StackConfig Finish(StackConfigKind kind)
    {
        if (_settings.Find(s => s.Field == "fused") is { Key: { } fusedKey } fused && IsSharded())
        {
            // torch.optim's fused AdamW changes only the single-GPU replay's step; the sharded closed form has no such choice,
            // and the scenario refuses the field there, so a sharded config's fused optimizer is read but sets nothing.
            _settings.Remove(fused);
            _confirmed.Add($"{fusedKey} (fused AdamW, which a sharded run's estimate does not distinguish)");
        }

        if (_settings.Find(s => s.Field == "bnb_4bit_use_double_quant") is { Key: { } quantKey } quant && IsSharded())
        {
            // Likewise double quantization: the sharded closed form does not distinguish it and refuses the field.
            _settings.Remove(quant);
            _confirmed.Add($"{quantKey} (bitsandbytes double quantization off, which a sharded run's estimate does not distinguish)");
        }

        var unused = new List<string>();
        Unread(root, "", unused);
        return new StackConfig(file, kind, [.. _settings], [.. _confirmed], [.. _unmodelled], unused);
    }

    private bool IsSharded() => _settings.Any(s => s.Field switch
    {
        "parallel.fsdp" => s.Value?.ToString() != "none",
        "parallel.zero" or "parallel.gpus" => s.Value?.ToJsonString() is not ("0" or "1"),
        _ => false,
    });

    public static bool IsAuto(JsonNode node) => node.GetValueKind() == JsonValueKind.String && node.GetValue<string>() == "auto";

    /// <summary>A value as a message shows it.</summary>
    public static string Shown(JsonNode node)
    {
        string text = node.GetValueKind() switch
        {
            JsonValueKind.Object => "a mapping",
            JsonValueKind.Array => "a list",
            _ => node.ToJsonString(),
        };
        return text.Length <= 80 ? text : text[..80] + "…";
    }

    /// <summary>The keys under <paramref name="node"/> that nothing read: a whole mapping when none of it was read, else its unread keys.</summary>
    private void Unread(JsonObject node, string prefix, List<string> unused)
    {
        foreach ((string name, JsonNode? value) in node)
        {
            string key = prefix + name;
            if (value is null || _read.Contains(key))
            {
                continue;
            }

            if (value is JsonObject inner && _read.Any(r => r.StartsWith(key + ".", StringComparison.Ordinal)))
            {
                Unread(inner, key + ".", unused);
            }
            else
            {
                unused.Add(key);
            }
        }
    }

    /// <summary>A number as the notes write it.</summary>
    public static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);
}
