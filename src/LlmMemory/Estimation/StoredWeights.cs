using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>Weights as a weights file stores them: each tensor's exact bytes (its stored type over its elements), by where it lives.</summary>
/// <remarks>
/// Applies when the model was read from a safetensors checkpoint or a GGUF file and no other weight format was asked for.
/// llama.cpp keeps the input embeddings in host memory (<c>llama-model.cpp</c>: the input layer's tensors are placed in
/// a CPU buffer, only the rows of the current tokens are copied), so for a GGUF file or the llama.cpp engine they are a
/// separate host component; every other tensor is on the device.
/// </remarks>
internal static class StoredWeights
{
    public static IReadOnlyList<MemoryComponent>? Components(ModelArchitecture model, Scenario scenario)
    {
        if (model.WeightsFile is not { } file || scenario.Weights is not null || scenario.IsTraining)
        {
            return null;
        }

        TensorSpec[] stored = [.. model.Tensors.Tensors, .. model.Tensors.Buffers];
        bool llamaCpp = file.Format == WeightsFileFormat.Gguf || scenario.Engine == Engine.LlamaCpp;
        Func<TensorSpec, bool> onHost = t => llamaCpp && t.Role is TensorRole.TokenEmbedding or TensorRole.PositionEmbedding or TensorRole.TokenTypeEmbedding;
        var components = new List<MemoryComponent> { Part("weights", Residence.Device, stored.Where(t => !onHost(t)).ToArray(), file) };
        TensorSpec[] host = stored.Where(onHost).ToArray();
        if (host.Length > 0)
        {
            components.Add(Part("weights_host", Residence.Host, host, file, "; llama.cpp keeps the input embeddings in host memory"));
        }

        return components;
    }

    private static MemoryComponent Part(string name, Residence residence, TensorSpec[] tensors, WeightsFile file, string why = "")
    {
        long bytes = tensors.Sum(t => t.StoredBytes!.Value);
        string types = string.Join(", ", tensors.GroupBy(t => t.Stored!.Name).OrderByDescending(g => g.Sum(t => t.StoredBytes!.Value))
            .Select(g => $"{g.Key} {Text.N(g.Sum(t => t.StoredBytes!.Value))} B"));
        return new MemoryComponent(name, ComponentKind.Weights, new ByteSize(bytes),
            $"{Text.N(tensors.Length)} tensors as stored in the {file.Format.ToString().ToLowerInvariant()} file ({types}){why}", residence);
    }
}
