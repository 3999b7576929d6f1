using System.Globalization;
using System.Text.RegularExpressions;
using LlmMemory.Catalog;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Estimation;

/// <summary>Turns a scenario's <see cref="ModelReference"/> into a <see cref="ResolvedModel"/>.</summary>
/// <remarks>
/// A name is tried, in order, as a catalog id or alias, a parameter count ("7B", "6.7e9"), then a path relative to the
/// scenario's folder: a <c>.json</c> config (not a safetensors index) or a folder holding <c>config.json</c>.
/// </remarks>
public static partial class ModelResolver
{
    public static ResolvedModel Resolve(ModelReference reference, string? baseDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return reference switch
        {
            ModelReference.ParameterCount count => Counted(count.Count, count.ToString()),
            ModelReference.InlineConfig inline => new ResolvedModel("inline config", null, "inline config",
                ConfigJsonReader.Read(inline.Config, "model.config")),
            ModelReference.Named named => ResolveName(named.Text, baseDirectory),
            _ => throw new ArgumentOutOfRangeException(nameof(reference)),
        };
    }

    /// <summary>Parses "7B", "6.7e9", "1.5T", "350M" or a plain integer into a parameter count.</summary>
    public static bool TryParseCount(string text, out long count)
    {
        count = 0;
        Match match = CountPattern().Match(text.Trim());
        if (!match.Success || !double.TryParse(match.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
        {
            return false;
        }

        double scale = match.Groups[2].Value.ToUpperInvariant() switch
        {
            "K" => 1e3,
            "M" => 1e6,
            "B" => 1e9,
            "T" => 1e12,
            _ => 1,
        };
        double parameters = Math.Round(value * scale);
        if (parameters < 1 || parameters > Limits.MaxParameters)
        {
            return false;
        }

        count = (long)parameters;
        return true;
    }

    private static ResolvedModel ResolveName(string text, string? baseDirectory)
    {
        if (ModelCatalog.TryFind(text, out CatalogModel model))
        {
            return new ResolvedModel(model.Alias, model.HfId, "catalog", model.Architecture);
        }

        if (TryParseCount(text, out long count))
        {
            return Counted(count, text.Trim());
        }

        string path = baseDirectory is null ? text : Path.Combine(baseDirectory, text);
        if (Directory.Exists(path))
        {
            string config = Path.Combine(path, "config.json");
            return File.Exists(config)
                ? FromConfig(config, Path.GetFileName(Path.TrimEndingDirectorySeparator(path)))
                : throw new ModelFormatException(path, null, "is a folder without a config.json.");
        }

        if (File.Exists(path))
        {
            if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !path.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase))
            {
                return FromConfig(path, Path.GetFileNameWithoutExtension(path));
            }

            throw new ModelFormatException(path, null, "is not a config.json; supported model files are .json configs and folders holding config.json.");
        }

        IReadOnlyList<string> near = ModelCatalog.Suggest(text);
        throw new ModelFormatException($"Unknown model '{text}': not a catalog id or alias, a parameter count or an existing path. Did you mean {string.Join(", ", near)}?");
    }

    private static ResolvedModel FromConfig(string path, string name) =>
        new(name, null, path, ConfigJsonReader.ReadFile(path));

    private static ResolvedModel Counted(long count, string name) => new(name, null, "parameter count", null, count);

    [GeneratedRegex(@"^(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([kKmMbBtT]?)$")]
    private static partial Regex CountPattern();
}
