using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Inference;

/// <summary>The widest transient of a transformers forward pass over T = batch × seq tokens (docs/memory-model.md §3.1).</summary>
internal static class PrefillTransients
{
    public static IEnumerable<MemoryComponent> Of(ModelArchitecture model, Scenario scenario, DataType compute, long tokens)
    {
        double beta = compute.BitsPerElement / 8;
        long hidden = checked((long)(2 * tokens * model.HiddenSize * beta));
        // A forward() without logits_to_keep computes logits for every position (scoring, perplexity, this measurement).
        long logits = checked((long)(tokens * model.VocabularySize * beta));
        long width = model.Experts is { } moe ? (long)moe.ActiveExperts * moe.ExpertIntermediateSize + moe.SharedExpertIntermediateSize : model.IntermediateSize;
        long mlp = checked((long)(3 * tokens * width * beta));
        long attention = scenario.Attention == AttentionKernel.Eager
            ? checked((long)scenario.Batch * model.AttentionHeadCount * scenario.Seq * scenario.Seq * (long)(2 * beta + 4))
            : 0;
        long layer = Math.Max(mlp, attention);
        if (logits >= layer)
        {
            yield return new MemoryComponent("logits", ComponentKind.Logits, new ByteSize(logits),
                $"{Text.N(tokens)} tokens × {Text.N(model.VocabularySize)} vocab × {Text.Bytes(beta)}");
        }
        else if (attention > mlp)
        {
            yield return new MemoryComponent("attention_scores", ComponentKind.Activations, new ByteSize(attention),
                $"eager attention: {scenario.Batch} × {model.AttentionHeadCount} heads × {Text.N(scenario.Seq)}² × ({Text.Bytes(2 * beta)} scores and probabilities + 4 B fp32 softmax)");
        }
        else
        {
            yield return new MemoryComponent("mlp_activations", ComponentKind.Activations, new ByteSize(mlp),
                $"{Text.N(tokens)} tokens × 3 × {Text.N(width)} (gate, up, activation) × {Text.Bytes(beta)}");
        }

        yield return new MemoryComponent("hidden_states", ComponentKind.Activations, new ByteSize(hidden),
            $"residual and normalized hidden: 2 × {Text.N(tokens)} tokens × {model.HiddenSize} × {Text.Bytes(beta)}");
    }
}
