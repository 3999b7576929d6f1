using System.Text.Json;

namespace LlmMemory.Tests.Support;

/// <summary>The validation corpus copied into the repository (data/validation), as the tests see it.</summary>
internal static class Corpus
{
    public static string PathOf(string file) => Path.Combine(AppContext.BaseDirectory, "data", "validation", file);

    /// <summary>Every case line of a corpus file, parsed.</summary>
    public static IEnumerable<JsonElement> Cases(string file) =>
        File.ReadLines(PathOf(file)).Where(line => line.Trim().Length > 0).Select(line => JsonDocument.Parse(line).RootElement.Clone());
}
