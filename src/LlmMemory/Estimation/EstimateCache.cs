using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using LlmMemory.Models;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>
/// Estimates already made, per model instance and scenario (its model reference left out): a replay of PyTorch or of
/// ggml's graph costs milliseconds, and a page, a server or a solver asks for the same run again and again. Bounded in
/// all, not per model (the catalog's models live as long as the process, so a per-model bound grows with the catalog):
/// past <see cref="MaxEntries"/> estimates kept, every entry is dropped and the cache starts over.
/// </summary>
internal sealed class EstimateCache
{
    /// <summary>
    /// Estimates kept per cache. An estimate holds its components, formulas and peak timeline: tens of KiB for a 405B
    /// training replay (one timeline point per phase and layer), so the bound keeps a server's cache near 100 MiB
    /// whatever mix of models and scenarios it is asked (docs/performance.md measures the resident memory).
    /// </summary>
    private const int MaxEntries = 2048;

    private static readonly ModelReference AnyModel = new ModelReference.Named("");

    private readonly ConditionalWeakTable<ModelArchitecture, ConcurrentDictionary<Scenario, MemoryEstimate>> _runs = new();

    /// <summary>Entries added since the cache last started over (approximate under races; the bound is what matters).</summary>
    private int _kept;

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
        if (Interlocked.Increment(ref _kept) > MaxEntries)
        {
            _runs.Clear();
            Volatile.Write(ref _kept, 1);
            runs = _runs.GetOrCreateValue(resolved.Architecture!);
        }

        runs[key] = made;
        return made;
    }
}
