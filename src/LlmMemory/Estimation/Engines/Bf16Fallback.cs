using System.Runtime.CompilerServices;
using LlmMemory.Hardware;
using LlmMemory.Models;
using LlmMemory.Numerics;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation.Engines;

/// <summary>
/// A GPU without bf16 (data/gpus.json <c>bf16: false</c>: NVIDIA below compute capability 8.0, the T4 and the V100) runs a
/// bf16 checkpoint in fp16: vLLM's <c>dtype auto</c> picks fp16 there, and on such a GPU a bf16 checkpoint is loaded with
/// <c>torch_dtype=float16</c>. The estimate does the same (the same 2 bytes per value) and says so. A bf16 training
/// precision the input names is refused, naming the option and the GPU; the default mixed-bf16 becomes mixed-fp16.
/// </summary>
/// <remarks>llama.cpp is left alone: it converts to F16 unless told otherwise, and its bf16 tensors are its own choice.</remarks>
internal static class Bf16Fallback
{
    /// <summary>The fp16 copy of each architecture, kept so that the estimate cache (per architecture) still finds its runs.</summary>
    private static readonly ConditionalWeakTable<ModelArchitecture, ModelArchitecture> Fp16Copies = new();

    /// <summary>The model and scenario to estimate on <paramref name="scenario"/>'s GPU, and the note that says what changed.</summary>
    /// <exception cref="ModelFormatException">The input names a bf16 training precision and the GPU has no bf16.</exception>
    public static (ResolvedModel Model, Scenario Scenario, string? Note) Apply(ResolvedModel model, Scenario scenario)
    {
        if (scenario.Gpu is not { Bf16: false } gpu || scenario.Engine == Engine.LlamaCpp)
        {
            return (model, scenario, null);
        }

        string lacks = $"the {gpu.Name} has no bf16 ({Capability(gpu)}bf16 needs 8.0 or later)";
        if (scenario.IsTraining && scenario.Precision is Precision.MixedBf16 or Precision.Bf16)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("precision"), "precision",
                $"is \"{Names.Of(scenario.Precision.Value)}\", but {lacks}; use mixed-fp16 or fp32.");
        }

        if (scenario.IsTraining && scenario.Engine == Engine.Torchtune)
        {
            throw new ModelFormatException(scenario.Given.OriginOf("engine"), "engine",
                $"is \"torchtune\", whose recipes train in bf16, but {lacks}; give precision fp32.");
        }

        var changes = new List<string>();
        if (scenario.IsTraining && scenario.Precision is null)
        {
            if (scenario.EffectivePrecision == Precision.MixedBf16)
            {
                scenario = scenario with { Precision = Precision.MixedFp16 };
                changes.Add("trains in mixed-fp16 instead of the usual mixed-bf16");
            }
            else if (scenario.Weights is null)
            {
                // Pure 16-bit training (the LoRA default): the weights in fp16, the same bytes as bf16.
                scenario = scenario with { Weights = WeightFormats.Fp16 };
                changes.Add("holds the weights in fp16 instead of bf16");
            }
        }

        if (scenario.Weights == WeightFormats.Bf16)
        {
            scenario = scenario with { Weights = WeightFormats.Fp16 };
            changes.Add("estimates the bf16 weights in fp16");
        }

        if (model.Architecture is { } architecture && (architecture.StoredType is null || architecture.StoredType == DataTypes.BF16))
        {
            model = model with { Architecture = Fp16Copies.GetValue(architecture, a => a with { StoredType = DataTypes.F16 }) };
            if (scenario.Weights is null && !scenario.IsTraining)
            {
                changes.Add("loads the bf16 checkpoint in fp16");
            }
        }
        else if (model.Architecture is null && scenario.Weights is null && !scenario.IsTraining)
        {
            scenario = scenario with { Weights = WeightFormats.Fp16 };
            changes.Add("estimates the weights in fp16");
        }

        string? note = changes.Count == 0 ? null
            : $"{char.ToUpperInvariant(lacks[0])}{lacks[1..]}: the estimate {string.Join(" and ", changes.Distinct())}, as the engines fall back on such a GPU (the same 2 bytes per value).";
        return (model, scenario, note);
    }

    private static string Capability(Gpu gpu) => gpu.ComputeCapability is Version v ? $"compute capability {v}; " : "";
}
