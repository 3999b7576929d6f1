using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Models;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>Which tool a config file is written for.</summary>
public enum StackConfigKind
{
    /// <summary>An Axolotl YAML (<c>base_model</c>, <c>micro_batch_size</c>, <c>adapter</c>, …).</summary>
    Axolotl,

    /// <summary>A torchtune recipe config (<c>_component_</c> entries, <c>batch_size</c>, <c>dtype</c>, …).</summary>
    Torchtune,

    /// <summary>transformers <c>TrainingArguments</c> or TRL <c>SFTConfig</c> (with TRL's <c>ModelConfig</c>) as YAML or JSON.</summary>
    TrainerArguments,

    /// <summary>A DeepSpeed JSON config (<c>zero_optimization</c>, <c>train_micro_batch_size_per_gpu</c>, …).</summary>
    DeepSpeed,

    /// <summary>An accelerate config YAML (<c>distributed_type</c>, <c>num_processes</c>, <c>fsdp_config</c>, …).</summary>
    Accelerate,
}

/// <summary>One scenario field a config sets: the field's path (docs/scenario.md), the value, and the config key it came from.</summary>
/// <param name="Field">The scenario field, such as <c>batch</c> or <c>parallel.zero</c>.</param>
/// <param name="Value">The value as the scenario holds it.</param>
/// <param name="Key">The config key (dotted for nested keys), or null when the config's kind alone implies it (an Axolotl file trains).</param>
/// <param name="Default">A stack's default for a key the file leaves out (TRL's by <c>trl_version</c>): like a setting the kind implies, it does not replace what an earlier input set.</param>
public sealed record StackSetting(string Field, JsonNode? Value, string? Key, bool Default = false);

/// <summary>A config key that moves memory but that no scenario field expresses yet, and what it does.</summary>
public sealed record UnmodelledKey(string Key, string Why);

/// <summary>
/// A fine-tuning stack's own config file (Axolotl, torchtune, TrainingArguments/SFTConfig, DeepSpeed, accelerate) as scenario
/// fields. Every key that moves memory becomes a <see cref="StackSetting"/> on a real field, or an <see cref="UnmodelledKey"/>
/// when the scenario cannot say it yet; every other key is listed in <see cref="NotUsed"/>. The settings are written into a
/// <see cref="ScenarioDraft"/> like a scenario file's, so the reader checks them by the same rules, an error names the file and
/// key, and command-line flags still override them.
/// </summary>
public sealed record StackConfig(string File, StackConfigKind Kind, IReadOnlyList<StackSetting> Settings,
    IReadOnlyList<string> Confirmed, IReadOnlyList<UnmodelledKey> NotModelled, IReadOnlyList<string> NotUsed)
{
    /// <summary>Reads a config file; its kind is told by its keys.</summary>
    /// <exception cref="ModelFormatException">The file is missing, too large, malformed, hostile or of no known kind, or a key holds a value that cannot mean anything.</exception>
    public static StackConfig Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        return Read(path, LocalFile.ReadAllBytes(path, Limits.MaxConfigBytes, "a config file"));
    }

    /// <summary>
    /// Reads a config file's bytes that arrived without a path (a file dropped on the page): <paramref name="name"/> is the
    /// file's name, which tells JSON (<c>.json</c>) from YAML and which every error names.
    /// </summary>
    /// <exception cref="ModelFormatException">As <see cref="Read(string)"/>.</exception>
    public static StackConfig Read(string name, ReadOnlyMemory<byte> bytes)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (bytes.Length > Limits.MaxConfigBytes)
        {
            throw new ModelFormatException(name, null, $"is larger than {Limits.MaxConfigBytes:N0} bytes, the most a config file may hold.");
        }

        JsonObject root = Parse(name, bytes);
        var keys = new ConfigKeys(root, name);
        StackConfigKind kind = KindOf(root, name);
        switch (kind)
        {
            case StackConfigKind.Axolotl:
                AxolotlConfig.Map(keys);
                break;
            case StackConfigKind.Torchtune:
                TorchtuneConfig.Map(keys);
                break;
            case StackConfigKind.DeepSpeed:
                DeepSpeedConfig.Map(keys, prefix: "");
                break;
            case StackConfigKind.Accelerate:
                AccelerateConfig.Map(keys);
                break;
            default:
                TrainerArgumentsConfig.Map(keys);
                break;
        }

        return keys.Finish(kind);
    }

    /// <summary>What a person calls the kind.</summary>
    public static string Describe(StackConfigKind kind) => kind switch
    {
        StackConfigKind.Axolotl => "an Axolotl config",
        StackConfigKind.Torchtune => "a torchtune recipe config",
        StackConfigKind.TrainerArguments => "transformers TrainingArguments / TRL SFTConfig",
        StackConfigKind.DeepSpeed => "a DeepSpeed config",
        _ => "an accelerate config",
    };

    /// <summary>The origin an error in a field names: the file and the key.</summary>
    public string OriginOf(StackSetting setting)
    {
        ArgumentNullException.ThrowIfNull(setting);
        return setting.Key is null ? File : $"{File}: {setting.Key}";
    }

    /// <summary>
    /// Writes every setting into <paramref name="draft"/>, over what it holds; a setting only the file's kind implies (an
    /// Axolotl file trains, a torchtune recipe runs torchtune), or a stack's default for a key the file leaves out, does not
    /// replace what an earlier input set.
    /// </summary>
    public void ApplyTo(ScenarioDraft draft)
    {
        ArgumentNullException.ThrowIfNull(draft);
        foreach (StackSetting setting in Settings)
        {
            if ((setting.Key is null || setting.Default) && draft.Has(setting.Field))
            {
                continue;
            }

            draft.Set(setting.Field, setting.Value?.DeepClone(), OriginOf(setting));
        }
    }

    /// <summary>
    /// What was read: the keys used (with the field each set, or the flag that overrode it in <paramref name="draft"/>), the
    /// keys that move memory but are not modelled, and the keys that were not used.
    /// </summary>
    public IReadOnlyList<string> Notes(ScenarioDraft draft)
    {
        ArgumentNullException.ThrowIfNull(draft);
        var used = new List<string>();
        foreach (StackSetting s in Settings)
        {
            string value = s.Value?.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) ?? "null";
            string by = draft.OriginOf(s.Field) is { } origin && origin != OriginOf(s) ? $" (overridden by {origin})" : "";
            used.Add($"{s.Key ?? "(the file's kind)"}{(s.Default ? " (the release's default)" : "")} → {s.Field} = {value}{by}");
        }

        used.AddRange(Confirmed);
        var notes = new List<string>
        {
            $"{File} read as {Describe(Kind)}; used: {(used.Count == 0 ? "nothing" : string.Join("; ", used))}.",
        };
        if (NotModelled.Count > 0)
        {
            notes.Add($"{File}: moves memory but is not modelled yet: {string.Join("; ", NotModelled.Select(k => $"{k.Key} ({k.Why})"))}.");
        }

        if (NotUsed.Count > 0)
        {
            notes.Add($"{File}: not used (no effect on memory, or left to the tool at run time): {string.Join(", ", NotUsed)}.");
        }

        return notes;
    }

    private static JsonObject Parse(string path, ReadOnlyMemory<byte> bytes)
    {
        JsonNode? node;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            try
            {
                node = JsonNode.Parse(bytes.Span, documentOptions: new JsonDocumentOptions { MaxDepth = YamlTree.MaxDepth, CommentHandling = JsonCommentHandling.Skip });
            }
            catch (JsonException error)
            {
                throw new ModelFormatException(path, null, $"is not valid JSON ({error.Message.Split('.')[0]}).");
            }
        }
        else
        {
            string text;
            try
            {
                text = new UTF8Encoding(false, true).GetString(bytes.Span);
            }
            catch (DecoderFallbackException)
            {
                throw new ModelFormatException(path, null, "is not UTF-8 text.");
            }

            node = YamlTree.Parse(text, path);
        }

        return node as JsonObject ?? throw new ModelFormatException(path, null, "must be a mapping of settings (key: value).");
    }

    private static StackConfigKind KindOf(JsonObject root, string path)
    {
        bool Has(string key) => root[key] is not null;
        if (Has("zero_optimization") || Has("train_micro_batch_size_per_gpu") || Has("train_batch_size") || Has("zero_allow_untested_optimizer"))
        {
            return StackConfigKind.DeepSpeed;
        }

        if (Has("distributed_type") || Has("compute_environment"))
        {
            return StackConfigKind.Accelerate;
        }

        if (Has("base_model") || Has("micro_batch_size") || Has("sequence_len"))
        {
            return StackConfigKind.Axolotl;
        }

        if (root.Any(p => p.Value is JsonObject o && o["_component_"] is not null))
        {
            return StackConfigKind.Torchtune;
        }

        if (Has("per_device_train_batch_size") || Has("model_name_or_path") || Has("output_dir") || Has("gradient_accumulation_steps"))
        {
            return StackConfigKind.TrainerArguments;
        }

        throw new ModelFormatException(path, null,
            "is not a config this tool reads: no key of an Axolotl config (base_model), a torchtune recipe (_component_), TrainingArguments/SFTConfig (per_device_train_batch_size, model_name_or_path), a DeepSpeed config (zero_optimization, train_micro_batch_size_per_gpu) or an accelerate config (distributed_type).");
    }
}
