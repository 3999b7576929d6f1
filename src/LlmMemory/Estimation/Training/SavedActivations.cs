using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Training;

/// <summary>Activation bytes a training step saves for backward, per token per block, in closed form.</summary>
/// <remarks>
/// Llama-style blocks (RMSNorm, RoPE, GQA, gated MLP, no dropout) follow the op-by-op derivation of docs/memory-model.md
/// §5.3 as measured on H100 with transformers 5 (data/validation/gpu-h100-cases.jsonl): each RMSNorm keeps its fp32 input
/// copy (4h), its normalized tensor (2h) and its output (2h); SDPA/flash keeps q, k, v, the output (2·a·d + 4·h_kv + 2·a·d)
/// and an fp32 log-sum-exp per head (4a); the gated MLP keeps gate, silu(gate), up and their product (4 × 2I). Blocks with
/// LayerNorm, GELU and dropout (GPT-2, BERT, NeoX, …) use Korthikanti et al. 2022 (arXiv:2205.05198) eq. 2:
/// 34h + 5·a·s with eager attention, 34h with flash.
/// </remarks>
internal static class SavedActivations
{
    /// <summary>How the block's tensors are stored while training.</summary>
    public enum Regime
    {
        /// <summary>Parameters and activations in bf16/fp16.</summary>
        Half,

        /// <summary>fp32 parameters with autocast: fp32 residual stream and a bf16 input copy per linear (+10h).</summary>
        Mixed,

        /// <summary>Everything in fp32.</summary>
        Fp32,

        /// <summary>LoRA on a frozen 16-bit base; adapters cast their input to fp32 (PEFT's <c>_cast_input_dtype</c>).</summary>
        LoraFp32Adapters,

        /// <summary>LoRA with adapters in the compute dtype (torchtune, FSDP/DeepSpeed mixed precision).</summary>
        LoraHalfAdapters,
    }

    /// <summary>Saved bytes per token per block without checkpointing, as the terms that count them (its value is the bytes).</summary>
    public static Formula PerToken(ModelArchitecture m, Regime regime, LoraAdapters? lora, AttentionKernel attention, int seq)
    {
        ArgumentNullException.ThrowIfNull(m);
        long h = m.HiddenSize;
        long ad = (long)m.AttentionHeadCount * m.HeadDimension;
        long kv = m.KeyValueWidth;
        long a = m.AttentionHeadCount;
        long ffn = FeedForwardWidth(m);
        if (m.Family != ModelFamily.LlamaLike)
        {
            // Korthikanti et al. 2022, eq. 2; twice the bytes in fp32.
            Formula block = attention == AttentionKernel.Eager ? Formula.Dot(34, h) + Formula.Dot(5, a, seq) : Formula.Dot(34, h);
            return regime == Regime.Fp32 ? Formula.Count(2) * block : block;
        }

        long norms = m.ModelType.StartsWith("gemma", StringComparison.Ordinal) ? 36 : 16;
        Formula attentionSaved = Formula.Dot(4, ad) + Formula.Dot(4, kv) + Formula.Dot(4, a);
        bool qkNorms = m.ModelType is "qwen3" or "qwen3_moe" or "gemma3_text";
        Formula Plus(Formula f, long factor) => qkNorms ? f + Formula.Dot(factor, ad + kv) : f;
        Formula perToken = regime switch
        {
            Regime.Mixed => Plus(Formula.Dot(26, h) + attentionSaved + Formula.Dot(8, ffn), 6),
            Regime.Fp32 => Formula.Count(2) * Plus(Formula.Dot(norms, h) + attentionSaved + Formula.Dot(8, ffn), 6),
            Regime.LoraFp32Adapters or Regime.LoraHalfAdapters => Plus(LoraPerToken(m, regime, lora, attentionSaved, ffn), 4),
            _ => Plus(Formula.Dot(norms, h) + attentionSaved + Formula.Dot(8, ffn), 6),
        };
        return attention == AttentionKernel.Eager
            ? perToken + (Formula.Dot(6, a, seq) + Formula.Dot(4, ad - kv)).After("eager scores")
            : perToken;
    }

    /// <summary>
    /// LoRA: frozen norms keep only their fp32 input (4h each), the attention core as above, the MLP keeps gate, silu and
    /// up (6I), and every adapted module keeps its own input (4·d_in when cast to fp32, else 2·d_in shared by modules that
    /// read the same tensor) plus its rank-r intermediate.
    /// </summary>
    private static Formula LoraPerToken(ModelArchitecture m, Regime regime, LoraAdapters? lora, Formula attentionSaved, long ffn)
    {
        long h = m.HiddenSize;
        IEnumerable<TensorSpec> targets = lora?.Targets.Where(t => t.Layer == 0) ?? [];
        long adapters = regime == Regime.LoraFp32Adapters
            ? targets.Sum(t => 4 * t.InFeatures + 4L * lora!.Rank)
            : targets.GroupBy(t => t.InFeatures).Sum(g => 2 * g.Key) + targets.Sum(_ => 2L * lora!.Rank);
        return Formula.Dot(8, h) + Formula.Count(adapters).After("adapters") + attentionSaved + Formula.Dot(6, ffn);
    }

    /// <summary>
    /// Bytes per logit (token × vocabulary entry) of the loss region at the start of backward, with the loss on fp32 logits:
    /// the fp32 log-softmax output and the loss backward's two fp32 gradients, 4 + 4 + 4 (research/torch SPEC §5).
    /// </summary>
    public const int LossRegionBytesPerLogit = 12;

    /// <summary>FFN width a token passes through: the dense width, or top-k experts plus shared experts.</summary>
    public static long FeedForwardWidth(ModelArchitecture m) =>
        m.Experts is { } moe ? (long)moe.ActiveExperts * moe.ExpertIntermediateSize + moe.SharedExpertIntermediateSize : m.IntermediateSize;

    /// <summary>
    /// What the final norm saves per token (research/torch SPEC §4 "Head"): its fp32 input copy (4h) and, when its weight
    /// trains, the 16-bit normalized tensor and its output (2h + 2h); a frozen norm and head (LoRA) keep only the fp32 copy.
    /// </summary>
    public static long HeadPerToken(ModelArchitecture m, bool frozen)
    {
        ArgumentNullException.ThrowIfNull(m);
        return (frozen ? 4L : 8L) * m.HiddenSize;
    }
}
