using System.Text.Json;
using System.Text.RegularExpressions;
using LlmMemory.Validation;

namespace LlmMemory.Tests.Validation;

/// <summary>
/// The output format of tools/measure/measure.py, pinned on its recorded runs (tools/measure/runs/*/*-cases.jsonl, copied
/// beside the tests with docs/scenario.md and docs/scenario-extensions.md): every line is a case that
/// <c>llm-memory validate</c> reads and reports, written with fields the case format documents.
/// </summary>
public sealed partial class MeasureScriptOutputTests
{
    /// <summary>The four figures measure.py records per scenario (tools/measure/README.md, "What is measured"), in its order.</summary>
    private static readonly string[] Figures = ["weights", "peak_allocated", "peak_reserved", "device_used"];

    private static string[] RecordedRuns() =>
        Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "tools", "measure", "runs"), "*-cases.jsonl", SearchOption.AllDirectories);

    private static IEnumerable<JsonElement> RecordedLines() =>
        RecordedRuns().SelectMany(File.ReadLines).Where(line => line.Length > 0).Select(line => JsonDocument.Parse(line).RootElement);

    [Fact]
    public void Every_recorded_line_reads_as_a_case_with_a_unique_id()
    {
        string[] runs = RecordedRuns();
        Assert.NotEmpty(runs);
        Assert.Equal(RecordedLines().Count(), CaseReader.ReadFiles(runs).Count);
    }

    [Fact]
    public void Each_scenario_gives_its_four_figures_as_cases_named_by_the_scenario_and_the_figure()
    {
        foreach (IGrouping<string, JsonElement> scenario in RecordedLines().GroupBy(ScenarioId))
        {
            Assert.Equal(Figures, scenario.Select(line => line.GetProperty("measured").GetProperty("what").GetString()));
            Assert.All(scenario, line => Assert.Equal(scenario.Key + "-" + line.GetProperty("measured").GetProperty("what").GetString(), line.GetProperty("id").GetString()));
        }
    }

    [Fact]
    public void Validate_estimates_every_recorded_case_but_those_whose_setting_is_not_modelled_yet()
    {
        IReadOnlyList<ValidationCase> cases = CaseReader.ReadFiles(RecordedRuns());
        ValidationReport report = CaseValidator.Validate(cases);
        Assert.Equal(cases.Count, report.Results.Count);
        // docs/scenario-extensions.md: a static cache is "refused until modelled"; the refusal names the field.
        Assert.All(report.Results, r => Assert.True(
            r.Status == CaseStatus.Ok ? r.Estimated > 0 : Regex.IsMatch(r.Reason!, "^.* 'cache' is "), $"{r.Case.Id}: {r.Reason}"));
    }

    [Fact]
    public void Every_field_the_script_writes_is_documented_in_the_case_format()
    {
        HashSet<string> documented = DocumentedFields();
        foreach (JsonElement line in RecordedLines())
        {
            Assert.All(line.EnumerateObject(), field => Assert.Contains(field.Name, documented));
            Assert.All(line.GetProperty("measured").EnumerateObject(), field => Assert.Contains("measured." + field.Name, documented));
        }
    }

    /// <summary>measure.py names each case "&lt;scenario id&gt;-&lt;figure&gt;" (make_cases).</summary>
    private static string ScenarioId(JsonElement line)
    {
        string id = line.GetProperty("id").GetString()!;
        string figure = line.GetProperty("measured").GetProperty("what").GetString()!;
        return id.EndsWith("-" + figure, StringComparison.Ordinal) ? id[..^(figure.Length + 1)] : id;
    }

    /// <summary>
    /// The field names of the two format documents: the first cell of each table row (<c>| `seq` |</c>,
    /// <c>| `measured.what` |</c>) and the names on the "Ignored fields" line.
    /// </summary>
    private static HashSet<string> DocumentedFields()
    {
        var fields = new HashSet<string>(StringComparer.Ordinal);
        foreach (string doc in new[] { "scenario.md", "scenario-extensions.md" })
        {
            foreach (string line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "docs", doc)))
            {
                IEnumerable<Match> names = line.StartsWith("Ignored fields", StringComparison.Ordinal)
                    ? CodeSpan().Matches(line)
                    : TableRowField().Matches(line);
                foreach (string name in names.Select(m => m.Groups[1].Value))
                {
                    // "measured.what" documents the field "measured" as well as its member "what".
                    fields.Add(name);
                    fields.Add(name.Split('.')[0]);
                }
            }
        }

        return fields;
    }

    [GeneratedRegex("`([a-z_.]+)`")]
    private static partial Regex CodeSpan();

    [GeneratedRegex(@"^\| `([a-z_.]+)` \|")]
    private static partial Regex TableRowField();
}
