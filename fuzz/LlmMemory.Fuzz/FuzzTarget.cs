namespace LlmMemory.Fuzz;

/// <summary>A reader or service under fuzzing: valid seed inputs to mutate, and the call that runs one input.</summary>
/// <param name="Name">Name used on the command line and in reports (<c>config</c>, <c>safetensors</c>, <c>gguf</c>, <c>api</c>, <c>hub</c>).</param>
/// <param name="Seeds">Valid inputs; every mutated input starts as one of them.</param>
/// <param name="JsonRange">Where the JSON text of a seed lies (the whole config, a safetensors header), for token-aware mutations; null for binary formats.</param>
/// <param name="Read">Runs one input to the end, as the CLI or server would; returns normally with a value or throws.</param>
/// <param name="Refusals">The exceptions that are a clean refusal of bad input (one sentence for the user); null: <see cref="ModelFormatException"/> only.</param>
/// <param name="TimeLimit">Time one input may take; null: <see cref="ReaderFuzzer.TimeLimit"/>.</param>
public sealed record FuzzTarget(string Name, IReadOnlyList<byte[]> Seeds, Func<byte[], Range?>? JsonRange, Action<byte[]> Read,
    Func<Exception, bool>? Refusals = null, TimeSpan? TimeLimit = null)
{
    /// <summary>Time one input may take.</summary>
    public TimeSpan Limit => TimeLimit ?? ReaderFuzzer.TimeLimit;

    /// <summary>Whether <paramref name="error"/> is how this target refuses bad input, as opposed to a crash.</summary>
    public bool IsRefusal(Exception error) => Refusals?.Invoke(error) ?? error is ModelFormatException;
}
