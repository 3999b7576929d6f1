using System.Collections.Immutable;
using LlmMemory.Models;

namespace LlmMemory.Estimation.Weights;

/// <summary>
/// The tensors of a model's GGUF file: the file's own when the model was read from one, else the tensors
/// <c>convert_hf_to_gguf.py</c> would write for the config (names per <see cref="Formats.Gguf.GgufTensorNames"/>, shapes reversed to ggml order).
/// </summary>
internal static class GgufTensorList
{
    public static IReadOnlyList<GgufTensor> Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (IsGgufFile(model))
        {
            // The file's own tensors, rope frequency tables included (the reader lists them as buffers); llama.cpp skips the
            // multi-token-prediction layers (blk.N.nextn.*) when it loads a model.
            return model.Tensors.Tensors
                .Concat(model.Tensors.Buffers.Where(b => !b.Name.Contains(".nextn.", StringComparison.Ordinal)))
                .Select(t => FromFile(t, model.LayerCount))
                .ToArray();
        }

        var tensors = model.Tensors.Tensors
            .Select(t => (Spec: t, Name: Formats.Gguf.GgufTensorNames.NameOf(t, model.ModelType)))
            .Select(t => new GgufTensor(t.Name, Ne(t.Spec.Shape), LayerOf(t.Name, model.LayerCount), Source: t.Spec))
            .ToList();
        if (model.RopeScaling == "llama3")
        {
            // convert_hf_to_gguf.py LlamaModel.generate_extra_tensors: Llama-3.1-style scaling stores its n_rot/2 frequency
            // factors as one F32 tensor; llama.cpp creates it with layer 0 (and duplicates of a few hundred bytes elsewhere).
            tensors.Add(new GgufTensor("rope_freqs.weight", [model.HeadDimension / 2], 0));
        }

        return tensors;
    }

    /// <summary>A model read from a GGUF file: its tensors carry llama.cpp names and their stored ggml types.</summary>
    public static bool IsGgufFile(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return model.WeightsFile?.Format == WeightsFileFormat.Gguf && model.Tensors.Tensors.All(t => t.Stored is not null);
    }

    private static GgufTensor FromFile(TensorSpec t, int layers) => new(t.Name, Ne(t.Shape), LayerOf(t.Name, layers), t.Stored, t);

    /// <summary>
    /// The block of a <c>blk.N.</c> tensor; the output layer (n_layer) for the output head and final norm; layer 0 for
    /// <c>rope_freqs</c>; the input layer (−1) for the rest (<c>llama_model::load_tensors</c>: <c>dev_input</c>, <c>dev_output</c>).
    /// </summary>
    private static int LayerOf(string name, int layers) => GgufTensor.BlockOf(name) ?? name switch
    {
        "output.weight" or "output.bias" or "output_norm.weight" or "output_norm.bias" => layers,
        "rope_freqs.weight" => 0,
        _ => -1,
    };

    private static ImmutableArray<long> Ne(ImmutableArray<long> shape) => [.. shape.Reverse()];
}
