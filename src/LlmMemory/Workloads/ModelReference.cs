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

    /// <summary>
    /// A GGUF header without its file (<c>{"gguf": {"metadata": {…}, "tensors": [{"name", "shape", "type"}, …]}}</c>), as the
    /// page sends a dropped file's header; read by <see cref="Formats.Gguf.GgufHeaderJson"/> when the model is resolved.
    /// </summary>
    public sealed record GgufHeader(JsonElement Header) : ModelReference
    {
        public override string ToString() => "GGUF header";
    }

    /// <summary>A bare parameter count for the rule-of-thumb estimate (<c>{"parameters": 7000000000}</c>).</summary>
    public sealed record ParameterCount(long Count) : ModelReference
    {
        public override string ToString() => Count.ToString("N0", System.Globalization.CultureInfo.InvariantCulture) + " parameters";
    }
}
