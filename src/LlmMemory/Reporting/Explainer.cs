using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Training;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

using static LlmMemory.Reporting.EssayNumbers;

namespace LlmMemory.Reporting;

/// <summary>
/// Builds the essay's walk-through for any model and workload: weights, precision, quantization, training states,
/// activations, LoRA, effective batch, KV cache, then the workload's own breakdown. Every number comes from the
/// estimator (or, for the essay's rules of thumb, from the rule-of-thumb estimate of the same parameter count), so the
/// walk and <c>estimate</c> never disagree.
/// </summary>
public static class Explainer
{
    /// <summary>Formats the quantization step shows, from 8 bits down to about 4.</summary>
    private static readonly string[] QuantizedFormats = ["int8", "q8_0", "nf4", "q4_k_m"];

    /// <summary>The walk for a resolved model (the host resolves it once: catalog, files, Hub).</summary>
    public static Explanation Explain(ResolvedModel model, Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(scenario);
        MemoryEstimate estimate = MemoryEstimator.Estimate(model, scenario);
        var walk = new Walk(model, scenario);
        ExplanationSection[] sections =
        [
            walk.Weights(),
            walk.Precision(),
            walk.Quantization(),
            walk.TrainingStates(),
            walk.Activations(),
            walk.Lora(),
            walk.EffectiveBatch(),
            walk.KvCache(),
            Workload(estimate, scenario),
        ];
        return new Explanation(model, scenario, estimate, sections);
    }

    private static ExplanationSection Workload(MemoryEstimate estimate, Scenario scenario)
    {
        var steps = estimate.Components
            .Select(c => new ExplanationStep(c.Residence == Residence.Host ? c.Name + " (host)" : c.Name, c.Formula, Gigabytes(c.Bytes)))
            .ToList();
        steps.Add(new ExplanationStep("total", $"device memory at the peak ({estimate.PeakPhase})", Gigabytes(estimate.DeviceTotal)));
        var text = new List<string>
        {
            $"Everything above, put together for this run ({Names.Of(scenario.Mode)} with {Names.Of(scenario.Engine)}, batch {scenario.Batch}, "
            + $"{Estimation.Text.N(scenario.Seq)} tokens): the estimator's breakdown at the moment memory peaks.",
        };
        if (estimate.Gpu is { Budget: ByteSize budget } gpu)
        {
            text.Add(estimate.Fits == true
                ? $"It fits {gpu.Name}: {estimate.DeviceTotal} of {budget} usable."
                : $"It does not fit {gpu.Name}: {estimate.DeviceTotal} needed, {budget} usable. `llm-memory fit` says what to change.");
        }

        text.AddRange(estimate.Notes);
        return new ExplanationSection("workload", "9. This workload", text, steps);
    }

    /// <summary>The sections that need the model and the scenario; each degrades to a sentence when the model is only a count.</summary>
    private sealed class Walk(ResolvedModel model, Scenario scenario)
    {
        private readonly long _parameters = model.ParameterCount;
        private readonly ModelArchitecture? _architecture = model.Architecture;

        private string P => Count(_parameters);

        public ExplanationSection Weights()
        {
            var text = new List<string>
            {
                $"{(model.Name == P ? $"A {P} model" : model.Name)} has {Estimation.Text.N(_parameters)} parameters{(model.Name == P ? "" : $" ({P})")}: the numbers the network learned — the entries of its weight "
                + "matrices, embeddings and norms. To run the model every one of them must sit in memory, so the first estimate of any "
                + "workload is parameters × bytes per parameter.",
            };
            var steps = new List<ExplanationStep>();
            if (_architecture is { } a)
            {
                text.Add($"The count is exact: the sum of every tensor's elements, read from the model's config ({a.LayerCount} layers, "
                    + $"hidden size {a.HiddenSize}, vocabulary {Estimation.Text.N(a.VocabularySize)}).");
                steps.AddRange(ParameterBreakdown.Of(a).Where(r => r.Count > 0)
                    .Select(r => new ExplanationStep(r.Name, Share(r.Count, _parameters), Estimation.Text.N(r.Count))));
            }
            else
            {
                text.Add("Only a count was given, so the walk uses it as is; give a model id or config.json for the exact count and the sections that need the architecture.");
            }

            steps.Add(new ExplanationStep("parameters", "sum of all tensors", Estimation.Text.N(_parameters)));
            return new ExplanationSection("weights", "1. Weights: what a parameter is", text, steps);
        }

        public ExplanationSection Precision()
        {
            FloatEncoding pi32 = FloatEncoding.Encode(Math.PI, DataTypes.F32.Float!);
            FloatEncoding pi16 = FloatEncoding.Encode(Math.PI, DataTypes.BF16.Float!);
            FloatEncoding piHalf = FloatEncoding.Encode(Math.PI, DataTypes.F16.Float!);
            var text = new List<string>
            {
                "Each parameter is a floating-point number: a sign, an exponent (how large) and a mantissa (how many significant digits). "
                + "fp32 spends 32 bits on it. bf16 keeps fp32's 8-bit exponent — the same range — with a 7-bit mantissa, so it converts "
                + "from fp32 without overflow at a small cost in precision; fp16 keeps a 10-bit mantissa but a 5-bit exponent, a far "
                + "narrower range. Most checkpoints are published in bf16.",
                "Bytes per parameter times the count gives the weights: 4 GB per billion parameters in fp32, 2 GB in 16-bit.",
            };
            var steps = new List<ExplanationStep>
            {
                new("π in fp32", pi32.Bits, Stored(pi32.Stored)),
                new("π in bf16", pi16.Bits, Stored(pi16.Stored)),
                new("π in fp16", piHalf.Bits, Stored(piHalf.Stored)),
            };
            foreach ((string label, DataType type) in new[] { ("fp32 weights", DataTypes.F32), ("bf16/fp16 weights", DataTypes.BF16) })
            {
                double bytes = type.BitsPerElement / 8;
                steps.Add(new ExplanationStep(label, $"{P} × {Estimation.Text.Bytes(bytes)}", Gigabytes(new ByteSize(checked((long)(_parameters * bytes))))));
            }

            if (_architecture is not null && Try(Inference(null)) is { } own)
            {
                steps.Add(new ExplanationStep("as this model is stored", Weight(own).Formula, Gigabytes(Weight(own).Bytes)));
            }

            return new ExplanationSection("precision", "2. Precision: bytes per parameter", text, steps);
        }

        public ExplanationSection Quantization()
        {
            var text = new List<string>
            {
                "Quantization stores weights in fewer bits — 8- or 4-bit integers, or small custom codes — plus a scale per block of "
                + "weights that maps them back to real values. Some methods fit their scales on calibration data (GPTQ, AWQ); others "
                + "quantize on the fly at load time (bitsandbytes int8 and NF4). Either way the weights shrink two to four times for a "
                + "small loss in quality. The scales cost a little, so a 4-bit format takes somewhat more than half a byte per parameter.",
            };
            var steps = new List<ExplanationStep>();
            MemoryEstimate? sixteen = Try(Inference(WeightFormats.Bf16));
            foreach (string format in QuantizedFormats)
            {
                if (Try(Inference(WeightFormats.Parse(format))) is not { } q)
                {
                    continue;
                }

                MemoryComponent w = Weight(q);
                string ratio = sixteen is null ? "" : $", {Weight(sixteen).Bytes.Bytes / (double)w.Bytes.Bytes:0.0}× smaller than bf16";
                steps.Add(new ExplanationStep(format, w.Formula, Gigabytes(w.Bytes) + ratio));
            }

            return new ExplanationSection("quantization", "3. Quantization: fewer bits per weight", text, steps);
        }

        public ExplanationSection TrainingStates()
        {
            MemoryEstimate rule = MemoryEstimator.Estimate(new ResolvedModel(P, null, "parameter count", null, _parameters),
                new Scenario { Model = new ModelReference.ParameterCount(_parameters), Mode = Mode.Training });
            long perParameter = rule.DeviceTotal.Bytes / _parameters;
            var text = new List<string>
            {
                "Training changes every weight after each batch: a forward pass computes the loss, backpropagation gives each weight a "
                + "gradient, and the optimizer moves the weight against it. That needs more than the weights. Mixed-precision training "
                + "computes in 16-bit but keeps an fp32 master copy to update (2 + 4 bytes), stores a 16-bit gradient (2 bytes), and "
                + "AdamW tracks two fp32 moments of the gradient — its momentum and variance — for every weight (8 bytes).",
                $"That makes {perParameter} bytes per parameter before any activation: the rule of thumb for sizing a training run.",
            };
            var steps = rule.Components.Select(c => new ExplanationStep(c.Name, c.Formula.Replace(Estimation.Text.N(_parameters) + " params", P, StringComparison.Ordinal), Gigabytes(c.Bytes))).ToList();
            steps.Add(new ExplanationStep("model states", $"{P} × {perParameter} B", Gigabytes(rule.DeviceTotal)));
            if (Try(Training()) is { } actual && scenario.IsTraining)
            {
                ByteSize states = Sum(actual, ComponentKind.Weights, ComponentKind.MasterWeights, ComponentKind.Gradients, ComponentKind.OptimizerStates, ComponentKind.Adapters);
                steps.Add(new ExplanationStep("model states of this run", $"{Names.Of(scenario.Mode)}, optimizer {Names.Of(scenario.Optimizer ?? OptimizerKind.AdamW)}, "
                    + $"precision {Names.Of(scenario.EffectivePrecision)}", Gigabytes(states)));
            }

            return new ExplanationSection("training_states", "4. Training: sixteen bytes per parameter", text, steps);
        }

        public ExplanationSection Activations()
        {
            var text = new List<string>
            {
                "The forward pass also leaves intermediate results behind — each layer's inputs, attention outputs, the MLP's hidden "
                + "values — because backpropagation needs them. They grow with the tokens in flight: a rough count is layers × hidden "
                + "size × sequence length × batch. Gradient checkpointing keeps only each layer's input and recomputes the rest during "
                + "the backward pass; FlashAttention avoids the attention scores, which otherwise grow with the square of the sequence.",
            };
            var steps = new List<ExplanationStep>();
            if (_architecture is not { } a)
            {
                text.Add("The rough count needs the number of layers and the hidden size; give a model id or config.json.");
                return new ExplanationSection("activations", "5. Activations", text, steps);
            }

            long values = checked((long)a.LayerCount * a.HiddenSize * scenario.Seq * scenario.Batch);
            steps.Add(new ExplanationStep("rough rule", $"{a.LayerCount} layers × {Estimation.Text.N(a.HiddenSize)} hidden × {Estimation.Text.N(scenario.Seq)} tokens × {scenario.Batch} batch",
                $"{Estimation.Text.N(values)} values; × 2 B = {Gigabytes(new ByteSize(checked(values * 2)))}"));
            if (Try(Training()) is { } full)
            {
                ByteSize saved = Sum(full, ComponentKind.Activations, ComponentKind.Logits);
                steps.Add(new ExplanationStep("full estimate", ActivationParts(full), saved.Bytes == 0 ? "not modelled by the training estimator yet" : Gigabytes(saved)));
            }

            if (Try(Training() with { GradientCheckpointing = Checkpointing.Full }) is { } checkpointed && Sum(checkpointed, ComponentKind.Activations, ComponentKind.Logits).Bytes > 0)
            {
                steps.Add(new ExplanationStep("with gradient checkpointing", ActivationParts(checkpointed), Gigabytes(Sum(checkpointed, ComponentKind.Activations, ComponentKind.Logits))));
            }

            return new ExplanationSection("activations", "5. Activations", text, steps);
        }

        public ExplanationSection Lora()
        {
            LoraSettings lora = scenario.Lora ?? LoraSettings.Default;
            var text = new List<string>
            {
                "Fine-tuning adapts a trained model to a task. Updating every weight costs as much as training, so parameter-efficient "
                + "methods train a few new ones instead. LoRA freezes each chosen weight matrix W (out × in) and learns a low-rank "
                + "correction B·A beside it, with A of r × in and B of out × r: r × (in + out) new parameters per matrix. The frozen "
                + "base needs no gradients or optimizer state; only the adapters do. QLoRA also stores the frozen base in 4-bit NF4.",
            };
            var steps = new List<ExplanationStep>();
            if (_architecture is not { } a)
            {
                text.Add("Counting adapters needs the model's matrices and their shapes; give a model id or config.json.");
                return new ExplanationSection("lora", "6. LoRA and QLoRA", text, steps);
            }

            LoraAdapters adapters;
            try
            {
                adapters = LoraAdapters.For(a, lora);
            }
            catch (ModelFormatException refused)
            {
                text.Add(refused.Message);
                return new ExplanationSection("lora", "6. LoRA and QLoRA", text, steps);
            }

            foreach (var group in adapters.Targets.GroupBy(t => t.Module))
            {
                TensorSpec t = group.First();
                long experts = t.Shape.Length == 3 ? t.Shape[0] : 1;
                long each = checked(experts * lora.Rank * (t.InFeatures + t.OutFeatures));
                string perMatrix = $"{lora.Rank} × ({Estimation.Text.N(t.InFeatures)} + {Estimation.Text.N(t.OutFeatures)})" + (experts > 1 ? $" × {experts} experts" : "");
                steps.Add(new ExplanationStep(group.Key, $"{group.Count()} × {perMatrix}", Estimation.Text.N(group.Count() * each)));
            }

            if (lora.Dora)
            {
                steps.Add(new ExplanationStep("DoRA magnitudes", "one vector of out per adapted matrix", Estimation.Text.N(adapters.Targets.Sum(t => (long)t.OutFeatures))));
            }

            steps.Add(new ExplanationStep("trainable", $"r = {lora.Rank} on {lora.Targets}", $"{Estimation.Text.N(adapters.TrainableParameters)} = {Percent(adapters.TrainableParameters, _parameters)} of {P}"));
            MemoryEstimate adapterStates = MemoryEstimator.Estimate(new ResolvedModel("adapters", null, "parameter count", null, adapters.TrainableParameters),
                new Scenario { Model = new ModelReference.ParameterCount(adapters.TrainableParameters), Mode = Mode.Training });
            steps.Add(new ExplanationStep("adapter training states", $"{Count(adapters.TrainableParameters)} × {adapterStates.DeviceTotal.Bytes / adapters.TrainableParameters} B",
                Gigabytes(adapterStates.DeviceTotal)));
            if (Try(Inference(WeightFormats.Nf4)) is { } nf4 && Try(Inference(WeightFormats.Bf16)) is { } bf16)
            {
                steps.Add(new ExplanationStep("frozen base, LoRA", Weight(bf16).Formula, Gigabytes(Weight(bf16).Bytes)));
                steps.Add(new ExplanationStep("frozen base, QLoRA", Weight(nf4).Formula, Gigabytes(Weight(nf4).Bytes)));
            }

            return new ExplanationSection("lora", "6. LoRA and QLoRA", text, steps);
        }

        public ExplanationSection EffectiveBatch()
        {
            int target = Planning.FitPlanner.DefaultTargetBatch;
            long perStep = (long)scenario.Batch * scenario.Parallel.DataParallel;
            long accumulate = (target + perStep - 1) / perStep;
            var text = new List<string>
            {
                "The batch is how many sequences go through the model at once; activations and logits grow with it. Gradient "
                + "accumulation runs several such micro-batches and adds up their gradients before one optimizer step, so each update "
                + "sees a larger effective batch while memory stays that of one micro-batch — at the price of more time per update. "
                + "Fine-tuning usually aims for an effective batch between 4 and 16, found by trying.",
            };
            var steps = new List<ExplanationStep>
            {
                new("effective batch", $"{scenario.Batch} micro-batch × {scenario.GradientAccumulation} accumulation × {scenario.Parallel.DataParallel} data-parallel GPUs",
                    Estimation.Text.N(scenario.EffectiveBatch)),
                new($"to reach {target}", $"⌈{target} ÷ ({scenario.Batch} × {scenario.Parallel.DataParallel})⌉ accumulation steps", $"--gradient-accumulation {accumulate}"),
            };
            return new ExplanationSection("effective_batch", "7. Effective batch", text, steps);
        }

        public ExplanationSection KvCache()
        {
            var text = new List<string>
            {
                "Generating text one token at a time would recompute the keys and values of every earlier token at each step. "
                + "Inference caches them instead: for every layer, a key and a value vector per token (per KV head). The cache grows "
                + "with context length and batch; grouped-query attention shrinks it by sharing KV heads between query heads.",
            };
            var steps = new List<ExplanationStep>();
            if (_architecture is not { } a)
            {
                text.Add("The cache needs the layers, KV heads and head size; give a model id or config.json.");
                return new ExplanationSection("kv_cache", "8. Inference: the KV cache", text, steps);
            }

            if (Try(Inference(scenario.IsTraining ? null : scenario.Weights) with { Engine = Engine.Transformers }) is { } inference
                && inference.Components.FirstOrDefault(c => c.Kind == ComponentKind.KvCache) is { } kv)
            {
                // The estimate's own numbers (MLA caches K and V of different widths; the cache type is the compute type's).
                long tokens = (long)scenario.Batch * scenario.Seq;
                steps.Add(new ExplanationStep("KV cache", kv.Formula, Gigabytes(kv.Bytes)));
                steps.Add(new ExplanationStep("per token", $"{Estimation.Text.N(kv.Bytes.Bytes)} B ÷ ({scenario.Batch} × {Estimation.Text.N(scenario.Seq)} tokens), K and V in all {a.LayerCount} layers",
                    $"{Estimation.Text.N(kv.Bytes.Bytes / tokens)} B"));
            }

            return new ExplanationSection("kv_cache", "8. Inference: the KV cache", text, steps);
        }

        /// <summary>The scenario as inference with transformers on one GPU, in <paramref name="weights"/> (null: the model's own).</summary>
        private Scenario Inference(WeightFormat? weights) => scenario with
        {
            Mode = Mode.Inference,
            Engine = Engine.Transformers,
            Weights = weights,
            Parallel = new ParallelSettings(),
            Lora = null,
        };

        /// <summary>The scenario as training (its own training mode, or full training for an inference scenario).</summary>
        private Scenario Training() => scenario.IsTraining
            ? scenario
            : scenario with { Mode = Mode.Training, Engine = Engine.Transformers, Weights = null };

        private MemoryEstimate? Try(Scenario variant)
        {
            try
            {
                // A walk's variant is built here, not typed by the user: the options it no longer uses are not refused.
                return MemoryEstimator.Estimate(model, variant with { Given = GivenFields.None });
            }
            catch (Exception error) when (error is ModelFormatException or OverflowException or NotSupportedException)
            {
                return null;
            }
        }
    }

    private static MemoryComponent Weight(MemoryEstimate estimate) =>
        estimate.Components.First(c => c.Kind == ComponentKind.Weights);

    private static ByteSize Sum(MemoryEstimate estimate, params ComponentKind[] kinds) =>
        estimate.Components.Where(c => c.Residence == Residence.Device && kinds.Contains(c.Kind)).Aggregate(ByteSize.Zero, (sum, c) => sum + c.Bytes);

    private static string ActivationParts(MemoryEstimate estimate)
    {
        string[] parts = estimate.Components.Where(c => c.Kind is ComponentKind.Activations or ComponentKind.Logits).Select(c => c.Name).ToArray();
        return parts.Length == 0 ? "activations and logits of the training estimate" : string.Join(" + ", parts);
    }

    private static string Share(long part, long total) => Percent(part, total) + " of the total";

    private static string Percent(long part, long total) =>
        (100.0 * part / total).ToString(part * 1000 < total ? "0.000" : "0.00", System.Globalization.CultureInfo.InvariantCulture) + " %";

    private static string Stored(double value) => value.ToString("G18", System.Globalization.CultureInfo.InvariantCulture);
}
