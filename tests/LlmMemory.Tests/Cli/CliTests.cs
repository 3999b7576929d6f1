using System.Text.Json;
using LlmMemory.Cli;

namespace LlmMemory.Tests.Cli;

public sealed class CliTests
{
    /// <summary>Runs the CLI at 80 columns, the width of a default terminal.</summary>
    internal static (int Code, string Out, string Error) Run(params string[] args) => RunAt(80, args);

    internal static (int Code, string Out, string Error) RunAt(int width, params string[] args)
    {
        using var stdout = new StringWriter();
        using var stderr = new StringWriter();
        int code = CliApp.Run(args, stdout, stderr, width);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Params_json_puts_the_exact_count_at_parameters_total()
    {
        (int code, string output, _) = Run("params", "llama-3.1-8b", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        // Meta-Llama-3.1-8B: 8,030,261,248 parameters (HF safetensors total; data/models/llama-3.1-8b.json).
        Assert.Equal(8_030_261_248, json.RootElement.GetProperty("parameters").GetProperty("total").GetInt64());
        Assert.Equal("llama", json.RootElement.GetProperty("model").GetProperty("model_type").GetString());
    }

    [Fact]
    public void A_pipeline_without_a_gpu_count_runs_on_as_many_gpus_as_it_has_stages()
    {
        // --pp 2 alone means tp × pp × cp = 1 × 2 × 1 = 2 GPUs: the same estimate as naming --gpus 2.
        (int code, string alone, string error) = Run("estimate", "llama-3.1-70b", "--engine", "vllm", "--pp", "2", "--gpu", "h100-80gb", "--json");
        Assert.True(code == 0, error);
        (int named, string withGpus, _) = Run("estimate", "llama-3.1-70b", "--engine", "vllm", "--pp", "2", "--gpus", "2", "--gpu", "h100-80gb", "--json");
        Assert.Equal(0, named);
        Assert.Equal(withGpus, alone);
        (int odd, _, string oddError) = Run("estimate", "llama-3.1-70b", "--engine", "vllm", "--pp", "2", "--gpus", "3", "--gpu", "h100-80gb");
        Assert.Equal(2, odd);
        Assert.Contains("multiple of tp × pp × cp = 2", oddError, StringComparison.Ordinal);
    }

    [Fact]
    public void The_pipeline_schedule_flag_reaches_torchtitan_and_is_refused_by_vllm()
    {
        string[] run = ["estimate", "llama-3.1-70b", "--engine", "torchtitan", "--mode", "training", "--precision", "mixed-bf16", "--gpus", "8",
            "--fsdp", "full_shard", "--pp", "4", "--batch", "8", "--seq", "2048", "--gpu", "h100-80gb", "--json"];
        (int code, string oneForwardOneBackward, string error) = Run(run);
        Assert.True(code == 0, error);
        (int interleavedCode, string interleaved, _) = Run([.. run, "--pp-schedule", "interleaved-1f1b"]);
        Assert.Equal(0, interleavedCode);
        Assert.NotEqual(oneForwardOneBackward, interleaved);
        (int refused, _, string refusal) = Run("estimate", "llama-3.1-70b", "--engine", "vllm", "--pp", "2", "--pp-schedule", "interleaved-1f1b");
        Assert.Equal(2, refused);
        Assert.Contains("schedule", refusal, StringComparison.Ordinal);
    }

    [Fact]
    public void Expert_parallelism_is_refused_as_an_unknown_field_not_ignored()
    {
        string path = Path.Combine(Path.GetTempPath(), $"ep-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"model": "mixtral-8x7b", "parallel": {"gpus": 2, "ep": 2}}""");
        try
        {
            (int code, _, string error) = Run("estimate", "--scenario", path);
            Assert.Equal(2, code);
            Assert.Contains("parallel.ep", error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Models_are_found_by_hugging_face_id_in_any_case()
    {
        (int code, string output, _) = Run("params", "META-LLAMA/llama-3.1-8b", "--json");
        Assert.Equal(0, code);
        Assert.Contains("8030261248", output, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unknown_model_is_one_line_with_near_matches_and_exit_code_2()
    {
        (int code, string output, string error) = Run("params", "llama-3.1-8bb");
        Assert.Equal(2, code);
        Assert.Equal("", output);
        Assert.Single(error.Trim().Split('\n'));
        Assert.Contains("llama-3.1-8b", error, StringComparison.Ordinal);
    }

    [Fact]
    public void A_hostile_config_file_is_one_line_naming_the_file_and_key()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bad-config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"model_type": "llama", "hidden_size": -1, "num_hidden_layers": 2}""");
        try
        {
            (int code, _, string error) = Run("params", path);
            Assert.Equal(2, code);
            Assert.Contains(path, error, StringComparison.Ordinal);
            Assert.Contains("'hidden_size'", error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Dtypes_value_shows_pi_as_the_essay_does()
    {
        // Wide enough that a 64-bit pattern (1 + 11 + 52 bits) stays on one line of its table cell.
        (int code, string output, _) = RunAt(200, "dtypes", "--value", "3.14159265358979");
        Assert.Equal(0, code);
        Assert.Contains("0 10000000 10010010000111111011011", output, StringComparison.Ordinal);
        Assert.Contains("3.14159274101257324", output, StringComparison.Ordinal);
    }

    [Fact]
    public void Estimate_json_has_components_that_add_up_to_the_total()
    {
        (int code, string output, _) = Run("estimate", "7B", "--mode", "training", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        JsonElement root = json.RootElement;
        long sum = root.GetProperty("components").EnumerateArray().Sum(c => c.GetProperty("bytes").GetInt64());
        Assert.Equal(root.GetProperty("total_bytes").GetInt64(), sum);
        // The essay: a 7B model needs 7 × 16 = 112 GB to train (2 + 4 weights, 2 gradients, 8 AdamW).
        Assert.Equal(112_000_000_000, sum);
    }

    [Fact]
    public void Params_with_lora_puts_the_trainable_count_beside_the_total()
    {
        // Unsloth's Llama-3-8B fine-tuning tutorial prints 41,943,040 trainable parameters for r = 16 on q, k, v, o, gate,
        // up, down (quoted by the essay): 32 layers × 16 × (2·(4096 + 4096) + 2·(4096 + 1024) + 3·(4096 + 14336)).
        (int code, string output, _) = Run("params", "llama-3-8b", "--lora-r", "16", "--lora-targets", "all-linear", "--json");
        Assert.Equal(0, code);
        using JsonDocument json = JsonDocument.Parse(output);
        JsonElement parameters = json.RootElement.GetProperty("parameters");
        Assert.Equal(32L * 16 * (2 * (4096 + 4096) + 2 * (4096 + 1024) + 3 * (4096 + 14336)), parameters.GetProperty("trainable").GetInt64());
        Assert.Equal(41_943_040, parameters.GetProperty("trainable").GetInt64());
        Assert.Equal(8_030_261_248, parameters.GetProperty("total").GetInt64());
    }

    [Fact]
    public void A_scenario_files_flags_hold_unless_the_command_line_names_them()
    {
        // docs/scenario.md: compile is a boolean of the scenario; a command-line option overrides the file only where given.
        string path = Path.Combine(Path.GetTempPath(), $"compiled-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{"model": "llama-3.2-1b", "mode": "training", "engine": "torchtune", "seq": 1024, "compile": true}""");
        try
        {
            (int code, string fromFile, _) = Run("estimate", "--scenario", path, "--json");
            (_, string withFlag, _) = Run("estimate", "--scenario", path, "--compile", "--json");
            (_, string overridden, _) = Run("estimate", "--scenario", path, "--compile", "false", "--json");
            Assert.Equal(0, code);
            Assert.Equal(withFlag, fromFile);
            Assert.Contains("torch.compile", fromFile, StringComparison.Ordinal);
            Assert.DoesNotContain("torch.compile", overridden, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void A_vllm_pool_too_small_for_max_model_len_does_not_fit_though_the_bytes_do()
    {
        // vLLM issue 10517 (data/validation/cases.jsonl, vllm-10517-llama3.1-8b-kv-29k): Llama-3.1-8B in bf16 on an RTX 3090 with
        // max_model_len 29,000 under vLLM 0.6.4 left a KV pool of 23,648 tokens, and vLLM refused to start ("The model's max seq
        // len (29000) is larger than the maximum number of tokens that can be stored in KV cache").
        (int code, string output, _) = Run("estimate", "llama-3.1-8b", "--engine", "vllm", "--gpu", "rtx-3090", "--max-model-len", "29000", "--engine-version", "0.6.4");
        Assert.Equal(0, code);
        Assert.Contains("Does not fit NVIDIA GeForce RTX 3090", output, StringComparison.Ordinal);
        Assert.Contains("the engine refuses to start", output, StringComparison.Ordinal);
        Assert.Contains("fewer than max_model_len 29,000", output, StringComparison.Ordinal);
    }

    [Fact]
    public void The_context_sets_vllms_max_model_len_and_a_different_max_model_len_beside_it_is_refused()
    {
        // vLLM is started with --max-model-len; a user who says --context 16384 means that. Without it vLLM takes the
        // model's max_position_embeddings (131,072 for Llama-3.1-8B), whose 16 GiB of KV cache does not fit an L4.
        // At 16,384 tokens the cache is 16,384 × 2 × 32 layers × 1,024 (8 KV heads × 128) × 2 B = 2 GiB, while the pool
        // left on an L4 (22.5 GiB usable × 0.9 − 14.96 GiB of bf16 weights − under 2 GiB of profile run and non-torch memory)
        // is more than 3 GiB: vLLM starts.
        (int code, string json, _) = Run("estimate", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4-24gb", "--context", "16384", "--json");
        (_, string explicitLen, _) = Run("estimate", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4-24gb", "--max-model-len", "8192", "--json");
        (int both, _, string error) = Run("estimate", "llama-3.1-8b", "--engine", "vllm", "--gpu", "l4-24gb", "--context", "16384", "--max-model-len", "8192");
        Assert.Equal(0, code);
        Assert.Contains("\"max_model_len\": 16384,", json, StringComparison.Ordinal);
        Assert.Contains("\"engine_accepts\": true", json, StringComparison.Ordinal);
        Assert.Contains("\"max_model_len\": 8192,", explicitLen, StringComparison.Ordinal);
        Assert.Equal(2, both);
        Assert.Contains("give one of them", error, StringComparison.Ordinal);
    }
}
