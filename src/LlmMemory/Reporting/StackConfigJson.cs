using System.Text.Json.Nodes;
using LlmMemory.Workloads.StackConfigs;

namespace LlmMemory.Reporting;

/// <summary>
/// The JSON of a read stack config (<c>POST /api/stack-config</c>): the scenario fields it sets, each with the key it came from,
/// and the keys it read without a field, with those it did not use — what <c>--config</c> prints as notes, as data.
/// </summary>
public static class StackConfigJson
{
    public static JsonObject Describe(StackConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return new JsonObject
        {
            ["file"] = config.File,
            ["kind"] = config.Kind.ToString(),
            ["kind_description"] = StackConfig.Describe(config.Kind),
            ["settings"] = new JsonArray([.. config.Settings.Select(s => (JsonNode)new JsonObject
            {
                ["field"] = s.Field,
                ["value"] = s.Value?.DeepClone(),
                ["key"] = s.Key,
            })]),
            ["confirmed"] = new JsonArray([.. config.Confirmed.Select(c => (JsonNode?)JsonValue.Create(c))]),
            ["not_modelled"] = new JsonArray([.. config.NotModelled.Select(k => (JsonNode)new JsonObject { ["key"] = k.Key, ["why"] = k.Why })]),
            ["not_used"] = new JsonArray([.. config.NotUsed.Select(k => (JsonNode?)JsonValue.Create(k))]),
        };
    }
}
