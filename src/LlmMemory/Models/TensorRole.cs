namespace LlmMemory.Models;

/// <summary>What a tensor does in the model; parameter breakdowns and quantization rules group by it.</summary>
public enum TensorRole
{
    /// <summary>Input token embedding table.</summary>
    TokenEmbedding,

    /// <summary>Learned absolute positions (GPT-2, OPT, BERT).</summary>
    PositionEmbedding,

    /// <summary>BERT segment (token type) embeddings.</summary>
    TokenTypeEmbedding,

    /// <summary>Attention projections, their biases, q/k norms, attention sinks.</summary>
    Attention,

    /// <summary>Dense feed-forward (MLP) projections and biases.</summary>
    FeedForward,

    /// <summary>Routed MoE experts.</summary>
    Expert,

    /// <summary>Always-active shared experts (DeepSeek, Qwen-MoE) and their gates.</summary>
    SharedExpert,

    /// <summary>MoE router (gate) weights and biases.</summary>
    Router,

    /// <summary>Normalization weights and biases.</summary>
    Norm,

    /// <summary>Output projection to the vocabulary (lm_head), when not tied to the embeddings.</summary>
    OutputHead,

    /// <summary>Anything else: BERT pooler, T5 relative position buckets, projections between widths.</summary>
    Other,
}

/// <summary>The shape a tensor's module gives it, which decides who may quantize or adapt it.</summary>
public enum TensorForm
{
    /// <summary>The weight matrix of an <c>nn.Linear</c> ([out, in]): quantized by bitsandbytes/GPTQ/AWQ, targeted by LoRA.</summary>
    LinearWeight,

    /// <summary>A bias vector of a linear layer.</summary>
    Bias,

    /// <summary>An embedding table ([rows, width]).</summary>
    Embedding,

    /// <summary>A 1-D weight (norm scale, sink, router bias).</summary>
    Vector,

    /// <summary>Routed experts as separate <c>nn.Linear</c> modules of [out, in], listed as one [experts, out, in] entry.</summary>
    ExpertLinear,

    /// <summary>Experts fused into one 3-D parameter ([experts, out, in]) that is not an <c>nn.Linear</c> (gpt-oss, Granite-MoE).</summary>
    FusedExperts,
}
