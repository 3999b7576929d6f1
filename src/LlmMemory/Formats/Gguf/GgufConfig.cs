using System.Text.Json.Nodes;

namespace LlmMemory.Formats.Gguf;

/// <summary>Rewrites GGUF metadata as the Hugging Face <c>config.json</c> it came from (inverse of <c>convert_hf_to_gguf.py</c>).</summary>
internal static class GgufConfig
{
    public static JsonObject Build(Metadata m, string modelType, IReadOnlyList<GgufTensor> tensors)
    {
        GgufTensor? embedding = tensors.FirstOrDefault(t => t.Name == "token_embd.weight");
        bool hasOutput = tensors.Any(t => t.Name == "output.weight");
        bool scoreBias = tensors.Any(t => t.Name.EndsWith(".exp_probs_b.bias", StringComparison.Ordinal) || t.Name.EndsWith(".exp_probs_b", StringComparison.Ordinal));
        if (modelType == "deepseek_v2" && scoreBias)
        {
            // DeepSeek-V3 (and R1) convert to the deepseek2 architecture; its sigmoid router's score-correction bias marks it.
            modelType = "deepseek_v3";
        }

        long? experts = m.Integer(GgufKeys.ExpertCount);
        if (modelType == "llama" && experts > 0)
        {
            modelType = "mixtral";
        }

        var c = new JsonObject
        {
            ["model_type"] = modelType,
            ["num_hidden_layers"] = Required(m, GgufKeys.BlockCount),
            ["hidden_size"] = Required(m, GgufKeys.EmbeddingLength),
            ["num_attention_heads"] = Required(m, GgufKeys.HeadCount),
            // token_embd is [vocab, hidden] in PyTorch order: its rows are the padded vocabulary the model was trained with.
            ["vocab_size"] = embedding?.Shape[0] ?? m.Integer(GgufKeys.VocabSize) ?? m.ArrayLength(GgufKeys.Tokens)
                ?? throw new ModelFormatException(m.Source, m.Key(GgufKeys.VocabSize), "is missing and there is no token_embd tensor or token list."),
            ["tie_word_embeddings"] = !hasOutput,
        };
        Set(c, "num_key_value_heads", m.Integer(GgufKeys.HeadCountKv));
        Set(c, "max_position_embeddings", m.Integer(GgufKeys.ContextLength));
        Set(c, "intermediate_size", m.Integer(GgufKeys.FeedForwardLength) ?? m.Integer(GgufKeys.ExpertFeedForwardLength));
        if (modelType != "gpt_neox")
        {
            Set(c, "head_dim", m.Integer(GgufKeys.KeyLength));
        }

        switch (modelType)
        {
            case "gemma2":
                Set(c, "final_logit_softcapping", m.Real(GgufKeys.FinalLogitSoftcapping));
                Set(c, "sliding_window", m.Integer(GgufKeys.SlidingWindow));
                break;
            case "gemma3_text":
                Set(c, "sliding_window", m.Integer(GgufKeys.SlidingWindow));
                break;
            case "mixtral" or "granitemoe" or "qwen2_moe" or "qwen3_moe":
                Experts(c, m, modelType);
                break;
            case "gpt_oss":
                Experts(c, m, modelType);
                GptOssLayers(c, m);
                break;
            case "deepseek_v2" or "deepseek_v3":
                DeepSeek(c, m);
                break;
        }

        return c;
    }

    private static void Experts(JsonObject c, Metadata m, string modelType)
    {
        c[modelType is "qwen2_moe" or "qwen3_moe" ? "num_experts" : "num_local_experts"] = Required(m, GgufKeys.ExpertCount);
        c[modelType == "gpt_oss" ? "experts_per_token" : "num_experts_per_tok"] = Required(m, GgufKeys.ExpertUsedCount);
        long? width = m.Integer(GgufKeys.ExpertFeedForwardLength);
        if (modelType is "qwen2_moe" or "qwen3_moe")
        {
            Set(c, "moe_intermediate_size", width);
            Set(c, "shared_expert_intermediate_size", m.Integer(GgufKeys.ExpertSharedFeedForwardLength));
        }
        else if (width is not null)
        {
            c["intermediate_size"] = width;
        }
    }

    /// <summary>gpt-oss alternates sliding and full attention, sliding first (llama.cpp <c>set_swa_pattern(2)</c>; HF <c>layer_types</c>).</summary>
    private static void GptOssLayers(JsonObject c, Metadata m)
    {
        long? window = m.Integer(GgufKeys.SlidingWindow);
        if (window is null)
        {
            return;
        }

        c["sliding_window"] = window;
        long layers = (long)c["num_hidden_layers"]!;
        c["layer_types"] = new JsonArray(Enumerable.Range(0, (int)Math.Min(layers, Models.Limits.MaxLayers))
            .Select(l => (JsonNode?)(l % 2 == 0 ? "sliding_attention" : "full_attention")).ToArray());
    }

    /// <summary>MLA and MoE keys; newer conversions store the absorbed head sizes and keep the originals in <c>*_mla</c> keys.</summary>
    private static void DeepSeek(JsonObject c, Metadata m)
    {
        c["n_routed_experts"] = Required(m, GgufKeys.ExpertCount);
        c["num_experts_per_tok"] = Required(m, GgufKeys.ExpertUsedCount);
        c["moe_intermediate_size"] = Required(m, GgufKeys.ExpertFeedForwardLength);
        Set(c, "n_shared_experts", m.Integer(GgufKeys.ExpertSharedCount));
        Set(c, "first_k_dense_replace", m.Integer(GgufKeys.LeadingDenseBlockCount));
        long? qRank = m.Integer(GgufKeys.QLoraRank);
        Set(c, "q_lora_rank", qRank is 0 ? null : qRank);
        c["kv_lora_rank"] = Required(m, GgufKeys.KvLoraRank);
        long rope = Required(m, GgufKeys.RopeDimensions);
        long key = m.Integer(GgufKeys.KeyLengthMla) ?? Required(m, GgufKeys.KeyLength);
        c["qk_rope_head_dim"] = rope;
        c["qk_nope_head_dim"] = key - rope;
        c["v_head_dim"] = m.Integer(GgufKeys.ValueLengthMla) ?? Required(m, GgufKeys.ValueLength);
        c.Remove("head_dim");
    }

    private static long Required(Metadata m, string pattern) =>
        m.Integer(pattern) ?? throw new ModelFormatException(m.Source, m.Key(pattern), "is missing.");

    private static void Set(JsonObject c, string key, long? value)
    {
        if (value is not null)
        {
            c[key] = value;
        }
    }

    private static void Set(JsonObject c, string key, double? value)
    {
        if (value is not null)
        {
            c[key] = value;
        }
    }
}
