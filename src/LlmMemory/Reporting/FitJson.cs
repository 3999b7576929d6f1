using System.Text.Json.Nodes;
using LlmMemory.Estimation;
using LlmMemory.Planning;
using LlmMemory.Workloads;

namespace LlmMemory.Reporting;

/// <summary>The stable snake_case JSON of a <see cref="FitPlan"/> (<c>fit --json</c>).</summary>
/// <remarks>
/// <c>max_seq</c>, <c>max_batch</c>, <c>min_gpus</c> and <c>gpu_bytes</c> are the contract; each has a <c>…_limit</c>
/// saying what the next value runs into and a <c>…_reason</c> with the numbers. <c>fits</c> is the scenario as given, by
/// the same rule as <c>estimate --gpu … --json</c>.
/// </remarks>
public static class FitJson
{
    public static JsonObject Plan(FitPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        Scenario s = plan.Scenario;
        var json = new JsonObject
        {
            ["model"] = EstimateJson.Model(plan.Model),
            ["mode"] = Names.Of(s.Mode),
            ["engine"] = Names.Of(s.Engine),
            ["gpu"] = plan.Gpu.Id,
            ["gpu_name"] = plan.Gpu.Name,
            ["gpu_bytes"] = plan.Budget.Bytes,
            ["gpus"] = s.Parallel.Gpus,
            ["batch"] = s.Batch,
            ["seq"] = s.Seq,
            ["context"] = plan.Context,
            ["serves_requests"] = plan.ServesRequests,
            ["fits"] = plan.Fits,
            ["total_bytes"] = plan.AsGiven?.DeviceTotal.Bytes,
            ["peak_phase"] = plan.AsGiven?.PeakPhase,
            ["refusal"] = plan.AsGivenRefusal,
        };
        Solved(json, "max_seq", plan.MaxSeq);
        Solved(json, "max_batch", plan.MaxBatch);
        json["context_window"] = plan.ContextWindow;
        json["min_gpus"] = plan.MinGpus.Count;
        json["min_gpus_layout"] = plan.MinGpus.Layout;
        json["min_gpus_supported"] = plan.MinGpus.Supported;
        json["min_gpus_reason"] = plan.MinGpus.Reason;
        if (!s.IsTraining)
        {
            json["format_needed"] = plan.FormatNeeded;
            json["formats"] = Options(plan.Formats);
            json["serving"] = plan.Serving is { } serving ? Serving(serving) : null;
        }
        else
        {
            json["gradient_accumulation"] = plan.Accumulation is { } a ? Accumulation(a) : null;
            json["changes"] = Options(plan.Changes);
            json["cheapest_change"] = plan.CheapestChange?.Name;
        }

        json["notes"] = new JsonArray(plan.Notes.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray());
        json["estimate"] = plan.AsGiven is { } estimate ? EstimateJson.Estimate(estimate, s) : null;
        return json;
    }

    /// <summary>snake_case name of a limit (<c>memory</c>, <c>search_limit</c>, …).</summary>
    public static string Name(SolveLimit limit) => limit switch
    {
        SolveLimit.Memory => "memory",
        SolveLimit.Estimator => "estimator",
        SolveLimit.SearchLimit => "search_limit",
        SolveLimit.NothingFits => "nothing_fits",
        SolveLimit.KvPool => "kv_pool",
        _ => throw new ArgumentOutOfRangeException(nameof(limit)),
    };

    private static void Solved(JsonObject json, string key, SolvedValue value)
    {
        json[key] = value.Value;
        json[key + "_limit"] = Name(value.Limit);
        json[key + "_reason"] = value.Reason;
    }

    private static JsonArray Options(IReadOnlyList<PlanOption> options) =>
        new(options.Select(o => (JsonNode?)new JsonObject
        {
            ["name"] = o.Name,
            ["cost"] = o.Cost,
            ["total_bytes"] = o.Estimate?.DeviceTotal.Bytes,
            ["weights_bytes"] = o.Weights?.Bytes,
            ["fits"] = o.Fits,
            ["refusal"] = o.Refusal,
        }).ToArray());

    private static JsonObject Serving(ServingCapacity s) => new()
    {
        ["engine"] = Names.Of(s.Engine),
        ["kv_tokens"] = s.Estimate is null ? null : s.KvTokens,
        ["max_model_len"] = s.Estimate is null ? null : s.MaxModelLen,
        ["request_tokens"] = s.RequestTokens,
        ["max_concurrency"] = s.Estimate is null ? null : s.MaxConcurrency,
        ["reason"] = s.Estimate is null ? null : s.Reason,
        ["refusal"] = s.Refusal,
    };

    private static JsonObject Accumulation(AccumulationPlan a) => new()
    {
        ["target_batch"] = a.TargetBatch,
        ["micro_batch"] = a.MicroBatch,
        ["steps"] = a.Steps,
        ["data_parallel"] = a.DataParallel,
        ["effective_batch"] = a.EffectiveBatch,
        ["reason"] = a.Reason,
    };
}
