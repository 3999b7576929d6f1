using System.Collections.Frozen;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;
using LlmMemory.Numerics;

namespace LlmMemory.Formats.Gguf;

/// <summary>
/// A GGUF model (one file, or the splits of one) as a <see cref="ModelArchitecture"/>: the metadata is rewritten as the
/// Hugging Face <c>config.json</c> it was converted from and read by <see cref="ConfigJsonReader"/>, then the inventory is
/// replaced by the file's own tensors with their ggml types and exact bytes.
/// </summary>
/// <remarks>
/// The key mapping inverts llama.cpp's <c>convert_hf_to_gguf.py</c> (<c>set_gguf_parameters</c> of each model class).
/// Going through the config reader keeps one description of each architecture (attention layout, MoE layers, sliding
/// windows) for every source.
/// </remarks>
public static partial class GgufModel
{
    /// <summary>GGUF <c>general.architecture</c> → transformers <c>model_type</c>.</summary>
    private static readonly FrozenDictionary<string, string> ModelTypes = new Dictionary<string, string>
    {
        ["llama"] = "llama", ["qwen2"] = "qwen2", ["qwen2moe"] = "qwen2_moe", ["qwen3"] = "qwen3", ["qwen3moe"] = "qwen3_moe",
        ["gemma"] = "gemma", ["gemma2"] = "gemma2", ["gemma3"] = "gemma3_text", ["phi3"] = "phi3", ["deepseek2"] = "deepseek_v2",
        ["gpt-oss"] = "gpt_oss", ["granitemoe"] = "granitemoe", ["gptneox"] = "gpt_neox",
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>The GGUF architectures this reader maps, sorted.</summary>
    public static IReadOnlyList<string> SupportedArchitectures { get; } = ModelTypes.Keys.Order(StringComparer.Ordinal).ToArray();

    /// <summary>Reads a GGUF file; for <c>NAME-00001-of-0000N.gguf</c> every split beside it is read too.</summary>
    public static ModelArchitecture ReadFile(string path)
    {
        IReadOnlyList<string> paths = SplitPaths(path);
        return FromFiles(paths.Select(GgufReader.ReadFile).ToArray(), path);
    }

    /// <summary>The files of a split model, in order, or just <paramref name="path"/> when it is not a split name.</summary>
    public static IReadOnlyList<string> SplitPaths(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        Match split = SplitName().Match(path);
        if (!split.Success)
        {
            return [path];
        }

        int count = int.Parse(split.Groups[3].Value, CultureInfo.InvariantCulture);
        if (count is < 1 or > GgufLimits.MaxSplits)
        {
            throw new ModelFormatException(path, null, $"names {count} splits; a split model has 1 to {GgufLimits.MaxSplits:N0}.");
        }

        string width = "D" + split.Groups[2].Value.Length.ToString(CultureInfo.InvariantCulture);
        return Enumerable.Range(1, count)
            .Select(i => $"{split.Groups[1].Value}-{i.ToString(width, CultureInfo.InvariantCulture)}-of-{split.Groups[3].Value}.gguf")
            .ToArray();
    }

    /// <summary>Builds the architecture from the headers of a model's files (one, or every split in order).</summary>
    /// <exception cref="ModelFormatException">Unsupported architecture, missing keys, inconsistent splits or tensors.</exception>
    public static ModelArchitecture FromFiles(IReadOnlyList<GgufFile> files, string source)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (files.Count == 0)
        {
            throw new ArgumentException("At least one file is needed.", nameof(files));
        }

        CheckSplits(files, source);
        var tensors = new List<GgufTensor>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (GgufFile file in files)
        {
            foreach (GgufTensor tensor in file.Tensors)
            {
                tensors.Add(names.Add(tensor.Name) ? tensor
                    : throw new ModelFormatException(file.Source, tensor.Name, "is also stored in another split."));
            }
        }

        return Build(files[0].Metadata, tensors, source, files.Select(f => f.Source).ToArray());
    }

    /// <summary>
    /// Builds the architecture from what a header says, without its file: the metadata and the tensor infos, as a client
    /// that read the header itself sends them (the web page). The same code builds every GGUF model.
    /// </summary>
    /// <param name="metadata">Key/value metadata; arrays need only their length.</param>
    /// <param name="tensors">Tensor infos with distinct names, each already checked (<see cref="GgufTensor.Checked"/>).</param>
    /// <param name="source">Name used in messages and as the model's one "file".</param>
    /// <exception cref="ModelFormatException">Unsupported architecture, missing keys, tensors the metadata does not describe.</exception>
    public static ModelArchitecture FromHeader(IReadOnlyDictionary<string, GgufValue> metadata, IReadOnlyList<GgufTensor> tensors, string source)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(tensors);
        return Build(metadata, tensors, source, [source]);
    }

    private static ModelArchitecture Build(IReadOnlyDictionary<string, GgufValue> metadata, IReadOnlyList<GgufTensor> tensors, string source,
        IReadOnlyList<string> files)
    {
        string arch = metadata.GetValueOrDefault(GgufKeys.Architecture)?.Text
            ?? throw new ModelFormatException(source, GgufKeys.Architecture, "is missing.");
        if (!ModelTypes.TryGetValue(arch, out string? modelType))
        {
            throw new ModelFormatException(source, GgufKeys.Architecture,
                $"is \"{arch}\", which is not supported. Supported: {string.Join(", ", SupportedArchitectures)}.");
        }

        CheckTotal(tensors, source);
        var meta = new Metadata(metadata, source, arch);
        JsonObject config = GgufConfig.Build(meta, modelType, tensors);
        ModelArchitecture described;
        using (JsonDocument document = JsonDocument.Parse(config.ToJsonString()))
        {
            described = ConfigJsonReader.Read(document.RootElement, $"{source} (metadata as config.json)");
        }

        ModelArchitecture model = GgufInventory.Replace(described, tensors, files, source);
        return meta.Integer(GgufKeys.FileType) is long fileType
            ? model with { WeightsFile = model.WeightsFile! with { Notes = [FileTypeNote(fileType), .. model.WeightsFile.Notes] } }
            : model;
    }

    /// <summary>What <c>general.file_type</c> says the file was written as; the estimate uses the tensors' own types either way.</summary>
    private static string FileTypeNote(long fileType) => WeightFormats.FromLlamaFileType(fileType) is { } format
        ? $"{GgufKeys.FileType} {fileType}: the file was written as {format.Name} ({format.Description})."
        : $"{GgufKeys.FileType} {fileType} is not a llama.cpp file type this library knows; the tensors' own types are used.";

    /// <summary>All tensors together stay within <see cref="Limits.MaxParameters"/>, so no sum over them overflows.</summary>
    private static void CheckTotal(IReadOnlyList<GgufTensor> tensors, string source)
    {
        long total = 0;
        foreach (GgufTensor tensor in tensors)
        {
            total += tensor.Elements;
            if (total > Limits.MaxParameters)
            {
                throw new ModelFormatException(source, null,
                    $"holds more than {Limits.MaxParameters:N0} tensor elements in all, above the limit for a whole model.");
            }
        }
    }

    private static void CheckSplits(IReadOnlyList<GgufFile> files, string source)
    {
        if (files.Count == 1 && !files[0].Metadata.ContainsKey(GgufKeys.SplitCount))
        {
            return;
        }

        for (int i = 0; i < files.Count; i++)
        {
            var meta = new Metadata(files[i].Metadata, files[i].Source, "");
            long count = meta.Integer(GgufKeys.SplitCount) ?? files.Count;
            long index = meta.Integer(GgufKeys.SplitIndex) ?? i;
            if (count != files.Count || index != i)
            {
                throw new ModelFormatException(files[i].Source, GgufKeys.SplitIndex,
                    $"says split {index + 1} of {count}, but it was read as split {i + 1} of {files.Count}.");
            }
        }

        long declared = new Metadata(files[0].Metadata, files[0].Source, "").Integer(GgufKeys.SplitTensors) ?? files.Sum(f => f.Tensors.Count);
        long actual = files.Sum(f => f.Tensors.Count);
        if (declared != actual)
        {
            throw new ModelFormatException(source, GgufKeys.SplitTensors, $"is {declared:N0}, but the splits hold {actual:N0} tensors.");
        }
    }

    [GeneratedRegex(@"^(.*)-(\d{5})-of-(\d{5})\.gguf$")]
    private static partial Regex SplitName();
}
