using LlmMemory.Estimation;
using LlmMemory.Hardware;
using LlmMemory.Numerics;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Validation;

public sealed class CaseReaderTests
{
    private const string Good =
        """{"id": "a", "source": "test", "model": {"parameters": 7000000000}, "weights": "bf16", "measured": {"what": "weights", "bytes": 14000000000, "exact": false}}""";

    private static ModelFormatException Bad(params string[] lines) =>
        Assert.Throws<ModelFormatException>(() => CaseReader.ReadLines(lines, "cases.jsonl", null));

    [Fact]
    public void A_case_reads_its_measurement_and_scenario_with_defaults()
    {
        ValidationCase c = Assert.Single(CaseReader.ReadLines([Good], "cases.jsonl", null));
        Assert.Equal("a", c.Id);
        Assert.Equal(new Measurement(MeasuredQuantity.Weights, 14_000_000_000, MeasurementScope.Gpu, false, null), c.Measured);
        Assert.Equal(new ModelReference.ParameterCount(7_000_000_000), c.Scenario.Model);
        Assert.Equal(WeightFormats.Bf16, c.Scenario.Weights);
        Assert.False(c.LowConfidence);
        Assert.Equal("cases.jsonl line 1", c.Location);
    }

    [Fact]
    public void Ignored_fields_are_accepted_and_low_confidence_is_kept()
    {
        string line = Good.Replace("\"id\": \"a\"", "\"id\": \"a\", \"confidence\": \"low\", \"quote\": \"q\", \"notes\": [\"n\"], \"assumptions\": [\"x\"]",
            StringComparison.Ordinal);
        Assert.True(Assert.Single(CaseReader.ReadLines([line], "f", null)).LowConfidence);
    }

    [Fact]
    public void Blank_lines_are_skipped_and_line_numbers_count_them()
    {
        string second = Good.Replace("\"a\"", "\"b\"", StringComparison.Ordinal).Replace("\"bytes\"", "\"typo\": 1, \"bytes\"", StringComparison.Ordinal);
        ModelFormatException error = Bad(Good, "", "  ", second);
        Assert.Equal("cases.jsonl line 4: 'measured.typo' is not a known field.", error.Message);
    }

    [Fact]
    public void An_unknown_top_level_field_names_the_line_and_the_field()
    {
        ModelFormatException error = Bad(Good.Replace("\"weights\": \"bf16\"", "\"weigths\": \"bf16\"", StringComparison.Ordinal));
        Assert.Equal("cases.jsonl line 1: 'weigths' is not a known field.", error.Message);
    }

    [Fact]
    public void A_field_name_or_value_with_a_line_break_or_escape_is_named_escaped_on_one_line()
    {
        // The API fuzzer's finding: a key written "\ngine_options" in JSON is a name that starts with a line feed (U+000A),
        // and the error echoed it raw, splitting the one-line problem in two. Control characters print as \xNN (LF → \x0a,
        // ESC → \x1b), so the name stays recognizable and the line stays one line.
        ModelFormatException error = Bad(Good.Replace("\"weights\": \"bf16\"", "\"\\ngine\\u001b\": \"bf16\"", StringComparison.Ordinal));
        Assert.Equal("cases.jsonl line 1: '\\x0agine\\x1b' is not a known field.", error.Message);

        // The same for a value the problem quotes (the fuzzer's second finding: a mode written "train\ng").
        error = Bad(Good.Replace("\"weights\": \"bf16\"", "\"weights\": \"bf\\n16\"", StringComparison.Ordinal));
        Assert.DoesNotContain('\n', error.Message);
        Assert.Contains("bf\\x0a16", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"what\": \"weights\"", "\"what\": \"vram\"", "'measured.what' is \"vram\"; expected one of parameters, trainable_parameters")]
    [InlineData("\"bytes\": 14000000000", "\"bytes\": 0", "'measured.bytes' must be between 1 and")]
    [InlineData("\"bytes\": 14000000000", "\"bytes\": 1.5", "'measured.bytes' must be an integer")]
    [InlineData(", \"exact\": false", "", "'measured.exact' is required")]
    [InlineData("\"exact\": false", "\"exact\": \"no\"", "'measured.exact' must be true or false")]
    [InlineData("\"exact\": false", "\"exact\": false, \"per\": \"node\"", "'measured.per' is \"node\"; expected one of gpu, total")]
    [InlineData("\"exact\": false", "\"exact\": false, \"tolerance_bytes\": -1", "'measured.tolerance_bytes' must be between 0 and")]
    [InlineData("\"id\": \"a\"", "\"id\": \"\"", "'id' must not be empty")]
    [InlineData("\"id\": \"a\", ", "", "'id' is required")]
    [InlineData("\"source\": \"test\", ", "", "'source' is required")]
    [InlineData("\"weights\": \"bf16\"", "\"weights\": \"bf17\"", "'weights' is \"bf17\", which is not known")]
    public void A_bad_field_is_named_with_its_line(string from, string to, string expected)
    {
        ModelFormatException error = Bad(Good.Replace(from, to, StringComparison.Ordinal));
        Assert.StartsWith("cases.jsonl line 1: ", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_measurement_is_named()
    {
        ModelFormatException error = Bad("""{"id": "a", "source": "s", "model": "7B"}""");
        Assert.Equal("cases.jsonl line 1: 'measured' is required.", error.Message);
    }

    [Fact]
    public void Invalid_json_names_the_line()
    {
        ModelFormatException error = Bad(Good, "{\"id\": ");
        Assert.StartsWith("cases.jsonl line 2: is not valid JSON", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_line_that_is_not_an_object_is_rejected()
    {
        Assert.StartsWith("cases.jsonl line 1:", Bad("[1, 2]").Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_repeated_id_names_both_lines()
    {
        ModelFormatException error = Bad(Good, Good);
        Assert.Equal("cases.jsonl line 2: 'id' is \"a\", which line 1 already uses; ids must be unique.", error.Message);
    }

    [Fact]
    public void Ids_must_be_unique_across_files()
    {
        using var files = new CaseFiles();
        string first = files.Write("one.jsonl", Good);
        string second = files.Write("two.jsonl", Good);
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => CaseReader.ReadFiles([first, second]));
        Assert.Contains($"{second} line 1: 'id' is \"a\", which {first} line 1 already uses", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_file_is_named()
    {
        ModelFormatException error = Assert.Throws<ModelFormatException>(() => CaseReader.ReadFile("/nonexistent/cases.jsonl"));
        Assert.Equal("/nonexistent/cases.jsonl: does not exist.", error.Message);
    }

    [Fact]
    public void A_file_that_is_not_utf8_is_rejected()
    {
        using var files = new CaseFiles();
        string path = Path.Combine(files.Folder, "binary.jsonl");
        File.WriteAllBytes(path, [0x7B, 0xFF, 0xFE, 0x7D]);
        // Each line is checked on its own (a bad line costs only its case); "{\xFF\xFE}" has no field for the bytes to be in.
        Assert.Equal($"{path} line 1: is not UTF-8 text.", Assert.Throws<ModelFormatException>(() => CaseReader.ReadFile(path)).Message);
    }

    [Fact]
    public void Relative_model_paths_resolve_against_the_case_file()
    {
        using var files = new CaseFiles();
        string path = files.Write("cases.jsonl", Good.Replace("{\"parameters\": 7000000000}", "\"models/m.json\"", StringComparison.Ordinal));
        ValidationCase c = Assert.Single(CaseReader.ReadFile(path));
        Assert.Equal(files.Folder, c.Scenario.BaseDirectory);
    }
}
