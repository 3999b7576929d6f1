using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace LlmMemory.Tests.Support;

/// <summary>
/// A Hub-like HTTP server on 127.0.0.1 for tests: <c>/{repo}/resolve/{rev}/{file}</c> with Range support, LFS-style redirects
/// of weights to <c>/cdn/…</c>, the models API's file list, 401 for a gated repo without the token, 404 for the rest, and a
/// file whose transfer breaks off. Files are a head of real bytes followed by zeros up to their length, so a 140 GB file
/// costs its header.
/// </summary>
internal sealed class FakeHub : IDisposable
{
    public const string Token = "hf_test_token";

    private readonly HttpListener _listener = new();
    private readonly ConcurrentDictionary<string, (byte[] Head, long Length)> _files = new();
    private readonly HashSet<string> _gated = [];
    private readonly HashSet<string> _interrupted = [];
    private readonly ConcurrentDictionary<string, Behaviour> _behaviours = new();
    private readonly ConcurrentDictionary<string, string[]> _listings = new();
    private readonly ConcurrentDictionary<string, string> _redirects = new();
    private readonly ManualResetEventSlim _stopping = new();
    private readonly Task _loop;

    public FakeHub()
    {
        int port = FreePort();
        Endpoint = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Endpoint.ToString());
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public Uri Endpoint { get; }

    /// <summary>Bytes of file bodies sent so far.</summary>
    public long BytesServed => Interlocked.Read(ref _served);

    /// <summary>Every request path with its Range header, in arrival order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    private long _served;

    public FakeHub Add(string repo, string file, byte[] head, long? length = null)
    {
        _files[$"{repo}/{file}"] = (head, length ?? head.Length);
        return this;
    }

    /// <summary>Adds every file of a local folder (sparse files keep their length; only their first bytes are read).</summary>
    public FakeHub AddFolder(string repo, string folder)
    {
        foreach (string path in Directory.GetFiles(folder))
        {
            long length = new FileInfo(path).Length;
            using var stream = File.OpenRead(path);
            // Headers sit at the start; the sparse rest reads as zeros, which the server makes up itself.
            byte[] head = new byte[Math.Min(length, 4 << 20)];
            stream.ReadExactly(head);
            Add(repo, Path.GetFileName(path), head, length);
        }

        return this;
    }

    public FakeHub Gate(string repo)
    {
        _gated.Add(repo);
        return this;
    }

    public FakeHub Interrupt(string repo, string file)
    {
        _interrupted.Add($"{repo}/{file}");
        return this;
    }

    /// <summary>How a file's body is sent when it is not sent whole.</summary>
    public enum Behaviour
    {
        /// <summary>Headers and the first bytes, then nothing more until the hub is disposed.</summary>
        Stall,

        /// <summary>One byte every 20 ms, never reaching the end, until the hub is disposed.</summary>
        Trickle,
    }

    public FakeHub Send(string repo, string file, Behaviour behaviour)
    {
        _behaviours[$"{repo}/{file}"] = behaviour;
        return this;
    }

    /// <summary>The models API lists these names for <paramref name="repo"/>, whatever files it holds.</summary>
    public FakeHub List(string repo, params string[] names)
    {
        _listings[repo] = names;
        return this;
    }

    /// <summary><c>/{repo}/resolve/…/{file}</c> answers 302 with this <c>Location</c>, as given.</summary>
    public FakeHub Redirect(string repo, string file, string location)
    {
        _redirects[$"{repo}/{file}"] = location;
        return this;
    }

    public void Dispose()
    {
        _stopping.Set();
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
        }
    }

    private static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync().ConfigureAwait(false);
            }
            catch (Exception error) when (error is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            _ = Task.Run(() => Handle(context));
        }
    }

    private void Handle(HttpListenerContext context)
    {
        HttpListenerRequest request = context.Request;
        HttpListenerResponse response = context.Response;
        string path = Uri.UnescapeDataString(request.Url!.AbsolutePath.TrimStart('/'));
        Requests.Enqueue($"{path} {request.Headers["Range"]}");
        try
        {
            string[] parts = path.Split('/');
            if (parts.Length >= 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision")
            {
                string repo = $"{parts[2]}/{parts[3]}";
                if (!Authorized(repo, request, response))
                {
                    return;
                }

                string[] names = _listings.TryGetValue(repo, out string[]? listed) ? listed : _files.Keys.Where(k => k.StartsWith(repo + "/", StringComparison.Ordinal)).Select(k => k[(repo.Length + 1)..]).Order().ToArray();
                Send(response, names.Length == 0 ? 404 : 200, JsonSerializer.SerializeToUtf8Bytes(new { siblings = names.Select(n => new { rfilename = n }) }));
                return;
            }

            if (parts.Length >= 5 && parts[2] == "resolve")
            {
                string repo = $"{parts[0]}/{parts[1]}";
                string file = string.Join('/', parts[4..]);
                if (!Authorized(repo, request, response))
                {
                    return;
                }

                if (_redirects.TryGetValue($"{repo}/{file}", out string? location))
                {
                    response.StatusCode = 302;
                    response.Headers["Location"] = location;
                    response.Close();
                    return;
                }

                if (!_files.ContainsKey($"{repo}/{file}"))
                {
                    Send(response, 404, "Entry not found"u8.ToArray());
                    return;
                }

                if (file.EndsWith(".safetensors", StringComparison.Ordinal) || file.EndsWith(".gguf", StringComparison.Ordinal))
                {
                    // Weights live in LFS: the Hub answers 302 to a CDN URL (which needs no token).
                    response.StatusCode = 302;
                    response.RedirectLocation = $"/cdn/{repo}/{file}";
                    response.Close();
                    return;
                }

                Body(response, request, $"{repo}/{file}");
                return;
            }

            if (parts.Length >= 4 && parts[0] == "cdn")
            {
                Body(response, request, string.Join('/', parts[1..]));
                return;
            }

            Send(response, 404, "Not found"u8.ToArray());
        }
        catch (HttpListenerException)
        {
            // The client went away (it read only the header it needed).
        }
    }

    private bool Authorized(string repo, HttpListenerRequest request, HttpListenerResponse response)
    {
        if (!_gated.Contains(repo) || request.Headers["Authorization"] == $"Bearer {Token}")
        {
            return true;
        }

        Send(response, 401, "Access to this gated repo requires a token"u8.ToArray());
        return false;
    }

    private void Body(HttpListenerResponse response, HttpListenerRequest request, string key)
    {
        (byte[] head, long length) = _files[key];
        long start = 0;
        long end = length - 1;
        string? range = request.Headers["Range"];
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            string[] bounds = range[6..].Split('-');
            start = long.Parse(bounds[0], System.Globalization.CultureInfo.InvariantCulture);
            end = bounds[1].Length > 0 ? Math.Min(long.Parse(bounds[1], System.Globalization.CultureInfo.InvariantCulture), length - 1) : length - 1;
            if (start >= length)
            {
                response.StatusCode = 416;
                response.Headers["Content-Range"] = $"bytes */{length}";
                response.Close();
                return;
            }

            response.StatusCode = 206;
            response.Headers["Content-Range"] = $"bytes {start}-{end}/{length}";
        }

        long count = end - start + 1;
        response.ContentLength64 = count;
        byte[] body = new byte[count];
        if (start < head.Length)
        {
            head.AsSpan((int)start, (int)Math.Min(head.Length - start, count)).CopyTo(body);
        }

        if (_behaviours.TryGetValue(key, out Behaviour behaviour))
        {
            response.OutputStream.Write(body, 0, (int)Math.Min(count, 16));
            response.OutputStream.Flush();
            for (int sent = 16; sent < count - 1 && !_stopping.IsSet; sent++)
            {
                if (behaviour == Behaviour.Stall)
                {
                    _stopping.Wait();
                }
                else if (!_stopping.Wait(20))
                {
                    response.OutputStream.Write(body, sent, 1);
                    response.OutputStream.Flush();
                }
            }

            response.Abort();
            return;
        }

        if (_interrupted.Contains(key))
        {
            // Send a third of the promised bytes, then drop the connection.
            response.OutputStream.Write(body, 0, (int)(count / 3));
            response.OutputStream.Flush();
            Interlocked.Add(ref _served, count / 3);
            response.Abort();
            return;
        }

        response.OutputStream.Write(body);
        Interlocked.Add(ref _served, count);
        response.Close();
    }

    private static void Send(HttpListenerResponse response, int status, byte[] body)
    {
        response.StatusCode = status;
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    public static string Text(byte[] bytes) => Encoding.UTF8.GetString(bytes);
}
