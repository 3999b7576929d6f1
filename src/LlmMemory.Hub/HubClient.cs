using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace LlmMemory.Hub;

/// <summary>HTTP access to one Hub: small files whole, large files by Range requests, the file list from the models API.</summary>
/// <remarks>
/// URLs follow huggingface_hub: <c>{endpoint}/{repo}/resolve/{revision}/{file}</c> (redirected to a CDN for LFS files;
/// the token is not forwarded across the redirect) and <c>{endpoint}/api/models/{repo}/revision/{revision}</c>.
/// </remarks>
public sealed class HubClient : IDisposable
{
    /// <summary>Largest small file fetched whole (config.json, the safetensors index): DeepSeek-V3's index is 8.9 MB.</summary>
    public const int MaxSmallFileBytes = 64 << 20;

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <param name="settings">Endpoint and token.</param>
    /// <param name="http">An HttpClient to use (tests); null creates one that follows redirects.</param>
    public HubClient(HubSettings settings, HttpClient? http = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Settings = settings;
        _ownsHttp = http is null;
        _http = http ?? new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = true, MaxAutomaticRedirections = 10 })
        {
            Timeout = TimeSpan.FromSeconds(60),
        };
    }

    public HubSettings Settings { get; }

    public Uri FileUrl(HubModelId id, string file)
    {
        ArgumentNullException.ThrowIfNull(id);
        return new Uri(Settings.Endpoint, $"{id.Repo}/resolve/{Uri.EscapeDataString(id.Revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");
    }

    /// <summary>A small file of at most <paramref name="limit"/> bytes, whole; null when the Hub says it does not exist (404).</summary>
    public byte[]? TryGetSmall(HubModelId id, string file, int limit = MaxSmallFileBytes)
    {
        limit = Math.Min(limit, MaxSmallFileBytes);
        using HttpResponseMessage response = Send(FileUrl(id, file), null, id, file, allowMissing: true);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        if (response.Content.Headers.ContentLength > limit)
        {
            throw new HubException($"{id.Repo}: {file} is {response.Content.Headers.ContentLength:N0} bytes; at most {limit:N0} are read.");
        }

        // A body without a length (chunked) is read one byte past the limit, so one that runs on is refused, not cut short.
        byte[] body = ReadBody(response, limit + 1, id, file);
        return body.Length <= limit ? body
            : throw new HubException($"{id.Repo}: {file} is larger than {limit:N0} bytes, the most that are read.");
    }

    /// <summary>The repository's file names (models API <c>siblings</c>).</summary>
    public IReadOnlyList<string> ListFiles(HubModelId id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var url = new Uri(Settings.Endpoint, $"api/models/{id.Repo}/revision/{Uri.EscapeDataString(id.Revision)}");
        using HttpResponseMessage response = Send(url, null, id, "the file list", allowMissing: false);
        byte[] body = ReadBody(response, MaxSmallFileBytes, id, "the file list");
        try
        {
            using JsonDocument json = JsonDocument.Parse(body);
            return json.RootElement.TryGetProperty("siblings", out JsonElement siblings) && siblings.ValueKind == JsonValueKind.Array
                ? siblings.EnumerateArray().Select(s => s.TryGetProperty("rfilename", out JsonElement f) ? f.GetString() : null).OfType<string>().ToArray()
                : throw new HubException($"{id.Repo}: the models API answered without a file list.");
        }
        catch (JsonException)
        {
            throw new HubException($"{id.Repo}: the models API answered with something that is not JSON.");
        }
    }

    /// <summary>A seekable stream over a remote file that fetches only the byte ranges read.</summary>
    public Stream OpenRange(HubModelId id, string file) => HttpRangeStream.Open(this, id, file);

    /// <summary>Bytes [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) of a file and the file's total length.</summary>
    internal (byte[] Bytes, long Total) GetRange(HubModelId id, string file, long start, int count)
    {
        using HttpResponseMessage response = Send(FileUrl(id, file), new RangeHeaderValue(start, start + count - 1), id, file, allowMissing: false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return ([], response.Content.Headers.ContentRange?.Length ?? start);
        }

        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            // A server that ignores Range sends the whole file: read only what was asked for and drop the connection.
            long? whole = response.Content.Headers.ContentLength;
            return start == 0 && whole is long total
                ? (ReadBody(response, count, id, file, exact: false), total)
                : throw new HubException($"{id.Repo}: the server does not answer Range requests for {file}, and only its header should be fetched.");
        }

        long length = response.Content.Headers.ContentRange?.Length
            ?? throw new HubException($"{id.Repo}: the range response for {file} does not give the file's length.");
        long expected = Math.Min(count, length - start);
        byte[] bytes = ReadBody(response, (int)expected, id, file);
        return bytes.Length == expected ? (bytes, length)
            : throw new HubException($"{id.Repo}: the transfer of {file} was interrupted after {bytes.Length:N0} of {expected:N0} bytes.");
    }

    private HttpResponseMessage Send(Uri url, RangeHeaderValue? range, HubModelId id, string file, bool allowMissing)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.UserAgent.ParseAdd("llm-memory/0.1");
        request.Headers.Range = range;
        if (Settings.Token is string token)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        HttpResponseMessage response;
        try
        {
            response = _http.Send(request, HttpCompletionOption.ResponseHeadersRead);
        }
        catch (Exception error) when (error is HttpRequestException or TaskCanceledException)
        {
            throw new HubException($"Could not reach {Settings.Endpoint.Host} for {id.Repo} ({error.Message}); set HF_HUB_OFFLINE=1 to use only the local cache.", error);
        }

        if (response.IsSuccessStatusCode || (allowMissing && response.StatusCode == HttpStatusCode.NotFound)
            || response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return response;
        }

        HttpStatusCode status = response.StatusCode;
        response.Dispose();
        throw new HubException(status switch
        {
            HttpStatusCode.Unauthorized when Settings.Token is null =>
                $"{id.Repo} is gated or private: set HF_TOKEN (or run huggingface-cli login) with a token that has access (https://huggingface.co/settings/tokens).",
            HttpStatusCode.Unauthorized => $"{id.Repo}: the token (HF_TOKEN, or the one huggingface-cli login saved) was refused.",
            HttpStatusCode.Forbidden => $"{id.Repo} is gated and this token has no access yet: accept its license on the model page.",
            HttpStatusCode.NotFound => $"{id}: {file} was not found (no such repository, revision or file).",
            _ => $"{id.Repo}: the Hub answered {(int)status} {status} for {file}.",
        });
    }

    private static byte[] ReadBody(HttpResponseMessage response, int limit, HubModelId id, string file, bool exact = true)
    {
        try
        {
            using Stream body = response.Content.ReadAsStream();
            using var received = new MemoryStream((int)Math.Min(limit, response.Content.Headers.ContentLength ?? 81920));
            byte[] chunk = new byte[81920];
            int done = 0;
            while (done < limit)
            {
                int read = body.Read(chunk, 0, Math.Min(chunk.Length, limit - done));
                if (read == 0)
                {
                    break;
                }

                received.Write(chunk, 0, read);
                done += read;
            }

            if (exact && response.Content.Headers.ContentLength is long declared && done < declared && done < limit)
            {
                throw new HubException($"{id.Repo}: the transfer of {file} was interrupted after {done:N0} of {declared:N0} bytes.");
            }

            return received.ToArray();
        }
        catch (Exception error) when (error is IOException and not HubException or HttpRequestException)
        {
            throw new HubException($"{id.Repo}: the transfer of {file} was interrupted ({error.Message}).", error);
        }
    }

    public void Dispose()
    {
        if (_ownsHttp)
        {
            _http.Dispose();
        }
    }
}
