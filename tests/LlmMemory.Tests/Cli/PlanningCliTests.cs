using System.Text.Json;

namespace LlmMemory.Tests.Cli;

/// <summary>gpus, fit, explain and the timeline, end to end through the CLI.</summary>
public sealed class PlanningCliTests
{
    [Theory]
    [InlineData("llama-3.1-8b", "--gpu", "rtx-4090")]
    [InlineData("qwen2.5-7b", "--gpu", "l4-24gb", "--batch", "4")]
    [InlineData("gemma-2-9b", "--gpu", "a100-40gb", "--attention", "eager")]
    [InlineData("mistral-7b-v0.3", "--gpu", "rtx-3090", "--weights", "nf4", "--batch", "2")]
    public void Estimate_at_max_seq_fits_and_at_max_seq_plus_one_does_not(string model, params string[] options)
    {
        JsonElement fit = Json(["fit", model, .. options, "--json"]);
        Assert.Equal("memory", fit.GetProperty("max_seq_limit").GetString());
        int maxSeq = fit.GetProperty("max_seq").GetInt32();

        Assert.True(Json(["estimate", model, .. options, "--seq", $"{maxSeq}", "--json"]).GetProperty("fits").GetBoolean());
        Assert.False(Json(["estimate", model, .. options, "--seq", $"{maxSeq + 1}", "--json"]).GetProperty("fits").GetBoolean());
    }

    [Theory]
    [InlineData("llama-3.1-8b", "--gpu", "rtx-4090")]
    [InlineData("qwen2.5-0.5b", "--gpu", "t4", "--seq", "8192")]
    public void Estimate_at_max_batch_fits_and_at_max_batch_plus_one_does_not(string model, params string[] options)
    {
        JsonElement fit = Json(["fit", model, .. options, "--json"]);
        Assert.Equal("memory", fit.GetProperty("max_batch_limit").GetString());
        int maxBatch = fit.GetProperty("max_batch").GetInt32();

        Assert.True(Json(["estimate", model, .. options, "--batch", $"{maxBatch}", "--json"]).GetProperty("fits").GetBoolean());
        Assert.False(Json(["estimate", model, .. options, "--batch", $"{maxBatch + 1}", "--json"]).GetProperty("fits").GetBoolean());
    }

    [Fact]
    public void Training_max_seq_is_bounded_by_memory_because_activations_grow_with_the_sequence()
    {
        // The essay: activation memory ≈ layers × hidden × sequence × batch, so a training run that fits at 2,048 tokens
        // must stop fitting at some length. Llama-3.2-1B in pure bf16 holds 2 + 2 + 4 B per parameter of model states plus
        // AdamW's foreach temporary (2 B) = 12.4 GB, which fits a 24 GB card with room to spare. (In mixed precision the first
        // optimizer step alone holds 4 + 4 + 8 + 4 B per parameter = 24.7 GB: research/torch SPEC §5, P_step.)
        JsonElement fit = Json(["fit", "llama-3.2-1b", "--mode", "training", "--precision", "bf16", "--gpu", "rtx-4090", "--json"]);
        Assert.Equal("memory", fit.GetProperty("max_seq_limit").GetString());
        int maxSeq = fit.GetProperty("max_seq").GetInt32();

        Assert.True(Json(["estimate", "llama-3.2-1b", "--mode", "training", "--precision", "bf16", "--gpu", "rtx-4090", "--seq", $"{maxSeq}", "--json"]).GetProperty("fits").GetBoolean());
        Assert.False(Json(["estimate", "llama-3.2-1b", "--mode", "training", "--precision", "bf16", "--gpu", "rtx-4090", "--seq", $"{maxSeq + 1}", "--json"]).GetProperty("fits").GetBoolean());
    }

    [Fact]
    public void Fit_json_has_the_contract_fields_and_the_gpu_budget()
    {
        JsonElement fit = Json(["fit", "llama-3.1-8b", "--gpu", "rtx-4090", "--json"]);

        foreach (string key in new[] { "fits", "max_seq", "max_batch", "min_gpus", "gpu_bytes", "formats", "format_needed", "serving", "estimate" })
        {
            Assert.True(fit.TryGetProperty(key, out _), key);
        }

        // data/gpus.json: the RTX 4090's CUDA total, 25,386,352,640 bytes (deviceQuery), is the budget.
        Assert.Equal(25_386_352_640, fit.GetProperty("gpu_bytes").GetInt64());
        Assert.Equal(fit.GetProperty("estimate").GetProperty("fits").GetBoolean(), fit.GetProperty("fits").GetBoolean());
    }

    [Fact]
    public void Fit_for_training_plans_gradient_accumulation_to_the_target()
    {
        JsonElement fit = Json(["fit", "smollm2-135m", "--mode", "training", "--gpu", "h100-80gb", "--target-batch", "12", "--json"]);

        JsonElement plan = fit.GetProperty("gradient_accumulation");
        Assert.Equal(12, plan.GetProperty("effective_batch").GetInt32());
        Assert.Equal(12, plan.GetProperty("micro_batch").GetInt32() * plan.GetProperty("steps").GetInt32());
        Assert.True(plan.GetProperty("micro_batch").GetInt32() <= fit.GetProperty("max_batch").GetInt32());
    }

    [Fact]
    public void Fit_without_a_gpu_is_one_line_and_exit_code_2()
    {
        (int code, string output, string error) = CliTests.Run("fit", "llama-3.1-8b");

        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Contains("--gpu", error, StringComparison.Ordinal);
        Assert.Single(error.Trim().Split('\n'));
    }

    [Fact]
    public void Fit_on_an_unknown_gpu_lists_the_known_ones()
    {
        (int code, _, string error) = CliTests.Run("fit", "llama-3.1-8b", "--gpu", "rtx-9090");

        Assert.Equal(2, code);
        Assert.Contains("rtx-4090", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Gpus_lists_every_catalog_device_with_its_usable_bytes()
    {
        (int code, string output, _) = CliTests.Run("gpus", "--json");

        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        JsonElement h100 = json.RootElement.EnumerateArray().Single(g => g.GetProperty("id").GetString() == "h100-80gb");
        // data/gpus.json: H100 SXM5 80 GB = 80 GiB as sold; CUDA totalGlobalMem 85,045,477,376 bytes (deviceQuery).
        Assert.Equal(85_899_345_920, h100.GetProperty("memory_bytes").GetInt64());
        Assert.Equal(85_045_477_376, h100.GetProperty("usable_bytes").GetInt64());
        Assert.Equal("80 GB HBM3", h100.GetProperty("memory_marketed").GetString());
        Assert.Contains("rtx-3060", CliTests.Run("gpus").Out, StringComparison.Ordinal);
    }

    [Fact]
    public void Explain_shows_the_essays_7B_times_16_bytes_with_GiB_beside()
    {
        (int code, string output, _) = CliTests.Run("explain", "7B", "--mode", "training");

        Assert.Equal(0, code);
        // The essay: 7 × 16 = 112 GB; 112 × 10^9 B = 104.31 GiB.
        Assert.Contains("7B × 16 B = 112 GB (104.31 GiB)", output, StringComparison.Ordinal);
        Assert.Contains("7B × 2 B = 14 GB (13.04 GiB)", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Explain_counts_the_essays_LoRA_adapters_for_Llama_3_8B()
    {
        // The essay (after Unsloth's Llama-3-8B tutorial): r = 16 on q, k, v, o, gate, up, down adds 41,943,040 parameters.
        (int code, string output, _) = CliTests.Run("explain", "llama-3-8b", "--mode", "lora", "--lora-r", "16");

        Assert.Equal(0, code);
        Assert.Contains("41,943,040 = 0.52 % of 8.03B", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("inference")]
    [InlineData("training")]
    [InlineData("lora")]
    [InlineData("qlora")]
    public void Explain_walks_the_essays_sections_in_order_for_every_mode(string mode)
    {
        JsonElement explained = Json(["explain", "qwen2.5-0.5b", "--mode", mode, "--json"]);

        string[] keys = explained.GetProperty("sections").EnumerateArray().Select(s => s.GetProperty("key").GetString()!).ToArray();
        Assert.Equal(["weights", "precision", "quantization", "training_states", "activations", "lora", "effective_batch", "kv_cache", "workload"], keys);
    }

    [Fact]
    public void Estimate_json_carries_the_timeline_as_phase_and_bytes()
    {
        JsonElement estimate = Json(["estimate", "llama-3.1-8b", "--json"]);

        JsonElement timeline = estimate.GetProperty("timeline");
        Assert.Equal(JsonValueKind.Array, timeline.ValueKind);
        foreach (JsonElement point in timeline.EnumerateArray())
        {
            Assert.False(string.IsNullOrEmpty(point.GetProperty("phase").GetString()));
            Assert.True(point.GetProperty("bytes").GetInt64() >= 0);
        }
    }

    private static JsonElement Json(string[] args)
    {
        (int code, string output, string error) = CliTests.Run(args);
        Assert.True(code == 0, $"llm-memory {string.Join(' ', args)}: {error}");
        using JsonDocument json = JsonDocument.Parse(output);
        return json.RootElement.Clone();
    }
}
