using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Workloads;

/// <summary>Reads a scenario object exactly as docs/scenario.md (format v1) defines it.</summary>
/// <remarks>An unknown field, a wrong type or an out-of-range value is a <see cref="ModelFormatException"/> naming the field.</remarks>
public static class ScenarioReader
{
    /// <summary>Fields kept for people and never read.</summary>
    public static readonly FrozenSet<string> IgnoredFields = FrozenSet.ToFrozenSet(["source", "quote", "confidence", "assumptions", "notes"]);

    /// <summary>Upper bound on batch, accumulation and GPU counts: far above any real run, low enough that products stay in range.</summary>
    private const int MaxCount = 1 << 20;

    /// <summary>Where a scenario's fields came from: its source (a file, "request body", "command line"), and the flag that set a field.</summary>
    /// <param name="Source">The file, request or command line the object came from.</param>
    /// <param name="Flags">The command-line flag that wrote each field path over the object, when one did.</param>
    public sealed record Origin(string Source, IReadOnlyDictionary<string, string> Flags)
    {
        public Origin(string source)
            : this(source, new Dictionary<string, string>())
        {
        }

        /// <summary>The flag that set <paramref name="field"/> (or its parent object, or one of its fields), else the source.</summary>
        public string Of(string field)
        {
            for (string? path = field; path is not null; path = path.Contains('.', StringComparison.Ordinal) ? path[..path.LastIndexOf('.')] : null)
            {
                if (Flags.TryGetValue(path, out string? flag))
                {
                    return flag;
                }
            }

            // A whole object ("lora") named by a flag that set one of its fields ("--lora-r").
            return Flags.FirstOrDefault(f => f.Key.StartsWith(field + ".", StringComparison.Ordinal)).Value ?? Source;
        }
    }

    /// <summary>Reads a scenario file.</summary>
    public static Scenario ReadFile(string path) => ScenarioDraft.FromFile(path).Read();

    /// <summary>Reads a scenario object; <paramref name="extraFields"/> are accepted and left to the caller (case files).</summary>
    public static Scenario Read(JsonElement root, string source, string? baseDirectory, IReadOnlySet<string>? extraFields) =>
        Read(root, new Origin(source), baseDirectory, extraFields);

    /// <summary>Reads a scenario object whose fields may come from several origins (a file and flags).</summary>
    public static Scenario Read(JsonElement root, Origin origin, string? baseDirectory, IReadOnlySet<string>? extraFields)
    {
        ArgumentNullException.ThrowIfNull(origin);
        var o = new Fields(root, origin);
        o.RejectUnknown(name => ScenarioFields.TopLevel.Contains(name) || IgnoredFields.Contains(name) || extraFields?.Contains(name) == true);
        var scenario = new Scenario
        {
            Model = ReadModel(o),
            Mode = o.Enum("mode", Mode.Inference),
            Engine = o.Enum("engine", Engine.Transformers),
            Weights = o.Name("weights", n => WeightFormats.TryParse(n, out WeightFormat f) ? f : null, () => string.Join(", ", WeightFormats.All.Select(f => f.Name))),
            Precision = o.OptionalEnum<Precision>("precision"),
            Optimizer = o.OptionalEnum<OptimizerKind>("optimizer"),
            OptimizerInBackward = o.Bool("optimizer_in_backward") ?? false,
            Batch = o.Int("batch", 1, MaxCount) ?? 1,
            GradientAccumulation = o.Int("gradient_accumulation", 1, MaxCount) ?? 1,
            GradientCheckpointing = o.Enum("gradient_checkpointing", Checkpointing.None),
            Attention = o.Enum("attention", AttentionKernel.Sdpa),
            CrossEntropy = o.Enum("cross_entropy", CrossEntropyKind.Standard),
            Compile = o.Bool("compile") ?? false,
            Packed = o.Bool("packed") ?? false,
            Lora = ReadLora(o),
            KvCacheDtype = o.Name("kv_cache_dtype", KvType, KnownKvTypes),
            VCacheDtype = o.Name("v_cache_dtype", KvType, KnownKvTypes),
            Parallel = ReadParallel(o),
            EngineOptions = ReadEngineOptions(o),
            Gpu = o.Name("gpu", n => GpuCatalog.TryFind(n, out Gpu g) ? g : null, null, GpuHint),
            NewTokens = o.Int("new_tokens", 1, Limits.MaxPositions),
            Cache = o.OptionalEnum<GenerationCache>("cache"),
            AllocConf = o.String("alloc_conf") is { } conf ? !string.IsNullOrWhiteSpace(conf) && conf.Length <= 1024 ? conf
                : throw o.Error("alloc_conf", "must be PyTorch's setting string such as \"expandable_segments:True\" (1 to 1,024 characters)") : null,
            Foreach = o.Bool("foreach"),
            Fused = o.Bool("fused"),
            KbitPreparation = o.Bool("kbit_preparation") ?? false,
            UseCache = o.Bool("use_cache"),
            HoldPreviousLogits = o.Bool("hold_previous_logits") ?? false,
            BitsandbytesConverter = o.Enum("bitsandbytes_converter", BitsandbytesConverter.Transformers),
            ModelCode = o.Enum("model_code", ModelCode.Transformers),
            Bnb4bitUseDoubleQuant = o.Bool("bnb_4bit_use_double_quant"),
            CustomShardedLayers = ReadCustomShardedLayers(o),
            BitsandbytesVersion = o.String("bitsandbytes_version") is { } bnb ? BitsandbytesRelease.TryParse(bnb, out _) ? bnb
                : throw o.Error("bitsandbytes_version", "must be a bitsandbytes release such as \"0.42.0\" (major.minor.patch)") : null,
            BaseDirectory = baseDirectory,
            Given = new GivenFields(GivenPaths(root), origin.Of),
        };
        if (o.Int("seq", 1, Limits.MaxPositions) is int seq)
        {
            scenario = scenario with { Seq = seq };
        }

        if (scenario.KbitPreparation)
        {
            scenario = KbitPreparation(o, scenario);
        }

        if (scenario.NewTokens >= scenario.Seq)
        {
            throw o.Error("new_tokens", string.Create(CultureInfo.InvariantCulture,
                $"({scenario.NewTokens:N0}) must be less than seq ({scenario.Seq:N0}): seq is the whole context, the prompt plus the generated tokens"));
        }

        if (scenario.Cache is not null && scenario.NewTokens is null)
        {
            throw o.Error("cache", "is the KV cache of generate(); give new_tokens too");
        }

        long tokens = (long)scenario.Batch * scenario.Seq;
        return tokens <= Limits.MaxTokensPerStep
            ? scenario
            : throw o.Error(o.Has("batch") && !o.Has("seq") ? "batch" : "seq", string.Create(CultureInfo.InvariantCulture,
                $"× batch is {tokens:N0} tokens per step ({scenario.Batch:N0} × {scenario.Seq:N0}), above the limit of {Limits.MaxTokensPerStep:N0}"));
    }

    /// <summary>
    /// PEFT's <c>prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)</c> (peft/utils/other.py) prepares a
    /// transformers model whose base bitsandbytes loaded in 4 or 8 bits: QLoRA, or LoRA on nf4, fp4 or int8 weights. Any other
    /// run is refused (GPTQ, AWQ and other quantizers are skipped by its cast). Without <c>gradient_checkpointing</c> given,
    /// its <c>use_gradient_checkpointing=True</c> default turns full checkpointing on.
    /// </summary>
    private static Scenario KbitPreparation(Fields o, Scenario scenario)
    {
        string? problem = !scenario.IsAdapterTraining ? $"mode is {Names.Of(scenario.Mode)}; it prepares a frozen k-bit base for adapters (mode qlora, or lora on weights nf4, fp4 or int8)"
            : scenario.Engine != Engine.Transformers ? $"engine is {Names.Of(scenario.Engine)}; it prepares transformers models (engine transformers)"
            : scenario.Weights is { Scheme: not (WeightScheme.BitsAndBytes4 or WeightScheme.BitsAndBytes8) } w ? $"weights are {w.Name}; it prepares a base bitsandbytes loaded in 4 or 8 bits (nf4, fp4, int8)"
            : scenario.Mode == Mode.Lora && scenario.Weights is null ? "mode lora loads the base in 16 bits; it prepares a base bitsandbytes loaded in 4 or 8 bits (mode qlora, or weights nf4, fp4 or int8)"
            : null;
        if (problem is not null)
        {
            throw o.Error("kbit_preparation", $"is PEFT's prepare_model_for_kbit_training, but {problem}");
        }

        return o.Has("gradient_checkpointing") ? scenario : scenario with { GradientCheckpointing = Checkpointing.Full };
    }

    /// <summary>The paths of every field the object names: top-level fields, and the fields inside <c>lora</c>, <c>parallel</c> and <c>engine_options</c>.</summary>
    private static IEnumerable<string> GivenPaths(JsonElement root)
    {
        foreach (JsonProperty field in root.EnumerateObject().Where(f => f.Value.ValueKind != JsonValueKind.Null && !IgnoredFields.Contains(f.Name)))
        {
            yield return field.Name;
            if (field.Name is "lora" or "parallel" or "engine_options" && field.Value.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty inner in field.Value.EnumerateObject().Where(f => f.Value.ValueKind != JsonValueKind.Null))
                {
                    yield return $"{field.Name}.{inner.Name}";
                }
            }
        }
    }

    private static string GpuHint(string spelling) => GpuCatalog.Matches(spelling) is { Count: > 1 } several
        ? $"which could be {string.Join(", ", several.Select(g => g.Id))}; name one"
        : $"which is not a GPU of the catalog (llm-memory gpus lists them: {string.Join(", ", GpuCatalog.All.Select(g => g.Id))})";

    private static DataType? KvType(string name) =>
        DataTypes.TryParse(name, out DataType type) && KvCacheTypes.All.Contains(type) ? type : null;

    /// <summary>The KV cache types a scenario may name (<c>kv_cache_dtype</c>, <c>v_cache_dtype</c>), as offered to people.</summary>
    public static IReadOnlyList<string> KvCacheTypeNames { get; } = [.. KvCacheTypes.All.Select(KvCacheTypes.Spelling)];

    private static string KnownKvTypes() => string.Join(", ", KvCacheTypeNames);

    private static ModelReference ReadModel(Fields o)
    {
        JsonElement model = o.Required("model");
        switch (model.ValueKind)
        {
            case JsonValueKind.String when !string.IsNullOrWhiteSpace(model.GetString()):
                return new ModelReference.Named(model.GetString()!);
            case JsonValueKind.Object:
                var inner = new Fields(model, o.Origin, "model.");
                inner.RejectUnknown(name => name is "config" or "parameters" or "gguf");
                if (inner.Has("config"))
                {
                    JsonElement config = inner.Required("config");
                    return config.ValueKind == JsonValueKind.Object
                        ? new ModelReference.InlineConfig(config.Clone())
                        : throw o.Error("model.config", "must be a config.json object");
                }

                if (inner.Has("gguf"))
                {
                    JsonElement gguf = inner.Required("gguf");
                    return gguf.ValueKind == JsonValueKind.Object
                        ? new ModelReference.GgufHeader(gguf.Clone())
                        : throw o.Error("model.gguf", "must be a GGUF header object with \"metadata\" and \"tensors\"");
                }

                long? count = inner.Long("parameters", 1, Limits.MaxParameters);
                return count is long n
                    ? new ModelReference.ParameterCount(n)
                    : throw o.Error("model", "must hold \"config\", \"gguf\" or \"parameters\"");
            default:
                throw o.Error("model", "must be a catalog id, alias or path, or an object with \"config\", \"gguf\" or \"parameters\"");
        }
    }

    private static LoraSettings? ReadLora(Fields o)
    {
        if (!o.Has("lora"))
        {
            return null;
        }

        var lora = new Fields(o.Required("lora"), o.Origin, "lora.");
        lora.RejectUnknown(name => name is "r" or "alpha" or "targets" or "dora" or "dropout");
        // Without r, the library's one default rank (the estimate says so in a note).
        int rank = lora.Int("r", 1, 1 << 16) ?? LoraSettings.DefaultRank;
        double dropout = lora.Double("dropout", 0, 1) ?? 0;
        return dropout < 1
            ? new LoraSettings(rank, lora.Double("alpha", 0, 1e9), ReadTargets(lora), lora.Bool("dora") ?? false, dropout)
            : throw lora.Error("lora.dropout", "is 1; a dropout probability is below 1 (0 for none)");
    }

    private static LoraTargets ReadTargets(Fields lora)
    {
        if (!lora.Has("targets"))
        {
            return LoraTargets.AllLinear;
        }

        JsonElement targets = lora.Required("targets");
        if (targets.ValueKind == JsonValueKind.String)
        {
            string preset = targets.GetString()!;
            return preset is "all-linear" or "attention"
                ? new LoraTargets(preset, [])
                : throw lora.Error("lora.targets", $"is \"{preset}\"; expected \"all-linear\", \"attention\" or a list of module names");
        }

        if (targets.ValueKind != JsonValueKind.Array || targets.GetArrayLength() is 0 or > 1024
            || targets.EnumerateArray().Any(t => t.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(t.GetString())))
        {
            throw lora.Error("lora.targets", "must be \"all-linear\", \"attention\" or a non-empty list of module names");
        }

        return new LoraTargets(null, targets.EnumerateArray().Select(t => t.GetString()!).ToArray());
    }

    /// <summary>torchtune's <c>custom_sharded_layers</c>: a list of the module names <c>tok_embeddings</c> and <c>output</c>.</summary>
    private static CustomShardedLayers ReadCustomShardedLayers(Fields o)
    {
        if (!o.Has("custom_sharded_layers"))
        {
            return CustomShardedLayers.None;
        }

        JsonElement names = o.Required("custom_sharded_layers");
        const string Expected = "must be a list of torchtune module names, each \"tok_embeddings\" or \"output\"";
        if (names.ValueKind != JsonValueKind.Array)
        {
            throw o.Error("custom_sharded_layers", Expected);
        }

        var layers = CustomShardedLayers.None;
        foreach (JsonElement name in names.EnumerateArray())
        {
            // torchtune's get_shard_conditions matches module names exactly, so the spelling must be exact too.
            string? text = name.ValueKind == JsonValueKind.String ? name.GetString() : null;
            layers |= Names.TryParse(text, out CustomShardedLayers layer) && Names.Of(layer) == text ? layer : throw o.Error("custom_sharded_layers", Expected);
        }

        return layers;
    }

    private static ParallelSettings ReadParallel(Fields o)
    {
        if (!o.Has("parallel"))
        {
            return new ParallelSettings();
        }

        var p = new Fields(o.Required("parallel"), o.Origin, "parallel.");
        p.RejectUnknown(name => name is "gpus" or "zero" or "fsdp" or "tp" or "pp" or "schedule" or "cp" or "offload");
        int tp = p.Int("tp", 1, 1024) ?? 1, pp = p.Int("pp", 1, 1024) ?? 1, cp = p.Int("cp", 1, 1024) ?? 1;
        var settings = new ParallelSettings
        {
            // Without a GPU count, the run has as many GPUs as its model-parallel layout needs (`--pp 2` alone is two GPUs).
            Gpus = p.Int("gpus", 1, MaxCount) ?? (int)Math.Min((long)tp * pp * cp, MaxCount),
            Zero = p.Int("zero", 0, 3) ?? 0,
            Fsdp = p.Enum("fsdp", FsdpMode.None),
            Tp = tp,
            Pp = pp,
            Schedule = p.Enum("schedule", PipelineSchedule.OneForwardOneBackward),
            Cp = cp,
            Offload = p.Enum("offload", OffloadMode.None),
        };
        if (settings.Schedule != PipelineSchedule.OneForwardOneBackward && settings.Pp == 1)
        {
            throw o.Error("parallel.schedule", $"({Names.Of(settings.Schedule)}) schedules a pipeline, but parallel.pp is 1; give parallel.pp above 1");
        }

        long modelParallel = (long)settings.Tp * settings.Pp * settings.Cp;
        return settings.Gpus % modelParallel == 0
            ? settings
            : throw o.Error("parallel.gpus", $"({settings.Gpus}) must be a multiple of tp × pp × cp = {modelParallel}");
    }

    private static EngineOptions ReadEngineOptions(Fields o)
    {
        if (!o.Has("engine_options"))
        {
            return new EngineOptions();
        }

        var e = new Fields(o.Required("engine_options"), o.Origin, "engine_options.");
        e.RejectUnknown(name => name is "gpu_memory_utilization" or "max_model_len" or "max_num_seqs" or "max_num_batched_tokens" or "block_size"
            or "kv_cache_memory" or "n_ctx" or "n_batch" or "n_ubatch" or "n_seq" or "n_gpu_layers" or "flash_attn" or "mmap" or "version" or "pp_layer_partition");
        return new EngineOptions
        {
            GpuMemoryUtilization = e.Double("gpu_memory_utilization", double.Epsilon, 1),
            MaxModelLen = e.Int("max_model_len", 1, Limits.MaxPositions),
            MaxNumSeqs = e.Int("max_num_seqs", 1, MaxCount),
            MaxNumBatchedTokens = e.Int("max_num_batched_tokens", 1, Limits.MaxPositions),
            BlockSize = e.Int("block_size", 1, 1 << 16),
            KvCacheMemory = e.Long("kv_cache_memory", 1, 1L << 50),
            NCtx = e.Int("n_ctx", 0, Limits.MaxPositions),
            NBatch = e.Int("n_batch", 1, Limits.MaxPositions),
            NUbatch = e.Int("n_ubatch", 1, Limits.MaxPositions),
            NSeq = e.Int("n_seq", 1, 1 << 16),
            NGpuLayers = e.Int("n_gpu_layers", 0, Limits.MaxLayers + 1024),
            FlashAttn = e.Bool("flash_attn"),
            Mmap = e.Bool("mmap"),
            Version = e.String("version"),
            PpLayerPartition = e.String("pp_layer_partition"),
        };
    }

    /// <summary>Checked reads of one JSON object's fields; errors name the field with its path and where it came from.</summary>
    internal sealed class Fields
    {
        private readonly JsonElement _object;
        private readonly string _prefix;

        public Fields(JsonElement element, string source, string prefix = "")
            : this(element, new Origin(source), prefix)
        {
        }

        public Fields(JsonElement element, Origin origin, string prefix = "")
        {
            Origin = origin;
            _prefix = prefix;
            _object = element.ValueKind == JsonValueKind.Object
                ? element
                : throw new ModelFormatException(origin.Of(prefix.TrimEnd('.')), prefix.Length > 0 ? prefix.TrimEnd('.') : null, "must be a JSON object.");
        }

        public Origin Origin { get; }

        public string Source => Origin.Source;

        public ModelFormatException Error(string field, string problem) => new(Origin.Of(field), field, problem + ".");

        public bool Has(string name) => _object.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null;

        public JsonElement Required(string name) =>
            _object.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null
                ? value
                : throw Error(_prefix + name, "is required");

        public void RejectUnknown(Func<string, bool> known)
        {
            foreach (JsonProperty property in _object.EnumerateObject())
            {
                if (!known(property.Name))
                {
                    throw Error(_prefix + property.Name, "is not a known field");
                }
            }
        }

        public string? String(string name)
        {
            if (!Has(name))
            {
                return null;
            }

            JsonElement value = Required(name);
            return value.ValueKind == JsonValueKind.String ? value.GetString() : throw Error(_prefix + name, $"must be a string, found {Found(value)}");
        }

        /// <summary>A name looked up in a catalog: <paramref name="find"/> gives the entry or null; the error lists <paramref name="known"/> or says <paramref name="hint"/>.</summary>
        public T? Name<T>(string name, Func<string, T?> find, Func<string>? known, Func<string, string>? hint = null)
            where T : class
        {
            string? text = String(name);
            if (text is null)
            {
                return null;
            }

            return find(text) ?? throw Error(_prefix + name, known is null
                ? $"is \"{Shorten(text)}\", {hint!(text)}"
                : $"is \"{Shorten(text)}\", which is not known (known: {known()})");
        }

        public bool? Bool(string name)
        {
            if (!Has(name))
            {
                return null;
            }

            JsonElement value = Required(name);
            return value.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Error(_prefix + name, $"must be true or false, found {Found(value)}"),
            };
        }

        public int? Int(string name, int min, int max) => (int?)Long(name, min, max);

        public long? Long(string name, long min, long max)
        {
            if (!Has(name))
            {
                return null;
            }

            JsonElement value = Required(name);
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long number))
            {
                throw Error(_prefix + name, $"must be an integer, found {Found(value)}");
            }

            return number >= min && number <= max
                ? number
                : throw Error(_prefix + name, string.Create(CultureInfo.InvariantCulture, $"must be between {min} and {max}, found {number}"));
        }

        public double? Double(string name, double min, double max)
        {
            if (!Has(name))
            {
                return null;
            }

            JsonElement value = Required(name);
            if (value.ValueKind != JsonValueKind.Number || !value.TryGetDouble(out double number) || !double.IsFinite(number))
            {
                throw Error(_prefix + name, $"must be a number, found {Found(value)}");
            }

            return number >= min && number <= max
                ? number
                : throw Error(_prefix + name, string.Create(CultureInfo.InvariantCulture, $"must be between {min:G3} and {max:G3}, found {number}"));
        }

        public T Enum<T>(string name, T fallback)
            where T : struct, Enum => OptionalEnum<T>(name) ?? fallback;

        public T? OptionalEnum<T>(string name)
            where T : struct, Enum
        {
            string? text = String(name);
            if (text is null)
            {
                return null;
            }

            return Names.TryParse(text, out T value)
                ? value
                : throw Error(_prefix + name, $"is \"{Shorten(text)}\"; expected one of {string.Join(", ", Names.All<T>())}");
        }

        /// <summary>A JSON value as the message shows it: strings quoted and shortened, other values as written.</summary>
        private static string Found(JsonElement value) => value.ValueKind switch
        {
            JsonValueKind.String => $"\"{Shorten(value.GetString()!)}\"",
            JsonValueKind.Object => "an object",
            JsonValueKind.Array => "a list",
            _ => Shorten(value.GetRawText()),
        };

        private static string Shorten(string text) => text.Length <= 80 ? text : text[..80] + "…";
    }
}
