using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>The fewest GPUs of one kind that run a scenario, spreading it the way its mode is usually spread.</summary>
/// <remarks>
/// transformers inference spreads whole layers with accelerate's <c>device_map="auto"</c>, on up to one GPU per layer.
/// Serving engines split the model with tensor parallelism, which needs the attention heads to divide evenly, so the
/// candidates are the divisors of the head count. Training shards weights, gradients and
/// optimizer states over data-parallel ranks with ZeRO-3 (DeepSpeed) or FSDP <c>full_shard</c> (every other engine),
/// keeping any tensor/pipeline/context degree the scenario sets; the candidates are its multiples. Per-device memory
/// falls as GPUs are added, so the smallest count is found by bisection (see <see cref="BoundarySearch"/>).
/// Whether the estimator models the layout at all is checked, not assumed: a multi-GPU estimate must report that many
/// devices, otherwise the answer says the layout is not estimated yet.
/// </remarks>
internal static class GpuCounts
{
    /// <summary>The largest count tried: 16,384 GPUs, the largest published training cluster (16K H100s for Llama 3 405B,
    /// "The Llama 3 Herd of Models", arXiv:2407.21783 §3.3).</summary>
    public const int MaxGpus = 16_384;

    public static GpuCount Solve(FitProbe probe, Scenario scenario, bool fitsAsGiven)
    {
        (string layout, Func<int, Scenario> spread, int[] candidates) = Layout(probe, scenario);
        if (fitsAsGiven && scenario.Parallel.Gpus == 1)
        {
            // One GPU is the least there is; spreading over one (FSDP on a single rank) would only add its overheads.
            return new GpuCount(1, layout, true, "the scenario as given fits one GPU.", 0);
        }

        int? supportedAt = null;
        foreach (int count in candidates.Where(c => c > 1).Take(3))
        {
            if (probe.Try(spread(count)).Estimate is { } estimate)
            {
                supportedAt = estimate.DeviceCount == count ? count : -count;
                break;
            }
        }

        if (supportedAt is < 0)
        {
            int? single = fitsAsGiven && scenario.Parallel.Gpus == 1 ? 1 : null;
            return new GpuCount(single, layout, false,
                $"{layout} is not estimated yet for {Names.Of(scenario.Engine)} {Names.Of(scenario.Mode)} (the estimate does not divide over GPUs); "
                + (single is 1 ? "one GPU is enough." : "only one GPU can be checked, and it is not enough."), 0);
        }

        Boundary fewest = scenario.Gpu?.Budget is ByteSize budget
            ? BoundarySearch.Smallest(candidates, count => probe.Try(spread(count)).Against(budget))
            : BoundarySearch.Smallest(candidates, count => probe.Try(spread(count)).Fits);
        if (fewest.Value is not int n)
        {
            return new GpuCount(null, layout, true, $"even {Estimation.Text.N(candidates[^1])} GPUs with {layout} do not fit.", fewest.Questions);
        }

        int index = Array.IndexOf(candidates, n);
        string fitsLine = $"{Count(n)} fit{(n == 1 ? "s" : "")} ({probe.Try(spread(n)).Estimate!.DeviceTotal} per GPU)";
        string below = index == 0 ? "" : $"; {Count(candidates[index - 1])} {(candidates[index - 1] == 1 ? "does" : "do")} not ({Describe(probe.Try(spread(candidates[index - 1])))})";
        return new GpuCount(n, layout, true, $"{layout}: {fitsLine}{below}.", fewest.Questions);
    }

    /// <summary>The scenario spread over <paramref name="gpus"/> GPUs in the layout <see cref="Solve"/> uses.</summary>
    public static Scenario SpreadOver(FitProbe probe, Scenario scenario, int gpus) => Layout(probe, scenario).Spread(gpus);

    private static (string Layout, Func<int, Scenario> Spread, int[] Candidates) Layout(FitProbe probe, Scenario scenario)
    {
        ParallelSettings p = scenario.Parallel;
        if (!scenario.IsTraining && scenario.Engine is Engine.Transformers or Engine.Pytorch && probe.Model.Architecture is { } architecture)
        {
            // from_pretrained(device_map="auto") spreads whole layers; more GPUs than layers would leave some empty.
            int layers = architecture.LayerCount;
            return ("device_map=\"auto\"", n => scenario with { Parallel = p with { Gpus = n } }, [.. Enumerable.Range(1, Math.Min(layers, MaxGpus))]);
        }

        if (!scenario.IsTraining)
        {
            int heads = probe.Model.Architecture?.AttentionHeadCount ?? 1024;
            int[] divisors = Enumerable.Range(1, Math.Min(heads, MaxGpus)).Where(d => heads % d == 0).ToArray();
            return ("tensor parallel", n => scenario with { Parallel = p with { Gpus = n, Tp = n, Pp = 1, Cp = 1 } }, divisors);
        }

        int modelParallel = p.Tp * p.Pp * p.Cp;
        int[] multiples = Enumerable.Range(1, Math.Max(1, MaxGpus / modelParallel)).Select(k => k * modelParallel).ToArray();
        if (p.Zero > 0 || (p.Fsdp == FsdpMode.None && scenario.Engine == Engine.Deepspeed))
        {
            int stage = p.Zero > 0 ? p.Zero : 3;
            return ($"ZeRO-{stage}", n => scenario with { Parallel = p with { Gpus = n, Zero = stage } }, multiples);
        }

        FsdpMode fsdp = p.Fsdp == FsdpMode.None ? FsdpMode.FullShard : p.Fsdp;
        return ($"FSDP {Names.Of(fsdp)}", n => scenario with { Parallel = p with { Gpus = n, Fsdp = fsdp } }, multiples);
    }

    private static string Count(int n) => n == 1 ? "1 GPU" : $"{Estimation.Text.N(n)} GPUs";

    private static string Describe(Probe probe) => probe.Estimate is { } e
        ? e.EngineRefusal is { } engine ? $"{e.DeviceTotal} per GPU, but {engine}" : $"{e.DeviceTotal} per GPU"
        : probe.Refusal ?? "refused";
}
