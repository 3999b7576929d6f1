using System.Collections.Frozen;

namespace LlmMemory.Workloads;

/// <summary>
/// The scenario fields an input named, as JSON paths (<c>seq</c>, <c>parallel.tp</c>), with where each came from (a file, a
/// request, a flag) so a later refusal can name it. Equal when they hold the same paths, wherever those came from.
/// </summary>
public sealed class GivenFields : IEquatable<GivenFields>
{
    private readonly FrozenSet<string> _paths;
    private readonly Func<string, string> _origin;
    private readonly string _key;

    public GivenFields(IEnumerable<string> paths, Func<string, string>? origin = null)
    {
        ArgumentNullException.ThrowIfNull(paths);
        _paths = paths.ToFrozenSet(StringComparer.Ordinal);
        _origin = origin ?? (_ => "scenario");
        _key = string.Join(",", _paths.Order(StringComparer.Ordinal));
    }

    /// <summary>No field named: a scenario built in code.</summary>
    public static GivenFields None { get; } = new([]);

    /// <summary>Where <paramref name="path"/> came from: the flag that set it, else the file or request ("scenario" when built in code).</summary>
    public string OriginOf(string path) => _origin(path);

    /// <summary>The paths, in no particular order.</summary>
    public IReadOnlyCollection<string> Paths => _paths;

    public bool Contains(string path) => _paths.Contains(path);

    /// <summary>The same paths without those <paramref name="drop"/> matches (a planner that changes the engine drops what the new one does not read).</summary>
    public GivenFields Without(Func<string, bool> drop)
    {
        ArgumentNullException.ThrowIfNull(drop);
        return new GivenFields(_paths.Where(p => !drop(p)), _origin);
    }

    public bool Equals(GivenFields? other) => other is not null && _key == other._key;

    public override bool Equals(object? obj) => Equals(obj as GivenFields);

    public override int GetHashCode() => _key.GetHashCode(StringComparison.Ordinal);

    public override string ToString() => _key;
}
