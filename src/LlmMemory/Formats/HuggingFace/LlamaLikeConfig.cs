using LlmMemory.Models;

namespace LlmMemory.Formats.HuggingFace;

/// <summary>
/// Pre-norm RoPE decoders: llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, gemma, gemma2, gemma3_text,
/// phi3, deepseek_v2, deepseek_v3, gpt_oss, granitemoe.
/// </summary>
/// <remarks>
/// Tensor names and shapes follow the transformers modeling files of each type (<c>modeling_llama.py</c>, …);
/// the counting traps are listed in data/models/README.md (tied Gemma embeddings, Qwen2 q/k/v biases, q/k norms,
/// MLA projections, DeepSeek shared experts and first dense layers, gpt-oss biases and sinks).
/// </remarks>
internal static class LlamaLikeConfig
{
    public static ModelArchitecture Read(ConfigObject c, string modelType)
    {
        int layers = c.Size(Limits.MaxLayers, "num_hidden_layers", "n_layer", "num_layers");
        int hidden = c.Size(Limits.MaxHidden, "hidden_size");
        int heads = c.Size(Limits.MaxHeads, "num_attention_heads");
        int headDim = c.OptionalSize(Limits.MaxHidden, "head_dim") ?? Common.DivideHeads(c, hidden, heads);
        int kvHeads = Common.CheckKvHeads(c, heads, c.OptionalSize(Limits.MaxHeads, "num_key_value_heads") ?? heads, "num_attention_heads", "num_key_value_heads");
        int vocab = c.Size(Limits.MaxVocabulary, "vocab_size");
        bool gemma = modelType.StartsWith("gemma", StringComparison.Ordinal);
        bool tied = gemma || c.Bool("tie_word_embeddings", false);
        LatentAttention? mla = ReadLatentAttention(c);
        MixtureOfExperts? experts = ReadExperts(c, modelType, layers);
        int intermediate = c.OptionalSize(Limits.MaxIntermediate, "intermediate_size")
            ?? experts?.ExpertIntermediateSize
            ?? throw new ModelFormatException(c.Source, "intermediate_size", "is missing.");

        var builder = new InventoryBuilder();
        builder.Embedding("model.embed_tokens.weight", TensorRole.TokenEmbedding, vocab, hidden, "embed_tokens");
        var shape = new BlockShape(modelType, hidden, heads, kvHeads, headDim, intermediate, mla, experts,
            AttentionBias: c.Bool("attention_bias", modelType == "gpt_oss"),
            MlpBias: c.Bool("mlp_bias", false));
        for (int layer = 0; layer < layers; layer++)
        {
            AddBlock(builder, shape, layer);
        }

        builder.Norm("model", "norm", null, hidden, withBias: false);
        if (!tied)
        {
            builder.Linear("", "lm_head", TensorRole.OutputHead, null, vocab, hidden, bias: false);
        }

        (int? window, IReadOnlyList<AttentionKind> kinds) = Common.ReadLayerAttention(c, modelType, layers);
        return new ModelArchitecture
        {
            ModelType = modelType,
            Family = ModelFamily.LlamaLike,
            LayerCount = layers,
            HiddenSize = hidden,
            AttentionHeadCount = heads,
            KeyValueHeadCount = mla is null ? kvHeads : heads,
            HeadDimension = mla is null ? headDim : mla.NopeHeadDimension + mla.RopeHeadDimension,
            ValueHeadDimension = mla?.ValueHeadDimension ?? headDim,
            IntermediateSize = intermediate,
            VocabularySize = vocab,
            MaxPositions = c.OptionalSize(Limits.MaxPositions, "max_position_embeddings"),
            TiedEmbeddings = tied,
            GatedFeedForward = true,
            LayerNormWithBias = false,
            Experts = experts,
            LatentAttention = mla,
            SlidingWindow = window,
            LayerAttention = kinds,
            RopeScaling = c.Object("rope_scaling") is { } scaling ? scaling.String("rope_type") ?? scaling.String("type") : null,
            StoredType = Common.ReadStoredType(c),
            Quantization = Common.ReadQuantization(c),
            FinalLogitSoftcap = c.Number("final_logit_softcapping"),
            AttentionLogitSoftcap = c.Number("attn_logit_softcapping"),
            UseCache = c.Bool("use_cache", true),
            PredictionLayerParameters = PredictionLayers(c, shape, layers, vocab, hidden),
            Tensors = builder.Build(c.Source),
        };
    }

    private sealed record BlockShape(string ModelType, int Hidden, int Heads, int KvHeads, int HeadDim, int Intermediate,
        LatentAttention? Mla, MixtureOfExperts? Experts, bool AttentionBias, bool MlpBias);

    private static void AddBlock(InventoryBuilder b, BlockShape s, int layer)
    {
        string prefix = $"model.layers.{layer}";
        b.Norm(prefix, "input_layernorm", layer, s.Hidden, withBias: false);
        AddAttention(b, s, $"{prefix}.self_attn", layer);
        b.Norm(prefix, "post_attention_layernorm", layer, s.Hidden, withBias: false);
        if (s.ModelType is "gemma2" or "gemma3_text")
        {
            b.Norm(prefix, "pre_feedforward_layernorm", layer, s.Hidden, withBias: false);
            b.Norm(prefix, "post_feedforward_layernorm", layer, s.Hidden, withBias: false);
        }

        if (s.Experts is { } moe && moe.MoeLayers.Contains(layer))
        {
            AddExperts(b, s, moe, prefix, layer);
        }
        else
        {
            AddDenseFeedForward(b, s, $"{prefix}.mlp", layer, s.Intermediate, TensorRole.FeedForward);
        }
    }

    private static void AddAttention(InventoryBuilder b, BlockShape s, string prefix, int layer)
    {
        long queryWidth = (long)s.Heads * s.HeadDim;
        long kvWidth = (long)s.KvHeads * s.HeadDim;
        const TensorRole role = TensorRole.Attention;
        if (s.Mla is { } mla)
        {
            long qkHead = mla.NopeHeadDimension + mla.RopeHeadDimension;
            if (mla.QueryRank is int qRank)
            {
                b.Linear(prefix, "q_a_proj", role, layer, qRank, s.Hidden, bias: false);
                b.Norm(prefix, "q_a_layernorm", layer, qRank, withBias: false);
                b.Linear(prefix, "q_b_proj", role, layer, s.Heads * qkHead, qRank, bias: false);
            }
            else
            {
                b.Linear(prefix, "q_proj", role, layer, s.Heads * qkHead, s.Hidden, bias: false);
            }

            b.Linear(prefix, "kv_a_proj_with_mqa", role, layer, mla.LatentWidth, s.Hidden, bias: false);
            b.Norm(prefix, "kv_a_layernorm", layer, mla.KeyValueRank, withBias: false);
            b.Linear(prefix, "kv_b_proj", role, layer, (long)s.Heads * (mla.NopeHeadDimension + mla.ValueHeadDimension), mla.KeyValueRank, bias: false);
            b.Linear(prefix, "o_proj", role, layer, s.Hidden, (long)s.Heads * mla.ValueHeadDimension, bias: false);
            return;
        }

        if (s.ModelType == "phi3")
        {
            b.Linear(prefix, "qkv_proj", role, layer, queryWidth + 2 * kvWidth, s.Hidden, bias: false);
        }
        else
        {
            // Qwen2 and Qwen2-MoE always carry q/k/v biases and no o_proj bias (modeling_qwen2.py).
            bool qkvBias = s.AttentionBias || s.ModelType is "qwen2" or "qwen2_moe";
            b.Linear(prefix, "q_proj", role, layer, queryWidth, s.Hidden, qkvBias);
            b.Linear(prefix, "k_proj", role, layer, kvWidth, s.Hidden, qkvBias);
            b.Linear(prefix, "v_proj", role, layer, kvWidth, s.Hidden, qkvBias);
        }

        b.Linear(prefix, "o_proj", role, layer, s.Hidden, queryWidth, s.AttentionBias);
        if (s.ModelType is "qwen3" or "qwen3_moe" or "gemma3_text")
        {
            b.Norm(prefix, "q_norm", layer, s.HeadDim, withBias: false);
            b.Norm(prefix, "k_norm", layer, s.HeadDim, withBias: false);
        }

        if (s.ModelType == "gpt_oss")
        {
            // Learned per-head attention sinks (modeling_gpt_oss.py GptOssAttention.sinks).
            b.Vector($"{prefix}.sinks", role, layer, s.Heads, "sinks");
        }
    }

    private static void AddDenseFeedForward(InventoryBuilder b, BlockShape s, string prefix, int layer, long width, TensorRole role)
    {
        if (s.ModelType == "phi3")
        {
            b.Linear(prefix, "gate_up_proj", role, layer, 2 * width, s.Hidden, bias: false);
        }
        else
        {
            b.Linear(prefix, "gate_proj", role, layer, width, s.Hidden, s.MlpBias);
            b.Linear(prefix, "up_proj", role, layer, width, s.Hidden, s.MlpBias);
        }

        b.Linear(prefix, "down_proj", role, layer, s.Hidden, width, s.MlpBias);
    }

    private static void AddExperts(InventoryBuilder b, BlockShape s, MixtureOfExperts moe, string prefix, int layer)
    {
        long e = moe.ExpertCount;
        long width = moe.ExpertIntermediateSize;
        switch (s.ModelType)
        {
            case "mixtral":
                b.Linear($"{prefix}.block_sparse_moe", "gate", TensorRole.Router, layer, e, s.Hidden, bias: false);
                b.ExpertLinears($"{prefix}.block_sparse_moe.experts", "w1", TensorRole.Expert, layer, e, width, s.Hidden);
                b.ExpertLinears($"{prefix}.block_sparse_moe.experts", "w2", TensorRole.Expert, layer, e, s.Hidden, width);
                b.ExpertLinears($"{prefix}.block_sparse_moe.experts", "w3", TensorRole.Expert, layer, e, width, s.Hidden);
                break;
            case "gpt_oss":
                b.Linear($"{prefix}.mlp", "router", TensorRole.Router, layer, e, s.Hidden, bias: true);
                b.FusedExperts($"{prefix}.mlp.experts.gate_up_proj", "gate_up_proj", layer, e, s.Hidden, 2 * width);
                b.FusedExperts($"{prefix}.mlp.experts.gate_up_proj_bias", "gate_up_proj", layer, e, 2 * width);
                b.FusedExperts($"{prefix}.mlp.experts.down_proj", "down_proj", layer, e, width, s.Hidden);
                b.FusedExperts($"{prefix}.mlp.experts.down_proj_bias", "down_proj", layer, e, s.Hidden);
                break;
            case "granitemoe":
                b.Linear($"{prefix}.block_sparse_moe.router", "layer", TensorRole.Router, layer, e, s.Hidden, bias: false);
                b.FusedExperts($"{prefix}.block_sparse_moe.input_linear.weight", "input_linear", layer, e, 2 * width, s.Hidden);
                b.FusedExperts($"{prefix}.block_sparse_moe.output_linear.weight", "output_linear", layer, e, s.Hidden, width);
                break;
            default:
                // qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3: mlp.gate router + ModuleList of gated experts.
                b.Linear($"{prefix}.mlp", "gate", TensorRole.Router, layer, e, s.Hidden, bias: false);
                if (s.ModelType == "deepseek_v3")
                {
                    b.Vector($"{prefix}.mlp.gate.e_score_correction_bias", TensorRole.Router, layer, e, "gate");
                }

                b.ExpertLinears($"{prefix}.mlp.experts", "gate_proj", TensorRole.Expert, layer, e, width, s.Hidden);
                b.ExpertLinears($"{prefix}.mlp.experts", "up_proj", TensorRole.Expert, layer, e, width, s.Hidden);
                b.ExpertLinears($"{prefix}.mlp.experts", "down_proj", TensorRole.Expert, layer, e, s.Hidden, width);
                if (moe.SharedExpertIntermediateSize > 0)
                {
                    string shared = s.ModelType == "qwen2_moe" ? "shared_expert" : "shared_experts";
                    AddDenseFeedForward(b, s, $"{prefix}.mlp.{shared}", layer, moe.SharedExpertIntermediateSize, TensorRole.SharedExpert);
                    if (s.ModelType == "qwen2_moe")
                    {
                        b.Linear($"{prefix}.mlp", "shared_expert_gate", TensorRole.SharedExpert, layer, 1, s.Hidden, bias: false);
                    }
                }

                break;
        }
    }

    private static MixtureOfExperts? ReadExperts(ConfigObject c, string modelType, int layers)
    {
        int? count = c.OptionalSize(Limits.MaxExperts, "num_local_experts", "num_experts", "n_routed_experts");
        if (count is not int experts || modelType is not ("mixtral" or "qwen2_moe" or "qwen3_moe" or "deepseek_v2" or "deepseek_v3" or "gpt_oss" or "granitemoe"))
        {
            return null;
        }

        int active = c.Size(experts, "num_experts_per_tok", "experts_per_token");
        int width = c.OptionalSize(Limits.MaxIntermediate, "moe_intermediate_size")
            ?? c.Size(Limits.MaxIntermediate, "intermediate_size");
        int shared = modelType switch
        {
            "qwen2_moe" => c.OptionalCount(Limits.MaxIntermediate, "shared_expert_intermediate_size") ?? 0,
            "deepseek_v2" or "deepseek_v3" => checked((c.OptionalCount(Limits.MaxExperts, "n_shared_experts") ?? 0) * width),
            _ => 0,
        };

        IEnumerable<int> moeLayers = Enumerable.Range(0, layers);
        if (modelType is "deepseek_v2" or "deepseek_v3")
        {
            int firstDense = c.OptionalCount(Limits.MaxLayers, "first_k_dense_replace") ?? 0;
            int frequency = c.OptionalSize(Limits.MaxLayers, "moe_layer_freq") ?? 1;
            moeLayers = moeLayers.Where(l => l >= firstDense && l % frequency == 0);
        }
        else if (modelType is "qwen2_moe" or "qwen3_moe")
        {
            int step = c.OptionalSize(Limits.MaxLayers, "decoder_sparse_step") ?? 1;
            IReadOnlyList<int> denseOnly = c.Integers("mlp_only_layers", Limits.MaxLayers, Limits.MaxLayers);
            moeLayers = moeLayers.Where(l => !denseOnly.Contains(l) && (l + 1) % step == 0);
        }

        return new MixtureOfExperts(experts, active, width, shared, moeLayers.ToArray());
    }

    private static LatentAttention? ReadLatentAttention(ConfigObject c) =>
        c.OptionalSize(Limits.MaxHidden, "kv_lora_rank") is int kvRank
            ? new LatentAttention(
                c.OptionalSize(Limits.MaxHidden, "q_lora_rank"),
                kvRank,
                c.Size(Limits.MaxHidden, "qk_nope_head_dim"),
                c.Size(Limits.MaxHidden, "qk_rope_head_dim"),
                c.Size(Limits.MaxHidden, "v_head_dim"))
            : null;

    /// <summary>
    /// DeepSeek-V3 multi-token prediction (<c>num_nextn_predict_layers</c>): per extra layer one MoE block, <c>eh_proj</c> (2h→h),
    /// <c>enorm</c>, <c>hnorm</c>, <c>shared_head.norm</c> and its own embedding and head copies (models/README.md trap 3).
    /// </summary>
    private static long PredictionLayers(ConfigObject c, BlockShape shape, int layers, int vocab, int hidden)
    {
        int count = c.OptionalCount(16, "num_nextn_predict_layers") ?? 0;
        if (count == 0)
        {
            return 0;
        }

        var block = new InventoryBuilder();
        AddBlock(block, shape with { Experts = shape.Experts is null ? null : shape.Experts with { MoeLayers = [layers] } }, layers);
        long perLayer = block.Build(c.Source).ParameterCount + 2L * hidden * hidden + 3L * hidden + 2L * vocab * hidden;
        return checked(perLayer * count);
    }
}
