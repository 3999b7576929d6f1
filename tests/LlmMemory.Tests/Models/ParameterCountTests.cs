using System.Text.Json;
using LlmMemory.Catalog;
using LlmMemory.Estimation;
using LlmMemory.Formats.HuggingFace;
using LlmMemory.Models;
using LlmMemory.Sources;
using LlmMemory.Tests.Support;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Models;

public sealed class ParameterCountTests
{
    /// <summary>Catalog models whose file carries a sourced <c>exact_params</c> (copied from ../shared/models with its source line).</summary>
    public static TheoryData<string> CatalogModelsWithSourcedCounts() =>
        new(ModelCatalog.All.Where(m => m.ExactParameters is not null).Select(m => m.Alias));

    [Theory]
    [MemberData(nameof(CatalogModelsWithSourcedCounts))]
    public void Config_count_equals_the_sourced_exact_count(string alias)
    {
        Assert.True(ModelCatalog.TryFind(alias, out CatalogModel model));
        // The expected number and its source are in data/models/<alias>.json: exact_params, exact_params_source.
        Assert.False(string.IsNullOrWhiteSpace(model.ExactParametersSource));
        Assert.Equal(model.ExactParameters, model.Architecture.ParameterCount);
    }

    /// <summary>Every <c>parameters</c> case of the published corpus (data/validation/cases.jsonl).</summary>
    public static TheoryData<string> ParameterCases() =>
        new(Corpus.Cases("cases.jsonl").Where(c => c.GetProperty("measured").GetProperty("what").GetString() == "parameters")
            .Select(c => c.GetProperty("id").GetString()!));

    [Theory]
    [MemberData(nameof(ParameterCases))]
    public void Count_equals_every_published_parameter_case(string id)
    {
        JsonElement c = Corpus.Cases("cases.jsonl").Single(x => x.GetProperty("id").GetString() == id);
        // The case's "source" field names where the count is published.
        Assert.False(string.IsNullOrWhiteSpace(c.GetProperty("source").GetString()));
        Scenario scenario = ScenarioReader.Read(c, id, null, new HashSet<string> { "id", "measured" });
        long count = ModelResolver.Resolve(scenario.Model).ParameterCount;
        Assert.Equal(c.GetProperty("measured").GetProperty("bytes").GetInt64(), count);
    }

    [Fact]
    public void Every_catalog_model_is_read_and_counted()
    {
        foreach (CatalogModel model in ModelCatalog.All)
        {
            Assert.True(model.Architecture.ParameterCount > 0, model.Alias);
        }
    }

    [Fact]
    public void Gemma_ties_embeddings_even_without_the_key()
    {
        // models/README.md trap 1: Gemma always ties; gemma-2b's config has no tie_word_embeddings key.
        ModelArchitecture gemma = ModelCatalog.All.Single(m => m.Alias == "gemma-2b").Architecture;
        Assert.True(gemma.TiedEmbeddings);
        Assert.Equal(0, gemma.Tensors.CountOf(TensorRole.OutputHead));
    }

    [Fact]
    public void Falcon_40b_legacy_config_counts_the_tied_model()
    {
        // models/README.md trap 14: total_size 83,671,941,120 B = 2 × 41,835,970,560 includes lm_head beside the word
        // embeddings; the tied count is 41,303,293,952 by arithmetic: 60 × (2·2·8192 + 9216·8192 + 8192² + 2·32768·8192)
        // + 65024·8192 + 2·8192 = 41,303,293,952.
        Assert.Equal(41_303_293_952, ModelCatalog.All.Single(m => m.Alias == "falcon-40b").Architecture.ParameterCount);
    }

    [Fact]
    public void DeepSeek_V3_reports_the_prediction_layer_apart_from_the_main_count()
    {
        // models/README.md trap 3: the MTP layer (one MoE block, eh_proj, three norms, own embedding and head) is
        // reported apart; DeepSeek states "671B main + 14B MTP".
        ModelArchitecture v3 = ModelCatalog.All.Single(m => m.Alias == "deepseek-v3").Architecture;
        Assert.InRange(v3.ParameterCount, 670_000_000_000, 672_000_000_000);
        Assert.InRange(v3.PredictionLayerParameters, 11_000_000_000, 15_000_000_000);
    }

    [Fact]
    public void Qwen3_30B_A3B_activates_about_3B_parameters_per_token()
    {
        // Qwen3-30B-A3B model card: 30.5B total, 3.3B activated.
        ModelArchitecture moe = ModelCatalog.All.Single(m => m.Alias == "qwen3-30b-a3b").Architecture;
        Assert.InRange(moe.ParameterCount, 30_400_000_000, 30_600_000_000);
        Assert.InRange(moe.ActiveParameterCount, 3_200_000_000, 3_400_000_000);
    }

    [Fact]
    public void A_count_can_be_given_instead_of_a_model()
    {
        Assert.True(ModelResolver.TryParseCount("7B", out long seven));
        Assert.Equal(7_000_000_000, seven);
        Assert.True(ModelResolver.TryParseCount("6.7e9", out long sci));
        Assert.Equal(6_700_000_000, sci);
        Assert.False(ModelResolver.TryParseCount("7Q", out _));
    }

    [Fact]
    public void Supported_model_types_cover_the_foundation_list()
    {
        string[] required =
        [
            "llama", "mistral", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "gemma", "gemma2", "gemma3_text", "phi3", "gpt2",
            "gpt_neox", "gptj", "falcon", "opt", "bloom", "bert", "t5", "deepseek_v2", "deepseek_v3", "gpt_oss", "granitemoe",
        ];
        Assert.Empty(required.Except(ConfigJsonReader.SupportedModelTypes));
    }
}
