using System.Collections.Concurrent;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>
/// Estimates already made, per model value (<see cref="ArchitectureDigest"/>) and scenario (its model reference and the
/// fields it names left out: those only decide which options are refused, before any estimate, and where a refusal points):
/// a replay of PyTorch or of ggml's graph costs milliseconds, and a page, a server or a solver asks for the same run again
/// and again, often with a config parsed anew each time (an inline config in an API body or a case file). Bounded in all:
/// past <see cref="MaxEntries"/> estimates kept, the cache starts over.
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

    private static readonly ConcurrentBag<EstimateCache> Instances = [];

    private readonly ConcurrentDictionary<(string Model, Scenario Scenario), Lazy<MemoryEstimate>> _runs = new();

    public EstimateCache() => Instances.Add(this);

    /// <summary>Forgets every kept estimate, so the next question is fresh (bench/ times fresh questions with it).</summary>
    public static void ClearAll()
    {
        foreach (EstimateCache cache in Instances)
        {
            cache._runs.Clear();
        }
    }

    /// <summary>Whether an estimate of <paramref name="scenario"/> for this model is kept, or being made by another caller.</summary>
    public bool Contains(ResolvedModel resolved, Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        return _runs.ContainsKey(Key(resolved, scenario));
    }

    /// <summary>The kept estimate of <paramref name="scenario"/> for this model, or the one <paramref name="estimate"/> makes.</summary>
    public MemoryEstimate GetOrAdd(ResolvedModel resolved, Scenario scenario, Func<MemoryEstimate> estimate)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        ArgumentNullException.ThrowIfNull(scenario);
        ArgumentNullException.ThrowIfNull(estimate);
        (string, Scenario) key = Key(resolved, scenario);
        while (true)
        {
            if (_runs.Count >= MaxEntries)
            {
                _runs.Clear();
            }

            // One Lazy per key: questions asked side by side (a fit's searches, a server's requests) wait for the one
            // estimate instead of each replaying it.
            var mine = new Lazy<MemoryEstimate>(estimate, LazyThreadSafetyMode.ExecutionAndPublication);
            Lazy<MemoryEstimate> kept = _runs.GetOrAdd(key, mine);
            try
            {
                MemoryEstimate made = kept.Value;
                return ReferenceEquals(kept, mine) ? made : made with { Model = resolved };
            }
            catch (Exception failed)
            {
                // A failure is not kept: the next question asks again. One that was another caller's cancellation is
                // not this caller's answer, so it asks again itself.
                _runs.TryRemove(KeyValuePair.Create(key, kept));
                if (ReferenceEquals(kept, mine) || failed is not OperationCanceledException)
                {
                    throw;
                }
            }
        }
    }

    private static (string Model, Scenario Scenario) Key(ResolvedModel resolved, Scenario scenario) =>
        (ArchitectureDigest.Of(resolved.Architecture!), scenario with { Model = AnyModel, BaseDirectory = null, Given = GivenFields.None });
}
