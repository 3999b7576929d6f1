using System.Reflection;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LlmMemory.Hardware;

/// <summary>The devices of data/gpus.json (embedded), each with exact bytes and the source of every number.</summary>
public static class GpuCatalog
{
    private static readonly Lazy<IReadOnlyList<Gpu>> Entries = new(Load);

    /// <summary>Every device, in catalog order.</summary>
    public static IReadOnlyList<Gpu> All => Entries.Value;

    /// <summary>The device an id names: the id itself (any case), or a looser spelling that names exactly one device.</summary>
    public static bool TryFind(string id, out Gpu gpu)
    {
        ArgumentNullException.ThrowIfNull(id);
        gpu = Entries.Value.FirstOrDefault(g => string.Equals(g.Id, id.Trim(), StringComparison.OrdinalIgnoreCase))
            ?? (Matches(id) is [Gpu only] ? only : null)!;
        return gpu is not null;
    }

    /// <summary>
    /// Devices a loose spelling could mean ("RTX 4090", "4090", "H200 141GB", "nvidia-h100", "h100 sxm", "H100-SXM5-80GB",
    /// "L4"). Case, spaces, hyphens, underscores and the vendor and brand words are ignored. In order, the first rule that
    /// names a device wins: the whole id; the id with its memory in GB (GPU "GB" are GiB); every word of the spelling a word
    /// of the device's id or name ("l4" is the L4, not the L40S); every word the start of such a word ("sxm" for "SXM5").
    /// </summary>
    public static IReadOnlyList<Gpu> Matches(string spelling)
    {
        ArgumentNullException.ThrowIfNull(spelling);
        string key = Key(spelling);
        if (key.Length == 0)
        {
            return [];
        }

        Gpu[] same = Entries.Value.Where(g => Key(g.Id) == key).ToArray();
        if (same.Length > 0)
        {
            return same;
        }

        Gpu[] withMemory = Entries.Value.Where(g => g.Memory is ByteSize m && key == $"{Key(g.Id)}{Math.Round(m.Bytes / (double)(1L << 30))}gb").ToArray();
        if (withMemory.Length > 0)
        {
            return withMemory;
        }

        string[] words = Words(spelling);
        Gpu[] wordForWord = Entries.Value.Where(g => words.All(w => Words(g.Id, g.Name).Contains(w))).ToArray();
        return wordForWord.Length > 0
            ? wordForWord
            : Entries.Value.Where(g => words.All(w => Words(g.Id, g.Name).Any(d => d.StartsWith(w, StringComparison.Ordinal)))).ToArray();
    }

    /// <exception cref="FormatException">Unknown id; the message lists the known ones.</exception>
    public static Gpu Find(string id) =>
        TryFind(id, out Gpu gpu) ? gpu : throw new FormatException($"Unknown GPU '{id}'. {Suggestion(id)}");

    /// <summary>"Did you mean a, b?" for an ambiguous spelling, else the known ids.</summary>
    public static string Suggestion(string id) =>
        Matches(id) is { Count: > 1 } several
            ? $"It could be {string.Join(", ", several.Select(g => g.Id))}."
            : $"Known: {string.Join(", ", Entries.Value.Select(g => g.Id))}.";

    /// <summary>Vendor and brand words, which name no device.</summary>
    private static readonly string[] Brands = ["nvidia", "geforce", "tesla", "amd", "instinct", "rtx"];

    private static string Key(string text)
    {
        string lower = text.ToLowerInvariant();
        foreach (string word in Brands)
        {
            lower = lower.Replace(word, "", StringComparison.Ordinal);
        }

        return new string(lower.Where(char.IsAsciiLetterOrDigit).ToArray());
    }

    /// <summary>The lower-case words of <paramref name="texts"/> (split at anything not a letter or digit), brand words left out.</summary>
    private static string[] Words(params string[] texts) =>
        texts.SelectMany(t => Regex.Matches(t.ToLowerInvariant(), "[a-z0-9]+").Select(m => m.Value))
            .Where(w => !Brands.Contains(w))
            .ToArray();

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
            basis)
        {
            ComputeCapability = e.TryGetProperty("compute_capability", out JsonElement cc) && Version.TryParse(cc.GetString(), out Version? version) ? version : null,
            NvidiaSmiTotalMib = e.TryGetProperty("nvidia_smi_total_mib", out JsonElement smi) && smi.ValueKind == JsonValueKind.Number ? smi.GetInt64() : null,
        };
    }

    private static string? Text(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static ByteSize? Bytes(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind == JsonValueKind.Number ? new ByteSize(value.GetInt64()) : null;

    private static bool? Flag(JsonElement e, string key) =>
        e.TryGetProperty(key, out JsonElement value) && value.ValueKind is JsonValueKind.True or JsonValueKind.False ? value.GetBoolean() : null;
}
