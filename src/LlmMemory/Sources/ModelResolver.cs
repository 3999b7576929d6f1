using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using LlmMemory.Catalog;
using LlmMemory.Formats.Gguf;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Formats.Safetensors;
using LlmMemory.Models;
using LlmMemory.Workloads;

namespace LlmMemory.Sources;

/// <summary>Turns a scenario's <see cref="ModelReference"/> into a <see cref="ResolvedModel"/>.</summary>
/// <remarks>
/// A name is tried, in order, as a catalog id or alias, a parameter count ("7B", "6.7e9"), then a path relative to the
/// scenario's folder: a <c>.gguf</c> file (or the first of its splits), a <c>.safetensors</c> file or
/// <c>model.safetensors.index.json</c> (with <c>config.json</c> beside it), a <c>.json</c> config, or a folder holding
/// <c>config.json</c> (and safetensors weights, when present). Last, an <c>org/name</c> id goes to the host's Hub resolver.
/// </remarks>
public static partial class ModelResolver
{
    /// <param name="reference">The model reference.</param>
    /// <param name="baseDirectory">Folder relative paths are resolved against.</param>
    /// <param name="remote">Resolves a Hugging Face id (<c>org/name[@revision]</c>) that is neither in the catalog nor a path;
    /// the library does no HTTP, so hosts pass the Hub client here. Null: such ids are unknown.</param>
    public static ResolvedModel Resolve(ModelReference reference, string? baseDirectory = null, Func<string, ResolvedModel>? remote = null)
    {
        ArgumentNullException.ThrowIfNull(reference);
        return reference switch
        {
            ModelReference.ParameterCount count => Counted(count.Count, count.ToString()),
            ModelReference.InlineConfig inline => new ResolvedModel("inline config", null, "inline config",
                ConfigJsonReader.Read(inline.Config, "model.config")),
            ModelReference.GgufHeader gguf => FromGgufHeader(gguf.Header),
            ModelReference.Named named => ResolveName(named.Text, baseDirectory, remote),
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

    private static ResolvedModel ResolveName(string text, string? baseDirectory, Func<string, ResolvedModel>? remote)
    {
        if (ModelCatalog.TryFind(text, out CatalogModel model))
        {
            return model.VariantOf is CatalogModel basis
                ? new ResolvedModel($"{model.HfId} (as {basis.Alias})", model.HfId, $"catalog variant of {basis.HfId}", model.Architecture)
                : new ResolvedModel(model.Alias, model.HfId, "catalog", model.Architecture);
        }

        if (TryParseCount(text, out long count))
        {
            return Counted(count, text.Trim());
        }

        string path = baseDirectory is null ? text : Path.Combine(baseDirectory, text);
        if (Directory.Exists(path))
        {
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(path));
            string config = Path.Combine(path, "config.json");
            return !File.Exists(config) ? throw new ModelFormatException(path, null, "is a folder without a config.json.")
                : SafetensorsCheckpoint.HasWeights(path) ? new ResolvedModel(name, null, path, SafetensorsCheckpoint.ReadFolder(path))
                : FromConfig(config, name);
        }

        if (File.Exists(path))
        {
            return FromFile(path);
        }

        if (LooksLikePath(text))
        {
            throw new ModelFormatException(path, null, "no such file or folder.");
        }

        if (remote is not null && HubId().IsMatch(text.Trim()))
        {
            return remote(text.Trim());
        }

        IReadOnlyList<string> near = ModelCatalog.Suggest(text);
        throw new ModelFormatException($"Unknown model '{text}': not a catalog id or alias, a parameter count, an existing path{(remote is null ? "" : " or a Hugging Face id")}. Did you mean {string.Join(", ", near)}?");
    }

    /// <summary>A model file: a GGUF (or the first of its splits), a safetensors file or index, or a config.json.</summary>
    private static ResolvedModel FromFile(string path)
    {
        string file = Path.GetFileName(path);
        if (file.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
        {
            return new ResolvedModel(Path.GetFileNameWithoutExtension(path), null, path, GgufModel.ReadFile(path));
        }

        if (file.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
        {
            return new ResolvedModel(FolderName(path), null, path, SafetensorsCheckpoint.ReadFile(path));
        }

        if (file.EndsWith(".safetensors.index.json", StringComparison.OrdinalIgnoreCase))
        {
            return new ResolvedModel(FolderName(path), null, path, SafetensorsCheckpoint.ReadIndex(path));
        }

        return file.EndsWith(".json", StringComparison.OrdinalIgnoreCase) && !file.EndsWith(".index.json", StringComparison.OrdinalIgnoreCase)
            ? FromConfig(path, Path.GetFileNameWithoutExtension(path))
            : throw new ModelFormatException(path, null,
                "is not a model file; supported are .gguf, .safetensors, model.safetensors.index.json, config.json and folders holding config.json.");
    }

    /// <summary>A header sent without its file: read from JSON, then built by the code that builds a GGUF file's model.</summary>
    private static ResolvedModel FromGgufHeader(JsonElement header)
    {
        const string source = "model.gguf";
        (IReadOnlyDictionary<string, GgufValue> metadata, IReadOnlyList<GgufTensor> tensors) = GgufHeaderJson.Read(header, source);
        return new ResolvedModel("GGUF header", null, "GGUF header", GgufModel.FromHeader(metadata, tensors, source));
    }

    private static string FolderName(string path) => Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(path))) ?? path;

    private static ResolvedModel FromConfig(string path, string name) =>
        new(name, null, path, ConfigJsonReader.ReadFile(path));

    private static ResolvedModel Counted(long count, string name) => new(name, null, "parameter count", null, count);

    /// <summary>
    /// A name that can only be a path: it starts at a root, a home or a relative folder (<c>/</c>, <c>~</c>, <c>./</c>,
    /// <c>../</c>), or before any Hub revision or file (<c>@…</c>, <c>:…</c>) it ends in a model file's extension or has more
    /// than one <c>/</c> (a Hub id has exactly one: <c>org/name</c>).
    /// </summary>
    private static bool LooksLikePath(string text)
    {
        string t = text.Trim();
        string beforeRevision = t.Split('@', ':')[0];
        return Path.IsPathRooted(t) || t.StartsWith('~') || t.StartsWith("./", StringComparison.Ordinal) || t.StartsWith("../", StringComparison.Ordinal)
            || ModelFileExtensions.Any(e => beforeRevision.EndsWith(e, StringComparison.OrdinalIgnoreCase))
            || beforeRevision.Count(c => c == '/') > 1;
    }

    private static readonly string[] ModelFileExtensions = [".json", ".gguf", ".safetensors"];

    /// <summary>Whether <paramref name="text"/> has the shape of a Hugging Face id: <c>org/name</c>, optionally <c>@revision</c> and <c>:file-or-quant</c>.</summary>
    public static bool IsHubId(string text) => text is not null && HubId().IsMatch(text.Trim());

    [GeneratedRegex(@"^[A-Za-z0-9][\w.\-]{0,95}/[\w.\-]{1,96}(@[\w.\-/]{1,200})?(:[\w.\-/]{1,200})?$")]
    private static partial Regex HubId();

    [GeneratedRegex(@"^(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*([kKmMbBtT]?)$")]
    private static partial Regex CountPattern();
}
