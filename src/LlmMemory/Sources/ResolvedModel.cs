using LlmMemory.Models;

namespace LlmMemory.Sources;

/// <summary>A model ready to estimate: its architecture, or only a parameter count for the rule-of-thumb path.</summary>
/// <param name="Name">What to call it (catalog alias, file name, "7B").</param>
/// <param name="HfId">Hugging Face id, when known.</param>
/// <param name="Origin">Where it came from ("catalog", a path, "inline config", "parameter count").</param>
/// <param name="Architecture">The architecture; null for a bare parameter count.</param>
/// <param name="BareParameterCount">The count given instead of an architecture.</param>
public sealed record ResolvedModel(string Name, string? HfId, string Origin, ModelArchitecture? Architecture, long BareParameterCount = 0)
{
    /// <summary>Exact parameters from the architecture, else the given count.</summary>
    public long ParameterCount => Architecture?.ParameterCount ?? BareParameterCount;
}
