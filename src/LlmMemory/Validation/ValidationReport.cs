namespace LlmMemory.Validation;

/// <summary>Every case of a validation run, in input order, with the views the reports need.</summary>
public sealed record ValidationReport(IReadOnlyList<CaseResult> Results)
{
    public ValidationSummary Summary => ValidationSummary.Of(Results);

    /// <summary>
    /// The cases worst first: unsupported, then those that miss an exact requirement, then the rest, each by |relative
    /// error| from largest to smallest (ties by id).
    /// </summary>
    public IReadOnlyList<CaseResult> WorstFirst() =>
        Results.OrderBy(r => r.Status == CaseStatus.Unsupported ? 0 : r.ExactMatch == false ? 1 : 2)
            .ThenByDescending(r => r.RelativeError is double e ? Math.Abs(e) : 0)
            .ThenBy(r => r.Case.Id, StringComparer.Ordinal)
            .ToArray();

    /// <summary>The cases grouped by <paramref name="key"/> (in order of first appearance), each with its summary and naive comparison.</summary>
    public IReadOnlyList<ReportGroup> GroupBy(Func<CaseResult, string> key) =>
        Results.GroupBy(key, StringComparer.Ordinal)
            .Select(g => new ReportGroup(g.Key, ValidationSummary.Of(g), NaiveComparison.Of(g)))
            .ToArray();
}

/// <summary>The cases that share a key (a measured quantity, an engine).</summary>
public sealed record ReportGroup(string Key, ValidationSummary Summary, NaiveComparison Naive);

/// <summary>Our |relative error| and a naive rule's, on the same cases: those in the error statistics where a naive rule applies.</summary>
public sealed record NaiveComparison(ErrorSummary Ours, ErrorSummary Naive)
{
    public static NaiveComparison Of(IEnumerable<CaseResult> results)
    {
        CaseResult[] compared = results.Where(r => r.InErrorStatistics && r.Naive is not null).ToArray();
        return new NaiveComparison(ErrorSummary.Of(compared.Select(r => r.RelativeError!.Value)),
            ErrorSummary.Of(compared.Select(r => r.NaiveRelativeError!.Value)));
    }
}
