namespace LlmMemory.Hub;

/// <summary>Where the Hub is, who is asking, and where its local cache lives; read from the same variables huggingface_hub reads.</summary>
/// <param name="Endpoint">Hub address (<c>HF_ENDPOINT</c>, default https://huggingface.co).</param>
/// <param name="Token">Access token for gated and private repos (<c>HF_TOKEN</c>, also the older <c>HUGGING_FACE_HUB_TOKEN</c>, else
/// the file <c>huggingface-cli login</c> writes: <c>HF_TOKEN_PATH</c>, else <c>$HF_HOME/token</c>).</param>
/// <param name="Offline">Use only the local cache (<c>HF_HUB_OFFLINE=1</c>).</param>
/// <param name="CacheDirectory">The hub cache (<c>HF_HUB_CACHE</c>, else <c>$HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>).</param>
public sealed record HubSettings(Uri Endpoint, string? Token, bool Offline, string CacheDirectory)
{
    /// <summary>Bytes of a saved token file: a token is under 100 characters.</summary>
    private const int MaxTokenFileBytes = 1024;

    /// <summary>The default Hub.</summary>
    public static readonly Uri DefaultEndpoint = new("https://huggingface.co");

    /// <summary>Settings from environment variables, resolved as huggingface_hub's <c>constants.py</c> does.</summary>
    public static HubSettings FromEnvironment(Func<string, string?>? variable = null, Func<string, string?>? readTokenFile = null)
    {
        variable ??= Environment.GetEnvironmentVariable;
        readTokenFile ??= ReadTokenFile;
        string? Get(string name) => variable(name) is { Length: > 0 } value ? value : null;
        string home = Get("HF_HOME")
            ?? Path.Combine(Get("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface");
        string cache = Get("HF_HUB_CACHE") ?? Get("HUGGINGFACE_HUB_CACHE") ?? Path.Combine(home, "hub");
        string endpoint = Get("HF_ENDPOINT") ?? DefaultEndpoint.ToString();
        if (!Uri.TryCreate(endpoint.TrimEnd('/') + "/", UriKind.Absolute, out Uri? uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new FormatException($"HF_ENDPOINT \"{endpoint}\" is not an http(s) URL.");
        }

        bool offline = Get("HF_HUB_OFFLINE")?.ToUpperInvariant() is "1" or "TRUE" or "YES" or "ON";
        string? token = Get("HF_TOKEN") ?? Get("HUGGING_FACE_HUB_TOKEN")
            ?? (readTokenFile(Get("HF_TOKEN_PATH") ?? Path.Combine(home, "token"))?.Trim() is { Length: > 0 } saved ? saved : null);
        return new HubSettings(uri, token, offline, cache);
    }

    /// <summary>The saved token, or null when the file is missing, unreadable or not a short single line.</summary>
    private static string? ReadTokenFile(string path)
    {
        try
        {
            return File.Exists(path) ? System.Text.Encoding.UTF8.GetString(LocalFile.ReadAllBytes(path, MaxTokenFileBytes, "a token file")) : null;
        }
        catch (Exception e) when (e is ModelFormatException or IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
