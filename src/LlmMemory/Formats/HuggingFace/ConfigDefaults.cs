using System.Collections.Frozen;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>Sizes that a transformers config class supplies when <c>config.json</c> omits the key.</summary>
/// <remarks>
/// Read from the <c>__init__</c> defaults of transformers <c>configuration_&lt;type&gt;.py</c> (v4.4x–5.x). Only keys that real
/// configs omit are listed (vocabulary sizes, GPT-2's positions, Gemma 3's heads); a missing layer count or width is an error.
/// </remarks>
internal static class ConfigDefaults
{
    private static readonly FrozenDictionary<string, FrozenDictionary<string, int>> ByType = new Dictionary<string, FrozenDictionary<string, int>>
    {
        ["llama"] = Vocabulary(32000),
        ["mistral"] = Vocabulary(32000),
        ["mixtral"] = Vocabulary(32000),
        ["granitemoe"] = Vocabulary(32000),
        ["qwen2"] = Vocabulary(151936),
        ["qwen2_moe"] = Vocabulary(151936),
        ["qwen3"] = Vocabulary(151936),
        ["qwen3_moe"] = Vocabulary(151936),
        ["gemma"] = Vocabulary(256000),
        ["gemma2"] = Vocabulary(256000),
        // Gemma3TextConfig: multimodal Gemma 3 configs (4B/12B/27B) omit these inside text_config.
        ["gemma3_text"] = new Dictionary<string, int>
        {
            ["vocab_size"] = 262208, ["num_attention_heads"] = 8, ["num_key_value_heads"] = 4, ["head_dim"] = 256,
            ["max_position_embeddings"] = 131072, ["sliding_window"] = 4096,
        }.ToFrozenDictionary(),
        ["phi3"] = Vocabulary(32064),
        ["deepseek_v2"] = Vocabulary(102400),
        ["deepseek_v3"] = Vocabulary(129280),
        ["gpt_oss"] = Vocabulary(201088),
        ["gpt2"] = new Dictionary<string, int> { ["vocab_size"] = 50257, ["n_positions"] = 1024 }.ToFrozenDictionary(),
        ["gpt_bigcode"] = new Dictionary<string, int> { ["vocab_size"] = 50257, ["n_positions"] = 1024 }.ToFrozenDictionary(),
        ["gpt_neox"] = Vocabulary(50432),
        ["gptj"] = Vocabulary(50400),
        ["opt"] = Vocabulary(50272),
        ["bloom"] = Vocabulary(250880),
        ["bert"] = Vocabulary(30522),
        ["t5"] = Vocabulary(32128),
        ["falcon"] = Vocabulary(65024),
    }.ToFrozenDictionary();

    public static IReadOnlyDictionary<string, int> For(string modelType) =>
        ByType.TryGetValue(modelType, out FrozenDictionary<string, int>? defaults) ? defaults : FrozenDictionary<string, int>.Empty;

    private static FrozenDictionary<string, int> Vocabulary(int size) =>
        new Dictionary<string, int> { ["vocab_size"] = size }.ToFrozenDictionary();
}
