using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>Config keys every family reads the same way.</summary>
internal static class Common
{
    /// <summary>Head width when the config gives no <c>head_dim</c>: hidden / heads, which must divide exactly.</summary>
    public static int DivideHeads(ConfigObject c, int hidden, int heads) =>
        hidden % heads == 0
            ? hidden / heads
            : throw new ModelFormatException(c.Source, "head_dim",
                $"is missing and hidden size {hidden} is not a multiple of {heads} attention heads.");

    /// <summary>
    /// Key-value heads as transformers can use them: at most the attention heads, and a divisor of them, since each KV head
    /// serves num_attention_heads / num_key_value_heads query heads (modeling_llama.py: <c>num_key_value_groups</c> and
    /// <c>repeat_kv</c>, which reshape by that quotient; 32 heads over 7 KV heads cannot be shaped).
    /// </summary>
    public static int CheckKvHeads(ConfigObject c, int heads, int kvHeads, string headsKey, string kvHeadsKey) =>
        kvHeads > heads
            ? throw new ModelFormatException(c.Source, kvHeadsKey,
                $"is {kvHeads}, more than the {heads} attention heads of '{headsKey}'; key-value heads are at most the attention heads.")
            : heads % kvHeads != 0
                ? throw new ModelFormatException(c.Source, kvHeadsKey,
                    $"is {kvHeads}, which does not divide the {heads} attention heads of '{headsKey}'; each key-value head serves a whole group of query heads.")
                : kvHeads;

    /// <summary>A dropout probability: <paramref name="key"/>'s value in [0, 1], or the config class's default when absent.</summary>
    public static double Probability(ConfigObject c, string key, double fallback)
    {
        double p = c.Number(key) ?? fallback;
        return p is >= 0 and <= 1 ? p : throw new ModelFormatException(c.Source, key, $"is {p}, not a probability in [0, 1].");
    }

    /// <summary><c>torch_dtype</c> (transformers ≤ 4.x) or <c>dtype</c> (5.x); null when absent.</summary>
    public static DataType? ReadStoredType(ConfigObject c)
    {
        string key = c.FirstPresent("torch_dtype", "dtype") ?? "torch_dtype";
        string? name = c.String(key);
        if (name is null)
        {
            return null;
        }

        return DataTypes.TryParse(name, out DataType type)
            ? type
            : throw new ModelFormatException(c.Source, key, $"names an unknown dtype \"{name}\".");
    }

    /// <summary>The parts of <c>quantization_config</c> that decide stored bytes.</summary>
    public static QuantizationConfig? ReadQuantization(ConfigObject c)
    {
        ConfigObject? q = c.Object("quantization_config");
        if (q is null)
        {
            return null;
        }

        string method = q.String("quant_method")
            ?? (q.Bool("load_in_4bit", false) || q.Bool("load_in_8bit", false) ? "bitsandbytes" : "unknown");
        IReadOnlyList<int> block = q.Integers("weight_block_size", 2, 1 << 20);
        IReadOnlyList<string> keep = q.Has("modules_to_not_convert") ? q.Strings("modules_to_not_convert", 100_000)
            : q.Strings("ignored_layers", 100_000);
        int? groupSize = q.Has("group_size") && q.Number("group_size") is < 0 ? -1 : q.OptionalSize(1 << 20, "group_size", "q_group_size");
        return new QuantizationConfig(method, q.OptionalSize(64, "bits", "w_bit"), groupSize, block, keep);
    }

    /// <summary>
    /// Which blocks use sliding-window attention and with what window, from <c>layer_types</c> when present, else the
    /// family rule: Mistral v0.1 slides on every layer, Gemma 2 on even layers (<c>is_sliding = not layer_idx % 2</c>),
    /// Gemma 3 on all but every <c>sliding_window_pattern</c>-th layer, Qwen2 from <c>max_window_layers</c> on when
    /// <c>use_sliding_window</c>.
    /// </summary>
    public static (int? Window, IReadOnlyList<AttentionKind> Kinds) ReadLayerAttention(ConfigObject c, string modelType, int layers)
    {
        int? window = c.OptionalSize(Limits.MaxPositions, "sliding_window");
        IReadOnlyList<string> types = c.Strings("layer_types", Limits.MaxLayers);
        if (types.Count > 0)
        {
            if (types.Count != layers)
            {
                throw new ModelFormatException(c.Source, "layer_types", $"has {types.Count} entries for {layers} layers.");
            }

            AttentionKind[] kinds = types.Select(t => t switch
            {
                "sliding_attention" or "sliding" or "local" => AttentionKind.Sliding,
                "full_attention" or "full" or "global" => AttentionKind.Full,
                _ => throw new ModelFormatException(c.Source, "layer_types", $"holds an unknown layer type \"{t}\"."),
            }).ToArray();
            return kinds.Contains(AttentionKind.Sliding) && window is null
                ? throw new ModelFormatException(c.Source, "sliding_window", "is missing although layer_types has sliding layers.")
                : (window, kinds);
        }

        Func<int, bool> slides = modelType switch
        {
            "mistral" or "mixtral" => _ => window is not null,
            "gemma2" => layer => window is not null && layer % 2 == 0,
            "gemma3_text" => layer => window is not null && (layer + 1) % (c.OptionalSize(Limits.MaxLayers, "sliding_window_pattern") ?? 6) != 0,
            "qwen2" or "qwen2_moe" or "qwen3" or "qwen3_moe" => layer => window is not null && c.Bool("use_sliding_window", false)
                && layer >= (c.OptionalCount(Limits.MaxLayers, "max_window_layers") ?? 0),
            _ => _ => false,
        };
        AttentionKind[] result = Enumerable.Range(0, layers).Select(l => slides(l) ? AttentionKind.Sliding : AttentionKind.Full).ToArray();
        return (result.Contains(AttentionKind.Sliding) ? window : null, result);
    }

    /// <summary>All blocks attend to every earlier token.</summary>
    public static IReadOnlyList<AttentionKind> AllFull(int layers) => Enumerable.Repeat(AttentionKind.Full, layers).ToArray();
}
