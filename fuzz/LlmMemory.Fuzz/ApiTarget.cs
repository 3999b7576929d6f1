using System.Net;
using System.Net.Http.Headers;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Fuzz;

/// <summary>
/// The web API as a client sees it: one mutated request (endpoint and JSON body) sent to the whole app in process
/// (ASP.NET Core's TestServer through WebApplicationFactory, so routing, body limits and error pages all run). The
/// contract: 200 with a JSON body, or a refusal — a 4xx (or 503 with Retry-After) whose problem+json detail is one line;
/// never a 500, a reset or a stack trace.
/// </summary>
public static class ApiTarget
{
    /// <summary>The tiny Llama's config inline, as the page sends a dropped config.json.</summary>
    private static readonly string Tiny = TinySeeds.ConfigJson;

    /// <summary>
    /// Requests as <c>{"post": PATH, "body": BODY}</c>: every endpoint, engine and mode, catalog ids, an inline config and a
    /// bare count. Small models keep a fit within the time limit; the arithmetic under test does not depend on size.
    /// </summary>
    private static readonly string[] Requests =
    [
        """{"post": "/api/estimate", "body": {"model": "llama-3.1-8b", "seq": 8192, "batch": 1}}""",
        """{"post": "/api/estimate", "body": {"model": "qwen2.5-0.5b", "mode": "lora", "seq": 1024, "batch": 2, "gpu": "rtx-4090", "gradient_checkpointing": "full", "lora": {"r": 16, "alpha": 32, "targets": "all-linear"}}}""",
        """{"post": "/api/estimate", "body": {"model": "qwen2.5-0.5b", "mode": "training", "engine": "deepspeed", "optimizer": "adamw-8bit", "precision": "mixed-bf16", "parallel": {"gpus": 2, "zero": 2}}}""",
        """{"post": "/api/estimate", "body": {"model": "llama-3.2-1b", "engine": "llama.cpp", "weights": "q4_k_m", "kv_cache_dtype": "q8_0", "engine_options": {"n_ctx": 4096, "n_ubatch": 512, "flash_attn": true}}}""",
        """{"post": "/api/estimate", "body": {"model": "qwen2.5-0.5b", "engine": "vllm", "gpu": "l4-24gb", "engine_options": {"gpu_memory_utilization": 0.9, "max_model_len": 4096}}}""",
        """{"post": "/api/estimate", "body": {"model": {"config": """ + Tiny + """}, "mode": "qlora", "weights": "nf4", "seq": 512, "lora": {"r": 8, "alpha": 16, "targets": ["q_proj", "v_proj"]}}}""",
        """{"post": "/api/estimate", "body": {"model": {"parameters": 7000000000}, "weights": "int8"}}""",
        """{"post": "/api/sweep", "body": {"scenario": {"model": "qwen2.5-0.5b", "gpu": "t4"}, "vary": "seq", "values": [1024, 2048, 4096]}}""",
        """{"post": "/api/fit?target_batch=4", "body": {"model": "qwen2.5-0.5b", "engine": "llama.cpp", "weights": "q8_0", "gpu": "rtx-3060"}}""",
        """{"post": "/api/fit", "body": {"model": {"config": """ + Tiny + """}, "gpu": "a10"}}""",
    ];

    private static readonly Lazy<HttpClient> Client = new(() =>
    {
        // The app reads nothing from its content root (the page is embedded); without this the factory looks for the project's
        // source folder beside the solution, which is not where a fuzzer runs from.
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_LLMMEMORY_WEB", AppContext.BaseDirectory);
        Environment.SetEnvironmentVariable("Logging__LogLevel__Default", "Warning");
#pragma warning disable CA2000 // The factory lives as long as the process: the fuzzer's one app.
        var app = new WebApplicationFactory<Web.Program>();
#pragma warning restore CA2000
        return app.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false });
    });

    /// <summary>
    /// Time one request may take: issue 19 asks every hostile input to be answered within 5 s. A request runs estimates (an
    /// allocator replay per layer), not just a parse, so the readers' 2 s would measure the machine's load, not a hang.
    /// </summary>
    private static readonly TimeSpan RequestLimit = TimeSpan.FromSeconds(5);

    public static FuzzTarget Target { get; } = new("api", Requests.Select(Encoding.UTF8.GetBytes).ToArray(), _ => Range.All, Send,
        error => error is ApiRefusal, RequestLimit);

    /// <summary>Sends one request: the wrapper's path and body, or, when mutation broke the wrapper, the raw bytes to /api/estimate.</summary>
    private static void Send(byte[] input)
    {
        (string path, byte[] body) = Unwrap(input);
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using HttpResponseMessage response = Client.Value.PostAsync(new Uri(path, UriKind.Relative), content).GetAwaiter().GetResult();
        string text = response.Content.ReadAsStringAsync().GetAwaiter().GetResult();
        Check(response, text);
    }

    private static (string Path, byte[] Body) Unwrap(byte[] input)
    {
        try
        {
            using JsonDocument wrapper = JsonDocument.Parse(input);
            if (wrapper.RootElement.ValueKind == JsonValueKind.Object
                && wrapper.RootElement.TryGetProperty("post", out JsonElement post) && post.ValueKind == JsonValueKind.String
                && post.GetString() is string path && path.StartsWith("/api/", StringComparison.Ordinal) && Uri.IsWellFormedUriString(path, UriKind.Relative)
                && wrapper.RootElement.TryGetProperty("body", out JsonElement body))
            {
                return (path, JsonMarshal.GetRawUtf8Value(body).ToArray());
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // Not JSON, or a path that is not UTF-8: the mutated text itself is the body.
        }

        return ("/api/estimate", input);
    }

    /// <summary>The contract of one answer; a refusal is thrown as <see cref="ApiRefusal"/>, anything else as a failure.</summary>
    private static void Check(HttpResponseMessage response, string text)
    {
        int status = (int)response.StatusCode;
        if (response.StatusCode == HttpStatusCode.OK)
        {
            using JsonDocument _ = JsonDocument.Parse(text);
            return;
        }

        bool busy = response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.TooManyRequests;
        if (status is < 400 or >= 500 && !busy)
        {
            throw new InvalidOperationException($"HTTP {status}: {Cut(text)}");
        }

        if (busy && response.Headers.RetryAfter is null)
        {
            throw new InvalidOperationException($"HTTP {status} without Retry-After: {Cut(text)}");
        }

        if (response.Content.Headers.ContentType?.MediaType != "application/problem+json")
        {
            throw new InvalidOperationException($"HTTP {status} as {response.Content.Headers.ContentType?.MediaType ?? "no content type"}, not problem+json: {Cut(text)}");
        }

        using JsonDocument problem = JsonDocument.Parse(text);
        string detail = problem.RootElement.TryGetProperty("detail", out JsonElement d) && d.ValueKind == JsonValueKind.String ? d.GetString()! : "";
        if (detail.Length == 0 || detail.Contains('\n', StringComparison.Ordinal) || detail.Contains("   at ", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"HTTP {status} whose detail is not one sentence: {Cut(text)}");
        }

        throw new ApiRefusal($"{status}: {detail}");
    }

    private static string Cut(string text) => text.Length <= 400 ? text : text[..400] + "…";

    /// <summary>A request the API refused as the contract says: 4xx (or busy) with a one-line problem detail.</summary>
    private sealed class ApiRefusal(string message) : Exception(message);
}
