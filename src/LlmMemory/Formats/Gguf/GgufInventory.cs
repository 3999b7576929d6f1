using LlmMemory.Models;

namespace LlmMemory.Formats.Gguf;

/// <summary>Puts a GGUF model's own tensors (ggml types, exact bytes, llama.cpp names) in place of the inventory a config implies.</summary>
internal static class GgufInventory
{
    public static ModelArchitecture Replace(ModelArchitecture described, IReadOnlyList<GgufTensor> tensors, IReadOnlyList<string> files, string source)
    {
        bool fusedExperts = described.Tensors.Tensors.Any(t => t.Form == TensorForm.FusedExperts);
        var parameters = new List<TensorSpec>();
        var buffers = new List<TensorSpec>();
        var unknown = new List<string>();
        foreach (GgufTensor tensor in tensors)
        {
            if (GgufTensorNames.Describe(tensor.Name, described.ModelType) is not { } found)
            {
                unknown.Add(tensor.Name);
                parameters.Add(new TensorSpec(tensor.Name, tensor.Shape, TensorRole.Other,
                    tensor.Dimensions.Length == 1 ? TensorForm.Vector : TensorForm.LinearWeight, null, tensor.Name, tensor.Type));
                continue;
            }

            (GgufTensorNames.Meaning meaning, int? layer) = found;
            if (layer >= described.LayerCount && !meaning.IsBuffer)
            {
                throw new ModelFormatException(source, tensor.Name, $"belongs to block {layer}, but the metadata says there are {described.LayerCount} blocks.");
            }

            TensorForm form = meaning.Form == TensorForm.ExpertLinear && fusedExperts ? TensorForm.FusedExperts : meaning.Form;
            var spec = new TensorSpec(tensor.Name, tensor.Shape, meaning.Role, form, layer, meaning.Module, tensor.Type);
            (meaning.IsBuffer ? buffers : parameters).Add(spec);
        }

        CheckEmbedding(described, tensors, source);
        var inventory = new TensorInventory(parameters) { Buffers = buffers };
        var notes = new List<string>();
        if (unknown.Count > 0)
        {
            notes.Add($"{unknown.Count} tensor(s) have names llama.cpp does not define for this architecture and are counted as parameters: {string.Join(", ", unknown.Take(3))}.");
        }

        if (buffers.Count > 0)
        {
            notes.Add($"{buffers.Count} stored tensor(s) are not parameters (rope frequency tables, multi-token-prediction layers): {string.Join(", ", buffers.Take(3).Select(b => b.Name))}.");
        }

        if (inventory.ParameterCount != described.ParameterCount)
        {
            notes.Add($"The tensors hold {inventory.ParameterCount:N0} parameters; the metadata, read as config.json, describes {described.ParameterCount:N0}.");
        }

        return described with
        {
            Tensors = inventory,
            WeightsFile = new WeightsFile(WeightsFileFormat.Gguf, files, tensors.Sum(t => t.Bytes), notes),
        };
    }

    /// <summary>token_embd must be [vocab, hidden]: a file whose metadata and tensors disagree is refused rather than estimated.</summary>
    private static void CheckEmbedding(ModelArchitecture described, IEnumerable<GgufTensor> tensors, string source)
    {
        GgufTensor? embedding = tensors.FirstOrDefault(t => t.Name == "token_embd.weight");
        if (embedding is not null && (embedding.Dimensions.Length != 2 || embedding.Dimensions[0] != described.HiddenSize))
        {
            throw new ModelFormatException(source, embedding.Name,
                $"has dimensions [{string.Join(", ", embedding.Dimensions)}], but the metadata's embedding_length is {described.HiddenSize}.");
        }
    }
}
