using LlmMemory.Numerics;
using LlmMemory.Workloads;

namespace LlmMemory.Planning;

/// <summary>
/// The changes that shrink a training run that does not fit, ordered by how much of the run they give up — the order a
/// practitioner tries them in.
/// </summary>
/// <remarks>
/// <list type="number">
/// <item>Gradient checkpointing keeps only each layer's input and recomputes the rest in backward: the same model,
/// data and result, paid for with about one extra forward pass per step (Chen et al. 2016, arXiv:1604.06174).</item>
/// <item>An 8-bit AdamW keeps the optimizer's two moments in 8 bits with block-wise scales: same compute, slightly
/// different optimizer arithmetic (Dettmers et al. 2022, arXiv:2110.02861, report 32-bit parity).</item>
/// <item>LoRA trains low-rank adapters instead of the weights: a different method whose result can differ
/// (Hu et al. 2021, arXiv:2106.09685).</item>
/// <item>QLoRA is LoRA over a base frozen in 4-bit NF4: adds quantization error and dequantization time
/// (Dettmers et al. 2023, arXiv:2305.14314).</item>
/// <item>ZeRO-3 / FSDP full_shard spreads every state over more GPUs: the run is unchanged but costs more hardware and
/// communication, so it comes last (solved separately as the fewest GPUs).</item>
/// </list>
/// When no single change is enough, the single-GPU changes are combined in the same order (QLoRA replaces LoRA).
/// </remarks>
internal static class TrainingChanges
{
    private sealed record Change(string Name, string Cost, Func<Scenario, Scenario?> Apply);

    private static readonly Change[] Ladder =
    [
        new("gradient checkpointing", "about one extra forward pass per step (~30 % more compute); same result",
            s => s.GradientCheckpointing == Checkpointing.Full || s.GradientCheckpointing == Checkpointing.Offload
                ? null
                : s with { GradientCheckpointing = Checkpointing.Full }),
        new("8-bit AdamW", "optimizer moments in 8 bits with block scales; same compute",
            s => (s.Optimizer ?? OptimizerKind.AdamW) switch
            {
                OptimizerKind.AdamW => s with { Optimizer = OptimizerKind.AdamW8Bit },
                OptimizerKind.PagedAdamW => s with { Optimizer = OptimizerKind.PagedAdamW8Bit },
                _ => null,
            }),
        new("LoRA", "trains low-rank adapters only; a different method, results can differ",
            s => s.Mode == Mode.Training ? s with { Mode = Mode.Lora, Lora = s.Lora ?? LoraSettings.Default, Weights = Sixteen(s.Weights) } : null),
        new("QLoRA", "LoRA over a 4-bit NF4 base: quantization error, slower matmuls",
            s => s.Mode is Mode.Training or Mode.Lora ? s with { Mode = Mode.Qlora, Lora = s.Lora ?? LoraSettings.Default, Weights = WeightFormats.Nf4 } : null),
    ];

    /// <summary>Each applicable change alone, then the cumulative combinations, each estimated.</summary>
    public static IReadOnlyList<PlanOption> Estimate(FitProbe probe, Scenario scenario)
    {
        var options = new List<PlanOption>();
        var applied = new List<(Change Change, Scenario Alone)>();
        foreach (Change change in Ladder)
        {
            if (change.Apply(scenario) is Scenario alone)
            {
                applied.Add((change, alone));
                options.Add(probe.Option(change.Name, change.Cost, alone));
            }
        }

        // Cumulative: the first k changes together (k ≥ 2); QLoRA replaces LoRA rather than adding to it.
        for (int k = 2; k <= applied.Count; k++)
        {
            Scenario combined = scenario;
            var names = new List<string>();
            foreach ((Change change, _) in applied.Take(k))
            {
                combined = change.Apply(combined) ?? combined;
                if (change.Name == "QLoRA")
                {
                    names.Remove("LoRA");
                }

                names.Add(change.Name);
            }

            if (names.Count < 2 || options.Any(o => o.Name == string.Join(" + ", names)))
            {
                continue;
            }

            options.Add(probe.Option(string.Join(" + ", names), "the costs of each", combined));
        }

        return options;
    }

    /// <summary>LoRA keeps the frozen base in 16-bit unless the user chose another 16-bit format.</summary>
    private static WeightFormat? Sixteen(WeightFormat? weights) => weights == WeightFormats.Fp16 || weights == WeightFormats.Bf16 ? weights : null;
}
