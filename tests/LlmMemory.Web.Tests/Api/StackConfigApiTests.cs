using System.Net;
using System.Text.Json.Nodes;
using LlmMemory.Web.Tests.Support;
using LlmMemory.Workloads.StackConfigs;
using Microsoft.AspNetCore.Mvc.Testing;

namespace LlmMemory.Web.Tests.Api;

/// <summary><c>POST /api/stack-config</c>: a fine-tuning config dropped on the page, read as <c>--config</c> reads the file.</summary>
public sealed class StackConfigApiTests(WebApplicationFactory<Program> factory) : IClassFixture<WebApplicationFactory<Program>>
{
    /// <summary>torchtune's published LoRA recipe for Llama-3.1-8B (its source is the file's first line).</summary>
    internal static readonly string Recipe = Path.Combine(AppContext.BaseDirectory, "Data", "torchtune-llama3_1-8B_lora_single_device.yaml");

    private readonly HttpClient _client = factory.CreateClient();

    private Task<ApiResponse> Read(string name, string text) =>
        _client.Post("/api/stack-config", new JsonObject { ["name"] = name, ["text"] = text });

    [Fact]
    public async Task A_torchtune_recipe_sets_the_fields_the_cli_reads_from_the_same_file()
    {
        ApiResponse api = await Read("lora_single_device.yaml", File.ReadAllText(Recipe));

        Assert.Equal(HttpStatusCode.OK, api.Status);
        Assert.Equal("Torchtune", api.Body!["kind"]!.GetValue<string>());
        Dictionary<string, (string Value, string? Key)> settings = api.Body["settings"]!.AsArray().ToDictionary(
            s => s!["field"]!.GetValue<string>(), s => (s!["value"]!.ToJsonString(), s["key"]?.GetValue<string>()));
        // The recipe: model._component_ lora_llama3_1_8b, batch_size: 2, gradient_accumulation_steps: 8, optimizer.fused: True.
        Assert.Equal(("\"llama-3.1-8b\"", "model._component_"), settings["model"]);
        Assert.Equal(("2", "batch_size"), settings["batch"]);
        Assert.Equal(("8", "gradient_accumulation_steps"), settings["gradient_accumulation"]);
        Assert.Equal(("true", "optimizer.fused"), settings["fused"]);
        // Everything else as the library reads the file from disk (`--config`).
        StackConfig library = StackConfig.Read(Recipe);
        Assert.Equal(library.Settings.Select(s => (s.Field, s.Value?.ToJsonString(), s.Key)), settings.Select(p => (p.Key, (string?)p.Value.Value, p.Value.Key)));
        Assert.Equal(library.NotUsed, api.Body["not_used"]!.AsArray().Select(k => k!.GetValue<string>()));
        Assert.Contains(api.Body["not_modelled"]!.AsArray(), k => k!["key"]!.GetValue<string>() == "loss._component_");
    }

    [Theory]
    [InlineData("""{"name": "a.yaml"}""", "text")]
    [InlineData("""{"text": "batch_size: 2"}""", "name")]
    [InlineData("""{"name": "a.yaml", "text": 5}""", "text")]
    [InlineData("""{"name": "a.yaml", "text": "batch_size: 2", "path": "/etc/passwd"}""", "path")]
    [InlineData("""["a.yaml"]""", "body")]
    public async Task A_request_without_a_name_and_a_text_is_a_400_naming_the_field(string body, string field)
    {
        ApiResponse response = await _client.Post("/api/stack-config", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal(field, response.Field);
    }

    [Theory]
    [InlineData("axolotl.yml", "base_model: &m x\nsequence_len: *m\n", "alias")]
    [InlineData("args.json", "{\"per_device_train_batch_size\": ", "JSON")]
    [InlineData("notes.yaml", "colour: red\n", "is not a config this tool reads")]
    [InlineData("axolotl.yml", "base_model: !!python/object/apply:os.system [\"ls\"]\n", "tag")]
    public async Task A_hostile_or_unknown_config_is_a_400_in_words_naming_the_file(string name, string text, string words)
    {
        ApiResponse response = await Read(name, text);

        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Contains(name, response.Detail, StringComparison.Ordinal);
        Assert.Contains(words, response.Detail, StringComparison.OrdinalIgnoreCase);
    }
}
