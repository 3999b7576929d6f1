using System.Net;
using System.Text.Json.Nodes;
using LlmMemory.Catalog;
using LlmMemory.Cli;
using LlmMemory.Tests.Support;
using LlmMemory.Web.Tests.Support;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

/// <summary>The GGUF header form of a model (<c>{"model": {"gguf": …}}</c>): what the page sends for a dropped .gguf file.</summary>
public sealed class GgufHeaderApiTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    private readonly HttpClient _client = factory.CreateClient();

    [Fact]
    public async Task A_header_body_counts_the_parameters_the_tensors_hold()
    {
        // TinyLlama's 49,856 parameters are derived by hand in Support/TinyLlama.cs.
        ApiResponse api = await _client.Post("/api/estimate", Scenario(GgufHeaderBody.Of(TinyLlama.Gguf())));

        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal(TinyLlama.Parameters, api.Body!["parameters"]!["total"]!.GetValue<long>());
    }

    public static TheoryData<string> Files() => new(["tiny-llama", "llama-3.2-1b", "qwen2.5-0.5b", "mixtral-8x7b", "gpt-oss-20b"]);

    [Theory]
    [MemberData(nameof(Files))]
    public async Task A_header_body_gives_the_llama_cpp_estimate_of_estimate_on_the_same_file(string model)
    {
        // The file: TinyLlama's Q8_0 mix, or a catalog config converted as convert_hf_to_gguf.py converts it (F16, sparse data).
        string folder = Directory.CreateTempSubdirectory("llm-memory-gguf-").FullName;
        string path = Path.Combine(folder, model + ".gguf");
        if (model == "tiny-llama")
        {
            await File.WriteAllBytesAsync(path, TinyLlama.Gguf());
        }
        else
        {
            Assert.True(ModelCatalog.TryFind(model, out CatalogModel catalog));
            GgufFromConfig.Writer(catalog.Architecture).Write(path);
        }

        try
        {
            using var stdout = new StringWriter();
            using var stderr = new StringWriter();
            int code = CliApp.Run(["estimate", path, "--engine", "llama.cpp", "--gpu", "rtx-4090", "--context", "4096", "--json"], stdout, stderr);
            ApiResponse api = await _client.Post("/api/estimate", Scenario(GgufHeaderBody.Of(path)));

            Assert.True(code == 0, stderr.ToString());
            Assert.Equal(HttpStatusCode.OK, api.Status);
            JsonNode cli = JsonNode.Parse(stdout.ToString())!;
            foreach (string field in new[] { "parameters", "engine", "components", "total_bytes", "host_bytes", "fits", "facts", "notes" })
            {
                Assert.True(JsonNode.DeepEquals(cli[field], api.Body![field]), $"{field}: API {api.Body[field]} vs CLI {cli[field]}");
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static JsonObject Scenario(JsonObject gguf) => new()
    {
        ["model"] = new JsonObject { ["gguf"] = gguf },
        ["engine"] = "llama.cpp",
        ["gpu"] = "rtx-4090",
        ["seq"] = 4096,
    };

    /// <summary>Each case edits TinyLlama's header into something no file reader accepts.</summary>
    public static TheoryData<string, string> HostileHeaders() => new()
    {
        // ggml tensors have 1 to 4 dimensions (GGML_MAX_DIMS).
        { """{"tensors": {"0": {"shape": [64, 1, 1, 1, 1]}}}""", "model.gguf.tensors[0].shape" },
        { """{"tensors": {"0": {"shape": [64, -100]}}}""", "model.gguf.tensors[0].shape" },
        { """{"tensors": {"0": {"shape": [64, 2.5]}}}""", "model.gguf.tensors[0].shape" },
        // 2^32 · 2^32 = 2^64 overflows; 2^40 · 2^20 = 2^60 fits 64 bits but passes the 10^14 model limit.
        { """{"tensors": {"0": {"shape": [4294967296, 4294967296]}}}""", "model.gguf.tensors[0].shape" },
        { """{"tensors": {"0": {"shape": [1099511627776, 1048576]}}}""", "model.gguf.tensors[0].shape" },
        // Q8_0 (ggml type 8) stores rows in blocks of 32 elements: a row of 33 is not whole blocks.
        { """{"tensors": {"7": {"shape": [33, 128]}}}""", "model.gguf.tensors[7].shape" },
        { """{"tensors": {"0": {"type": 99}}}""", "model.gguf.tensors[0].type" },
        { """{"tensors": {"0": {"type": -1}}}""", "model.gguf.tensors[0].type" },
        { """{"tensors": {"0": {"type": "F16"}}}""", "model.gguf.tensors[0].type" },
        { """{"tensors": {"1": {"name": "token_embd.weight"}}}""", "model.gguf.tensors[1].name" },
        { """{"tensors": {"1": {"name": ""}}}""", "model.gguf.tensors[1].name" },
        { """{"tensors": {"1": {"offset": 0}}}""", "model.gguf.tensors[1]" },
        // Names and keys are bounded as in a file: GgufLimits.MaxNameBytes = 65,536 bytes.
        { "{\"tensors\": {\"1\": {\"name\": \"" + new string('x', 65_537) + "\"}}}", "model.gguf.tensors[1].name" },
        { "{\"metadata\": {\"" + new string('k', 65_537) + "\": 1}}", "model.gguf.metadata" },
        // Two tensors of 9·10^13 elements each: 1.8·10^14 together, past the 10^14 limit for a whole model.
        { """{"tensors": {"0": {"shape": [90000000000000]}, "1": {"shape": [90000000000000]}}}""", "model.gguf" },
        // blk.0 only: the metadata says one block, so a tensor of block 3 belongs to no block.
        { """{"tensors": {"2": {"name": "blk.3.attn_q.weight"}}}""", "model.gguf.blk.3.attn_q.weight" },
        { """{"metadata": {"llama.block_count": null}}""", "model.gguf.llama.block_count" },
        { """{"metadata": {"llama.block_count": {"values": [1]}}}""", "model.gguf.llama.block_count" },
        { """{"metadata": {"general.architecture": "mamba9"}}""", "model.gguf.general.architecture" },
        { """{"metadata": {"tokenizer.ggml.tokens": {"length": -1}}}""", "model.gguf.tokenizer.ggml.tokens" },
        { """{"extra": 1}""", "model.gguf.extra" },
    };

    [Theory]
    [MemberData(nameof(HostileHeaders))]
    public async Task A_hostile_header_is_a_400_naming_the_field(string edit, string field)
    {
        JsonObject gguf = GgufHeaderBody.Of(TinyLlama.Gguf());
        Apply(gguf, JsonNode.Parse(edit)!.AsObject());

        ApiResponse response = await _client.Post("/api/estimate", Scenario(gguf));

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("application/problem+json", response.MediaType);
        Assert.Equal(field, response.Field);
    }

    [Theory]
    [InlineData("""{"model": {"gguf": [1, 2]}}""", "model.gguf")]
    [InlineData("""{"model": {"gguf": {"metadata": {}}}}""", "model.gguf.tensors")]
    [InlineData("""{"model": {"gguf": {"metadata": [], "tensors": []}}}""", "model.gguf.metadata")]
    public async Task A_header_that_is_not_an_object_of_metadata_and_tensors_is_a_400(string body, string field)
    {
        ApiResponse response = await _client.Post("/api/estimate", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal(field, response.Field);
    }

    /// <summary>Merges <paramref name="edit"/> into the header: metadata keys replace (a null value stays null), tensors are edited by index.</summary>
    private static void Apply(JsonObject gguf, JsonObject edit)
    {
        foreach ((string key, JsonNode? value) in edit)
        {
            if (key == "metadata")
            {
                foreach ((string name, JsonNode? replacement) in value!.AsObject())
                {
                    gguf["metadata"]![name] = replacement?.DeepClone();
                }
            }
            else if (key == "tensors")
            {
                foreach ((string index, JsonNode? fields) in value!.AsObject())
                {
                    JsonObject tensor = gguf["tensors"]![int.Parse(index, System.Globalization.CultureInfo.InvariantCulture)]!.AsObject();
                    foreach ((string name, JsonNode? replacement) in fields!.AsObject())
                    {
                        tensor[name] = replacement?.DeepClone();
                    }
                }
            }
            else
            {
                gguf[key] = value?.DeepClone();
            }
        }
    }
}
