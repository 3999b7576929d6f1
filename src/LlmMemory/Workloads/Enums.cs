namespace LlmMemory.Workloads;

/// <summary>What is done with the model.</summary>
public enum Mode
{
    Inference,
    Training,
    Lora,
    Qlora,
}

/// <summary>Whose memory accounting to follow (buffers, reserves, defaults).</summary>
public enum Engine
{
    Transformers,
    Vllm,
    Sglang,
    LlamaCpp,
    Torchtune,
    Torchtitan,
    Deepspeed,
    Pytorch,
}

/// <summary>Training numeric regime.</summary>
public enum Precision
{
    /// <summary>Everything in fp32.</summary>
    Fp32,

    /// <summary>fp32 master weights, fp16 compute (AMP).</summary>
    MixedFp16,

    /// <summary>fp32 master weights, bf16 compute (AMP).</summary>
    MixedBf16,

    /// <summary>Pure bf16: parameters, gradients and optimizer states in bf16 (torchtune).</summary>
    Bf16,

    /// <summary>float8 linear layers (torchao Float8Linear) over bf16/fp32 parameters.</summary>
    Fp8,
}

/// <summary>Optimizer whose states are held.</summary>
public enum OptimizerKind
{
    AdamW,
    AdamW8Bit,
    PagedAdamW,
    PagedAdamW8Bit,
    Adafactor,
    Sgd,
    SgdMomentum,
    Lion,
    None,
}

/// <summary>Activation recomputation strategy.</summary>
public enum Checkpointing
{
    None,
    Full,
    Selective,

    /// <summary>Saved activations moved to host memory.</summary>
    Offload,
}

/// <summary>Attention kernel.</summary>
public enum AttentionKernel
{
    /// <summary>Materializes the s × s scores (HF <c>eager_attention_forward</c>).</summary>
    Eager,

    /// <summary>PyTorch scaled_dot_product_attention (flash / memory-efficient backends).</summary>
    Sdpa,

    /// <summary>FlashAttention-2/3.</summary>
    Flash,
}

/// <summary>How logits and the loss are computed.</summary>
public enum CrossEntropyKind
{
    Standard,
    Chunked,
    Fused,

    /// <summary>Unsloth's <c>Fast_CrossEntropyLoss</c> (fms-acceleration FOAK's <c>fast_loss</c>): the gradient is written into the saved logits.</summary>
    InPlace,

    /// <summary>Liger's fused linear cross-entropy: the head and the loss in token chunks inside the forward; the full logits never exist.</summary>
    FusedLinear,

    /// <summary>
    /// Unsloth's own causal-LM forward: <c>Fast_CrossEntropyLoss</c> on the model's 16-bit logits, the labels shifted instead
    /// of the logits; the kernel upcasts in registers and writes the gradient into the saved logits.
    /// </summary>
    Unsloth,
}

/// <summary>The KV cache of transformers' <c>generate()</c> (<c>cache_implementation</c>).</summary>
public enum GenerationCache
{
    /// <summary><c>DynamicCache</c>: K and V grow by concatenation, one step at a time.</summary>
    Dynamic,

    /// <summary><c>StaticCache</c>: K and V allocated for the whole context before the first step.</summary>
    Static,
}

/// <summary>FSDP sharding strategy.</summary>
public enum FsdpMode
{
    None,
    FullShard,
    ShardGradOp,
    HybridShard,
}

/// <summary>
/// The pipeline schedule of PyTorch's <c>torch.distributed.pipelining</c> (torchtitan's <c>pipeline_parallel_schedule</c>):
/// one stage per rank (1F1B) or several stages per rank visited in turn (interleaved 1F1B).
/// </summary>
public enum PipelineSchedule
{
    OneForwardOneBackward,
    Interleaved,
}

/// <summary>What a ZeRO/FSDP run moves to host memory.</summary>
public enum OffloadMode
{
    None,
    Optimizer,
    OptimizerAndParams,
}

/// <summary>
/// torchtune's <c>custom_sharded_layers</c>: modules besides the transformer blocks that <c>training.shard_model</c> wraps in
/// <c>fully_shard</c> of their own (<c>get_shard_conditions</c> matches their exact names), so they are gathered and resharded
/// on their own instead of with the root module (torchtune/training/_distributed.py).
/// </summary>
[Flags]
public enum CustomShardedLayers
{
    None = 0,

    /// <summary><c>tok_embeddings</c>: the token embedding.</summary>
    TokEmbeddings = 1,

    /// <summary><c>output</c>: the output projection (the head).</summary>
    Output = 2,
}
