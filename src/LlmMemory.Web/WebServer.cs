using LlmMemory.Web.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Logging;

namespace LlmMemory.Web;

/// <summary>Builds the web server: the JSON API under <c>/api</c>, its OpenAPI document, and the embedded page at <c>/</c>.</summary>
public static class WebServer
{
    /// <summary>Where the server listens when neither <c>--urls</c> nor <c>ASPNETCORE_URLS</c> says: loopback only.</summary>
    public const string DefaultUrl = "http://127.0.0.1:5000";

    /// <summary>Largest body Kestrel reads at all: 8 MiB, so refusing a body a little over 1 MiB costs about a millisecond, not a connection.</summary>
    private const long DrainBytes = 8L << 20;

    /// <summary>Builds the application; <paramref name="args"/> are ASP.NET Core's (<c>--urls</c>, <c>--Logging:LogLevel:Default</c>, …).</summary>
    public static WebApplication Create(string[] args)
    {
        ArgumentNullException.ThrowIfNull(args);
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = args,
            ApplicationName = typeof(WebServer).Assembly.GetName().Name,
            // Nothing is read from the content root (the page is embedded), but the host watches it for appsettings.json
            // changes: left at the working directory, `llm-memory serve` run from / or ~ spent seconds putting file
            // watches on the whole tree. The install folder is small and fixed. Tests and --contentRoot still choose.
            ContentRootPath = args.Any(a => a.StartsWith("--contentRoot", StringComparison.OrdinalIgnoreCase)) ? null : AppContext.BaseDirectory,
        });
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            // Kestrel's limit sits above the API's 1 MiB, which JsonBody enforces (by Content-Length, and while reading).
            // A body refused with a 413 is then read to its end and dropped, and the connection stays open. At the API's
            // own limit Kestrel closed the connection on the unread body, and under load the client saw a reset instead
            // of its 413 (docs/performance.md). Past DrainBytes Kestrel still refuses and closes.
            kestrel.Limits.MaxRequestBodySize = DrainBytes;
        });
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.Services.AddSingleton(new WorkGate(WorkGate.DefaultSlots));
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, ApiJsonContext.Default));
        builder.Services.AddOpenApi(options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "llm-memory";
            document.Info.Description = "How much memory an LLM needs to run, train or fine-tune, part by part. "
                + "Request bodies are scenarios (docs/scenario.md) of at most 1 MiB; models are catalog ids or aliases, "
                + "parameter counts, inline {\"config\": …} objects, or GGUF headers read by the client ({\"gguf\": {\"metadata\": …, \"tensors\": …}}). "
                + "The server never reads its own files or fetches URLs.";
            return Task.CompletedTask;
        }));

        WebApplication app = builder.Build();
        app.Use(SecurityHeaders);
        app.UseStatusCodePages(ApiStatusPage);
        var page = new EmbeddedFileProvider(typeof(WebServer).Assembly, "wwwroot");
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = page });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = page });
        app.MapOpenApi();
        app.MapLlmMemoryApi();
        return app;
    }

    /// <summary>Bodiless API errors from routing (404, 405, 415) become problem+json too, so every API error reads the same.</summary>
    private static async Task ApiStatusPage(StatusCodeContext context)
    {
        HttpContext http = context.HttpContext;
        if (!http.Request.Path.StartsWithSegments("/api"))
        {
            return;
        }

        int status = http.Response.StatusCode;
        (string? field, string detail) = status switch
        {
            StatusCodes.Status404NotFound => ((string?)null, $"There is no API endpoint at {http.Request.Path}; see /openapi/v1.json."),
            StatusCodes.Status405MethodNotAllowed => (null, $"{http.Request.Method} is not allowed on {http.Request.Path}; see /openapi/v1.json."),
            StatusCodes.Status415UnsupportedMediaType => ("body", $"has Content-Type \"{http.Request.ContentType}\"; send the scenario as application/json."),
            _ => (null, ReasonPhrases.GetReasonPhrase(status)),
        };
        http.Response.ContentType = ApiProblem.MediaType;
        await http.Response.WriteAsync(ApiProblem.Json(status, field, field is null ? detail : $"'{field}' {detail}").ToJsonString(ApiEndpoints.Output));
    }

    /// <summary>Same-origin only: the page loads nothing from elsewhere (no CDN) and cannot be framed.</summary>
    private static Task SecurityHeaders(HttpContext context, Func<Task> next)
    {
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        return next();
    }
}
