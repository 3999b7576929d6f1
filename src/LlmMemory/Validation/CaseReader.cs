using System.Collections.Frozen;
using System.Text;
using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Formats;
using LlmMemory.Workloads;

namespace LlmMemory.Validation;

/// <summary>Reads case files: JSON Lines, one case per line (docs/scenario.md, "Case fields").</summary>
/// <remarks>
/// Every line is read strictly: an unknown field, a wrong type, an out-of-range value or a repeated id is a
/// <see cref="ModelFormatException"/> whose message names the file, the line and the field. Blank lines are skipped.
/// </remarks>
public static class CaseReader
{
    /// <summary>Bytes of one case file: the public corpus is under 1 MiB in all; 64 MiB keeps a hostile file from exhausting memory.</summary>
    public const long MaxFileBytes = 64L << 20;

    /// <summary>Largest measured figure: 2^56 bytes (64 PiB) is far above any device or cluster; it keeps sums and differences in range.</summary>
    public const long MaxMeasuredValue = 1L << 56;

    private static readonly FrozenSet<string> CaseFields = FrozenSet.ToFrozenSet(["id", "source", "measured", "stack", "known_gap"]);

    /// <summary>Reads every case of several files, in order; an id may appear once across all of them.</summary>
    /// <exception cref="ModelFormatException">A file cannot be read, or a line is not a case (the first such line).</exception>
    public static IReadOnlyList<ValidationCase> ReadFiles(IEnumerable<string> paths) => Strict(ReadAll(paths));

    /// <summary>
    /// Reads every case of several files, in order, keeping going past lines that are not cases: each is one error naming its
    /// file and line, so one bad line costs that case alone. An id may appear once across all files.
    /// </summary>
    /// <exception cref="ModelFormatException">A file itself cannot be read (missing, not a regular file, too large).</exception>
    public static CaseSet ReadAll(IEnumerable<string> paths)
    {
        ArgumentNullException.ThrowIfNull(paths);
        var cases = new List<ValidationCase>();
        var badLines = new List<ModelFormatException>();
        var first = new Dictionary<string, ValidationCase>(StringComparer.Ordinal);
        foreach (string path in paths)
        {
            CaseSet file = ReadFileKeepingGoing(path);
            badLines.AddRange(file.BadLines);
            foreach (ValidationCase read in file.Cases)
            {
                if (first.TryAdd(read.Id, read))
                {
                    cases.Add(read);
                }
                else
                {
                    badLines.Add(new ModelFormatException(read.Location, "id", $"is \"{read.Id}\", which {first[read.Id].Location} already uses; ids must be unique."));
                }
            }
        }

        return new CaseSet(cases, badLines);
    }

    /// <summary>Reads every case of a file; relative model paths are resolved against the file's folder.</summary>
    /// <exception cref="ModelFormatException">The file cannot be read, or a line is not a case (the first such line).</exception>
    public static IReadOnlyList<ValidationCase> ReadFile(string path) => Strict(ReadFileKeepingGoing(path));

    /// <summary>Reads cases from lines of text; <paramref name="name"/> names them in messages ("NAME line 3: …").</summary>
    /// <exception cref="ModelFormatException">A line is not a case (the first such line).</exception>
    public static IReadOnlyList<ValidationCase> ReadLines(IEnumerable<string> lines, string name, string? baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(lines);
        return Strict(ReadLines(lines.Select(line => (ReadOnlyMemory<byte>)Encoding.UTF8.GetBytes(line)), name, baseDirectory));
    }

    /// <summary>Reads one case from its JSON text; <paramref name="location"/> starts every message.</summary>
    public static ValidationCase ReadLine(string json, string location, string? baseDirectory)
    {
        ArgumentNullException.ThrowIfNull(json);
        return ReadLine(Encoding.UTF8.GetBytes(json), location, baseDirectory);
    }

    private static CaseSet ReadFileKeepingGoing(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, null, "does not exist.");
        }

        byte[] bytes = LocalFile.ReadAllBytes(path, MaxFileBytes, "a case file");
        ReadOnlyMemory<byte> text = bytes.AsMemory(bytes.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0);
        return ReadLines(Lines(text), path, Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>The file split at each '\n', as bytes: each line's text is checked on its own, so invalid UTF-8 costs only its line.</summary>
    private static IEnumerable<ReadOnlyMemory<byte>> Lines(ReadOnlyMemory<byte> text)
    {
        while (true)
        {
            int end = text.Span.IndexOf((byte)'\n');
            if (end < 0)
            {
                yield return text;
                yield break;
            }

            yield return text[..end];
            text = text[(end + 1)..];
        }
    }

    private static CaseSet ReadLines(IEnumerable<ReadOnlyMemory<byte>> lines, string name, string? baseDirectory)
    {
        var cases = new List<ValidationCase>();
        var badLines = new List<ModelFormatException>();
        var firstLine = new Dictionary<string, int>(StringComparer.Ordinal);
        int number = 0;
        foreach (ReadOnlyMemory<byte> line in lines)
        {
            number++;
            if (line.Span.Trim(" \t\r\f\v"u8).IsEmpty)
            {
                continue;
            }

            string location = $"{name} line {number}";
            try
            {
                ValidationCase read = ReadLine(line.Span, location, baseDirectory);
                if (!firstLine.TryAdd(read.Id, number))
                {
                    throw new ModelFormatException(location, "id", $"is \"{read.Id}\", which line {firstLine[read.Id]} already uses; ids must be unique.");
                }

                cases.Add(read);
            }
            catch (ModelFormatException error)
            {
                badLines.Add(error);
            }
        }

        return new CaseSet(cases, badLines);
    }

    private static ValidationCase ReadLine(ReadOnlySpan<byte> json, string location, string? baseDirectory)
    {
        // Invalid UTF-8 and escaped lone surrogates are refused here, naming the field, before any string is read.
        JsonText.Check(json, location, "is not UTF-8 text.");
        try
        {
            using JsonDocument document = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
            return Read(document.RootElement, location, baseDirectory);
        }
        catch (JsonException error)
        {
            throw new ModelFormatException(location, null, $"is not valid JSON ({error.Message.Split('.')[0]}).");
        }
    }

    private static IReadOnlyList<ValidationCase> Strict(CaseSet read) => read.BadLines.Count > 0 ? throw read.BadLines[0] : read.Cases;

    private static ValidationCase Read(JsonElement root, string location, string? baseDirectory)
    {
        var o = new ScenarioReader.Fields(root, location);
        string id = NonEmpty(o, "id");
        string source = NonEmpty(o, "source");
        Measurement measured = ReadMeasurement(o);
        string? stack = o.Has("stack") ? NonEmpty(o, "stack") : null;
        string? knownGap = o.Has("known_gap") ? NonEmpty(o, "known_gap") : null;
        Scenario scenario = ScenarioReader.Read(root, location, baseDirectory, CaseFields);
        return new ValidationCase
        {
            Id = id,
            Source = source,
            Measured = measured,
            Scenario = scenario,
            Stack = stack,
            KnownGap = knownGap,
            LowConfidence = root.TryGetProperty("confidence", out JsonElement confidence) && confidence.ValueKind == JsonValueKind.String
                && string.Equals(confidence.GetString()?.Trim(), "low", StringComparison.OrdinalIgnoreCase),
            Location = location,
        };
    }

    private static string NonEmpty(ScenarioReader.Fields o, string name)
    {
        o.Required(name);
        string text = o.String(name)!;
        return string.IsNullOrWhiteSpace(text) ? throw o.Error(name, "must not be empty") : text;
    }

    private static Measurement ReadMeasurement(ScenarioReader.Fields o)
    {
        var m = new ScenarioReader.Fields(o.Required("measured"), o.Source, "measured.");
        m.RejectUnknown(name => name is "what" or "bytes" or "per" or "exact" or "tolerance_bytes");
        m.Required("what");
        MeasuredQuantity what = m.OptionalEnum<MeasuredQuantity>("what")!.Value;
        m.Required("bytes");
        long value = m.Long("bytes", 1, MaxMeasuredValue)!.Value;
        m.Required("exact");
        bool exact = m.Bool("exact")!.Value;
        long? tolerance = m.Long("tolerance_bytes", 0, value);
        return new Measurement(what, value, m.Enum("per", MeasurementScope.Gpu), exact, tolerance);
    }
}

/// <summary>The cases read from case files, and the lines that are not cases, each error naming its file and line.</summary>
public sealed record CaseSet(IReadOnlyList<ValidationCase> Cases, IReadOnlyList<ModelFormatException> BadLines);
