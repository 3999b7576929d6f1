using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Formats;
using LlmMemory.Models;

namespace LlmMemory.Workloads;

/// <summary>
/// A scenario as the user wrote it, before any check: the JSON object of a scenario file or API body, with command-line
/// flags written over it field by field. <see cref="Read"/> checks it once, by the rules of docs/scenario.md, whichever
/// entry point it came from; an error names the field and where it came from (the file, the request, or the flag).
/// </summary>
public sealed class ScenarioDraft
{
    private readonly JsonObject _root;
    private readonly Dictionary<string, string> _origins = new(StringComparer.Ordinal);

    private ScenarioDraft(JsonObject root, string source, string? baseDirectory)
    {
        _root = root;
        Source = source;
        BaseDirectory = baseDirectory;
    }

    /// <summary>Where the draft's own fields came from: a file path, "request body", "command line".</summary>
    public string Source { get; }

    /// <summary>The folder relative model paths are resolved against (a scenario file's folder; null: the working directory).</summary>
    public string? BaseDirectory { get; private set; }

    /// <summary>An empty draft that flags fill in.</summary>
    public static ScenarioDraft Empty(string source) => new([], source, null);

    /// <summary>The object of a scenario file; relative model paths resolve against its folder.</summary>
    public static ScenarioDraft FromFile(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path))
        {
            throw new ModelFormatException(path, null, Directory.Exists(path) ? "is a folder, not a scenario file." : "no such file.");
        }

        byte[] bytes = LocalFile.ReadAllBytes(path, Limits.MaxConfigBytes, "a scenario file");
        JsonText.Check(bytes, path);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(bytes, documentOptions: new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException error)
        {
            throw new ModelFormatException(path, null, $"is not valid JSON ({error.Message.Split('.')[0]}).");
        }

        return node is JsonObject root
            ? new ScenarioDraft(root, path, Path.GetDirectoryName(Path.GetFullPath(path)))
            : throw new ModelFormatException(path, null, "must be a JSON object.");
    }

    /// <summary>A scenario object received whole (an API body); it names no folder, so model paths resolve nowhere.</summary>
    public static ScenarioDraft FromJson(JsonElement scenario, string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        return JsonObject.Create(scenario) is JsonObject root
            ? new ScenarioDraft((JsonObject)root.DeepClone(), source, null)
            : throw new ModelFormatException(source, null, "must be a JSON object.");
    }

    /// <summary>
    /// Writes one field (a dotted path such as <c>parallel.gpus</c>) over whatever the draft holds, remembering
    /// <paramref name="origin"/> (a flag) so an error in that field names it.
    /// </summary>
    public ScenarioDraft Set(string path, JsonNode? value, string origin)
    {
        ArgumentNullException.ThrowIfNull(path);
        string[] parts = path.Split('.');
        JsonObject parent = _root;
        foreach (string part in parts[..^1])
        {
            if (parent[part] is not JsonObject child)
            {
                child = [];
                parent[part] = child;
            }

            parent = child;
        }

        parent[parts[^1]] = value;
        _origins[path] = origin;
        if (path == "model")
        {
            // A model named on the command line is a path from the working directory, not from the scenario file's folder.
            BaseDirectory = null;
        }

        return this;
    }

    /// <summary>What last wrote <paramref name="path"/> (a flag, a config file's key); null when it is the draft's own or unset.</summary>
    public string? OriginOf(string path) => _origins.GetValueOrDefault(path);

    /// <summary>True when the draft holds <paramref name="path"/> (a top-level field).</summary>
    public bool Has(string path) => _root[path] is not null;

    /// <summary>Checks every field and returns the typed scenario.</summary>
    /// <exception cref="ModelFormatException">A field is unknown, mistyped, out of range or inconsistent; the message names it and its origin.</exception>
    public Scenario Read() => ScenarioReader.Read(ToElement(), new ScenarioReader.Origin(Source, _origins), BaseDirectory, extraFields: null);

    private JsonElement ToElement()
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            _root.WriteTo(writer);
        }

        using JsonDocument document = JsonDocument.Parse(buffer.ToArray(), new JsonDocumentOptions { MaxDepth = 64 });
        return document.RootElement.Clone();
    }
}
