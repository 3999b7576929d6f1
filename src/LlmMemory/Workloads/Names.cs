using System.Collections.Frozen;

namespace LlmMemory.Workloads;

/// <summary>The scenario-file spelling of every enum value (docs/scenario.md), in one table.</summary>
public static class Names
{
    private static readonly FrozenDictionary<Type, (Enum Value, string Name)[]> Table = new Dictionary<Type, (Enum, string)[]>
    {
        [typeof(Mode)] = [(Mode.Inference, "inference"), (Mode.Training, "training"), (Mode.Lora, "lora"), (Mode.Qlora, "qlora")],
        [typeof(Engine)] =
        [
            (Engine.Transformers, "transformers"), (Engine.Vllm, "vllm"), (Engine.Sglang, "sglang"), (Engine.LlamaCpp, "llama.cpp"),
            (Engine.Torchtune, "torchtune"), (Engine.Torchtitan, "torchtitan"), (Engine.Deepspeed, "deepspeed"), (Engine.Pytorch, "pytorch"),
        ],
        [typeof(Precision)] =
        [
            (Precision.Fp32, "fp32"), (Precision.MixedFp16, "mixed-fp16"), (Precision.MixedBf16, "mixed-bf16"), (Precision.Bf16, "bf16"),
            (Precision.Fp8, "fp8"),
        ],
        [typeof(OptimizerKind)] =
        [
            (OptimizerKind.AdamW, "adamw"), (OptimizerKind.AdamW8Bit, "adamw-8bit"), (OptimizerKind.PagedAdamW, "paged-adamw"),
            (OptimizerKind.PagedAdamW8Bit, "paged-adamw-8bit"), (OptimizerKind.Adafactor, "adafactor"), (OptimizerKind.Sgd, "sgd"),
            (OptimizerKind.SgdMomentum, "sgd-momentum"), (OptimizerKind.Lion, "lion"), (OptimizerKind.None, "none"),
        ],
        [typeof(Checkpointing)] =
            [(Checkpointing.None, "none"), (Checkpointing.Full, "full"), (Checkpointing.Selective, "selective"), (Checkpointing.Offload, "offload")],
        [typeof(AttentionKernel)] = [(AttentionKernel.Eager, "eager"), (AttentionKernel.Sdpa, "sdpa"), (AttentionKernel.Flash, "flash")],
        [typeof(CrossEntropyKind)] =
            [(CrossEntropyKind.Standard, "standard"), (CrossEntropyKind.Chunked, "chunked"), (CrossEntropyKind.Fused, "fused"),
                (CrossEntropyKind.InPlace, "in-place"), (CrossEntropyKind.FusedLinear, "fused-linear"),
                (CrossEntropyKind.Unsloth, "unsloth")],
        [typeof(BitsandbytesConverter)] = [(BitsandbytesConverter.Transformers, "transformers"), (BitsandbytesConverter.Lightning, "lightning")],
        [typeof(ModelCode)] = [(ModelCode.Transformers, "transformers"), (ModelCode.Litgpt, "litgpt")],
        [typeof(GenerationCache)] = [(GenerationCache.Dynamic, "dynamic"), (GenerationCache.Static, "static")],
        [typeof(FsdpMode)] =
        [
            (FsdpMode.None, "none"), (FsdpMode.FullShard, "full_shard"), (FsdpMode.ShardGradOp, "shard_grad_op"),
            (FsdpMode.HybridShard, "hybrid_shard"),
        ],
        [typeof(CustomShardedLayers)] = [(CustomShardedLayers.TokEmbeddings, "tok_embeddings"), (CustomShardedLayers.Output, "output")],
        [typeof(PipelineSchedule)] = [(PipelineSchedule.OneForwardOneBackward, "1f1b"), (PipelineSchedule.Interleaved, "interleaved-1f1b")],
        [typeof(OffloadMode)] = [(OffloadMode.None, "none"), (OffloadMode.Optimizer, "optimizer"), (OffloadMode.OptimizerAndParams, "optimizer+params")],
        [typeof(MeasuredQuantity)] =
        [
            (MeasuredQuantity.Parameters, "parameters"), (MeasuredQuantity.TrainableParameters, "trainable_parameters"),
            (MeasuredQuantity.Weights, "weights"), (MeasuredQuantity.KvCache, "kv_cache"), (MeasuredQuantity.ComputeBuffer, "compute_buffer"),
            (MeasuredQuantity.PeakAllocated, "peak_allocated"), (MeasuredQuantity.PeakReserved, "peak_reserved"),
            (MeasuredQuantity.DeviceUsed, "device_used"),
        ],
        [typeof(MeasurementScope)] = [(MeasurementScope.Gpu, "gpu"), (MeasurementScope.Total, "total")],
    }.ToFrozenDictionary();

    /// <summary>The scenario spelling of <paramref name="value"/>.</summary>
    public static string Of<T>(T value)
        where T : struct, Enum => Table[typeof(T)].First(e => e.Value.Equals(value)).Name;

    /// <summary>Every spelling of <typeparamref name="T"/>, in table order.</summary>
    public static IReadOnlyList<string> All<T>()
        where T : struct, Enum => Table[typeof(T)].Select(e => e.Name).ToArray();

    /// <summary>Parses a spelling (case-insensitive).</summary>
    public static bool TryParse<T>(string? text, out T value)
        where T : struct, Enum
    {
        foreach ((Enum candidate, string name) in Table[typeof(T)])
        {
            if (string.Equals(name, text?.Trim(), StringComparison.OrdinalIgnoreCase))
            {
                value = (T)candidate;
                return true;
            }
        }

        value = default;
        return false;
    }
}
