using System.Text.Json;
using LlmMemory.Tests.Cli;

namespace LlmMemory.Tests.Validation;

public sealed class ValidateCommandTests
{
    private const string Weights =
        """{"id": "weights-7b", "source": "s", "model": {"parameters": 7000000000}, "weights": "bf16", "measured": {"what": "weights", "bytes": 14700000000, "exact": false}}""";

    private const string Params =
        """{"id": "params-smollm2", "source": "s", "model": "smollm2-135m", "measured": {"what": "parameters", "bytes": 134515008, "exact": true}}""";

    private const string Unknown =
        """{"id": "unknown-model", "source": "s", "model": "no-such-org/no-such-model", "measured": {"what": "peak_allocated", "bytes": 1000, "exact": false}}""";

    [Fact]
    public void Json_has_exactly_the_fields_of_docs_scenario_md()
    {
        using var files = new CaseFiles();
        (int code, string output, _) = CliTests.Run("validate", files.Write("c.jsonl", Weights, Params, Unknown), "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        JsonElement root = json.RootElement;
        Assert.Equal(["cases", "summary"], root.EnumerateObject().Select(p => p.Name));
        JsonElement[] cases = root.GetProperty("cases").EnumerateArray().ToArray();
        Assert.Equal(["weights-7b", "params-smollm2", "unknown-model"], cases.Select(c => c.GetProperty("id").GetString()));
        Assert.Equal(["id", "what", "measured_bytes", "estimated_bytes", "relative_error", "status"], cases[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal("weights", cases[0].GetProperty("what").GetString());
        Assert.Equal(14_700_000_000, cases[0].GetProperty("measured_bytes").GetInt64());
        Assert.Equal(14_000_000_000, cases[0].GetProperty("estimated_bytes").GetInt64());
        Assert.Equal(-0.7 / 14.7, cases[0].GetProperty("relative_error").GetDouble(), 12);
        Assert.Equal("ok", cases[0].GetProperty("status").GetString());

        Assert.Equal(["id", "what", "measured_bytes", "estimated_bytes", "relative_error", "status", "reason"], cases[2].EnumerateObject().Select(p => p.Name));
        Assert.Equal("unsupported", cases[2].GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, cases[2].GetProperty("estimated_bytes").ValueKind);
        Assert.Equal(JsonValueKind.Null, cases[2].GetProperty("relative_error").ValueKind);
        Assert.Contains("no-such-org/no-such-model", cases[2].GetProperty("reason").GetString(), StringComparison.Ordinal);

        JsonElement summary = root.GetProperty("summary");
        Assert.Equal(["count", "ok", "unsupported", "median_abs_relative_error", "p90_abs_relative_error", "max_abs_relative_error", "exact_matches", "exact_required"],
            summary.EnumerateObject().Select(p => p.Name));
        Assert.Equal(3, summary.GetProperty("count").GetInt32());
        Assert.Equal(2, summary.GetProperty("ok").GetInt32());
        Assert.Equal(1, summary.GetProperty("unsupported").GetInt32());
        Assert.Equal(0.7 / 14.7, summary.GetProperty("median_abs_relative_error").GetDouble(), 12);
        Assert.Equal(0.7 / 14.7, summary.GetProperty("p90_abs_relative_error").GetDouble(), 12);
        Assert.Equal(0.7 / 14.7, summary.GetProperty("max_abs_relative_error").GetDouble(), 12);
        Assert.Equal(1, summary.GetProperty("exact_matches").GetInt32());
        Assert.Equal(1, summary.GetProperty("exact_required").GetInt32());
    }

    [Fact]
    public void Summary_statistics_are_null_when_no_case_is_in_them()
    {
        using var files = new CaseFiles();
        (_, string output, _) = CliTests.Run("validate", files.Write("c.jsonl", Params), "--json");
        using JsonDocument json = JsonDocument.Parse(output);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("summary").GetProperty("median_abs_relative_error").ValueKind);
    }

    [Fact]
    public void The_human_form_is_a_table_worst_first_with_the_summary_last()
    {
        using var files = new CaseFiles();
        // Wide enough that each summary sentence is one line.
        (int code, string output, _) = CliTests.RunAt(200, "validate", files.Write("c.jsonl", Params, Weights, Unknown));
        Assert.Equal(0, code);
        int unknown = output.IndexOf("unknown-model", StringComparison.Ordinal);
        int weights = output.IndexOf("weights-7b", StringComparison.Ordinal);
        int parameters = output.IndexOf("params-smollm2", StringComparison.Ordinal);
        Assert.True(unknown < weights && weights < parameters, output);
        string[] lines = output.TrimEnd().Split('\n');
        Assert.Equal("Exact: 1 of 1 case with exact: true or tolerance_bytes match.", lines[^1].TrimEnd());
        Assert.Equal("3 cases: 2 ok, 1 unsupported.", lines[^3].TrimEnd());
        Assert.Contains(lines, l => l.StartsWith("Unsupported, unknown-model: ", StringComparison.Ordinal));
    }

    [Fact]
    public void Several_files_are_validated_together()
    {
        using var files = new CaseFiles();
        (int code, string output, _) = CliTests.Run("validate", files.Write("a.jsonl", Params), files.Write("b.jsonl", Weights), "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        Assert.Equal(2, json.RootElement.GetProperty("summary").GetProperty("count").GetInt32());
    }

    [Fact]
    public void An_unknown_field_is_one_line_naming_file_line_and_field_with_exit_code_2()
    {
        using var files = new CaseFiles();
        string path = files.Write("bad.jsonl", Params, Weights.Replace("\"source\"", "\"sauce\": 1, \"source\"", StringComparison.Ordinal));
        (int code, string output, string error) = CliTests.Run("validate", path);
        Assert.Equal(2, code);
        // The bad line costs its case alone: the good one on line 1 is still estimated and reported.
        Assert.Contains("params-smollm2", output, StringComparison.Ordinal);
        Assert.DoesNotContain("weights-7b", output, StringComparison.Ordinal);
        Assert.Equal($"error: {path} line 2: 'sauce' is not a known field.", error.Trim());
    }

    [Fact]
    public void A_missing_file_is_exit_code_2()
    {
        (int code, _, string error) = CliTests.Run("validate", "/nonexistent/cases.jsonl");
        Assert.Equal(2, code);
        Assert.Contains("/nonexistent/cases.jsonl", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Json_and_markdown_together_are_refused()
    {
        using var files = new CaseFiles();
        (int code, _, string error) = CliTests.Run("validate", files.Write("c.jsonl", Params), "--json", "--markdown");
        Assert.Equal(2, code);
        Assert.Contains("--json and --markdown", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Markdown_names_its_regeneration_command_and_lists_every_case()
    {
        using var files = new CaseFiles();
        (int code, string output, _) = CliTests.Run("validate", files.Write("c.jsonl", Weights, Params, Unknown), "--markdown");
        Assert.Equal(0, code);
        Assert.StartsWith("# Accuracy", output, StringComparison.Ordinal);
        Assert.Contains("validate data/validation/*.jsonl --markdown > docs/accuracy.md", output, StringComparison.Ordinal);
        Assert.Contains("`weights-7b`", output, StringComparison.Ordinal);
        Assert.Contains("`params-smollm2`", output, StringComparison.Ordinal);
        Assert.Contains("`unknown-model`", output, StringComparison.Ordinal);
        // The weights rule of thumb (7e9 × 2 B) equals the estimate here, so both are 4.76 % under the measured 14.7e9 bytes.
        Assert.Contains("| weights | 1 | 4.76 % | 4.76 % |", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Markdown_prints_a_cases_known_gap_in_its_note_and_keeps_it_in_the_statistics()
    {
        const string gapped =
            """{"id": "weights-7b-gap", "source": "s", "known_gap": "a mechanism the scenario cannot express (docs/x.md)", "model": {"parameters": 7000000000}, "weights": "bf16", "measured": {"what": "weights", "bytes": 14700000000, "exact": false}}""";
        using var files = new CaseFiles();
        (int code, string output, _) = CliTests.Run("validate", files.Write("c.jsonl", gapped), "--markdown");
        Assert.Equal(0, code);
        Assert.Contains("known gap: a mechanism the scenario cannot express (docs/x.md) |", output, StringComparison.Ordinal);
        // Still counted: 7e9 × 2 B against the measured 14.7e9 B is 4.76 % under, in the by-quantity table.
        Assert.Contains("| weights | 1 | 1 | 0 | - | 1 | 4.76 % |", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Markdown_groups_the_runs_over_several_gpus_by_engine_with_their_own_statistics()
    {
        const string tp2 =
            """{"id": "llama-tp2", "source": "s", "model": "llama-3.1-8b", "engine": "vllm", "gpu": "h100-80gb", "parallel": {"gpus": 2, "tp": 2}, "measured": {"what": "weights", "bytes": 8000000000, "exact": false}}""";
        using var files = new CaseFiles();
        (int code, string output, _) = CliTests.Run("validate", files.Write("c.jsonl", Weights, tp2), "--markdown");
        Assert.Equal(0, code);
        string section = output[output.IndexOf("## Across several GPUs", StringComparison.Ordinal)..output.IndexOf("## Every case", StringComparison.Ordinal)];
        // Only the tp 2 case, in its engine's row and the all row; the one-GPU case (4.76 % under) is not in it.
        Assert.Contains("| vllm | 1 | 1 | 0 | - | 1 |", section, StringComparison.Ordinal);
        Assert.Contains("| all | 1 | 1 | 0 | - | 1 |", section, StringComparison.Ordinal);
        Assert.DoesNotContain("4.76 %", section, StringComparison.Ordinal);
        Assert.DoesNotContain("| - (parameter counts)", section, StringComparison.Ordinal);
    }

    [Fact]
    public void An_empty_known_gap_is_refused_naming_the_field()
    {
        const string empty =
            """{"id": "w", "source": "s", "known_gap": " ", "model": {"parameters": 7000000000}, "weights": "bf16", "measured": {"what": "weights", "bytes": 14700000000, "exact": false}}""";
        using var files = new CaseFiles();
        (_, string output, string error) = CliTests.Run("validate", files.Write("c.jsonl", empty));
        Assert.Contains("known_gap", output + error, StringComparison.Ordinal);
    }
}
