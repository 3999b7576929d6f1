using System.Collections.Immutable;
using LlmMemory.Models;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The tensors of a model's GGUF file: the file's own when the model was read from one, else the tensors
/// <c>convert_hf_to_gguf.py</c> would write for the config (names per <see cref="GgufNames"/>, shapes reversed to ggml order).
/// </summary>
internal static class GgufTensorList
{
    public static IReadOnlyList<GgufTensor> Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (IsGgufFile(model))
        {
            return model.Tensors.Tensors.Select(t => FromFile(t, model.LayerCount)).ToArray();
        }

        var tensors = model.Tensors.Tensors
            .Select(t => (Spec: t, Name: GgufNames.Of(t, model.ModelType)))
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

    /// <summary>A model read from a GGUF file: every tensor has a stored ggml type and the names are llama.cpp's.</summary>
    public static bool IsGgufFile(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        IReadOnlyList<TensorSpec> tensors = model.Tensors.Tensors;
        return tensors.Count > 0 && tensors.All(t => t.Stored is not null)
            && tensors.Any(t => t.Name == "token_embd.weight" || t.Name.StartsWith("blk.", StringComparison.Ordinal));
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
