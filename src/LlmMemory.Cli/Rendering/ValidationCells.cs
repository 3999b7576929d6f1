using System.Globalization;
using LlmMemory.Estimation;
using LlmMemory.Validation;
using LlmMemory.Workloads;

namespace LlmMemory.Cli.Rendering;

/// <summary>How a validation result reads in a cell, shared by the console table and the Markdown report.</summary>
internal static class ValidationCells
{
    /// <summary>A count for parameter quantities, binary units for bytes.</summary>
    public static string Value(MeasuredQuantity what, long value) =>
        what is MeasuredQuantity.Parameters or MeasuredQuantity.TrainableParameters ? Output.Count(value) : new ByteSize(value).ToString();

    public static string Measured(CaseResult result) => Value(result.Case.Measured.What, result.Case.Measured.Value);

    public static string Estimated(CaseResult result) =>
        result.Estimated is long value ? Value(result.Case.Measured.What, value) : "unsupported";

    /// <summary>Signed relative error ("+3.10 %"), or "-" when unsupported.</summary>
    public static string Error(double? relativeError) =>
        relativeError is double e ? string.Create(CultureInfo.InvariantCulture, $"{e * 100:+0.00;-0.00;0.00} %") : "-";

    /// <summary>|relative error| as a percentage ("3.10 %"), or "-" when there is none.</summary>
    public static string Percent(double? ratio) =>
        ratio is double r ? string.Create(CultureInfo.InvariantCulture, $"{r * 100:0.00} %") : "-";

    /// <summary>The verdict on an exact requirement: "exact", "within ±5,243 B", or how far off; empty without one.</summary>
    public static string Check(CaseResult result)
    {
        Measurement measured = result.Case.Measured;
        if (!result.ExactRequired || result.Estimated is not long estimate)
        {
            return "";
        }

        string unit = measured.What is MeasuredQuantity.Parameters or MeasuredQuantity.TrainableParameters ? "" : " B";
        string tolerance = measured.ToleranceBytes is long t ? $"±{Output.Count(t)}{unit}" : "exact";
        long off = estimate - measured.Value;
        return off == 0 ? "exact"
            : result.ExactMatch == true ? $"within {tolerance}"
            : string.Create(CultureInfo.InvariantCulture, $"off by {off:+#,0;-#,0}{unit} (needs {tolerance})");
    }

    /// <summary>Why a case is unsupported, that it is low-confidence, and the known gap it names.</summary>
    public static string Note(CaseResult result)
    {
        string note = result.Reason ?? (result.Case.LowConfidence ? "low confidence: not in the error statistics" : "");
        return result.Case.KnownGap is not string gap ? note
            : note.Length == 0 ? $"known gap: {gap}" : $"{note}; known gap: {gap}";
    }

    public static string Engine(CaseResult result) =>
        result.Case.Measured.What is MeasuredQuantity.Parameters or MeasuredQuantity.TrainableParameters
            ? "-" : Names.Of(result.Case.Scenario.Engine);

    /// <summary>"per GPU" or "total".</summary>
    public static string Scope(CaseResult result) => result.Case.Measured.Scope == MeasurementScope.Total ? "total" : "per GPU";
}
