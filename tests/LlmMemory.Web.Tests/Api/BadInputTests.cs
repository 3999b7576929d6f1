using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using LlmMemory.Web.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

public sealed class BadInputTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    /// <summary>The body limit the API promises (1 MiB).</summary>
    private const int OneMiB = 1 << 20;

    private readonly HttpClient _client = factory.CreateClient();

    [Theory]
    [InlineData("""{"model": "llama-3.1-8b", "seq": 0}""", "seq")]
    [InlineData("""{"model": "llama-3.1-8b", "batch": "two"}""", "batch")]
    [InlineData("""{"model": "llama-3.1-8b", "mode": "finetune"}""", "mode")]
    [InlineData("""{"model": "llama-3.1-8b", "weights": "q9_z"}""", "weights")]
    [InlineData("""{"model": "llama-3.1-8b", "colour": "red"}""", "colour")]
    [InlineData("""{"model": "llama-3.1-8b", "lora": {"r": 0}}""", "lora.r")]
    [InlineData("""{"model": "llama-3.1-8b", "parallel": {"gpus": 3, "tp": 2}}""", "parallel.gpus")]
    [InlineData("""{"model": "llama-3.1-8b", "engine_options": {"gpu_memory_utilization": 1.5}}""", "engine_options.gpu_memory_utilization")]
    [InlineData("""{"model": "llama-3.1-8b", "gpu": "rtx-9999"}""", "gpu")]
    [InlineData("""{"model": "llama-3.1-8b", "seq": 268435456, "attention": "eager"}""", "seq")]
    [InlineData("""{"model": "llama-3.1-8b", "kv_cache_dtype": "fp8"}""", "kv_cache_dtype")]
    [InlineData("""{"model": "llama-3.1-8b", "mode": "lora", "kbit_preparation": true}""", "kbit_preparation")]
    [InlineData("""{"model": {"config": {"model_type": "llama", "hidden_size": -1, "num_hidden_layers": 2}}}""", "model.config.hidden_size")]
    [InlineData("""{"model": {"config": {"model_type": "mamba9"}}}""", "model.config.model_type")]
    [InlineData("""{"model": {"parameters": -5}}""", "model.parameters")]
    [InlineData("""{"model": "llama-3.1-8b", "engine": "\ud800"}""", "engine")]
    [InlineData("""{"mode": "inference"}""", "model")]
    [InlineData("""[1, 2, 3]""", "body")]
    [InlineData("""{"model": "llama-3.1-8b", """, "body")]
    [InlineData("", "body")]
    public async Task Invalid_input_is_a_400_problem_naming_the_field(string body, string field)
    {
        ApiResponse response = await _client.Post("/api/estimate", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("application/problem+json", response.MediaType);
        Assert.Equal(field, response.Field);
        Assert.Equal(400, response.Body!["status"]!.GetValue<int>());
        Assert.Contains(field.Split('.')[^1], response.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_path_to_a_real_config_on_the_server_is_refused_not_read()
    {
        string folder = Directory.CreateTempSubdirectory("llm-memory-web-").FullName;
        string config = Path.Combine(folder, "config.json");
        await File.WriteAllTextAsync(config, TinyLlama.Config().ToJsonString());
        try
        {
            foreach (string model in new[] { config, folder, "file://" + config, Path.GetRelativePath(Directory.GetCurrentDirectory(), config) })
            {
                ApiResponse response = await _client.Post("/api/estimate", new JsonObject { ["model"] = model });

                Assert.Equal(HttpStatusCode.BadRequest, response.Status);
                Assert.Equal("model", response.Field);
                Assert.Contains("does not read files", response.Detail, StringComparison.Ordinal);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/main/config.json")]
    [InlineData("meta-llama/Llama-4-Scout-17B-16E-Instruct")]
    [InlineData("/etc/passwd")]
    [InlineData("../../../../etc/hostname")]
    public async Task Urls_hub_ids_outside_the_catalog_and_paths_are_refused(string model)
    {
        ApiResponse response = await _client.Post("/api/estimate", new JsonObject { ["model"] = model });

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("model", response.Field);
    }

    [Fact]
    public async Task A_huge_model_name_is_refused_without_the_costly_suggestions()
    {
        ApiResponse response = await _client.Post("/api/estimate", new JsonObject { ["model"] = new string('q', 1_000_000) });

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("model", response.Field);
        Assert.DoesNotContain("did you mean", response.Detail, StringComparison.Ordinal);
        Assert.True(response.Detail.Length < 1_000, "the detail quotes a shortened name");
    }

    [Fact]
    public async Task A_body_of_exactly_1_MiB_is_read_and_one_byte_more_is_a_413()
    {
        string scenario = """{"model": "llama-3.1-8b"}""";
        string atLimit = scenario + new string(' ', OneMiB - scenario.Length);

        ApiResponse ok = await _client.Post("/api/estimate", atLimit);
        ApiResponse over = await _client.Post("/api/estimate", atLimit + " ");

        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, over.Status);
        Assert.Equal("application/problem+json", over.MediaType);
        Assert.Equal("body", over.Field);
    }

    [Fact]
    public async Task Kestrel_refuses_an_oversized_chunked_body_with_a_413_problem()
    {
        using var app = new KestrelApp();
        using var client = new HttpClient { BaseAddress = app.Address };
        using var content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes("{\"model\": \"" + new string('x', 2 * OneMiB) + "\"}")));
        content.Headers.ContentType = new("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/estimate") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        ApiResponse response = await ApiClient.Send(client, request);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.Status);
        Assert.Equal("application/problem+json", response.MediaType);
    }

    [Fact]
    public async Task A_body_that_is_not_json_is_a_415()
    {
        ApiResponse response = await _client.Post("/api/estimate", "model=llama-3.1-8b", "application/x-www-form-urlencoded");

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.Status);
        Assert.Equal("application/problem+json", response.MediaType);
        Assert.Equal("body", response.Field);
    }

    [Fact]
    public async Task A_body_without_a_content_type_is_a_415()
    {
        using var content = new ByteArrayContent("""{"model": "llama-3.1-8b"}"""u8.ToArray());
        Assert.Null(content.Headers.ContentType);

        ApiResponse response = await ApiClient.Send(_client, new HttpRequestMessage(HttpMethod.Post, "/api/estimate") { Content = content });

        Assert.Equal(HttpStatusCode.UnsupportedMediaType, response.Status);
        Assert.Equal("application/problem+json", response.MediaType);
        Assert.Equal("'body' has no Content-Type; send the scenario as application/json.", response.Detail);
    }

    [Fact]
    public async Task Invalid_utf8_in_a_field_is_a_400_naming_it_not_a_500()
    {
        // 0xFF never occurs in UTF-8; JsonDocument accepts it inside a string and reading the string threw (HTTP 500).
        using var content = new ByteArrayContent([.. """{"model": "llama-3.1-8b", "engine": "x"""u8, 0xFF, .. "\"}"u8]);
        content.Headers.ContentType = new("application/json");

        ApiResponse response = await ApiClient.Send(_client, new HttpRequestMessage(HttpMethod.Post, "/api/estimate") { Content = content });

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("engine", response.Field);
        Assert.Contains("not valid UTF-8", response.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Routing_errors_under_api_are_problems_too()
    {
        ApiResponse missing = await _client.Get("/api/nothing-here");
        ApiResponse wrongMethod = await _client.Get("/api/estimate");

        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Equal("application/problem+json", missing.MediaType);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, wrongMethod.Status);
        Assert.Equal("application/problem+json", wrongMethod.MediaType);
    }

    [Theory]
    [InlineData("""{"scenario": {"model": "llama-3.1-8b"}, "vary": "seq", "values": [1024, 0]}""", "values[1]")]
    [InlineData("""{"scenario": {"model": "llama-3.1-8b"}, "vary": "heads", "values": [1]}""", "vary")]
    [InlineData("""{"scenario": {"model": "llama-3.1-8b"}, "vary": "seq", "values": []}""", "values")]
    [InlineData("""{"scenario": {"model": "llama-3.1-8b", "seq": -1}, "vary": "batch", "values": [1]}""", "scenario.seq")]
    [InlineData("""{"scenario": {"model": "llama-3.1-8b"}, "vary": "seq", "values": [1], "extra": 1}""", "extra")]
    public async Task Invalid_sweeps_are_400_problems_naming_the_field(string body, string field)
    {
        ApiResponse response = await _client.Post("/api/sweep", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal(field, response.Field);
    }

    /// <summary>
    /// Every scenario field given every wrong kind of JSON value: each answer is 200, a 400 problem naming a field, or a 422
    /// problem for a valid scenario the library does not model yet; never a 500.
    /// </summary>
    [Fact]
    public async Task No_wrong_value_in_any_field_makes_a_500()
    {
        string[] fields =
        [
            "model", "mode", "engine", "weights", "precision", "optimizer", "optimizer_in_backward", "batch", "seq", "gradient_accumulation",
            "gradient_checkpointing", "attention", "cross_entropy", "compile", "packed", "lora", "kv_cache_dtype", "v_cache_dtype", "parallel",
            "engine_options", "gpu",
        ];
        string[] values =
        [
            "null", "true", "-1", "0", "1", "2147483648", "9223372036854775807", "1e308", "-0.5", "\"\"", "\"x\"", "[]", "[1]", "{}",
            "{\"r\": 1e9}", "{\"gpus\": 0}", "{\"n_ctx\": -1}", "{\"config\": []}", "{\"parameters\": 1e20}", "\"268435456\"",
        ];
        var failures = new List<string>();
        foreach (string field in fields)
        {
            foreach (string value in values)
            {
                string body = field == "model" ? $"{{\"model\": {value}}}" : $"{{\"model\": \"llama-3.1-8b\", \"{field}\": {value}}}";
                ApiResponse response = await _client.Post("/api/estimate", body);
                bool ok = response.Status == HttpStatusCode.OK
                    || (response.Status == HttpStatusCode.BadRequest && response.MediaType == "application/problem+json" && response.Field is not null)
                    || (response.Status == HttpStatusCode.UnprocessableEntity && response.MediaType == "application/problem+json");
                if (!ok)
                {
                    failures.Add($"{body} → {(int)response.Status} {response.Body}");
                }
            }
        }

        Assert.Empty(failures);
    }
}
