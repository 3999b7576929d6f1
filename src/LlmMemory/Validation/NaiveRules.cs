using LlmMemory.Estimation;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Validation;

/// <summary>What a naive rule of thumb gives for a case, and which rule it was.</summary>
/// <param name="Value">Bytes on the measured device (or summed, as the case measures).</param>
/// <param name="Rule">The rule with its numbers: "8,030,261,248 params × 2 B × 1.2".</param>
public sealed record NaiveEstimate(long Value, string Rule);

/// <summary>
/// The rules a user would otherwise apply, so that the accuracy report can show what the estimator gains over them.
/// They are computed here only, never used by the estimator.
/// </summary>
/// <remarks>
/// <list type="bullet">
/// <item><b>Weights</b>: parameters × bytes per parameter of the storage format — the essay's "VRAM to load a model"
/// table (4 B for fp32, 2 B for bf16/fp16; "How much memory do you need to work with LLMs?", 2025-09-25,
/// "Estimating GPU memory requirements").</item>
/// <item><b>Training</b> (full fine-tuning and pre-training): 16 B per parameter — the essay's rule of thumb
/// ((2 + 4) weights + 2 gradients + 8 AdamW; "Model states": 7B × 16 = 112 GB), taken as the whole peak.</item>
/// <item><b>Inference</b>: weights × 1.2 — the "add up to an additional 20 %" for inference that Hugging Face
/// accelerate's model-size estimator documents (docs "Model memory estimator", citing EleutherAI's "Transformer Math 101").</item>
/// </list>
/// The two totals are compared with the whole-memory counters (<c>peak_allocated</c>, <c>peak_reserved</c>,
/// <c>device_used</c>), the weights rule with <c>weights</c>. LoRA and QLoRA have no such rule in these sources, and
/// parameter counts, KV cache and compute buffers are not what the rules estimate, so those cases get none. A per-device
/// figure of a multi-GPU run is the total divided by the GPU count, as a user spreading the total evenly would.
/// Bytes per parameter come from the case's weight format, else the model's stored dtype, else 2 (bf16).
/// </remarks>
public static class NaiveRules
{
    /// <summary>The essay's training rule: bytes per parameter for weights, gradients and AdamW states in mixed precision.</summary>
    public const double TrainingBytesPerParameter = 16;

    /// <summary>The inference overhead factor over the weights (accelerate docs: "up to an additional 20%").</summary>
    public const double InferenceOverhead = 1.2;

    /// <summary>The naive figure for <paramref name="measured"/>, or null when no naive rule estimates that quantity.</summary>
    public static NaiveEstimate? Estimate(ResolvedModel model, Scenario scenario, Measurement measured)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(measured);
        long parameters = model.ParameterCount;
        double bytes = BytesPerParameter(model, scenario);
        (double perParameter, string rule) = measured.What switch
        {
            MeasuredQuantity.Weights => (bytes, $"{Text.N(parameters)} params × {Text.Bytes(bytes)}"),
            MeasuredQuantity.PeakAllocated or MeasuredQuantity.PeakReserved or MeasuredQuantity.DeviceUsed => scenario.Mode switch
            {
                Mode.Training => (TrainingBytesPerParameter, $"{Text.N(parameters)} params × {Text.Bytes(TrainingBytesPerParameter)}"),
                Mode.Inference => (bytes * InferenceOverhead, $"{Text.N(parameters)} params × {Text.Bytes(bytes)} × {Text.N(InferenceOverhead)}"),
                _ => (0, ""),
            },
            _ => (0, ""),
        };
        if (perParameter == 0)
        {
            return null;
        }

        double total = parameters * perParameter;
        int gpus = scenario.Parallel.Gpus;
        return measured.Scope == MeasurementScope.Gpu && gpus > 1
            ? new NaiveEstimate(checked((long)Math.Ceiling(total / gpus)), $"{rule} / {gpus} GPUs")
            : new NaiveEstimate(checked((long)Math.Round(total)), rule);
    }

    private static double BytesPerParameter(ResolvedModel model, Scenario scenario)
    {
        DataType? type = scenario.Weights is WeightFormat format ? format.Type : model.Architecture?.StoredType;
        return (type?.BitsPerElement ?? 16) / 8;
    }
}
