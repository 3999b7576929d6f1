using System.Text.Json;
using LlmMemory.Estimation.LlamaCpp;
using LlmMemory.Tests.Cli;
using LlmMemory.Workloads;

namespace LlmMemory.Tests.Estimation.LlamaCpp;

/// <summary>engine_options.version for llama.cpp (docs/scenario-extensions.md).</summary>
public sealed class LlamaCppVersionTests
{
    [Fact]
    public void The_ggml_ci_build_4823_is_before_the_graph_refactor()
    {
        // ggml-ci log: "build: 4823 (564747bea)", 2025-03-05; the refactor (PR #12181) was merged 2025-03-13.
        LlamaCppVersion version = LlamaCppVersion.Parse("b4823");
        Assert.True(version.LegacyGraph);
        Assert.False(version.QkvAsAttentionV);
        Assert.False(version.OutputLayerCountsFirst);
        Assert.Equal((256, 32), (version.KvPadding(flashAttention: true), version.KvPadding(flashAttention: false)));
        Assert.Equal(4823, LlamaCppVersion.Parse("564747bea").Build);
    }

    [Fact]
    public void No_version_is_current_master()
    {
        LlamaCppVersion version = LlamaCppVersion.Parse(null);
        Assert.False(version.LegacyGraph);
        Assert.True(version.RotatesQuantizedCache);
        Assert.True(version.EmbeddingInputLeaf);
        Assert.Equal(256, version.KvPadding(flashAttention: false));
    }

    [Fact]
    public void Between_PR_16812_and_PR_17046_the_cache_was_not_padded()
    {
        // PR #16812 (2025-10-28) removed the padding; PR #17046 (2025-11-06) restored 256 after the regression reported at b6969.
        Assert.Equal(1, LlamaCppVersion.Parse("b6969").KvPadding(flashAttention: true));
        Assert.Equal(256, LlamaCppVersion.Parse("b6970").KvPadding(flashAttention: false));
    }

    [Fact]
    public void An_unknown_version_is_refused_with_what_is_accepted()
    {
        var error = Assert.Throws<ModelFormatException>(() => LlamaCppVersion.Parse("v1.2"));
        Assert.Equal("engine_options.version", error.Key);
        Assert.Contains("b4823", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_scenario_names_the_build_with_a_string_only()
    {
        using JsonDocument good = JsonDocument.Parse("""{"model": "pythia-2.8b", "engine": "llama.cpp", "engine_options": {"version": "b4823"}}""");
        Assert.Equal("b4823", ScenarioReader.Read(good.RootElement, "case", null, null).EngineOptions.Version);
        using JsonDocument bad = JsonDocument.Parse("""{"model": "pythia-2.8b", "engine": "llama.cpp", "engine_options": {"version": 4823}}""");
        var error = Assert.Throws<ModelFormatException>(() => ScenarioReader.Read(bad.RootElement, "case", null, null));
        Assert.Contains("engine_options.version", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_engine_version_flag_selects_the_build()
    {
        // ggml-ci b4823 log, pythia-2.8b f16 -ngl 99 -c 0 (flash_attn = 0): "CUDA0 compute buffer size = 162.00 MiB".
        (int code, string output, string error) = CliTests.Run("estimate", "pythia-2.8b", "--engine", "llama.cpp", "--gpu", "v100-16gb",
            "--weights", "f16", "--context", "2048", "--flash-attn", "off", "--engine-version", "b4823", "--json");
        Assert.True(code == 0, error);
        using JsonDocument json = JsonDocument.Parse(output);
        long compute = json.RootElement.GetProperty("components").EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == "compute_buffer").GetProperty("bytes").GetInt64();
        LlamaCppModels.Printed(162.00, compute);
    }
}
