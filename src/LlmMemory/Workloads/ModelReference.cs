using System.Text.Json;

namespace LlmMemory.Workloads;

/// <summary>How a scenario names its model (docs/scenario.md <c>model</c>).</summary>
public abstract record ModelReference
{
    private ModelReference()
    {
    }

    /// <summary>A catalog id or alias, a path, or a parameter count such as "7B".</summary>
    public sealed record Named(string Text) : ModelReference
    {
        public override string ToString() => Text;
    }

    /// <summary>An inline <c>config.json</c> object (<c>{"config": {…}}</c>).</summary>
    public sealed record InlineConfig(JsonElement Config) : ModelReference
    {
        public override string ToString() => "inline config";
    }

    /// <summary>A bare parameter count for the rule-of-thumb estimate (<c>{"parameters": 7000000000}</c>).</summary>
    public sealed record ParameterCount(long Count) : ModelReference
    {
        public override string ToString() => Count.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " parameters";
    }
}
