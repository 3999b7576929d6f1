using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Cli;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Engines;
using LlmMemory.Web.Tests.Support;
using LlmMemory.Workloads;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

public sealed class EstimateApiTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task Estimate_answers_the_same_json_as_the_cli_estimate_json()
    {
        const string scenario = """{"model": "llama-3.1-8b", "mode": "qlora", "gpu": "rtx-4090", "seq": 4096, "lora": {"r": 16, "targets": "all-linear"}}""";
        ApiResponse api = await _client.Post("/api/estimate", scenario);

        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CliApp.Run(["estimate", "llama-3.1-8b", "--mode", "qlora", "--gpu", "rtx-4090", "--seq", "4096", "--lora-r", "16",
            "--lora-targets", "all-linear", "--json"], stdout, stderr);

        Assert.Equal(0, code);
        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal("application/json", api.MediaType);
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(stdout.ToString()), api.Body), $"API:\n{api.Body}\nCLI:\n{stdout}");
    }

    [Theory]
    [InlineData("""{"model": "llama-3.1-8b"}""")]
    [InlineData("""{"model": "meta-llama/Llama-3.1-8B", "mode": "training", "batch": 4, "seq": 1024, "gpu": "h100-80gb"}""")]
    [InlineData("""{"model": "qwen2.5-7b", "mode": "lora", "lora": {"r": 64, "targets": ["q_proj", "v_proj"]}, "gpu": "a100-80gb"}""")]
    [InlineData("""{"model": {"parameters": 7000000000}, "mode": "training"}""")]
    [InlineData("""{"model": "mixtral-8x7b", "weights": "q4_k_m", "engine": "llama.cpp", "seq": 32768, "gpu": "rtx-3090"}""")]
    public async Task The_total_is_the_librarys_total_for_the_same_scenario(string scenario)
    {
        ApiResponse api = await _client.Post("/api/estimate", scenario);

        using JsonDocument document = JsonDocument.Parse(scenario);
        Scenario read = ScenarioReader.Read(document.RootElement, "test", null, null);
        MemoryEstimate library = MemoryEstimator.Estimate(read);
        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal(library.DeviceTotal.Bytes, api.Body!["total_bytes"]!.GetValue<long>());
        Assert.Equal(library.Fits, api.Body["fits"]?.GetValue<bool>());
    }

    [Fact]
    public async Task A_vllm_pool_shorter_than_max_model_len_is_reported_as_refused_not_as_too_large()
    {
        // vLLM issue 10517 (data/validation/cases.jsonl, vllm-10517-llama3.1-8b-kv-29k): Llama-3.1-8B on an RTX 3090 with
        // max_model_len 29,000 under vLLM 0.6.4 fits in bytes, but its KV pool held 23,648 tokens and vLLM refused to start.
        ApiResponse api = await _client.Post("/api/estimate",
            """{"model": "llama-3.1-8b", "engine": "vllm", "gpu": "rtx-3090", "engine_options": {"max_model_len": 29000, "version": "0.6.4"}}""");

        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.False(api.Body!["fits"]!.GetValue<bool>());
        Assert.False(api.Body["engine_accepts"]!.GetValue<bool>());
        Assert.True(api.Body["total_bytes"]!.GetValue<long>() <= api.Body["gpu_bytes"]!.GetValue<long>());
    }

    [Fact]
    public async Task The_GPU_count_spreads_transformers_inference_and_answers_for_the_most_loaded_GPU()
    {
        // Llama-3.1-70B in bf16 over two H100s with device_map="auto": transformers caps GPU 0 at total ÷ 2 + 1.25 × a decoder
        // layer (141,107,413,248 ÷ 2 + 2,139,136,000 B, plus the 2 MiB get_max_memory left reserved), and GPU 0 keeps the
        // largest layer (the 2,101,346,304-B embedding or head) free: it holds the embedding and 40 of the 80 layers of
        // 1,711,308,800 B, GPU 1 the other 40, the norm and the head. Both hold 2,101,346,304 + 40 × 1,711,308,800 =
        // 70,553,698,304 B of weights (GPU 1 adds the norm's 16,384 B), far under the 141 GB one GPU would need.
        const string scenario = """{"model": "llama-3.1-70b", "weights": "bf16", "gpu": "h100-80gb", "seq": 1024, "parallel": {"gpus": 2}}""";
        ApiResponse api = await _client.Post("/api/estimate", scenario);

        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal(2, api.Body!["devices"]!.GetValue<int>());
        Assert.StartsWith("GPU ", api.Body["device"]!.GetValue<string>(), StringComparison.Ordinal);
        JsonNode weights = api.Body["components"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "weights")!;
        Assert.InRange(weights["bytes"]!.GetValue<long>(), 70_553_698_304L, 70_553_698_304L + 16_384);
        Assert.True(api.Body["fits"]!.GetValue<bool>());
        using JsonDocument document = JsonDocument.Parse(scenario);
        Assert.Equal(MemoryEstimator.Estimate(ScenarioReader.Read(document.RootElement, "test", null, null)).DeviceTotal.Bytes, api.Body["total_bytes"]!.GetValue<long>());
    }

    [Fact]
    public async Task The_API_takes_kbit_preparation_and_counts_the_fp32_copies_PEFT_makes()
    {
        ApiResponse api = await _client.Post("/api/estimate", """{"model": "llama-3.1-8b", "mode": "qlora", "seq": 256, "kbit_preparation": true}""");

        // Llama-3.1-8B config: hidden 4,096, 32 layers, vocabulary 128,256, untied head. prepare_model_for_kbit_training casts
        // the bf16 embedding and head (2 × 128,256 × 4,096 = 1,050,673,152 elements) and the norms (32 × 2 × 4,096 + 4,096
        // = 266,240) to fp32: 2 B more each, 2 × 1,050,939,392 = 2,101,878,784 B.
        Assert.Equal(HttpStatusCode.OK, api.Status);
        JsonNode cast = api.Body!["components"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "kbit_fp32_parameters")!;
        Assert.Equal(2_101_878_784L, cast["bytes"]!.GetValue<long>());
    }

    [Fact]
    public async Task Llama_3_1_8B_weights_are_its_published_parameter_count_times_two_bytes()
    {
        ApiResponse api = await _client.Post("/api/estimate", """{"model": "llama-3.1-8b", "weights": "bf16"}""");

        // Meta-Llama-3.1-8B: 8,030,261,248 parameters (Hugging Face safetensors index; data/models/llama-3.1-8b.json), bf16 = 2 bytes each.
        JsonNode weights = api.Body!["components"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "weights")!;
        Assert.Equal(8_030_261_248L * 2, weights["bytes"]!.GetValue<long>());
        Assert.Equal(8_030_261_248L, api.Body["parameters"]!["total"]!.GetValue<long>());
    }

    [Fact]
    public async Task An_inline_config_is_counted_exactly()
    {
        var scenario = new JsonObject { ["model"] = new JsonObject { ["config"] = TinyLlama.Config() } };

        ApiResponse api = await _client.Post("/api/estimate", scenario);

        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal(TinyLlama.Parameters, api.Body!["parameters"]!["total"]!.GetValue<long>());
        Assert.Equal("inline config", api.Body["model"]!["origin"]!.GetValue<string>());
    }

    [Fact]
    public async Task Each_sweep_point_is_what_the_estimate_endpoint_answers_for_that_value()
    {
        const string scenario = """{"model": "llama-3.1-8b", "gpu": "rtx-4090", "mode": "training"}""";
        ApiResponse sweep = await _client.Post("/api/sweep", $$"""{"scenario": {{scenario}}, "vary": "batch", "values": [1, 3, 64]}""");

        Assert.Equal(HttpStatusCode.OK, sweep.Status);
        JsonArray points = sweep.Body!["points"]!.AsArray();
        Assert.Equal([1L, 3L, 64L], points.Select(p => p!["value"]!.GetValue<long>()));
        foreach (JsonNode? point in points)
        {
            long batch = point!["value"]!.GetValue<long>();
            ApiResponse one = await _client.Post("/api/estimate", scenario.Replace("}", $", \"batch\": {batch}}}", StringComparison.Ordinal));
            Assert.Equal(one.Body!["total_bytes"]!.GetValue<long>(), point["total_bytes"]!.GetValue<long>());
            Assert.Equal(one.Body["fits"]!.GetValue<bool>(), point["fits"]!.GetValue<bool>());
        }

        // The RTX 4090's CUDA total, 25,386,352,640 B (deviceQuery totalGlobalMem; data/gpus.json).
        Assert.Equal(25_386_352_640, sweep.Body["gpu_bytes"]!.GetValue<long>());
    }

    [Fact]
    public async Task Fit_answers_like_the_cli_and_its_max_seq_is_the_boundary_of_estimate()
    {
        ApiResponse fit = await _client.Post("/api/fit", """{"model": "llama-3.1-8b", "gpu": "rtx-4090"}""");
        ApiResponse withoutGpu = await _client.Post("/api/fit", """{"model": "llama-3.1-8b"}""");
        ApiResponse badTarget = await _client.Post("/api/fit?target_batch=0", """{"model": "llama-3.1-8b", "gpu": "rtx-4090"}""");

        Assert.Equal(HttpStatusCode.OK, fit.Status);
        long maxSeq = fit.Body!["max_seq"]!.GetValue<long>();
        ApiResponse at = await _client.Post("/api/estimate", $$"""{"model": "llama-3.1-8b", "gpu": "rtx-4090", "seq": {{maxSeq}}}""");
        ApiResponse past = await _client.Post("/api/estimate", $$"""{"model": "llama-3.1-8b", "gpu": "rtx-4090", "seq": {{maxSeq + 1}}}""");
        Assert.True(at.Body!["fits"]!.GetValue<bool>());
        Assert.False(past.Body!["fits"]!.GetValue<bool>());
        Assert.Equal(25_386_352_640, fit.Body["gpu_bytes"]!.GetValue<long>()); // RTX 4090 CUDA total (data/gpus.json)
        Assert.Equal(HttpStatusCode.BadRequest, withoutGpu.Status);
        Assert.Equal("gpu", withoutGpu.Field);
        Assert.Equal(HttpStatusCode.BadRequest, badTarget.Status);
        Assert.Equal("target_batch", badTarget.Field);
    }
}
