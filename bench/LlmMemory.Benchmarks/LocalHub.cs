using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace LlmMemory.Benchmarks;

/// <summary>
/// A Hub-like HTTP server on 127.0.0.1 over a local folder, for the Hub benchmark (Kestrel, as any production server sets
/// TCP_NODELAY): the models API's file list, <c>/{repo}/resolve/main/{file}</c> (weights redirected with a 302 to
/// <c>/cdn/…</c>, as the Hub sends LFS files to its CDN), and Range requests answered from the (sparse) files on disk.
/// </summary>
public sealed class LocalHub : IDisposable
{
    private readonly WebApplication _app;

    public LocalHub(string repo, string folder)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _app = builder.Build();
        _app.MapGet($"/api/models/{repo}/revision/main", () => Results.Bytes(FileList(folder), "application/json"));
        _app.MapGet($"/{repo}/resolve/main/{{file}}", (string file) =>
            !File.Exists(Path.Combine(folder, file)) ? Results.NotFound("Entry not found")
            : file.EndsWith(".safetensors", StringComparison.Ordinal) ? Results.Redirect($"/cdn/{file}")
            : Results.Bytes(File.ReadAllBytes(Path.Combine(folder, file)), "application/json"));
        _app.MapGet("/cdn/{file}", (string file, HttpRequest request) => Range(Path.Combine(folder, file), request.Headers.Range.ToString()));
        _app.StartAsync().GetAwaiter().GetResult();
        string address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        Endpoint = new Uri(address.TrimEnd('/') + "/");
    }

    public Uri Endpoint { get; }

    public void Dispose() => _app.DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>The models API's answer: <c>{"siblings": [{"rfilename": …}, …]}</c>.</summary>
    private static byte[] FileList(string folder)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartArray("siblings");
            foreach (string file in Directory.GetFiles(folder))
            {
                json.WriteStartObject();
                json.WriteString("rfilename", Path.GetFileName(file));
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteEndObject();
        }

        return buffer.ToArray();
    }

    private static IResult Range(string path, string range)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        long length = file.Length;
        if (!range.StartsWith("bytes=", StringComparison.Ordinal))
        {
            return Results.StatusCode(StatusCodes.Status416RangeNotSatisfiable);
        }

        string[] parts = range["bytes=".Length..].Split('-');
        long start = long.Parse(parts[0], CultureInfo.InvariantCulture);
        long end = parts[1].Length > 0 ? Math.Min(long.Parse(parts[1], CultureInfo.InvariantCulture), length - 1) : length - 1;
        byte[] body = new byte[checked((int)(end - start + 1))];
        file.Position = start;
        file.ReadExactly(body);
        return new PartialContent(body, start, end, length);
    }

    private sealed class PartialContent(byte[] body, long start, long end, long length) : IResult
    {
        public Task ExecuteAsync(HttpContext httpContext)
        {
            httpContext.Response.StatusCode = StatusCodes.Status206PartialContent;
            httpContext.Response.Headers.ContentRange = $"bytes {start}-{end}/{length}";
            httpContext.Response.ContentLength = body.Length;
            return httpContext.Response.Body.WriteAsync(body).AsTask();
        }
    }
}
