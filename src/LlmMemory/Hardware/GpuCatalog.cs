using System.Reflection;
using System.Text.Json;

namespace LlmMemory.Hardware;

/// <summary>The devices of data/gpus.json (embedded), each with exact bytes and the source of every number.</summary>
public static class GpuCatalog
{
    private static readonly Lazy<IReadOnlyList<Gpu>> Entries = new(Load);

    /// <summary>Every device, in catalog order.</summary>
    public static IReadOnlyList<Gpu> All => Entries.Value;

    public static bool TryFind(string id, out Gpu gpu)
    {
        ArgumentNullException.ThrowIfNull(id);
        gpu = Entries.Value.FirstOrDefault(g => string.Equals(g.Id, id.Trim(), StringComparison.OrdinalIgnoreCase))!;
        return gpu is not null;
    }

    /// <exception cref="FormatException">Unknown id; the message lists the known ones.</exception>
    public static Gpu Find(string id) =>
        TryFind(id, out Gpu gpu)
            ? gpu
            : throw new FormatException($"Unknown GPU '{id}'. Known: {string.Join(", ", Entries.Value.Select(g => g.Id))}.");

    private static Gpu[] Load()
    {
        using Stream stream = Assembly.GetExecutingAssembly().GetManifestResourceStream("gpus.json")!;
        using JsonDocument document = JsonDocument.Parse(stream);
        return document.RootElement.EnumerateArray().Select(Read).ToArray();
    }

    private static Gpu Read(JsonElement e)
    {
        ByteSize? memory = Bytes(e, "memory_bytes");
        ByteSize? usable = Bytes(e, "reported_total_bytes");
        string? basis = usable is null ? null : Text(e, "reported_by");
        if (usable is null && memory is ByteSize m && e.TryGetProperty("gpu_usable_fraction", out JsonElement fraction) && fraction.ValueKind == JsonValueKind.Number)
        {
            usable = new ByteSize((long)(m.Bytes * fraction.GetDouble()));
            basis = $"{fraction.GetDouble():0.####} of unified memory (the GPU's default working-set share; no exact reading)";
        }

        return new Gpu(
            e.GetProperty("id").GetString()!,
            e.GetProperty("name").GetString()!,
            e.GetProperty("vendor").GetString()!,
            memory,
            usable,
            Flag(e, "bf16"),
            Flag(e, "fp8"),
            e.GetProperty("source").GetString() ?? "",
            Text(e, "memory_marketed"),
            basis);
    }

    private static string? Text(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static ByteSize? Bytes(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? new ByteSize(value.GetInt64()) : null;

    private static bool? Flag(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;
}
