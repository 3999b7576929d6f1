using System.Text.RegularExpressions;

namespace LlmMemory.Hub;

/// <summary>A model on the Hub: <c>org/name</c>, an optional <c>@revision</c>, and for GGUF repos an optional <c>:file-or-quant</c>.</summary>
/// <param name="Repo">The repository id, <c>org/name</c>.</param>
/// <param name="Revision">Branch, tag or commit (<c>main</c> when not given).</param>
/// <param name="Selector">A GGUF file name (<c>model-Q4_K_M.gguf</c>) or a quantization tag (<c>Q4_K_M</c>); null for safetensors.</param>
public sealed partial record HubModelId(string Repo, string Revision, string? Selector)
{
    /// <summary>Parses <c>org/name[@revision][:file-or-quant]</c>.</summary>
    /// <exception cref="FormatException">Not of that shape.</exception>
    public static HubModelId Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Match m = Pattern().Match(text.Trim());
        return m.Success && !text.Split('/', ':', '@').Any(part => part is "." or "..")
            ? new HubModelId(m.Groups["repo"].Value, m.Groups["rev"].Success ? m.Groups["rev"].Value : "main", m.Groups["sel"].Success ? m.Groups["sel"].Value : null)
            : throw new FormatException($"'{text}' is not a Hugging Face model id (org/name, optionally @revision and :file-or-quant).");
    }

    public override string ToString() => Repo + (Revision == "main" ? "" : "@" + Revision) + (Selector is null ? "" : ":" + Selector);

    [GeneratedRegex(@"^(?<repo>[A-Za-z0-9][\w.\-]{0,95}/[\w.\-]{1,96})(@(?<rev>[\w.\-/]{1,200}))?(:(?<sel>[\w.\-/]{1,200}))?$")]
    private static partial Regex Pattern();
}
