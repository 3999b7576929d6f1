using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using LlmMemory.Models;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>
/// Estimates already made, per model instance and scenario (its model reference left out): a replay of PyTorch or of
/// ggml's graph costs milliseconds, and a page, a server or a solver asks for the same run again and again. Bounded per
/// model: past <see cref="MaxPerModel"/> scenarios the model's entries are dropped and the cache starts over.
/// </summary>
internal sealed class EstimateCache
{
    private const int MaxPerModel = 512;

    private static readonly ModelReference AnyModel = new ModelReference.Named("");

    private readonly ConditionalWeakTable<ModelArchitecture, ConcurrentDictionary<Scenario, MemoryEstimate>> _runs = new();

    /// <summary>The kept estimate of <paramref name="scenario"/> for this model, or the one <paramref name="estimate"/> makes.</summary>
    public MemoryEstimate GetOrAdd(ResolvedModel resolved, Scenario scenario, Func<MemoryEstimate> estimate)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(estimate);
        ConcurrentDictionary<Scenario, MemoryEstimate> runs = _runs.GetOrCreateValue(resolved.Architecture!);
        Scenario key = scenario with { Model = AnyModel, BaseDirectory = null };
        if (runs.TryGetValue(key, out MemoryEstimate? known))
        {
            return known with { Model = resolved };
        }

        MemoryEstimate made = estimate();
        if (runs.Count >= MaxPerModel)
        {
            runs.Clear();
        }

        runs[key] = made;
        return made;
    }
}
