using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>What the replayed run does: the script, the model's program style, the optimizer and the device limits.</summary>
internal sealed record ReplayOptions
{
    public required int Batch { get; init; }

    public required int Seq { get; init; }

    /// <summary>Training steps (forward, backward, optimizer step, <c>zero_grad(set_to_none=True)</c>); false: one forward under <c>no_grad</c>.</summary>
    public bool Training { get; init; }

    /// <summary>Inference through <c>generate()</c>: a prompt of <see cref="Seq"/> tokens, then this many new ones; null: one forward.</summary>
    public int? NewTokens { get; init; }

    /// <summary>How each parameter tensor is stored, aligned with the model's tensor inventory.</summary>
    public required IReadOnlyList<StoredWeight> Weights { get; init; }

    /// <summary>Every parameter trains (full fine-tuning); false: frozen base (inference, LoRA).</summary>
    public bool TrainBase { get; init; }

    /// <summary><c>torch.autocast</c> type around the forward (mixed precision); null for none.</summary>
    public ScalarType? Autocast { get; init; }

    public LoraReplay? Lora { get; init; }

    /// <summary>transformers' <c>eager_attention_forward</c> (materialised scores) instead of SDPA.</summary>
    public bool EagerAttention { get; init; }

    /// <summary>Per-layer non-reentrant activation checkpointing.</summary>
    public bool Checkpointing { get; init; }

    /// <summary>Checkpointed layer inputs live in host memory (torchtune activation offloading).</summary>
    public bool OffloadCheckpoints { get; init; }

    public ReplayOptimizer Optimizer { get; init; } = ReplayOptimizer.AdamW;

    /// <summary>The optimizer steps each parameter inside backward and frees its gradient at once.</summary>
    public bool OptimizerInBackward { get; init; }

    public int Steps { get; init; } = 3;

    /// <summary>Micro-batches replayed per optimizer step (gradient accumulation; the second repeats for the rest).</summary>
    public int MicroBatches { get; init; } = 1;

    /// <summary>Bytes the allocator may reserve (device total − memory outside the allocator); null for no limit.</summary>
    public long? Capacity { get; init; }

    /// <summary>The caching allocator's settings (<c>PYTORCH_CUDA_ALLOC_CONF</c>).</summary>
    public AllocatorSettings Allocator { get; init; } = AllocatorSettings.Default;

    /// <summary>cuBLAS workspace per GEMM thread.</summary>
    public long WorkspaceBytes { get; init; }

    /// <summary>
    /// Whether the training forward builds a KV cache: the scenario's <c>use_cache</c>, else the model code's default
    /// (transformers follows <c>config.use_cache</c>; torchtune never does). Gradient checkpointing turns it off.
    /// </summary>
    public bool CacheInTraining { get; init; }

    /// <summary>
    /// bitsandbytes before 0.43.2: <c>MatMul4Bit.forward</c> keeps its input on <c>ctx</c>, until the graph dies, whenever it needs a
    /// gradient (<see cref="Workloads.BitsandbytesRelease.FourBitInputDropped"/>).
    /// </summary>
    public bool FourBitKeepsInput { get; init; }

    /// <summary>
    /// The loop keeps the previous micro-batch's logits (and so its graph) until the model's next forward returns
    /// (<c>hold_previous_logits</c>, LitGPT's fine-tuning loops); the head drops them there, before the loss.
    /// </summary>
    public bool HoldPreviousLogits { get; init; }

    /// <summary>The type 4-bit weights were quantized from, which dequantization returns (Lightning's converter: fp16); null means the activations' type.</summary>
    public ScalarType? QuantStateType { get; init; }

    /// <summary>torchtune's build of a QLoRA model on the device before the first step (NF4 quantization at load); null for none.</summary>
    public TorchtuneInit? TorchtuneInit { get; init; }

    /// <summary>torchtune's model code: LoRA in the model dtype without the fp32 input cast, k/v expanded to all heads before SDPA.</summary>
    public bool Torchtune { get; init; }

    /// <summary>
    /// LitGPT's model code (<c>model_code: litgpt</c>): LoRA in the model dtype without a cast, one dropout for the fused qkv,
    /// q, k and v split from one qkv output, grouped k and v copied to all heads, LitGPT's RMSNorm.
    /// </summary>
    public bool LitGpt { get; init; }

    public LossStyle Loss { get; init; } = LossStyle.Transformers;

    /// <summary>
    /// <c>torch.compile</c> of the layers: inductor turns each RMSNorm into one kernel that saves its input and the per-row
    /// rstd instead of the eager fp32 copies. Other ops are replayed as eager.
    /// </summary>
    public bool Compiled { get; init; }

    /// <summary>
    /// 4-bit weights compute in fp32: bitsandbytes' defaults (<c>load_in_4bit</c>: FP4, <c>bnb_4bit_compute_dtype</c> float32),
    /// as opposed to the QLoRA configuration (NF4, double quantization, bf16 compute).
    /// </summary>
    public bool Float32Compute4Bit { get; init; }

    /// <summary>
    /// PEFT's <c>prepare_model_for_kbit_training</c> ran after loading: the 16-bit type the model was loaded in, whose
    /// unquantized parameters it cast to fp32 one by one, and in which bitsandbytes' 4-bit linears keep their quant state and
    /// (unless <see cref="Float32Compute4Bit"/>) compute; null when it did not run.
    /// </summary>
    public ScalarType? KbitPreparationFrom { get; init; }

    /// <summary>One GPU of a model that accelerate spread over several (<c>device_map="auto"</c>); null for one GPU.</summary>
    public Placement? Placement { get; init; }

    /// <summary>One rank of a sharded (FSDP2) run; null for one GPU.</summary>
    public Sharding? Sharding { get; init; }

    /// <summary>Gradients are zeroed in place instead of freed between steps (<c>zero_grad(set_to_none=False)</c>, torch &lt; 2.0).</summary>
    public bool KeepGradients { get; init; }

    /// <summary>
    /// <c>softmax</c> and <c>log_softmax</c> keep their input for backward as well as their output (torch 1.10 and earlier;
    /// <see cref="ReplayEngine.SoftmaxSavesInput"/>).
    /// </summary>
    public bool SoftmaxSavesInput { get; init; }
}

/// <summary>How one parameter tensor is stored: its bytes and the element type ops see.</summary>
/// <param name="Bytes">Stored bytes, quantization scales included.</param>
/// <param name="Type">Element type; <see cref="ScalarType.Nf4"/> for 4-bit weights that are dequantized for each matmul, <see cref="ScalarType.UInt8"/> for other quantized storage.</param>
internal readonly record struct StoredWeight(long Bytes, ScalarType Type);

/// <summary>LoRA/DoRA adapters of a replay.</summary>
/// <param name="Targets">The adapted linear weights, in model order.</param>
/// <param name="Rank">r.</param>
/// <param name="Dora">A magnitude vector per adapted module and the DoRA forward.</param>
/// <param name="Type">Adapter type: fp32 for PEFT (<c>autocast_adapter_dtype</c>), the model dtype for torchtune.</param>
/// <param name="Dropout">The dropout probability on each adapter's input; 0 is none (no kernel, no mask).</param>
internal sealed record LoraReplay(IReadOnlyList<TensorSpec> Targets, int Rank, bool Dora, ScalarType Type, double Dropout);

/// <summary>Optimizer implementations, by the states and temporaries they allocate (research/torch SPEC §6).</summary>
internal enum ReplayOptimizer
{
    /// <summary><c>torch.optim.AdamW</c> foreach: two states of the parameter type; <c>_foreach_sqrt</c> copies the second moment of each type group.</summary>
    AdamW,

    /// <summary><c>torch.optim.AdamW(fused=True)</c>: two states, no temporary.</summary>
    AdamWFused,

    /// <summary>
    /// <c>torch.optim.AdamW(foreach=False)</c>, <c>_single_tensor_adamw</c>: per parameter,
    /// <c>denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)</c> holds the square root and the quotient at once.
    /// </summary>
    AdamWSingleTensor,

    /// <summary>transformers' own <c>AdamW</c> (2022): a per-parameter loop whose <c>exp_avg_sq.sqrt()</c> is one parameter-sized temporary.</summary>
    AdamWPerParameter,

    /// <summary>bitsandbytes 8-bit blockwise AdamW: uint8 states and fp32 absmax per 256 values; tensors under 4096 elements keep fp32 states.</summary>
    AdamW8Bit,

    /// <summary>
    /// bitsandbytes paged 32-bit AdamW: the fp32 moments of parameters of at least 1e5 elements in CUDA managed memory,
    /// outside the caching allocator; those of smaller ones are ordinary device tensors (<c>get_state_buffer</c>).
    /// </summary>
    Paged,

    /// <summary>bitsandbytes paged 8-bit AdamW: uint8 moments paged from 1e5 elements; the fp32 block scales and small tensors' states on the device.</summary>
    Paged8Bit,

    /// <summary>transformers' <c>Adafactor</c> (beta1 None): factored fp32 second moment for matrices, fp32 vectors; two fp32 temporaries per parameter.</summary>
    Adafactor,

    /// <summary>SGD with momentum: one buffer of the parameter type, created from the first gradient.</summary>
    SgdMomentum,

    /// <summary>Plain SGD: in place, no state.</summary>
    Sgd,

    /// <summary>Lion (lion-pytorch): one momentum of the parameter type; the update makes two parameter-sized temporaries.</summary>
    Lion,
}

/// <summary>How logits and the loss are computed.</summary>
internal enum LossStyle
{
    /// <summary>transformers 4.49 on (and 5) <c>ForCausalLMLoss</c>: bf16 logits, <c>logits.float()</c>, labels padded, log-softmax and nll.</summary>
    Transformers,

    /// <summary>
    /// transformers 4.46 to 4.48 <c>ForCausalLMLoss</c>: the model's bf16 logits kept, <c>logits.float()</c> and
    /// <c>shift_logits = logits[..., :-1, :].contiguous()</c> in the loss, log-softmax and nll.
    /// </summary>
    TransformersShifted,

    /// <summary>
    /// transformers before 4.46: the model's forward rebinds <c>logits = logits.float()</c> (its bf16 logits die there), then
    /// <c>shift_logits = logits[..., :-1, :].contiguous()</c> and <c>CrossEntropyLoss</c>.
    /// </summary>
    TransformersInModel,

    /// <summary>torchtune: <c>self.output(h).float()</c>, then cross-entropy.</summary>
    Float,

    /// <summary>
    /// torchtune before 0.3.0 (its recipes until PR #1390): <c>self.output(h).float()</c>, then
    /// <c>logits = logits[..., :-1, :].contiguous()</c> (the full fp32 logits die there; the recipe's <c>logits</c> keeps
    /// the copy) and <c>transpose(1, 2)</c> into <c>CrossEntropyLoss</c> (<see cref="Blocks.TransposedCrossEntropy"/>).
    /// </summary>
    FloatShiftedTransposed,

    /// <summary>
    /// A compiled cross-entropy over the whole output: the log-softmax stays inside the kernel, which saves the logits (fp32
    /// after torchtune's <c>.float()</c>, else in the model type) and a per-row log-sum-exp.
    /// </summary>
    Fused,

    /// <summary>torchtune <c>CEWithChunkedOutputLoss</c>: the output in 8 chunks, each upcast on its own for its loss.</summary>
    Chunked,

    /// <summary>Chunked, with the loss compiled (or a fused kernel): the fp32 upcast and softmax stay inside the kernel; each chunk saves only its logits and a per-row log-sum-exp.</summary>
    ChunkedFused,

    /// <summary>
    /// Unsloth's <c>Fast_CrossEntropyLoss</c> as fms-acceleration's FOAK plugs it into transformers 4.45's
    /// <c>LlamaForCausalLM</c>: <c>logits = logits.float()</c>, <c>shift_logits = logits[..., :-1, :].contiguous()</c>, and
    /// a kernel that saves the shifted fp32 logits and writes their gradient into them.
    /// </summary>
    InPlace,

    /// <summary>
    /// The same kernel as fms-acceleration's FOAK plugs it into transformers 4.46 and later (its <c>*-custom-loss</c> rule,
    /// fms-acceleration PR 123: <c>LOSS_MAPPING[custom_loss_type] = FastForCausalLMLoss</c>, the model's <c>loss_type</c> set
    /// to it): the model keeps its 16-bit logits for its output and <c>FastForCausalLMLoss</c> (kernels/unsloth/
    /// cross_entropy_loss.py, adapted from 4.46's <c>ForCausalLMLoss</c>) upcasts a copy (<c>logits = logits.float()</c>),
    /// takes <c>shift_logits = logits[..., :-1, :].contiguous()</c> and hands it to the kernel; the full fp32 copy dies when
    /// the loss returns.
    /// </summary>
    InPlaceLossFunction,

    /// <summary>Liger's <c>LigerFusedLinearCrossEntropyFunction</c>: head and loss in row chunks in the forward, the input's gradient saved.</summary>
    FusedLinear,

    /// <summary>
    /// Unsloth's <c>LlamaForCausalLM_fast_forward</c> (unsloth/models/llama.py): <c>logits = self.lm_head(hidden_states)</c> in
    /// the model's type, no upcast, the labels shifted instead of the logits
    /// (<c>shift_labels = torch.hstack((labels[..., 1:], extra_ignored_labels))</c>), and <c>fast_cross_entropy_loss(logits,
    /// shift_labels)</c>: the kernel keeps the model's own logits and writes their gradient into them.
    /// </summary>
    InPlaceModelLogits,
}
