using System.Collections.Frozen;
using System.Text.Json;
using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>Reads a Hugging Face <c>config.json</c> into a <see cref="ModelArchitecture"/> with its exact tensor inventory.</summary>
public static class ConfigJsonReader
{
    /// <summary>Model types the reader knows, with the family reader for each.</summary>
    private static readonly FrozenDictionary<string, Func<ConfigObject, string, string, ModelArchitecture>> Readers =
        new Dictionary<string, Func<ConfigObject, string, string, ModelArchitecture>>
        {
            ["llama"] = LlamaLike, ["mistral"] = LlamaLike, ["mixtral"] = LlamaLike, ["qwen2"] = LlamaLike, ["qwen2_moe"] = LlamaLike,
            ["qwen3"] = LlamaLike, ["qwen3_moe"] = LlamaLike, ["gemma"] = LlamaLike, ["gemma2"] = LlamaLike, ["gemma3_text"] = LlamaLike,
            ["phi3"] = LlamaLike, ["deepseek_v2"] = LlamaLike, ["deepseek_v3"] = LlamaLike, ["gpt_oss"] = LlamaLike, ["granitemoe"] = LlamaLike,
            ["gpt2"] = (c, t, _) => Gpt2Config.Read(c, t),
            ["gpt_bigcode"] = (c, t, _) => Gpt2Config.Read(c, t),
            ["gpt_neox"] = (c, t, _) => GptNeoXConfig.Read(c, t),
            ["gptj"] = (c, t, _) => GptJConfig.Read(c, t),
            ["falcon"] = FalconConfig.Read,
            ["opt"] = (c, t, _) => OptConfig.Read(c, t),
            ["bloom"] = (c, t, _) => BloomConfig.Read(c, t),
            ["bert"] = (c, t, _) => BertConfig.Read(c, t),
            ["t5"] = (c, t, _) => T5Config.Read(c, t),
        }.ToFrozenDictionary();

    /// <summary>Legacy or wrapper model types and the type read in their place.</summary>
    private static readonly FrozenDictionary<string, string> Renamed = new Dictionary<string, string>
    {
        ["RefinedWeb"] = "falcon",
        ["RefinedWebModel"] = "falcon",
        ["mt5"] = "t5",
    }.ToFrozenDictionary();

    /// <summary>Model type by <c>architectures[0]</c>, for trimmed configs without <c>model_type</c>.</summary>
    private static readonly FrozenDictionary<string, string> ByArchitecture = new Dictionary<string, string>
    {
        ["LlamaForCausalLM"] = "llama", ["MistralForCausalLM"] = "mistral", ["MixtralForCausalLM"] = "mixtral",
        ["Qwen2ForCausalLM"] = "qwen2", ["Qwen3ForCausalLM"] = "qwen3", ["Qwen3MoeForCausalLM"] = "qwen3_moe",
        ["GemmaForCausalLM"] = "gemma", ["Gemma2ForCausalLM"] = "gemma2", ["Phi3ForCausalLM"] = "phi3",
        ["GptOssForCausalLM"] = "gpt_oss", ["GPT2LMHeadModel"] = "gpt2", ["GPTBigCodeForCausalLM"] = "gpt_bigcode",
        ["GPTNeoXForCausalLM"] = "gpt_neox", ["GPTJForCausalLM"] = "gptj", ["FalconForCausalLM"] = "falcon",
        ["RWForCausalLM"] = "RefinedWeb", ["OPTForCausalLM"] = "opt", ["BloomForCausalLM"] = "bloom",
        ["BertForMaskedLM"] = "bert", ["BertModel"] = "bert", ["T5ForConditionalGeneration"] = "t5",
        ["DeepseekV3ForCausalLM"] = "deepseek_v3", ["DeepseekV2ForCausalLM"] = "deepseek_v2",
    }.ToFrozenDictionary();

    /// <summary>The model types this reader supports, sorted.</summary>
    public static IReadOnlyList<string> SupportedModelTypes { get; } = Readers.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>Reads a config file.</summary>
    /// <exception cref="ModelFormatException">Unreadable, malformed, unsupported or absurd; the message names the file and key.</exception>
    public static ModelArchitecture ReadFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, null, "does not exist.");
        }

        return Read(LocalFile.ReadAllBytes(path, Limits.MaxConfigBytes, "a config.json"), path);
    }

    /// <summary>Reads config JSON from memory; <paramref name="source"/> names it in messages.</summary>
    public static ModelArchitecture Read(ReadOnlySpan<byte> json, string source)
    {
        if (json.Length > Limits.MaxConfigBytes)
        {
            throw new ModelFormatException(source, null, $"is {json.Length:N0} bytes; a config.json is at most {Limits.MaxConfigBytes:N0}.");
        }

        JsonText.Check(json, source);
        try
        {
            using JsonDocument document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
            return Read(document.RootElement, source);
        }
        catch (JsonException error)
        {
            throw new ModelFormatException(source, null, $"is not valid JSON ({error.Message.Split('.')[0]}).");
        }
    }

    /// <summary>Reads an already parsed config object.</summary>
    public static ModelArchitecture Read(JsonElement config, string source)
    {
        var raw = new ConfigObject(config, source);
        string declared = raw.String("model_type") ?? ArchitectureType(raw);
        if (declared is "gemma3" or "gemma3n")
        {
            // Multimodal Gemma 3 nests the decoder under text_config; the vision tower is not counted (models/README.md trap 11).
            ConfigObject text = raw.Object("text_config")
                ?? throw new ModelFormatException(source, "text_config", "is missing (a gemma3 config nests its decoder there).");
            return ReadTyped(text, "gemma3_text", declared) with { StoredType = Common.ReadStoredType(raw) ?? Common.ReadStoredType(text) };
        }

        string modelType = Renamed.GetValueOrDefault(declared, declared);
        return ReadTyped(raw, modelType, declared);
    }

    private static ModelArchitecture ReadTyped(ConfigObject raw, string modelType, string declared)
    {
        if (!Readers.TryGetValue(modelType, out Func<ConfigObject, string, string, ModelArchitecture>? read))
        {
            throw new ModelFormatException(raw.Source, "model_type",
                $"is \"{declared}\", which is not supported. Supported: {string.Join(", ", SupportedModelTypes)}.");
        }

        var config = new ConfigObject(raw.Element, raw.Source, ConfigDefaults.For(modelType));
        return read(config, modelType, declared);
    }

    private static string ArchitectureType(ConfigObject raw)
    {
        IReadOnlyList<string> architectures = raw.Strings("architectures", 64);
        foreach (string architecture in architectures)
        {
            if (ByArchitecture.TryGetValue(architecture, out string? type))
            {
                return type;
            }
        }

        throw new ModelFormatException(raw.Source, "model_type",
            architectures.Count == 0 ? "is missing and there is no known architectures entry." : $"is missing and architectures [{string.Join(", ", architectures)}] is not known.");
    }

    private static ModelArchitecture LlamaLike(ConfigObject c, string modelType, string declared) => LlamaLikeConfig.Read(c, modelType);
}
