using LlmMemory.Fuzz;

namespace LlmMemory.Tests.Fuzzing;

/// <summary>
/// The bounded fuzz run of CI: 2,000 mutated inputs per reader (and for the web API and the Hub client), in a few seconds, from a fixed seed so that a failure replays.
/// The contract (a value or the target's refusal — a ModelFormatException from a reader, a one-line 4xx problem from the API, a
/// HubException from the Hub client — within the time and allocation limits) is checked by the harness for every input; the long run (≥ 1 M inputs, fresh seeds) is <c>dotnet run -c Release --project fuzz/LlmMemory.Fuzz</c> (docs/performance.md).
/// </summary>
public sealed class ReaderFuzzTests
{
    private const int Inputs = 2000;

    /// <summary>A fixed CsCheck seed: CI replays the same inputs; the long run draws new ones.</summary>
    private const string Seed = "fdaJp8_7xpu1";

    [Fact]
    public void Mutated_config_json_ends_in_a_value_or_a_format_error_within_limits()
    {
        FuzzReport report = ReaderFuzzer.Run(Targets.ConfigJson, Inputs, threads: 1, Seed);

        Assert.Equal(Inputs, report.Inputs);
        // The mutations are worth running only if some inputs get past the JSON parse to the reader's own checks, and some
        // still read: a harness that only ever produced unparseable text would pass and prove nothing.
        Assert.InRange(report.Values, 1, Inputs - 1);
        Assert.Contains(report.Errors, e => e.Message.Contains("must be", StringComparison.Ordinal));
    }

    [Fact]
    public void Mutated_safetensors_headers_end_in_a_value_or_a_format_error_within_limits()
    {
        FuzzReport report = ReaderFuzzer.Run(Targets.Safetensors, Inputs, threads: 1, Seed);

        Assert.Equal(Inputs, report.Inputs);
        Assert.InRange(report.Values, 1, Inputs - 1);
    }

    [Fact]
    public void Mutated_gguf_headers_end_in_a_value_or_a_format_error_within_limits()
    {
        FuzzReport report = ReaderFuzzer.Run(Targets.Gguf, Inputs, threads: 1, Seed);

        Assert.Equal(Inputs, report.Inputs);
        Assert.InRange(report.Values, 1, Inputs - 1);
    }

    [Fact]
    public void Mutated_hub_answers_end_in_a_value_or_a_hub_or_format_error_within_limits()
    {
        FuzzReport report = ReaderFuzzer.Run(HubTarget.Target, Inputs, threads: 1, Seed);

        Assert.Equal(Inputs, report.Inputs);
        Assert.InRange(report.Values, 1, Inputs - 1);
        // The fake Hub must reach the client's own checks, not only the readers behind it: a 404 for a file the model needs.
        Assert.Contains(report.Errors, e => e.Message.Contains("not found", StringComparison.Ordinal));
    }

    [Fact]
    public void Mutated_api_requests_end_in_json_or_a_one_line_problem_within_limits()
    {
        // Outcomes only: a request runs replays, so its time on a loaded CI machine measures the load. The 5 s contract is the
        // long run's, on a quiet machine (docs/performance.md); here a hang still ends the run (the harness's 30 s watchdog).
        FuzzReport report = ReaderFuzzer.Run(ApiTarget.Target with { TimeLimit = TimeSpan.FromSeconds(30) }, Inputs, threads: 1, Seed);

        Assert.Equal(Inputs, report.Inputs);
        Assert.InRange(report.Values, 1, Inputs - 1);
        // Refusals come from the scenario reader (a field named), not only from the JSON parse of a broken body.
        Assert.Contains(report.Errors, e => e.Message.Contains("'…' is", StringComparison.Ordinal));
    }
}
