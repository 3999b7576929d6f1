using LlmMemory.Models;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The compute buffer in closed form, for architectures whose graph is not modelled node by node (MoE, MLA, Gemma, …):
/// the largest of three phases of the current graph (research/llamacpp SPEC §4.5, <c>compute_buffer_approx</c>).
/// </summary>
/// <remarks>
/// A = logits phase: tokens, embeddings, final norm and logits, <c>4T + 4ET + 4E·T_o + 4V·T_o</c>.
/// B = attention without flash attention: the inputs, two residual-width and two query-width tensors and the K·Q scores
/// <c>4·n_kv·T·H</c>. C = FFN phase: the inputs, two residual-width tensors and gate, up and activation <c>3·4·F·T</c>
/// (for MoE F is the active experts' total width). Exact on 53 of the 60 measured CPU cases; −11 % … +13 % on 400 local runs.
/// </remarks>
internal static class ComputeBufferApproximation
{
    public static long Bytes(ModelArchitecture model, ReservedBatch batch, out string formula)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(batch);
        long t = batch.Ubatch;
        long o = batch.Outputs;
        long e = model.HiddenSize;
        long v = model.VocabularySize;
        long h = model.AttentionHeadCount;
        long d = model.HeadDimension;
        long kv = model.KeyValueWidth;
        long cells = batch.KvCells;
        long f = model.Experts is { } moe ? (long)moe.ActiveExperts * moe.ExpertIntermediateSize + moe.SharedExpertIntermediateSize : model.IntermediateSize;
        bool fa = batch.FlashAttention;
        long a = checked((4 * t) + (4 * e * t) + (4 * e * o) + (4 * v * o));
        long inputs = checked((4 * t) + (4 * e * t) + (4 * t) + (8 * t) + (fa ? 8 * t : 8 * t * kv) + ((fa ? 2 : 4) * cells * t) + (4 * o));
        long b = fa ? 0 : checked(inputs + (2 * 4 * e * t) + (2 * 4 * h * d * t) + (4 * cells * t * h));
        long c = checked(inputs + (2 * 4 * e * t) + (model.GatedFeedForward ? 3 * 4 * f * t : 4 * f * t));
        long max = Math.Max(a, Math.Max(b, c));
        string phase = max == a ? $"logits phase 4·{t}·(1 + {e}) + 4·{o}·({e} + {Text.N(v)})"
            : max == b ? $"attention phase: inputs + 4·{t}·(2·{e} + 2·{h * d}) + K·Q scores 4·{Text.N(cells)}·{t}·{h}"
            : $"FFN phase: inputs + 4·{t}·(2·{e} + {(model.GatedFeedForward ? 3 : 1)}·{Text.N(f)})";
        formula = $"closed form (this architecture's graph is not simulated node by node): max of logits, attention and FFN phases = {phase}";
        return max;
    }
}
