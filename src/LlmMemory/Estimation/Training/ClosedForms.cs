using LlmMemory.Estimation.Replay;
using LlmMemory.Models;

namespace LlmMemory.Estimation.Training;

/// <summary>
/// The closed forms of research/torch SPEC §4–§6 for what a single-GPU run holds, with their numbers substituted: the text
/// of each component's formula. The bytes of an estimate come from the replay; where the replay's live bytes differ from a
/// closed form, the formula says so.
/// </summary>
internal static class ClosedForms
{
    /// <summary>
    /// Saved activations of one block per token (SPEC §4, transformers Llama/Mistral/Qwen blocks with SDPA), derived op by op:
    /// pure bf16 <c>16h + 4·a·d + 4·h_kv + 8I + 4a</c>; mixed bf16 <c>26h + …</c> (fp32 residual stream, one bf16 input copy
    /// per linear); PEFT LoRA on a bf16 base <c>8h + Σ(4·d_in + 4r) + 4·a·d + 4·h_kv + 4a + 6I</c>; q/k RMSNorm (Qwen3)
    /// <c>+6·(a·d + h_kv)</c>, or <c>+4·(…)</c> with LoRA; eager attention <c>+6·a·s + 4·(a·d − h_kv)</c>. Null for regimes
    /// the SPEC does not reduce to a closed form (fp32, torchtune, Gemma, encoders, LayerNorm decoders, DoRA, MoE).
    /// </summary>
    public static (long Bytes, string Text)? SavedPerTokenPerLayer(ModelArchitecture model, ReplayOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (model.Family != ModelFamily.LlamaLike || model.Experts is not null || model.LatentAttention is not null || options.Torchtune
            || DecoderStyle.Of(model) is { GemmaNorms: true } or { FusedProjections: true })
        {
            return null;
        }

        (long h, long a, long d, long kv, long i) = (model.HiddenSize, model.AttentionHeadCount, model.HeadDimension, model.KeyValueWidth, model.IntermediateSize);
        bool qk = DecoderStyle.Of(model).QkNorm;
        var terms = new List<(long Bytes, string Text)>();
        if (options.Lora is { Dora: false } lora && options.Weights[0].Type == ScalarType.BFloat16 && options.Autocast is null && lora.Type == ScalarType.Float32)
        {
            long adapted = lora.Targets.Where(t => t.Layer == 0).Sum(t => (4 * t.InFeatures) + (4L * lora.Rank));
            terms.Add((8 * h, $"8·{h}"));
            terms.Add((adapted, $"Σ adapted (4·d_in + 4·{lora.Rank}) {Text.N(adapted)}"));
            terms.AddRange([(4 * a * d, $"4·{a * d}"), (4 * kv, $"4·{kv}"), (4 * a, $"4·{a}"), (6 * i, $"6·{i}")]);
            if (qk)
            {
                terms.Add((4 * ((a * d) + kv), $"4·({a * d} + {kv})"));
            }
        }
        else if (options is { Lora: null, TrainBase: true }
            && (options.Weights[0].Type, options.Autocast) is (ScalarType.BFloat16, null) or (ScalarType.Float32, ScalarType.BFloat16))
        {
            long norms = options.Autocast is null ? 16 : 26;
            terms.AddRange([(norms * h, $"{norms}·{h}"), (4 * a * d, $"4·{a * d}"), (4 * kv, $"4·{kv}"), (8 * i, $"8·{i}"), (4 * a, $"4·{a}")]);
            if (qk)
            {
                terms.Add((6 * ((a * d) + kv), $"6·({a * d} + {kv})"));
            }
        }
        else
        {
            return null;
        }

        if (options.EagerAttention)
        {
            terms.Add((6 * a * options.Seq, $"6·{a}·{options.Seq}"));
            terms.Add((4 * ((a * d) - kv), $"4·({a * d} − {kv})"));
        }

        return (terms.Sum(t => t.Bytes), string.Join(" + ", terms.Select(t => t.Text)));
    }

    /// <summary>
    /// What the final norm saves per token (SPEC §4 "Head"): its fp32 input copy (4h) and, when its weight trains, the 16-bit
    /// normalized tensor and its output (2h + 2h); a frozen norm and lm_head (LoRA) keep only the fp32 copy.
    /// </summary>
    public static long HeadBytesPerToken(ModelArchitecture model, ReplayOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        bool frozen = !options.TrainBase && options.Lora?.Targets.Any(t => t.Role == TensorRole.OutputHead) != true;
        return (frozen ? 4L : 8L) * model.HiddenSize;
    }
}
