using System.Text.Json.Nodes;

namespace LlmMemory.Reporting;

/// <summary>The JSON of an <see cref="Explanation"/> (<c>explain --json</c>): sections with text and steps, and the estimate.</summary>
public static class ExplanationJson
{
    public static JsonObject Of(Explanation explanation)
    {
        ArgumentNullException.ThrowIfNull(explanation);
        var sections = new JsonArray();
        foreach (ExplanationSection section in explanation.Sections)
        {
            sections.Add((JsonNode)new JsonObject
            {
                ["key"] = section.Key,
                ["title"] = section.Title,
                ["text"] = new JsonArray(section.Text.Select(t => (JsonNode?)JsonValue.Create(t)).ToArray()),
                ["steps"] = new JsonArray(section.Steps.Select(s => (JsonNode?)new JsonObject
                {
                    ["label"] = s.Label,
                    ["formula"] = s.Formula,
                    ["result"] = s.Result,
                }).ToArray()),
            });
        }

        return new JsonObject
        {
            ["model"] = EstimateJson.Model(explanation.Model),
            ["sections"] = sections,
            ["estimate"] = EstimateJson.Estimate(explanation.Estimate, explanation.Scenario),
        };
    }
}
