using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Planning;
using LlmMemory.Sources;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Planning;

/// <summary>
/// "Does it fit" without the figures: a replay that runs out of the device's memory answers "no" without the second,
/// unlimited replay the estimate runs for its figures, and the boundary search asks only that of the values its guard
/// checks past the boundary. The answers must be those of the full estimate and of the search that reads every value.
/// </summary>
public sealed class FitsOnlyTests
{
    private static readonly Mode[] Modes = [Mode.Inference, Mode.Training, Mode.Lora];
    private static readonly string[] Gpus = ["rtx-4090", "a100-40gb"];
    private static readonly int[] Lengths = [3_001, 9_001];

    /// <summary>
    /// Every model type of the catalog, inference, training and LoRA on an RTX 4090 and an A100 40GB. The lengths are odd
    /// (3,001 and 9,001 tokens) so that no other test has kept these estimates: a kept estimate answers without a replay.
    /// </summary>
    public static IEnumerable<Scenario> Cases() =>
        from alias in RepresentativeModels.Aliases
        from mode in Modes
        from gpu in Gpus
        from seq in Lengths
        select new Scenario { Model = new ModelReference.Named(alias), Mode = mode, Gpu = GpuCatalog.Find(gpu), Seq = seq, Batch = mode == Mode.Inference ? 4 : 1 };

    [Fact]
    public void A_replay_that_runs_out_of_memory_is_an_estimate_that_does_not_fit_and_fits_only_is_the_estimates_answer()
    {
        int outOfMemory = 0;
        int fitting = 0;
        var wrong = new List<string>();
        foreach (Scenario scenario in Cases())
        {
            ResolvedModel model = ModelResolver.Resolve(scenario.Model);
            bool ranOut;
            MemoryEstimate estimate;
            try
            {
                ranOut = ReplayEstimate.RunsOutOfMemory(model, scenario, scenario.Gpu, default);
                estimate = MemoryEstimator.Estimate(model, scenario);
            }
            catch (Exception refused) when (refused is FormatException or NotSupportedException or OverflowException)
            {
                continue; // the estimator refuses this one (a mode the family does not run, sizes past 2^63): no answer to compare
            }

            string name = $"{scenario.Model} {scenario.Mode} {scenario.Gpu!.Id} seq {scenario.Seq}";
            if (ranOut && estimate.Fits != false)
            {
                wrong.Add($"{name}: ran out of memory under the limit, but the estimate fits ({estimate.DeviceTotal})");
            }

            if (ranOut && !estimate.Notes.Any(n => n.Contains("ran out of memory", StringComparison.Ordinal)))
            {
                wrong.Add($"{name}: ran out of memory under the limit, but the estimate does not say so");
            }

            if (MemoryEstimator.Fits(model, scenario) != (estimate.Fits == true))
            {
                wrong.Add($"{name}: MemoryEstimator.Fits differs from the estimate's Fits ({estimate.Fits})");
            }

            outOfMemory += ranOut ? 1 : 0;
            fitting += estimate.Fits == true ? 1 : 0;
        }

        Assert.Empty(wrong);
        // Both answers must occur, or the test would prove nothing: small models fit both GPUs, 7B+ training does not.
        Assert.True(outOfMemory >= 10, $"only {outOfMemory} scenarios ran out of memory");
        Assert.True(fitting >= 10, $"only {fitting} scenarios fit");
    }

    [Fact]
    public void The_guard_asks_values_past_a_monotone_boundary_only_whether_they_fit()
    {
        // Bytes over the budget grow by 1 MB per token past 694 tokens: the LoRA 8B shape on a 4090, without its plateau.
        static Reading Read(int n) => new(n <= 694, (n - 694.5) * 1e6);
        var read = new List<int>();
        var askedFits = new List<int>();

        Boundary found = BoundarySearch.Largest(n => { read.Add(n); return Read(n); }, FitPlanner.MaxSeq, n => { askedFits.Add(n); return n <= 694; });
        Boundary plain = BoundarySearch.Largest(Read, FitPlanner.MaxSeq);

        Assert.Equal(694, found.Value);
        Assert.Equal(plain.Value, found.Value);
        Assert.Equal(plain.Questions, found.Questions);
        Assert.NotEmpty(askedFits);
        // Past the boundary (694 fits, 695 does not) the guard asks further out, and none of those values is read in full.
        Assert.All(askedFits, n => Assert.True(n > 695, $"{n} asked fits-only"));
        Assert.DoesNotContain(read, n => askedFits.Contains(n));
    }

    [Fact]
    public void A_guard_value_that_fits_is_read_in_full_and_the_search_goes_on_as_the_full_search_does()
    {
        // Not monotone: 100 and below fit, and so does 250 to 300. The search doubles to 128 (fails), narrows to 100, and its
        // guard asks 102, 114, 129 and 256, twice the failing bracket end: 256 fits, and the search climbs on from there.
        static bool Fits(int n) => n <= 100 || n is >= 250 and <= 300;
        static Reading Read(int n) => new(Fits(n), Fits(n) ? -1e6 : 1e6);
        var read = new HashSet<int>();

        Boundary found = BoundarySearch.Largest(n => { read.Add(n); return Read(n); }, 1 << 20, Fits);
        Boundary plain = BoundarySearch.Largest(Read, 1 << 20);

        Assert.Equal(300, plain.Value);
        Assert.Equal(plain.Value, found.Value);
        Assert.Equal(plain.Monotone, found.Monotone);
        Assert.False(found.Monotone);
        Assert.Contains(256, read);
        Assert.Contains(found.Value!.Value, read);
        Assert.Contains(found.Value.Value + 1, read);
    }
}
