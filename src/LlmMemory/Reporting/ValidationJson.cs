using System.Text.Json.Nodes;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Reporting;

/// <summary>The JSON of a validation run exactly as docs/scenario.md ("<c>validate --json</c> output") defines it.</summary>
/// <remarks>
/// Cases keep input order. An unsupported case has <c>estimated_bytes</c> and <c>relative_error</c> null and a
/// <c>reason</c>. The summary's median, p90 (nearest rank) and max are over the cases in the error statistics (estimated,
/// no exact requirement, not low-confidence); they are null when there are none.
/// </remarks>
public static class ValidationJson
{
    public static JsonObject Report(ValidationReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        return new JsonObject
        {
            ["cases"] = new JsonArray(report.Results.Select(Case).ToArray<JsonNode?>()),
            ["summary"] = Summary(report.Summary),
        };
    }

    public static JsonObject Case(CaseResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        var json = new JsonObject
        {
            ["id"] = result.Case.Id,
            ["what"] = Names.Of(result.Case.Measured.What),
            ["measured_bytes"] = result.Case.Measured.Value,
            ["estimated_bytes"] = result.Estimated,
            ["relative_error"] = result.RelativeError,
            ["status"] = result.Status == CaseStatus.Ok ? "ok" : "unsupported",
        };
        if (result.Reason is not null)
        {
            json["reason"] = result.Reason;
        }

        return json;
    }

    public static JsonObject Summary(ValidationSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        return new JsonObject
        {
            ["count"] = summary.Count,
            ["ok"] = summary.Ok,
            ["unsupported"] = summary.Unsupported,
            ["median_abs_relative_error"] = summary.Errors.Median,
            ["p90_abs_relative_error"] = summary.Errors.P90,
            ["max_abs_relative_error"] = summary.Errors.Max,
            ["exact_matches"] = summary.ExactMatches,
            ["exact_required"] = summary.ExactRequired,
        };
    }
}
