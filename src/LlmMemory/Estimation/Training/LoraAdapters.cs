using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Training;

/// <summary>The LoRA (and DoRA) adapters a scenario adds: which linear layers, and the exact trainable count.</summary>
/// <remarks>
/// Per adapted linear W [out, in]: A [r, in] + B [out, r] = r·(in + out) parameters (Hu et al. 2021, arXiv:2106.09685);
/// DoRA adds a magnitude vector of <c>out</c> (Liu et al. 2024, arXiv:2402.09353). PEFT matches a target name against the
/// end of each module's name; <c>all-linear</c> adapts every <c>nn.Linear</c> but the output layer; <c>attention</c>
/// adapts the attention projections. Experts fused into one 3-D parameter are not <c>nn.Linear</c> and are never adapted.
/// </remarks>
public sealed record LoraAdapters(IReadOnlyList<TensorSpec> Targets, int Rank, bool Dora, long TrainableParameters)
{
    public static LoraAdapters For(ModelArchitecture model, LoraSettings lora)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(lora);
        var targets = new List<TensorSpec>(model.Tensors.Tensors.Where(t => IsTarget(t, lora.Targets)));
        if (model.TiedEmbeddings && lora.Targets.Modules.Contains("lm_head"))
        {
            // A tied head is still an nn.Linear module (sharing the embedding weight), so PEFT adapts it.
            targets.Add(new TensorSpec("lm_head.weight", [model.VocabularySize, model.HiddenSize], TensorRole.OutputHead,
                TensorForm.LinearWeight, null, "lm_head"));
        }

        if (targets.Count == 0)
        {
            throw new ModelFormatException("lora", "targets",
                $"({lora.Targets}) match no linear module of this {model.ModelType} model; its modules are {string.Join(", ", LinearModules(model))}.");
        }

        long trainable = targets.Sum(t => Count(t, lora.Rank, lora.Dora));
        return new LoraAdapters(targets, lora.Rank, lora.Dora, trainable);
    }

    /// <summary>The trainable tensors' shapes: A [r, in] and B [out, r] per target (per expert for 3-D targets), and DoRA's magnitude [out].</summary>
    public IEnumerable<long[]> TrainableShapes() => Targets.SelectMany(t =>
    {
        long[] experts = t.Shape.Length == 3 ? [t.Shape[0]] : [];
        long[][] shapes = [[.. experts, Rank, t.InFeatures], [.. experts, t.OutFeatures, Rank]];
        return Dora ? [.. shapes, [.. experts, t.OutFeatures]] : shapes;
    });

    /// <summary>The names <c>--lora-targets</c> can use for this model.</summary>
    public static IReadOnlyList<string> LinearModules(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.Tensors.Tensors.Where(t => t.Form is TensorForm.LinearWeight or TensorForm.ExpertLinear)
            .Select(t => t.Module).Distinct().ToArray();
    }

    /// <summary>Adapter parameters of one target: r·(in + out) per expert, plus DoRA's magnitude of out.</summary>
    private static long Count(TensorSpec t, int rank, bool dora)
    {
        long experts = t.Shape.Length == 3 ? t.Shape[0] : 1;
        long perLinear = (long)rank * (t.InFeatures + t.OutFeatures) + (dora ? t.OutFeatures : 0);
        return checked(experts * perLinear);
    }

    private static bool IsTarget(TensorSpec t, LoraTargets targets)
    {
        if (t.Form is not (TensorForm.LinearWeight or TensorForm.ExpertLinear))
        {
            return false;
        }

        return targets.Preset switch
        {
            "all-linear" => t.Role != TensorRole.OutputHead,
            "attention" => t.Role == TensorRole.Attention,
            _ => targets.Modules.Any(name => t.Module == name || t.Name.EndsWith($".{name}.weight", StringComparison.Ordinal)
                || (name == "lm_head" && t.Role == TensorRole.OutputHead)),
        };
    }
}
