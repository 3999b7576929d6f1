using System.Text.Json.Nodes;
using LlmMemory.Estimation;
using LlmMemory.Models;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Reporting;

/// <summary>The stable snake_case JSON of an estimate, shared by <c>estimate --json</c> and <c>POST /api/estimate</c>.</summary>
public static class EstimateJson
{
    public static JsonObject Model(ResolvedModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var json = new JsonObject
        {
            ["name"] = model.Name,
            ["hf_id"] = model.HfId,
            ["origin"] = model.Origin,
        };
        if (model.Architecture is ModelArchitecture a)
        {
            json["model_type"] = a.ModelType;
            json["layers"] = a.LayerCount;
            json["hidden_size"] = a.HiddenSize;
            json["attention_heads"] = a.AttentionHeadCount;
            json["kv_heads"] = a.KeyValueHeadCount;
            json["head_dim"] = a.HeadDimension;
            json["intermediate_size"] = a.IntermediateSize;
            json["vocab_size"] = a.VocabularySize;
            json["max_positions"] = a.MaxPositions;
            json["tied_embeddings"] = a.TiedEmbeddings;
            json["dtype"] = a.StoredType?.Name.ToLowerInvariant();
            if (a.Experts is MixtureOfExperts moe)
            {
                json["experts"] = moe.ExpertCount;
                json["active_experts"] = moe.ActiveExperts;
            }

            if (a.SlidingWindow is int window)
            {
                json["sliding_window"] = window;
                json["sliding_layers"] = a.LayerAttention.Count(k => k == AttentionKind.Sliding);
            }
        }

        return json;
    }

    /// <summary>Total, trainable and the breakdown by role (<c>embeddings</c>, <c>attention</c>, <c>mlp</c>, …).</summary>
    public static JsonObject Parameters(ResolvedModel model, long trainable)
    {
        ArgumentNullException.ThrowIfNull(model);
        var json = new JsonObject { ["total"] = model.ParameterCount, ["trainable"] = trainable };
        if (model.Architecture is not ModelArchitecture a)
        {
            return json;
        }

        foreach ((string name, long count) in ParameterBreakdown.Of(a))
        {
            json[name] = count;
        }

        json["active_per_token"] = a.ActiveParameterCount;
        if (a.PredictionLayerParameters > 0)
        {
            json["multi_token_prediction"] = a.PredictionLayerParameters;
        }

        return json;
    }

    public static JsonObject Estimate(MemoryEstimate estimate, Scenario scenario)
    {
        ArgumentNullException.ThrowIfNull(estimate);
        ArgumentNullException.ThrowIfNull(scenario);
        var components = new JsonArray();
        foreach (MemoryComponent c in estimate.Components)
        {
            components.Add((JsonNode)Component(c));
        }

        var json = new JsonObject
        {
            ["model"] = Model(estimate.Model),
            ["parameters"] = Parameters(estimate.Model, estimate.Parameters.Trainable),
            ["mode"] = Names.Of(scenario.Mode),
            ["engine"] = Names.Of(scenario.Engine),
            ["components"] = components,
            ["total_bytes"] = estimate.DeviceTotal.Bytes,
            ["host_bytes"] = estimate.HostTotal.Bytes,
            ["peak_phase"] = estimate.PeakPhase,
            ["devices"] = estimate.DeviceCount,
            ["device"] = estimate.Device,
            ["all_devices_bytes"] = estimate.AllDevicesTotal.Bytes,
        };
        if (estimate.Gpu is { } gpu)
        {
            json["gpu"] = gpu.Id;
            json["gpu_bytes"] = gpu.Budget?.Bytes;
            json["fits"] = estimate.Fits;
        }

        if (estimate.EngineAccepts is bool accepts)
        {
            json["engine_accepts"] = accepts;
        }

        var facts = new JsonObject();
        foreach (EstimateFact fact in estimate.Facts)
        {
            facts[fact.Key] = fact.Value;
        }

        json["facts"] = facts;
        var comparisons = new JsonArray();
        foreach (MemoryComponent c in estimate.Comparisons)
        {
            comparisons.Add((JsonNode)Component(c));
        }

        json["comparisons"] = comparisons;
        json["timeline"] = Timeline(estimate.Timeline);
        json["notes"] = new JsonArray(estimate.Notes.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray());
        return json;
    }

    /// <summary>Device memory over one step, in order: <c>[{"phase": "load", "bytes": N}, …]</c>; empty when not modelled.</summary>
    public static JsonArray Timeline(IReadOnlyList<TimelinePoint> timeline)
    {
        ArgumentNullException.ThrowIfNull(timeline);
        return new JsonArray(timeline.Select(p => (JsonNode?)new JsonObject { ["phase"] = p.Phase, ["bytes"] = p.Bytes.Bytes }).ToArray());
    }

    private static JsonObject Component(MemoryComponent c) => new()
    {
        ["name"] = c.Name,
        ["kind"] = c.Kind.ToString(),
        ["bytes"] = c.Bytes.Bytes,
        ["formula"] = c.Formula,
        ["residence"] = c.Residence == Residence.Device ? "device" : "host",
    };
}
