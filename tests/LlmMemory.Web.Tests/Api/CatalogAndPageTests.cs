using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using LlmMemory.Web.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

public sealed partial class CatalogAndPageTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task Models_lists_the_catalog_with_exact_counts()
    {
        ApiResponse response = await _client.Get("/api/models");

        JsonNode llama = response.Body!.AsArray().Single(m => m!["alias"]!.GetValue<string>() == "llama-3.1-8b")!;
        Assert.Equal("meta-llama/Llama-3.1-8B", llama["hf_id"]!.GetValue<string>());
        // 8,030,261,248: the Hugging Face safetensors total of Meta-Llama-3.1-8B (data/models/llama-3.1-8b.json).
        Assert.Equal(8_030_261_248, llama["parameters"]!.GetValue<long>());
    }

    [Fact]
    public async Task Gpus_lists_exact_bytes()
    {
        ApiResponse response = await _client.Get("/api/gpus");

        JsonNode rtx4090 = response.Body!.AsArray().Single(g => g!["id"]!.GetValue<string>() == "rtx-4090")!;
        // A "24 GB" GeForce card has 24 GiB of GDDR6X (data/GPUS.md: GPU "GB" are GiB) = 24 × 2^30 bytes.
        Assert.Equal(24L << 30, rtx4090["memory_bytes"]!.GetValue<long>());
        Assert.True(rtx4090["budget_bytes"]!.GetValue<long>() <= 24L << 30);
    }

    [Fact]
    public async Task Dtypes_gives_ggml_block_sizes()
    {
        ApiResponse response = await _client.Get("/api/dtypes");

        JsonNode q8 = response.Body!["dtypes"]!.AsArray().Single(t => t!["name"]!.GetValue<string>() == "q8_0")!;
        // ggml-common.h block_q8_0: one fp16 scale and 32 int8 values = 34 bytes per 32 elements; enum ggml_type GGML_TYPE_Q8_0 = 8.
        Assert.Equal(32, q8["block_size"]!.GetValue<int>());
        Assert.Equal(34, q8["block_bytes"]!.GetValue<int>());
        Assert.Equal(8, q8["ggml_id"]!.GetValue<int>());
        Assert.Contains(response.Body["weight_formats"]!.AsArray(), f => f!["name"]!.GetValue<string>() == "q4_k_m");
    }

    [Fact]
    public async Task Choices_name_the_fields_each_inference_engine_reads_and_the_estimate_agrees()
    {
        ApiResponse choices = await _client.Get("/api/choices");
        JsonObject fields = choices.Body!["inference_fields"]!.AsObject();
        string[] Of(string engine) => fields[engine]!.AsArray().Select(o => o!.GetValue<string>()).ToArray();

        // vLLM's EngineArgs take --max-model-len, --gpu-memory-utilization and --max-num-seqs; SGLang's ServerArgs have
        // context_length and mem_fraction_static but no max_num_seqs (it caps requests with max_running_requests). Neither
        // takes a batch: both size the KV pool from the GPU. transformers' forward takes a batch and no engine options;
        // torchtune does not run inference.
        Assert.Subset(Of("vllm").ToHashSet(), new HashSet<string>
            { "engine_options.max_model_len", "engine_options.gpu_memory_utilization", "engine_options.max_num_seqs", "engine_options.version" });
        Assert.Contains("engine_options.max_model_len", Of("sglang"));
        Assert.DoesNotContain("engine_options.max_num_seqs", Of("sglang"));
        Assert.DoesNotContain("batch", Of("vllm"));
        Assert.Contains("batch", Of("transformers"));
        Assert.DoesNotContain(Of("transformers"), f => f.StartsWith("engine_options.", StringComparison.Ordinal));
        Assert.False(fields.ContainsKey("torchtune"));

        // What the page offers is what the estimate reads: the listed option is estimated, the unlisted one refused by name.
        ApiResponse read = await _client.Post("/api/estimate", """{"model": "llama-3.1-8b", "engine": "sglang", "gpu": "a100-80gb", "engine_options": {"max_model_len": 8192}}""");
        Assert.Equal(HttpStatusCode.OK, read.Status);
        ApiResponse refused = await _client.Post("/api/estimate", """{"model": "llama-3.1-8b", "engine": "sglang", "gpu": "a100-80gb", "engine_options": {"max_num_seqs": 8}}""");
        Assert.Equal(HttpStatusCode.BadRequest, refused.Status);
        Assert.Contains("max_num_seqs", refused.Body!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_openapi_document_describes_every_endpoint()
    {
        ApiResponse response = await _client.Get("/openapi/v1.json");

        Assert.Equal(HttpStatusCode.OK, response.Status);
        JsonObject paths = response.Body!["paths"]!.AsObject();
        foreach (string path in new[] { "/api/estimate", "/api/sweep", "/api/fit", "/api/models", "/api/gpus", "/api/dtypes", "/api/choices" })
        {
            Assert.True(paths.ContainsKey(path), $"{path} is missing from the OpenAPI document");
        }

        Assert.NotNull(paths["/api/estimate"]!["post"]!["responses"]!["400"]);
        Assert.NotNull(paths["/api/estimate"]!["post"]!["responses"]!["413"]);
    }

    [Fact]
    public async Task The_page_loads_only_local_assets_under_a_same_origin_policy()
    {
        using HttpResponseMessage page = await _client.GetAsync(new Uri("/", UriKind.Relative));
        string html = await page.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("default-src 'self'", page.Headers.GetValues("Content-Security-Policy").Single(), StringComparison.Ordinal);
        string[] assets = AssetReference().Matches(html).Select(m => m.Groups[1].Value).ToArray();
        Assert.Contains("app.js", assets);
        Assert.Contains("style.css", assets);
        foreach (string asset in assets.Where(a => !a.StartsWith('#')))
        {
            Assert.DoesNotMatch("^(https?:)?//", asset);
            using HttpResponseMessage response = await _client.GetAsync(new Uri("/" + asset.TrimStart('/'), UriKind.Relative));
            Assert.True(response.IsSuccessStatusCode, $"{asset}: {(int)response.StatusCode}");
        }

        foreach (string module in new[] { "app.js", "state.js", "charts.js", "headers.js" })
        {
            string code = await _client.GetStringAsync(new Uri("/" + module, UriKind.Relative));
            Assert.DoesNotMatch(@"(import|from)\s*\(?\s*['""](https?:)?//", code);
        }
    }

    [Fact]
    public async Task The_server_that_serve_starts_answers_on_loopback()
    {
        await using Microsoft.AspNetCore.Builder.WebApplication app = WebServer.Create(["--urls", "http://127.0.0.1:0"]);
        await app.StartAsync();
        var address = new Uri(app.Urls.Single());
        using var client = new HttpClient { BaseAddress = address };

        ApiResponse estimate = await client.Post("/api/estimate", """{"model": "7B"}""");
        string page = await client.GetStringAsync(new Uri("/", UriKind.Relative));

        Assert.True(System.Net.IPAddress.IsLoopback(System.Net.IPAddress.Parse(address.Host)));
        Assert.Equal(HttpStatusCode.OK, estimate.Status);
        Assert.Contains("<script type=\"module\" src=\"app.js\">", page, StringComparison.Ordinal);
        await app.StopAsync();
    }

    [Fact]
    public void The_default_address_is_loopback()
    {
        Assert.True(new Uri(WebServer.DefaultUrl).IsLoopback);
    }

    [GeneratedRegex("""(?:src|href)="([^"]+)""")]
    private static partial Regex AssetReference();
}
