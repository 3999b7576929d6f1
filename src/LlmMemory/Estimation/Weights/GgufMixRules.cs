using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Weights;

/// <summary>
/// Which ggml type llama.cpp's quantizer gives each tensor for a file type (docs/memory-model.md §1.7–1.8), so a user can
/// ask what a model will weigh at Q4_K_M before quantizing.
/// </summary>
/// <remarks>
/// Source: <c>ggml-org/llama.cpp:src/llama-quant.cpp</c> — <c>tensor_allows_quantization</c> (only ≥ 2-D weights that
/// are not norms, routers or position embeddings), <c>llama_ftype_get_default_type</c>, <c>llama_tensor_get_type_impl</c>
/// (per-category overrides with <c>use_more_bits</c>) and <c>tensor_type_fallback</c> (k-quants need rows that are a
/// multiple of 256). Tensors that are not quantized keep the type of the converted f16 file: F32 for 1-D, F16 otherwise.
/// </remarks>
internal sealed class GgufMixRules
{
    private readonly string _mix;
    private readonly DataType _default;
    private readonly int _layers;
    private readonly int _gqa;
    private readonly int _experts;
    private readonly bool _seventyB;

    private GgufMixRules(string mix, DataType defaultType, int layers, int gqa, int experts, bool seventyB)
    {
        _mix = mix;
        _default = defaultType;
        _layers = layers;
        _gqa = gqa;
        _experts = experts;
        _seventyB = seventyB;
    }

    public static GgufMixRules For(ModelArchitecture model, WeightFormat format) =>
        new(format.Scheme == WeightScheme.GgufMix ? format.Name : "pure", format.Type, model.LayerCount,
            model.AttentionHeadCount / Math.Max(1, model.KeyValueHeadCount), model.Experts?.ExpertCount ?? 0,
            // llama.cpp's LLM_TYPE_70B: 80 layers of width 8192 (Llama-2/3-70B).
            model.LayerCount == 80 && model.HiddenSize == 8192);

    /// <summary>The type of one tensor.</summary>
    public DataType TypeOf(TensorSpec t)
    {
        if (t.Stored is DataType stored)
        {
            return stored;
        }

        GgufCategory category = GgufCategories.Of(t);
        if (!GgufCategories.Quantizable(category, t))
        {
            return t.Shape.Length == 1 ? DataTypes.F32 : DataTypes.F16;
        }

        DataType wanted = _mix == "pure" ? _default : Override(category, t.Layer ?? 0);
        return Fallback(wanted, t.InFeatures);
    }

    private DataType Override(GgufCategory category, int layer)
    {
        string mix = _mix;
        switch (category)
        {
            case GgufCategory.Output:
                return mix switch
                {
                    "mxfp4_moe" => DataTypes.Q8_0,
                    "iq1_s" or "iq1_m" or "iq2_xxs" or "iq2_xs" or "iq2_s" or "iq2_m" or "iq3_xxs" => DataTypes.Q5_K,
                    _ when _default == DataTypes.Q8_0 => DataTypes.Q8_0,
                    _ => DataTypes.Q6_K,
                };
            case GgufCategory.TokenEmbedding:
                return mix switch
                {
                    "iq2_xxs" or "iq2_xs" or "iq1_s" or "iq1_m" => DataTypes.Q2_K,
                    "iq2_s" or "iq2_m" or "iq3_xxs" => DataTypes.IQ3_S,
                    "tq1_0" or "tq2_0" => DataTypes.Q4_K,
                    _ => _default,
                };
            case GgufCategory.AttnV:
            case GgufCategory.AttnQkv:
            case GgufCategory.AttnKvB:
                if (_experts == 8 && IsLowBit(mix))
                {
                    return DataTypes.Q8_0;
                }

                DataType v = mix switch
                {
                    "q2_k" => _gqa >= 4 ? DataTypes.Q4_K : DataTypes.Q3_K,
                    "q3_k_m" => layer < 2 ? DataTypes.Q5_K : DataTypes.Q4_K,
                    "q3_k_l" => DataTypes.Q5_K,
                    "q4_k_m" => UseMoreBits(layer) ? DataTypes.Q6_K : DataTypes.Q4_K,
                    "q5_k_m" => UseMoreBits(layer) ? DataTypes.Q6_K : DataTypes.Q5_K,
                    "q4_k_s" => layer < 4 ? DataTypes.Q5_K : DataTypes.Q4_K,
                    "iq4_nl" or "iq4_xs" => _gqa >= 4 ? DataTypes.Q5_K : _default,
                    _ => _default,
                };
                return _seventyB && (v == DataTypes.Q3_K || v == DataTypes.Q4_K) ? DataTypes.Q5_K : v;
            case GgufCategory.AttnK when _experts == 8 && IsLowBit(mix):
                return DataTypes.Q8_0;
            case GgufCategory.FfnDown:
                return mix switch
                {
                    "q2_k" => DataTypes.Q3_K,
                    "q3_k_m" => layer < _layers / 16 ? DataTypes.Q5_K : DataTypes.Q4_K,
                    "q3_k_l" => DataTypes.Q5_K,
                    "q4_k_m" or "q5_k_m" => UseMoreBits(layer) ? DataTypes.Q6_K : _default,
                    "q4_k_s" => layer < _layers / 8 ? DataTypes.Q5_K : _default,
                    "iq4_nl" or "iq4_xs" => layer < _layers / 8 ? DataTypes.Q5_K : _default,
                    _ => _default,
                };
            case GgufCategory.AttnOutput:
                if (_experts == 8 && IsLowBit(mix))
                {
                    return DataTypes.Q5_K;
                }

                return mix switch
                {
                    "q2_k" => DataTypes.Q3_K,
                    "q3_k_m" => DataTypes.Q4_K,
                    "q3_k_l" => DataTypes.Q5_K,
                    _ => _default,
                };
            case GgufCategory.ExpertGate or GgufCategory.ExpertUp or GgufCategory.ExpertDown when mix == "mxfp4_moe":
                return DataTypes.MXFP4;
            default:
                return mix == "mxfp4_moe" ? DataTypes.Q8_0 : _default;
        }
    }

    /// <summary>llama-quant.cpp <c>use_more_bits</c>: the first and last eighth of the layers, and every third in between.</summary>
    private bool UseMoreBits(int layer) => layer < _layers / 8 || layer >= 7 * _layers / 8 || (layer - _layers / 8) % 3 == 2;

    private static bool IsLowBit(string mix) => mix is "q2_k" or "q2_k_s" or "q3_k_s" or "q3_k_m" or "q3_k_l" or "q4_k_s" or "q4_k_m"
        or "iq2_xxs" or "iq2_xs" or "iq2_s" or "iq2_m" or "iq3_xxs" or "iq3_xs" or "iq3_s" or "iq3_m" or "iq1_s" or "iq1_m" or "iq4_nl" or "iq4_xs";

    /// <summary>llama-quant.cpp <c>tensor_type_fallback</c>: a row that is not a whole number of blocks takes the next type that fits.</summary>
    private static DataType Fallback(DataType wanted, long rowLength)
    {
        if (wanted.FitsRow(rowLength))
        {
            return wanted;
        }

        DataType next = wanted.Name switch
        {
            "IQ1_S" or "IQ1_M" or "IQ2_XXS" or "IQ2_XS" or "IQ2_S" or "IQ3_XXS" or "IQ3_S" or "IQ4_XS" => DataTypes.IQ4_NL,
            "Q2_0" or "Q2_K" or "Q3_K" or "TQ1_0" or "TQ2_0" => DataTypes.Q4_0,
            "Q4_K" => DataTypes.Q5_0,
            "Q5_K" => DataTypes.Q5_1,
            "Q6_K" => DataTypes.Q8_0,
            _ => DataTypes.F16,
        };
        return next.FitsRow(rowLength) ? next : DataTypes.F16;
    }
}
