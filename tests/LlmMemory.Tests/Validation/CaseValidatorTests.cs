using LlmMemory.Validation;

namespace LlmMemory.Tests.Validation;

public sealed class CaseValidatorTests
{
    private static CaseResult Validate(string line) => CaseValidator.Validate(CaseReader.ReadLine(line, "test line 1", null));

    [Fact]
    public void A_parameter_case_is_compared_exactly()
    {
        // SmolLM2-135M: 134,515,008 parameters (published table of HF model sizes; data/models/smollm2-135m.json exact_params).
        CaseResult result = Validate("""{"id": "p", "source": "s", "model": "smollm2-135m", "measured": {"what": "parameters", "bytes": 134515008, "exact": true}}""");
        Assert.Equal(CaseStatus.Ok, result.Status);
        Assert.Equal(134_515_008, result.Estimated);
        Assert.True(result.ExactMatch);
        Assert.Equal(0, result.RelativeError);
    }

    [Fact]
    public void A_memory_case_is_compared_on_the_measured_quantity()
    {
        // The essay's table: bf16 weights take 2 bytes per parameter, so 7e9 parameters are 14e9 bytes; measured 5 % higher.
        CaseResult result = Validate(
            """{"id": "w", "source": "s", "model": {"parameters": 7000000000}, "weights": "bf16", "measured": {"what": "weights", "bytes": 14700000000, "exact": false}}""");
        Assert.Equal(CaseStatus.Ok, result.Status);
        Assert.Equal(14_000_000_000, result.Estimated);
        Assert.Equal(-0.7 / 14.7, result.RelativeError!.Value, 12);
        Assert.True(result.InErrorStatistics);
        Assert.NotNull(result.Naive);
    }

    [Fact]
    public void An_unknown_model_is_unsupported_with_the_reason_not_dropped()
    {
        CaseResult result = Validate(
            """{"id": "u", "source": "s", "model": "no-such-org/no-such-model", "measured": {"what": "peak_allocated", "bytes": 1000, "exact": false}}""");
        Assert.Equal(CaseStatus.Unsupported, result.Status);
        Assert.Null(result.Estimated);
        Assert.Null(result.RelativeError);
        Assert.Contains("no-such-org/no-such-model", result.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_quantity_the_estimate_has_no_part_for_is_unsupported()
    {
        // A bare parameter count has no architecture, so no KV cache can be computed (RuleOfThumb).
        CaseResult result = Validate(
            """{"id": "kv", "source": "s", "model": {"parameters": 7000000000}, "measured": {"what": "kv_cache", "bytes": 1000, "exact": true}}""");
        Assert.Equal(CaseStatus.Unsupported, result.Status);
        Assert.Equal("the estimate has no kv_cache part for this scenario.", result.Reason);
        Assert.False(result.ExactMatch);
    }
}
