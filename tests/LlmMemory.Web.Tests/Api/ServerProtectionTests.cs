using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using LlmMemory.Web.Api;
using LlmMemory.Web.Tests.Support;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LlmMemory.Web.Tests.Api;

/// <summary>
/// The server protects itself from expensive work (issue 19): a bounded number of sweeps and fits compute at once and the rest are refused at once; a sweep's work is bounded by its points × the model's layers; and a
/// client that goes away stops its work without an error. The gate is held by the test itself, so nothing depends on timing.
/// </summary>
public sealed class ServerProtectionTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    private const string TrainingEstimate = """{"model": "llama-3.2-1b", "mode": "training", "seq": 256}""";

    private const string Sweep = """{"scenario": {"model": "llama-3.2-1b", "mode": "training"}, "vary": "seq", "values": [128, 256]}""";

    [Fact]
    public async Task With_every_slot_taken_sweeps_and_fits_get_503_with_retry_after_and_other_requests_answer()
    {
        var gate = new WorkGate(slots: 1);
        using HttpClient client = WithGate(gate).CreateClient();

        using (IDisposable slot = gate.TryEnter()!)
        {
            foreach ((string path, string body) in new[] { ("/api/sweep", Sweep), ("/api/fit", """{"model": "llama-3.2-1b", "gpu": "rtx-4090"}""") })
            {
                using HttpResponseMessage busy = await client.PostAsync(path, Json(body));
                string text = await busy.Content.ReadAsStringAsync();

                Assert.Equal(HttpStatusCode.ServiceUnavailable, busy.StatusCode);
                Assert.Equal(TimeSpan.FromSeconds(WorkGate.RetryAfterSeconds), busy.Headers.RetryAfter?.Delta);
                Assert.Equal("application/problem+json", busy.Content.Headers.ContentType?.MediaType);
                Assert.DoesNotContain('\n', JsonNode.Parse(text)!["detail"]!.GetValue<string>());
            }

            Assert.Equal(HttpStatusCode.OK, (await client.Get("/api/models")).Status);
            Assert.Equal(HttpStatusCode.OK, (await client.Post("/api/estimate", """{"model": "llama-3.2-1b", "seq": 256}""")).Status);
            Assert.Equal(HttpStatusCode.OK, (await client.Post("/api/estimate", TrainingEstimate)).Status);
            using HttpResponseMessage page = await client.GetAsync(new Uri("/", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        }

        Assert.Equal(HttpStatusCode.OK, (await client.Post("/api/sweep", Sweep)).Status);
    }

    [Fact]
    public async Task A_sweep_of_more_points_times_layers_than_the_bound_is_refused_naming_it()
    {
        // 129 layers × 64 points = 8,256 > 64 × 128 = 8,192; the same sweep over 128 layers would be allowed.
        JsonObject config = TinyLlama.Config();
        config["num_hidden_layers"] = 129;
        var body = new JsonObject
        {
            ["scenario"] = new JsonObject { ["model"] = new JsonObject { ["config"] = config } },
            ["vary"] = "seq",
            ["values"] = new JsonArray([.. Enumerable.Range(1, SweepRequest.MaxValues).Select(i => (JsonNode)(long)i)]),
        };

        ApiResponse api = await factory.CreateClient().Post("/api/sweep", body);

        Assert.Equal(HttpStatusCode.BadRequest, api.Status);
        Assert.Equal("values", api.Field);
        Assert.Contains("8,192 layers × points", api.Detail, StringComparison.Ordinal);
        Assert.Contains("at most 63 points", api.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_fit_of_a_model_deeper_than_the_bound_is_refused_naming_it()
    {
        // 8,192 layers × estimates spread over 64 estimates = 128 layers; Llama 3.1 405B (126 layers) stays within it.
        JsonObject config = TinyLlama.Config();
        config["num_hidden_layers"] = 129;
        var body = new JsonObject { ["model"] = new JsonObject { ["config"] = config }, ["gpu"] = "a10" };

        ApiResponse deep = await factory.CreateClient().Post("/api/fit", body);
        ApiResponse deepest = await factory.CreateClient().Post("/api/fit", new JsonObject { ["model"] = "llama-3.1-405b", ["gpu"] = "h100-80gb" });

        Assert.Equal(HttpStatusCode.BadRequest, deep.Status);
        Assert.Equal("model", deep.Field);
        Assert.Contains("129 layers", deep.Detail, StringComparison.Ordinal);
        Assert.Contains("at most 128", deep.Detail, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, deepest.Status);
    }

    [Theory]
    [InlineData("/api/sweep", Sweep)]
    [InlineData("/api/estimate", TrainingEstimate)]
    [InlineData("/api/fit", """{"model": "llama-3.2-1b", "mode": "training", "gpu": "rtx-4090"}""")]
    public async Task A_request_whose_client_went_away_ends_quietly_without_a_500(string path, string body)
    {
        var errors = new ErrorLog();
        using WebApplicationFactory<Program> app = factory.WithWebHostBuilder(web => web.ConfigureLogging(logging => logging.AddProvider(errors)));
        byte[] bytes = Encoding.UTF8.GetBytes(body);

        HttpContext context = await app.Server.SendAsync(http =>
        {
            http.Request.Method = "POST";
            http.Request.Path = path;
            http.Request.ContentType = "application/json";
            http.Request.Body = new ReadsDespiteAbort(bytes);
            http.RequestAborted = new CancellationToken(canceled: true);
        });

        // Without the token reaching the library the work would run and write its JSON answer; stopped, it writes nothing.
        Assert.NotEqual(StatusCodes.Status500InternalServerError, context.Response.StatusCode);
        Assert.Null(context.Response.ContentType);
        Assert.Empty(errors.Errors);
    }

    private WebApplicationFactory<Program> WithGate(WorkGate gate) =>
        factory.WithWebHostBuilder(web => web.ConfigureTestServices(services => services.AddSingleton(gate)));

    /// <summary>A body that still reads after the abort, so the request gets past reading it to the library's own checks.</summary>
    private sealed class ReadsDespiteAbort(byte[] bytes) : MemoryStream(bytes)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => base.ReadAsync(buffer, CancellationToken.None);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");
}
