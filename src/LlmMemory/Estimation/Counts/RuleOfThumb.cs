using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Counts;

/// <summary>The essay's arithmetic for a bare parameter count: bytes per parameter, 16 B/param to train, the frozen base for LoRA.</summary>
/// <remarks>
/// Weights = parameters × bytes per parameter of the format (4 for fp32, 2 for bf16/fp16). Training with AdamW in mixed
/// precision = (2 + 4) weights + 2 gradients + 8 optimizer = 16 B/param (ZeRO paper §3, arXiv:1910.02054: 2Ψ + 2Ψ + 12Ψ;
/// the essay's 7B × 16 = 112 GB). Without an architecture nothing else (activations, KV cache) can be computed.
/// </remarks>
internal static class RuleOfThumb
{
    public static MemoryEstimate Estimate(ResolvedModel model, Scenario scenario)
    {
        long p = model.ParameterCount;
        WeightFormat format = scenario.Weights is not null ? scenario.Weights
            : scenario.Mode == Mode.Qlora ? WeightFormats.Nf4 : WeightFormats.Bf16;
        double bytesPerParameter = format.Type.BitsPerElement / 8;
        Parallel.ShardPlan plan = Parallel.ShardPlan.For(scenario);
        var components = new List<MemoryComponent>();
        var notes = new List<string>
        {
            "Only a parameter count was given, so activations, KV cache and runtime overheads are not included; give a model id or config for the full estimate.",
        };
        if (scenario.IsTraining && plan.Dp == 1 && (scenario.Parallel.Zero > 0 || scenario.Parallel.Fsdp != FsdpMode.None))
        {
            notes.Add($"ZeRO and FSDP shard over the data-parallel GPUs; with {plan.Dp} ({scenario.Parallel.Gpus} GPUs ÷ tp × pp × cp) nothing is sharded.");
        }

        if (!scenario.IsTraining)
        {
            components.Add(Part("weights", ComponentKind.Weights, p, bytesPerParameter, $"{format.Name} weights"));
        }
        else if (scenario.IsAdapterTraining)
        {
            // LoRA freezes the base: its weights only, in their format (QLoRA: 4-bit NF4 codes). The adapters' count comes
            // from the layer shapes, which a bare count does not have.
            components.Add(Part("weights", ComponentKind.Weights, p, bytesPerParameter, $"frozen base in {format.Name}", plan.ParameterShards));
            notes.Add("LoRA adapters, their gradients and optimizer states depend on the layer shapes and are not included (for r = 16 on every linear layer of Llama-3-8B they are 41,943,040 parameters, 0.52 %).");
            if (format.Type.IsQuantized)
            {
                notes.Add($"{format.Name} weights counted at {Text.Bytes(bytesPerParameter)} per parameter: the quantization scales and the tensors kept in 16 bits (embeddings, head, norms) need the architecture.");
            }
        }
        else
        {
            // ZeRO paper (arXiv:1910.02054) Figure 1: stage 1 shards the optimizer states (fp32 master + moments, K = 12),
            // stage 2 also the gradients, stage 3 also the 16-bit parameters, each over the N_d data-parallel ranks. Mixed
            // precision keeps a 16-bit compute copy and an fp32 master (2 + 4 B), 16-bit gradients (2 B) and optimizer states
            // over the fp32 master (AdamW: 8 B): the essay's 16 B/param. Pure bf16 and fp32 keep one copy, in their type.
            Precision precision = scenario.EffectivePrecision;
            OptimizerKind optimizer = scenario.Optimizer ?? OptimizerKind.AdamW;
            bool mixed = precision is Precision.MixedBf16 or Precision.MixedFp16 or Precision.Fp8;
            double copy = precision == Precision.Fp32 ? 4 : 2;
            double updated = mixed ? 4 : copy;
            components.Add(Part("weights", ComponentKind.Weights, p, copy, mixed ? "bf16/fp16 compute copy" : $"{Names.Of(precision)} parameters", plan.ParameterShards));
            if (mixed)
            {
                components.Add(Part("master_weights", ComponentKind.MasterWeights, p, 4, "fp32 master copy", plan.OptimizerShards));
            }

            components.Add(Part("gradients", ComponentKind.Gradients, p, copy, mixed ? "16-bit gradients" : $"{Names.Of(precision)} gradients", plan.GradientShards));
            double states = Training.OptimizerStates.Bytes([(p, (long)(p * updated), [p])], optimizer) / (double)p;
            if (states > 0)
            {
                components.Add(Part("optimizer_states", ComponentKind.OptimizerStates, p, states,
                    $"{Names.Of(optimizer)} states over the {(updated == 4 ? "fp32" : "16-bit")} {(mixed ? "master" : "parameters")}", plan.OptimizerShards));
            }
        }

        return new MemoryEstimate
        {
            Model = model,
            Parameters = new ParameterSummary(p, scenario.Mode == Mode.Training ? p : 0, p),
            Components = components,
            PeakPhase = scenario.Mode == Mode.Training ? "optimizer step" : "load",
            DeviceCount = scenario.IsTraining ? plan.Gpus : 1,
            Notes = notes,
        };
    }

    /// <summary>The essay's model states of full training in mixed precision with AdamW: 16 B per parameter, from the rule's own parts.</summary>
    public static Formula ModelStates(long parameters)
    {
        var scenario = new Scenario { Model = new ModelReference.ParameterCount(parameters), Mode = Mode.Training };
        ByteSize total = Estimate(new ResolvedModel(Text.N(parameters), null, "parameter count", null, parameters), scenario).DeviceTotal;
        return Formula.Count(parameters, "params") * Formula.Bytes(total.Bytes / (double)parameters, "compute copy, fp32 master, gradients and AdamW moments");
    }

    private static MemoryComponent Part(string name, ComponentKind kind, long parameters, double bytesPerParameter, string what, int shards = 1)
    {
        Formula bytes = Formula.Count(parameters, "params") * Formula.Bytes(bytesPerParameter, what);
        return MemoryComponent.Of(name, kind, shards > 1 ? bytes / Formula.Count(shards, "ranks") : bytes);
    }
}
