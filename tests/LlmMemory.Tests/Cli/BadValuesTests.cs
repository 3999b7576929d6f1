namespace LlmMemory.Tests.Cli;

/// <summary>Bad values are answers: one line, exit code 2, naming the field and what it must be.</summary>
public sealed class BadValuesTests
{
    [Fact]
    public void A_path_that_does_not_exist_is_no_such_file_not_an_unknown_model()
    {
        (int code, string output, string error) = CliTests.Run("estimate", "./no/such/dir/config.json");

        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Equal("error: ./no/such/dir/config.json: no such file or folder.", error.Trim());
    }

    [Theory]
    [InlineData(7, "which does not divide the 32 attention heads")]
    [InlineData(64, "more than the 32 attention heads")]
    public void Key_value_heads_transformers_would_refuse_are_exit_2_naming_both_fields(int kvHeads, string problem)
    {
        // Before, both configs were estimated (exit 0); transformers cannot build either (modeling_llama.py repeat_kv).
        string path = Path.Combine(Path.GetTempPath(), $"kv-heads-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, $$"""
            {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32,
             "num_hidden_layers": 2, "num_key_value_heads": {{kvHeads}}, "vocab_size": 1000}
            """);
        try
        {
            (int code, string output, string error) = CliTests.Run("estimate", path);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Single(error.Trim().Split('\n'));
            Assert.Contains($"'num_key_value_heads' is {kvHeads}, {problem} of 'num_attention_heads'", error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Theory]
    [InlineData("--seq", "abc", "'seq' must be an integer, found \"abc\".")]
    [InlineData("--gpu-memory-utilization", "most", "'engine_options.gpu_memory_utilization' must be a number, found \"most\".")]
    [InlineData("--flash-attn", "maybe", "'engine_options.flash_attn' must be true or false, found \"maybe\".")]
    public void A_value_of_the_wrong_type_names_the_flag_the_field_and_the_type_in_words(string flag, string value, string problem)
    {
        (int code, _, string error) = CliTests.Run("estimate", "llama-3.1-8b", flag, value);

        Assert.Equal(2, code);
        Assert.Equal($"error: {flag}: {problem}", error.Trim());
    }

    [Fact]
    public void Sizes_beyond_a_long_are_refused_naming_seq_not_a_stack_trace()
    {
        // Eager attention materializes batch × heads × seq × seq scores: 1 × 32 × 2^28 × 2^28 elements of Llama-3.1-8B are
        // 2^61 values, 2^62 bytes in bf16 and 2^63 in the fp32 softmax, beyond a long.
        (int code, _, string error) = CliTests.Run("estimate", "llama-3.1-8b", "--seq", "268435456", "--attention", "eager");

        Assert.Equal(2, code);
        Assert.Single(error.Trim().Split('\n'));
        Assert.StartsWith("error: --seq: 'seq' ", error, StringComparison.Ordinal);
        Assert.Contains("2^63 bytes", error, StringComparison.Ordinal);
    }
}
