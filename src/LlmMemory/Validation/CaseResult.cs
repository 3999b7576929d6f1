namespace LlmMemory.Validation;

/// <summary>One case estimated and compared with its measurement.</summary>
public sealed record CaseResult
{
    public required ValidationCase Case { get; init; }

    public required CaseStatus Status { get; init; }

    /// <summary>The estimate of the measured quantity; null when unsupported.</summary>
    public long? Estimated { get; init; }

    /// <summary>Why the case could not be estimated; null when <see cref="CaseStatus.Ok"/>.</summary>
    public string? Reason { get; init; }

    /// <summary>What a naive rule of thumb gives for the same case, when one applies (<see cref="NaiveRules"/>).</summary>
    public NaiveEstimate? Naive { get; init; }

    /// <summary>(estimated − measured) / measured; null when unsupported.</summary>
    public double? RelativeError => Estimated is long estimate ? ErrorStatistics.RelativeError(estimate, Case.Measured.Value) : null;

    /// <summary>The naive rule's (estimate − measured) / measured; null when no rule applies.</summary>
    public double? NaiveRelativeError => Naive is { } naive ? ErrorStatistics.RelativeError(naive.Value, Case.Measured.Value) : null;

    /// <summary>Whether the case must match exactly or within its tolerance (it counts in <c>exact_required</c>).</summary>
    public bool ExactRequired => Case.Measured.ExactRequired;

    /// <summary>Whether an exact requirement is met; null when the case has none, false when unsupported.</summary>
    public bool? ExactMatch => ExactRequired ? Estimated is long estimate && Case.Measured.Matches(estimate) : null;

    /// <summary>
    /// Whether the case counts in the |relative error| statistics: estimated, judged by its error rather than by an exact
    /// requirement, and not low-confidence. These are the cases the median and p90 targets are about.
    /// </summary>
    public bool InErrorStatistics => Status == CaseStatus.Ok && !ExactRequired && !Case.LowConfidence;
}

/// <summary>Whether a case could be estimated.</summary>
public enum CaseStatus
{
    /// <summary>Estimated and compared.</summary>
    Ok,

    /// <summary>The estimator cannot do this case yet; <see cref="CaseResult.Reason"/> says why.</summary>
    Unsupported,
}
