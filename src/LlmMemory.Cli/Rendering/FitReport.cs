using LlmMemory.Estimation;
using LlmMemory.Planning;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Rendering;

/// <summary>The answers of <c>fit</c> as a table of questions, then the formats (inference) or changes (training) tried.</summary>
internal static class FitReport
{
    public static void Write(CliOutput io, FitPlan plan)
    {
        Scenario s = plan.Scenario;
        MemoryEstimate? given = plan.AsGiven;
        string unit = s.IsTraining ? "sequence length" : "context";
        string workload = $"{Names.Of(s.Mode)} with {Names.Of(s.Engine)}, " + (plan.ServesRequests
            ? $"max_model_len {Output.Count(plan.Context)}"
            : $"batch {s.Batch}, {unit} {Output.Count(s.Seq)}")
            + (s.Parallel.Gpus > 1 ? $", {s.Parallel.Gpus} GPUs" : "");
        List<string[]> rows =
        [
            ["Fits as given?", plan.Fits ? "yes" : "no", given is null ? plan.AsGivenRefusal ?? "refused"
                : $"{given.DeviceTotal} of {plan.Budget} at {given.PeakPhase}" + (plan.AsGivenRefusal is { } r ? $", but {r}" : "")],
            [plan.ServesRequests ? "Largest max_model_len" : $"Largest {unit} at batch {s.Batch}", Value(plan.MaxSeq, "tokens"), plan.MaxSeq.Reason],
            [$"Largest {(s.IsTraining ? "micro-batch" : "batch")} at {Output.Count(plan.Context)} tokens", Value(plan.MaxBatch, ""), plan.MaxBatch.Reason],
            ["Fewest GPUs", plan.MinGpus.Count is int n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "-", plan.MinGpus.Reason],
        ];
        if (!s.IsTraining)
        {
            rows.Add(["Weight format needed", plan.FormatNeeded ?? "none fits", plan.FormatNeeded is null ? "see the formats below" : "the most bits that fit (formats below)"]);
            if (plan.Serving is { } serving)
            {
                rows.Add([$"Served by {Names.Of(serving.Engine)}", serving.Estimate is null ? "-" : $"{Output.Count(serving.MaxConcurrency)} requests",
                    serving.Estimate is null
                        ? serving.Refusal ?? "refused"
                        : serving.Reason]);
            }
        }
        else if (plan.Accumulation is { } a)
        {
            rows.Add([$"Reach effective batch {a.TargetBatch}", $"{a.MicroBatch} × {a.Steps}" + (a.DataParallel > 1 ? $" × {a.DataParallel}" : ""),
                $"--batch {a.MicroBatch} --gradient-accumulation {a.Steps}: {a.Reason} = {a.EffectiveBatch}"]);
        }

        if (s.IsTraining && !plan.Fits)
        {
            rows.Add(["Cheapest change that fits", plan.CheapestChange?.Name ?? "none tried fits", plan.CheapestChange?.Cost ?? "see the changes below"]);
        }

        Output.Table(io, ["Question", "Answer", "Why"], rows, rightAligned: [1],
            caption: $"{plan.Model.Name}: {workload} on {plan.Gpu.Name} ({plan.Budget} usable). Sizes in GiB = 2^30 bytes.");

        if (plan.Formats.Count > 0)
        {
            Output.Table(io, ["Format", "Weights", "Total", "Fits", "What"], plan.Formats.Select(Row), rightAligned: [1, 2],
                caption: $"Weight formats {Names.Of(s.Engine)} runs, most bytes first, " + (plan.ServesRequests
                    ? $"at max_model_len {Output.Count(plan.Context)}."
                    : $"at batch {s.Batch} and {Output.Count(s.Seq)} tokens."));
        }

        if (plan.Changes.Count > 0)
        {
            Output.Table(io, ["Change", "Total", "Fits", "Costs besides memory"],
                plan.Changes.Select(c => new[] { c.Name, c.Estimate?.DeviceTotal.ToString() ?? "-", c.Fits ? "yes" : "no", c.Refusal ?? c.Cost }),
                rightAligned: [1], caption: "Changes in order of what they give up: each alone, then together, then more GPUs.");
        }

        foreach (string note in plan.Notes)
        {
            io.WriteWrapped($"Note: {note}");
        }
    }

    private static string Value(SolvedValue value, string unit) =>
        value.Value is int v ? (value.Limit == SolveLimit.SearchLimit ? "≥ " : "") + Output.Count(v) + (unit.Length > 0 ? " " + unit : "") : "none";

    private static string[] Row(PlanOption option) =>
    [
        option.Name,
        option.Weights?.ToString() ?? "-",
        option.Estimate?.DeviceTotal.ToString() ?? "-",
        option.Fits ? "yes" : "no",
        option.Refusal ?? option.Cost,
    ];
}
