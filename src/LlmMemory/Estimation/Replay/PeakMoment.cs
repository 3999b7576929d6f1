using System.Globalization;

namespace LlmMemory.Estimation.Replay;

/// <summary>Where a replay's phases are, in words, and the timeline of one step around the peak.</summary>
internal static class PeakMoment
{
    /// <summary>"loss and start of backward", "optimizer step (step 1: states created)", "prefill: head (logits)", "forward, layer 12".</summary>
    public static string Describe(ReplayResult result, int layers)
    {
        ArgumentNullException.ThrowIfNull(result);
        string phase = result.PeakPhase;
        string micro = phase.Contains(".mb", StringComparison.Ordinal) ? $" (micro-batch {Between(phase, ".mb", ".")})" : "";
        if (phase.StartsWith("forward", StringComparison.Ordinal))
        {
            return phase.EndsWith(":head", StringComparison.Ordinal) ? "prefill: head (logits)" : $"prefill: layer {After(phase, ":layer")}";
        }

        if (phase.StartsWith("decode", StringComparison.Ordinal))
        {
            string step = phase.Split(':')[0]["decode".Length..];
            return phase.EndsWith(":head", StringComparison.Ordinal) ? $"decode step {step}: head" : phase.Contains(":layer", StringComparison.Ordinal) ? $"decode step {step}: layer {After(phase, ":layer")}" : $"decode step {step}";
        }

        if (phase.EndsWith(".optimizer", StringComparison.Ordinal))
        {
            return phase.StartsWith("step1.", StringComparison.Ordinal) ? "optimizer step (step 1: states created)" : "optimizer step";
        }

        if (phase.Contains(".forward", StringComparison.Ordinal))
        {
            return (phase.EndsWith(":head", StringComparison.Ordinal) ? "loss (end of forward)" : $"forward, layer {After(phase, ":layer")}") + micro;
        }

        string recompute = phase.EndsWith("/recompute", StringComparison.Ordinal) ? " (recomputing its checkpointed forward)" : "";
        return result.PeakBackwardLayer switch
        {
            int l when l >= layers => "loss and start of backward",
            -1 => "backward, embeddings",
            int l => $"backward, layer {l}{recompute}",
            null => "backward",
        } + micro;
    }

    /// <summary>
    /// The phase boundaries of the step that holds the peak (its micro-batch, then the optimizer step), after the loaded
    /// model, with the peak itself inserted: live tensors plus <paramref name="outside"/>, the memory outside the allocator.
    /// </summary>
    public static IReadOnlyList<TimelinePoint> Timeline(ReplayResult result, ByteSize outside)
    {
        ArgumentNullException.ThrowIfNull(result);
        string step = result.PeakPhase.Split('.', ':', '/')[0];
        string unit = result.PeakPhase.Contains(".mb", StringComparison.Ordinal) ? result.PeakPhase[..result.PeakPhase.IndexOf('.', step.Length + 1)] : step;
        var points = new List<TimelinePoint> { new("load", new ByteSize(result.LoadedBytes) + outside) };
        for (int i = 0; i < result.Timeline.Count; i++)
        {
            ReplayPoint p = result.Timeline[i];
            if (i == result.PeakIndex)
            {
                points.Add(new TimelinePoint("peak", new ByteSize(result.PeakAllocated) + outside));
            }

            if (p.Phase.StartsWith(unit + ".", StringComparison.Ordinal) || p.Phase.StartsWith(step + ".optimizer", StringComparison.Ordinal)
                || p.Phase.StartsWith(unit + ":", StringComparison.Ordinal) || p.Phase == unit)
            {
                points.Add(new TimelinePoint(Label(p.Phase), new ByteSize(p.Allocated) + outside));
            }
        }

        if (result.PeakIndex >= result.Timeline.Count)
        {
            points.Add(new TimelinePoint("peak", new ByteSize(result.PeakAllocated) + outside));
        }

        return points;
    }

    /// <summary>"forward layer 3", "loss", "backward layer 3", "optimizer step"; inference "prefill layer 3", "head (logits)".</summary>
    private static string Label(string phase)
    {
        bool inference = phase.StartsWith("forward", StringComparison.Ordinal);
        string where = phase.Contains(':', StringComparison.Ordinal) ? phase[(phase.IndexOf(':', StringComparison.Ordinal) + 1)..] : "";
        string what = phase.EndsWith(".optimizer", StringComparison.Ordinal) ? "optimizer step"
            : phase.StartsWith("decode", StringComparison.Ordinal) ? $"decode step {phase.Split(':')[0]["decode".Length..]}"
            : inference ? "prefill"
            : phase.Contains(".forward", StringComparison.Ordinal) ? "forward" : "backward";
        return (what, where) switch
        {
            ("optimizer step", _) => what,
            ("prefill", "head") => "head (logits)",
            ("forward", "head") => "loss",
            ("backward", "") => "backward (loss)",
            (_, "") => what,
            (_, _) when where.StartsWith("layer", StringComparison.Ordinal) => $"{what} layer {where[5..]}",
            _ => $"{what} {where}",
        };
    }

    private static string After(string text, string marker) => text[(text.IndexOf(marker, StringComparison.Ordinal) + marker.Length)..].Split('/')[0];

    private static string Between(string text, string start, string end)
    {
        string rest = After(text, start);
        int stop = rest.IndexOf(end, StringComparison.Ordinal);
        return (stop < 0 ? rest : rest[..stop]).ToString(CultureInfo.InvariantCulture);
    }
}
