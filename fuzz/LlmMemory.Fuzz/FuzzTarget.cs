namespace LlmMemory.Fuzz;

/// <summary>A reader under fuzzing: valid seed files to mutate, and the call that reads one file.</summary>
/// <param name="Name">Name used on the command line and in reports (<c>config</c>, <c>safetensors</c>, <c>gguf</c>).</param>
/// <param name="Seeds">Valid inputs; every mutated input starts as one of them.</param>
/// <param name="JsonRange">Where the JSON text of a seed lies (the whole config, a safetensors header), for token-aware mutations; null for binary formats.</param>
/// <param name="Read">Reads one input to the end, as the CLI would; returns normally with a value or throws.</param>
public sealed record FuzzTarget(string Name, IReadOnlyList<byte[]> Seeds, Func<byte[], Range?>? JsonRange, Action<byte[]> Read);
