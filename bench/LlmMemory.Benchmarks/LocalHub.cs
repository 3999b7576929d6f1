using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace LlmMemory.Benchmarks;

/// <summary>
/// A Hub-like HTTP server on 127.0.0.1 over a local folder, for the Hub benchmark: the models API's file list,
/// <c>/{repo}/resolve/main/{file}</c> (weights redirected with a 302 to <c>/cdn/…</c>, as the Hub sends LFS files to its
/// CDN), and Range requests answered from the (sparse) files on disk.
/// </summary>
public sealed class LocalHub : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly string _repo;
    private readonly string _folder;
    private readonly Task _loop;

    public LocalHub(string repo, string folder)
    {
        _repo = repo;
        _folder = folder;
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = new Uri($"http://127.0.0.1:{port}/");
        _listener.Prefixes.Add(Endpoint.ToString());
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public Uri Endpoint { get; }

    public void Dispose()
    {
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
        HttpListenerResponse response = context.Response;
        string path = Uri.UnescapeDataString(context.Request.Url!.AbsolutePath);
        try
        {
            if (path == $"/api/models/{_repo}/revision/main")
            {
                var names = Directory.GetFiles(_folder).Select(f => new { rfilename = Path.GetFileName(f) });
                Send(response, 200, JsonSerializer.SerializeToUtf8Bytes(new { siblings = names }));
            }
            else if (path.StartsWith($"/{_repo}/resolve/main/", StringComparison.Ordinal))
            {
                string file = path[$"/{_repo}/resolve/main/".Length..];
                if (!File.Exists(Path.Combine(_folder, file)))
                {
                    Send(response, 404, "Entry not found"u8.ToArray());
                }
                else if (file.EndsWith(".safetensors", StringComparison.Ordinal))
                {
                    response.StatusCode = 302;
                    response.RedirectLocation = $"/cdn/{file}";
                    response.Close();
                }
                else
                {
                    Send(response, 200, File.ReadAllBytes(Path.Combine(_folder, file)));
                }
            }
            else if (path.StartsWith("/cdn/", StringComparison.Ordinal))
            {
                Range(response, context.Request.Headers["Range"], Path.Combine(_folder, path["/cdn/".Length..]));
            }
            else
            {
                Send(response, 404, "Not found"u8.ToArray());
            }
        }
        catch (HttpListenerException)
        {
            // The client went away after the bytes it needed.
        }
    }

    private static void Range(HttpListenerResponse response, string? range, string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        long length = file.Length;
        long start = 0, end = length - 1;
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            string[] parts = range["bytes=".Length..].Split('-');
            start = long.Parse(parts[0], CultureInfo.InvariantCulture);
            end = parts[1].Length > 0 ? Math.Min(long.Parse(parts[1], CultureInfo.InvariantCulture), length - 1) : length - 1;
            response.StatusCode = 206;
            response.AddHeader("Content-Range", $"bytes {start}-{end}/{length}");
        }

        byte[] body = new byte[checked((int)(end - start + 1))];
        file.Position = start;
        file.ReadExactly(body);
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }

    private static void Send(HttpListenerResponse response, int status, byte[] body)
    {
        response.StatusCode = status;
        response.ContentLength64 = body.Length;
        response.OutputStream.Write(body);
        response.Close();
    }
}
