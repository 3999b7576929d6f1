using System.Text.Json;
using LlmMemory.Estimation;
using LlmMemory.Estimation.Replay;
using LlmMemory.Hardware;
using LlmMemory.Sources;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation;

/// <summary>The estimate cache knows a model by its value, so configs parsed anew (API bodies, case files) hit.</summary>
public sealed class EstimateCacheTests
{
    private const string Config = """
        {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1376, "num_hidden_layers": 4,
         "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 32000, "torch_dtype": "bfloat16"}
        """;

    [Fact]
    public void Two_separately_parsed_identical_inline_configs_share_one_replay()
    {
        var cache = new EstimateCache();
        int replays = 0;
        Scenario scenario = Lora(LoraTargets.Parse("q_proj,v_proj"));

        Estimate(cache, Parse(Config), scenario, () => replays++);
        Estimate(cache, Parse(Config), Lora(LoraTargets.Parse("q_proj,v_proj")), () => replays++);

        Assert.Equal(1, replays);
    }

    [Fact]
    public void A_config_that_differs_in_one_value_is_another_model()
    {
        var cache = new EstimateCache();
        int replays = 0;
        Scenario scenario = Lora(LoraSettings.Default.Targets);

        Estimate(cache, Parse(Config), scenario, () => replays++);
        Estimate(cache, Parse(Config.Replace("\"num_hidden_layers\": 4", "\"num_hidden_layers\": 5", StringComparison.Ordinal)), scenario, () => replays++);
        Estimate(cache, Parse(Config.Replace("\"vocab_size\": 32000", "\"vocab_size\": 32001", StringComparison.Ordinal)), scenario, () => replays++);

        Assert.Equal(3, replays);
    }

    [Fact]
    public void Different_lora_modules_are_different_scenarios()
    {
        var cache = new EstimateCache();
        int replays = 0;
        ResolvedModel model = Parse(Config);

        Estimate(cache, model, Lora(LoraTargets.Parse("q_proj,v_proj")), () => replays++);
        Estimate(cache, model, Lora(LoraTargets.Parse("q_proj,k_proj")), () => replays++);

        Assert.Equal(2, replays);
    }

    private static Scenario Lora(LoraTargets targets) => new()
    {
        Model = new ModelReference.Named("inline"), Mode = Mode.Lora, Seq = 256, Lora = LoraSettings.Default with { Targets = targets },
        Gpu = GpuCatalog.Find("rtx-4090"),
    };

    private static ResolvedModel Parse(string config) =>
        ModelResolver.Resolve(new ModelReference.InlineConfig(JsonDocument.Parse(config).RootElement.Clone()));

    /// <summary>Asks <paramref name="cache"/> for the real replay's estimate, counting the replays it runs.</summary>
    private static MemoryEstimate Estimate(EstimateCache cache, ResolvedModel model, Scenario scenario, Action replayed) =>
        cache.GetOrAdd(model, scenario, () =>
        {
            replayed();
            return ReplayEstimate.Build(model, scenario, scenario.Gpu, CancellationToken.None);
        });
}
