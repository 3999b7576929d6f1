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

    /// <summary>Redirects followed for one file: the Hub sends one (to its CDN) for LFS files.</summary>
    public const int MaxRedirects = 10;

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;

    /// <param name="settings">Endpoint and token.</param>
    /// <param name="http">An HttpClient to use (tests); null creates one. Redirects are followed here, not by the handler.</param>
    /// <param name="timeouts">How long a request may take and a body may stall; null: <see cref="HubTimeouts.Default"/>.</param>
    public HubClient(HubSettings settings, HttpClient? http = null, HubTimeouts? timeouts = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        Settings = settings;
        Timeouts = timeouts ?? HubTimeouts.Default;
        _ownsHttp = http is null;
        _http = http ?? new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = Timeouts.Idle,
            MaxConnectionsPerServer = HubModelSource.MaxConcurrentRequests,
        })
        {
            // The timeouts below bound every request, body included; HttpClient's own stops at the headers.
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public HubSettings Settings { get; }

    public HubTimeouts Timeouts { get; }

    public Uri FileUrl(HubModelId id, string file)
    {
        ArgumentNullException.ThrowIfNull(id);
        return new Uri(Settings.Endpoint, $"{id.Repo}/resolve/{Uri.EscapeDataString(id.Revision)}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");
    }

    /// <summary>A small file of at most <paramref name="limit"/> bytes, whole; null when the Hub says it does not exist (404).</summary>
    public byte[]? TryGetSmall(HubModelId id, string file, int limit = MaxSmallFileBytes)
    {
        limit = Math.Min(limit, MaxSmallFileBytes);
        using var deadline = new CancellationTokenSource(Timeouts.Request);
        using HttpResponseMessage response = Send(FileUrl(id, file), null, id, file, allowMissing: true, deadline.Token);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        if (response.Content.Headers.ContentLength > limit)
        {
            throw new HubException($"{id.Repo}: {file} is {response.Content.Headers.ContentLength:N0} bytes; at most {limit:N0} are read.");
        }

        // A body without a length (chunked) is read one byte past the limit, so one that runs on is refused, not cut short.
        byte[] body = ReadBody(response, limit + 1, id, file, deadline.Token);
        return body.Length <= limit ? body
            : throw new HubException($"{id.Repo}: {file} is larger than {limit:N0} bytes, the most that are read.");
    }

    /// <summary>The repository's file names (models API <c>siblings</c>).</summary>
    public IReadOnlyList<string> ListFiles(HubModelId id)
    {
        ArgumentNullException.ThrowIfNull(id);
        var url = new Uri(Settings.Endpoint, $"api/models/{id.Repo}/revision/{Uri.EscapeDataString(id.Revision)}");
        using var deadline = new CancellationTokenSource(Timeouts.Request);
        using HttpResponseMessage response = Send(url, null, id, "the file list", allowMissing: false, deadline.Token);
        byte[] body = ReadBody(response, MaxSmallFileBytes, id, "the file list", deadline.Token);
        try
        {
            LlmMemory.Formats.JsonText.Check(body, $"{id.Repo}: the file list");
            using JsonDocument json = JsonDocument.Parse(body);
            // Every name is the server's word: each is checked before anything joins it onto the cache folder or a URL.
            return json.RootElement.TryGetProperty("siblings", out JsonElement siblings) && siblings.ValueKind == JsonValueKind.Array
                ? siblings.EnumerateArray()
                    .Select(s => s.ValueKind == JsonValueKind.Object && s.TryGetProperty("rfilename", out JsonElement f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null)
                    .OfType<string>().Select(name => HubFileName.Check(id, name, "the file list")).ToArray()
                : throw new HubException($"{id.Repo}: the models API answered without a file list.");
        }
        catch (Exception error) when (error is JsonException or ModelFormatException or InvalidOperationException)
        {
            throw new HubException($"{id.Repo}: the models API answered with something that is not a JSON file list.");
        }
    }

    /// <summary>A seekable stream over a remote file that fetches only the byte ranges read.</summary>
    public Stream OpenRange(HubModelId id, string file) => HttpRangeStream.Open(this, id, file);

    /// <summary>Bytes [<paramref name="start"/>, <paramref name="start"/> + <paramref name="count"/>) of a file and the file's total length.</summary>
    internal (byte[] Bytes, long Total) GetRange(HubModelId id, string file, long start, int count)
    {
        using var deadline = new CancellationTokenSource(Timeouts.Request);
        using HttpResponseMessage response = Send(FileUrl(id, file), new RangeHeaderValue(start, start + count - 1), id, file, allowMissing: false, deadline.Token);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            return ([], response.Content.Headers.ContentRange?.Length ?? start);
        }

        if (response.StatusCode != HttpStatusCode.PartialContent)
        {
            // A server that ignores Range sends the whole file: read only what was asked for and drop the connection.
            long? whole = response.Content.Headers.ContentLength;
            return start == 0 && whole is long total
                ? (ReadBody(response, count, id, file, deadline.Token, exact: false), total)
                : throw new HubException($"{id.Repo}: the server does not answer Range requests for {file}, and only its header should be fetched.");
        }

        long length = response.Content.Headers.ContentRange?.Length
            ?? throw new HubException($"{id.Repo}: the range response for {file} does not give the file's length.");
        long expected = Math.Min(count, length - start);
        byte[] bytes = ReadBody(response, (int)expected, id, file, deadline.Token);
        return bytes.Length == expected ? (bytes, length)
            : throw new HubException($"{id.Repo}: the transfer of {file} was interrupted after {bytes.Length:N0} of {expected:N0} bytes.");
    }

    /// <summary>
    /// Sends a GET and follows redirects itself: only to http(s) URLs, at most <see cref="MaxRedirects"/>, and without the token
    /// once the host changes (the Hub's CDN needs none), so that a bad <c>Location</c> is a sentence, not a URI parser's error.
    /// </summary>
    private HttpResponseMessage Send(Uri url, RangeHeaderValue? range, HubModelId id, string file, bool allowMissing, CancellationToken deadline)
    {
        string? token = Settings.Token;
        HttpResponseMessage response = SendOnce(url, range, id, file, token, deadline);
        for (int redirects = 0; IsRedirect(response.StatusCode); redirects++)
        {
            string? location = response.Headers.NonValidated.TryGetValues("Location", out var values) ? values.ToString() : null;
            response.Dispose();
            if (redirects == MaxRedirects)
            {
                throw new HubException($"{id.Repo}: the Hub redirected {file} more than {MaxRedirects} times.");
            }

            if (location is null || !Uri.TryCreate(url, location, out Uri? next) || next.Scheme is not ("http" or "https"))
            {
                string shown = location is null ? "nowhere (no Location header)" : $"\"{(location.Length > 200 ? location[..200] + "…" : location)}\"";
                throw new HubException($"{id.Repo}: the Hub redirected {file} to {shown}, which is not an http(s) URL; only http and https are followed.");
            }

            // Once the token is dropped (a hop to another origin) it stays dropped, as HttpClient's own redirects do.
            token = next.Host == url.Host && next.Port == url.Port && next.Scheme == url.Scheme ? token : null;
            url = next;
            response = SendOnce(url, range, id, file, token, deadline);
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

    private HttpResponseMessage SendOnce(Uri url, RangeHeaderValue? range, HubModelId id, string file, string? token, CancellationToken deadline)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.UserAgent.ParseAdd("llm-memory/0.1");
        request.Headers.Range = range;
        if (token is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        }

        try
        {
            return _http.Send(request, HttpCompletionOption.ResponseHeadersRead, deadline);
        }
        catch (OperationCanceledException error) when (deadline.IsCancellationRequested)
        {
            throw new HubException($"{id.Repo}: {file} took longer than {Seconds(Timeouts.Request)} (no answer from {url.Host}).", error);
        }
        catch (Exception error) when (error is HttpRequestException or OperationCanceledException)
        {
            throw new HubException($"Could not reach {url.Host} for {id.Repo} ({error.Message}); set HF_HUB_OFFLINE=1 to use only the local cache.", error);
        }
    }

    private static bool IsRedirect(HttpStatusCode status) => status is HttpStatusCode.MovedPermanently or HttpStatusCode.Found or HttpStatusCode.SeeOther
        or HttpStatusCode.TemporaryRedirect or HttpStatusCode.PermanentRedirect;

    private static string Seconds(TimeSpan time) => $"{time.TotalSeconds.ToString("0.###", System.Globalization.CultureInfo.InvariantCulture)} s";

    /// <summary>
    /// Reads at most <paramref name="limit"/> bytes of a body. Each read must bring data within <see cref="HubTimeouts.Idle"/>
    /// and the whole request must end by <paramref name="deadline"/>: a server that stalls mid-body is an error, not a hang.
    /// </summary>
    private byte[] ReadBody(HttpResponseMessage response, int limit, HubModelId id, string file, CancellationToken deadline, bool exact = true)
    {
        using var idle = CancellationTokenSource.CreateLinkedTokenSource(deadline);
        try
        {
            using Stream body = response.Content.ReadAsStream(deadline);
            using var received = new MemoryStream((int)Math.Min(limit, response.Content.Headers.ContentLength ?? 81920));
            byte[] chunk = new byte[81920];
            int done = 0;
            while (done < limit)
            {
                idle.CancelAfter(Timeouts.Idle);
                int read = body.ReadAsync(chunk.AsMemory(0, Math.Min(chunk.Length, limit - done)), idle.Token).AsTask().GetAwaiter().GetResult();
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
        catch (OperationCanceledException error) when (deadline.IsCancellationRequested)
        {
            throw new HubException($"{id.Repo}: {file} took longer than {Seconds(Timeouts.Request)}; the transfer was stopped.", error);
        }
        catch (OperationCanceledException error)
        {
            throw new HubException($"{id.Repo}: the transfer of {file} stalled: no data for {Seconds(Timeouts.Idle)}.", error);
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
