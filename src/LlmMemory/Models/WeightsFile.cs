namespace LlmMemory.Models;

/// <summary>The weights file(s) a model's tensors were read from, header-only.</summary>
/// <param name="Format">Container format.</param>
/// <param name="Files">File names, in order (shards, GGUF splits).</param>
/// <param name="TensorBytes">Exact bytes of every tensor's data in the files, parameters and buffers: the sum of
/// <see cref="TensorSpec.StoredBytes"/> over <see cref="TensorInventory.Tensors"/> and <see cref="TensorInventory.Buffers"/>.</param>
/// <param name="Notes">What the reader noticed (a config/header mismatch, tensors outside the config's layout), one sentence each.</param>
public sealed record WeightsFile(WeightsFileFormat Format, IReadOnlyList<string> Files, long TensorBytes, IReadOnlyList<string> Notes);

/// <summary>Container formats of weights files.</summary>
public enum WeightsFileFormat
{
    /// <summary>Hugging Face safetensors: an 8-byte length, a JSON header, raw tensor data.</summary>
    Safetensors,

    /// <summary>llama.cpp GGUF (v2, v3): key/value metadata, tensor infos with ggml types, aligned data.</summary>
    Gguf,
}
