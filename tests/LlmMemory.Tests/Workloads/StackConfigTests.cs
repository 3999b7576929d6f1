using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Tests.Cli;
using LlmMemory.Workloads.StackConfigs;

namespace LlmMemory.Tests.Workloads;

/// <summary>
/// <c>--config FILE</c>: real published configs of each stack (Data/stack-configs, sources in their first lines and README)
/// become scenario fields. Every expected value below is read off the example file itself, with the key it came from.
/// </summary>
public sealed class StackConfigTests
{
    private static readonly string Folder = Path.Combine(AppContext.BaseDirectory, "Data", "stack-configs");

    private static string Example(string name) => Path.Combine(Folder, name);

    /// <summary>The settings of a config as field → (JSON value, key).</summary>
    private static Dictionary<string, (string Value, string? Key)> Settings(StackConfig config) =>
        config.Settings.ToDictionary(s => s.Field, s => (s.Value?.ToJsonString(Plain) ?? "null", s.Key));

    private static readonly JsonSerializerOptions Plain = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Notes(string json) => string.Join("\n", JsonNode.Parse(json)!["notes"]!.AsArray().Select(n => n!.GetValue<string>()));

    [Fact]
    public void Axolotl_qlora_example_maps_its_memory_keys_onto_scenario_fields()
    {
        StackConfig config = StackConfig.Read(Example("axolotl-llama-3-qlora.yml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        Assert.Equal(StackConfigKind.Axolotl, config.Kind);
        // The file: base_model: NousResearch/Meta-Llama-3-8B, adapter: qlora, sequence_len: 4096, micro_batch_size: 2,
        // gradient_accumulation_steps: 4, gradient_checkpointing: true, optimizer: paged_adamw_32bit, bf16: auto, lora_r: 32,
        // lora_target_linear: true, sample_packing: true, flash_attention: true.
        Assert.Equal(("\"NousResearch/Meta-Llama-3-8B\"", "base_model"), s["model"]);
        Assert.Equal(("\"qlora\"", "adapter"), s["mode"]);
        Assert.Equal(("4096", "sequence_len"), s["seq"]);
        Assert.Equal(("2", "micro_batch_size"), s["batch"]);
        Assert.Equal(("4", "gradient_accumulation_steps"), s["gradient_accumulation"]);
        Assert.Equal(("\"full\"", "gradient_checkpointing"), s["gradient_checkpointing"]);
        Assert.Equal(("\"paged-adamw\"", "optimizer"), s["optimizer"]);
        // bf16: auto is bf16 autocast over the NF4 base (Axolotl's normalize_config), the scenario's mixed-bf16.
        Assert.Equal(("\"mixed-bf16\"", "bf16"), s["precision"]);
        Assert.Equal(("32", "lora_r"), s["lora.r"]);
        Assert.Equal(("\"all-linear\"", "lora_target_linear"), s["lora.targets"]);
        Assert.Equal(("true", "sample_packing"), s["packed"]);
        Assert.Equal(("\"flash\"", "flash_attention"), s["attention"]);
        Assert.Contains(config.Confirmed, c => c.StartsWith("load_in_4bit", StringComparison.Ordinal));
        // lora_dropout: 0.05 moves memory (PEFT keeps the dropped input) but has no scenario field yet.
        Assert.Contains(config.NotModelled, k => k.Key == "lora_dropout");
        // lora_alpha changes no byte; learning_rate, datasets and tf32 neither.
        Assert.Contains("lora_alpha", config.NotUsed);
        Assert.Contains("learning_rate", config.NotUsed);
        Assert.Contains("datasets", config.NotUsed);
        Assert.Contains("tf32", config.NotUsed);
    }

    [Fact]
    public void Axolotl_lora_8bit_example_stores_the_base_in_int8_and_lists_the_modules_it_saves()
    {
        StackConfig config = StackConfig.Read(Example("axolotl-llama-3-lora-8b.yml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        // load_in_8bit: true, adapter: lora, optimizer: adamw_bnb_8bit, lora_modules_to_save: [embed_tokens, lm_head].
        Assert.Equal(("\"lora\"", "adapter"), s["mode"]);
        Assert.Equal(("\"int8\"", "load_in_8bit"), s["weights"]);
        Assert.Equal(("\"adamw-8bit\"", "optimizer"), s["optimizer"]);
        Assert.Contains(config.NotModelled, k => k.Key == "lora_modules_to_save");
        // load_in_4bit: false changes nothing, so it is listed as not used.
        Assert.Contains("load_in_4bit", config.NotUsed);
    }

    [Fact]
    public void Axolotl_fsdp_example_shards_fully_and_offloads_parameters()
    {
        StackConfig config = StackConfig.Read(Example("axolotl-llama-3-qlora-fsdp-70b.yaml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        // fsdp: [full_shard, auto_wrap]; fsdp_config.fsdp_sharding_strategy: FULL_SHARD; fsdp_config.fsdp_offload_params: true;
        // optimizer: adamw_torch_fused; sequence_len: 512; lora_r: 8.
        Assert.Equal("\"full_shard\"", s["parallel.fsdp"].Value);
        Assert.Equal(("\"optimizer+params\"", "fsdp_config.fsdp_offload_params"), s["parallel.offload"]);
        Assert.Equal(("\"adamw\"", "optimizer"), s["optimizer"]);
        // adamw_torch_fused: fused AdamW only changes the single-GPU replay's step; a sharded run's closed form does not count it.
        Assert.False(s.ContainsKey("fused"));
        Assert.Contains(config.Confirmed, c => c.StartsWith("optimizer (fused", StringComparison.Ordinal));
        Assert.Equal(("512", "sequence_len"), s["seq"]);
        Assert.Equal(("8", "lora_r"), s["lora.r"]);
        Assert.Contains("fsdp_config.fsdp_state_dict_type", config.NotUsed);
    }

    [Fact]
    public void Torchtune_lora_recipe_names_the_catalog_model_and_translates_its_module_names()
    {
        StackConfig config = StackConfig.Read(Example("torchtune-llama3_1-8B_lora_single_device.yaml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        Assert.Equal(StackConfigKind.Torchtune, config.Kind);
        // model._component_: torchtune.models.llama3_1.lora_llama3_1_8b → LoRA on Llama-3.1-8B.
        Assert.Equal(("\"llama-3.1-8b\"", "model._component_"), s["model"]);
        Assert.Equal(("\"lora\"", "model._component_"), s["mode"]);
        Assert.Equal(("\"torchtune\"", null), s["engine"]);
        // lora_attn_modules: ['q_proj', 'v_proj', 'output_proj'] + apply_lora_to_mlp: True (torchtune's w1/w3/w2 are HF's gate/up/down).
        Assert.Equal("[\"q_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\",\"down_proj\"]", s["lora.targets"].Value);
        Assert.Equal(("8", "model.lora_rank"), s["lora.r"]);
        Assert.Equal(("2", "batch_size"), s["batch"]);
        Assert.Equal(("8", "gradient_accumulation_steps"), s["gradient_accumulation"]);
        Assert.Equal(("\"full\"", "enable_activation_checkpointing"), s["gradient_checkpointing"]);
        Assert.Equal(("\"adamw\"", "optimizer._component_"), s["optimizer"]);
        Assert.Equal(("true", "optimizer.fused"), s["fused"]);
        Assert.Equal(("\"bf16\"", "dtype"), s["precision"]);
        // tokenizer.max_seq_len: null sets no length; LinearCrossEntropyLoss is not modelled; lora_dropout 0.0 changes nothing.
        Assert.False(s.ContainsKey("seq"));
        Assert.Contains(config.NotModelled, k => k.Key == "loss._component_");
        Assert.Contains("model.lora_dropout", config.NotUsed);
        Assert.Contains("profiler", config.NotUsed);
    }

    [Fact]
    public void Trl_sft_config_maps_peft_4bit_onto_qlora()
    {
        StackConfig config = StackConfig.Read(Example("alignment-handbook-zephyr-7b-beta-sft-config_qlora.yaml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        Assert.Equal(StackConfigKind.TrainerArguments, config.Kind);
        // model_name_or_path: mistralai/Mistral-7B-v0.1, use_peft + load_in_4bit, per_device_train_batch_size: 4,
        // gradient_accumulation_steps: 2, max_seq_length: 2048, attn_implementation: flash_attention_2, lora_r: 16, bf16: true.
        Assert.Equal(("\"mistralai/Mistral-7B-v0.1\"", "model_name_or_path"), s["model"]);
        Assert.Equal(("\"qlora\"", "use_peft"), s["mode"]);
        Assert.Equal(("4", "per_device_train_batch_size"), s["batch"]);
        Assert.Equal(("2", "gradient_accumulation_steps"), s["gradient_accumulation"]);
        Assert.Equal(("2048", "max_seq_length"), s["seq"]);
        Assert.Equal(("\"flash\"", "attn_implementation"), s["attention"]);
        Assert.Equal(("16", "lora_r"), s["lora.r"]);
        Assert.Equal(("\"mixed-bf16\"", "bf16"), s["precision"]);
        Assert.Equal("[\"q_proj\",\"k_proj\",\"v_proj\",\"o_proj\",\"gate_proj\",\"up_proj\",\"down_proj\"]", s["lora.targets"].Value);
        // No use_bnb_nested_quant: TRL's get_quantization_config passes ModelConfig.use_bnb_nested_quant (default False) as
        // bnb_4bit_use_double_quant, so the absmax constants stay fp32.
        Assert.Equal(("false", "load_in_4bit"), s["bnb_4bit_use_double_quant"]);
        Assert.Contains("per_device_eval_batch_size", config.NotUsed);
    }

    [Fact]
    public void DeepSpeed_zero3_config_offloads_both_and_leaves_auto_values_to_the_trainer()
    {
        StackConfig config = StackConfig.Read(Example("transformers-ds_config_zero3.json"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        Assert.Equal(StackConfigKind.DeepSpeed, config.Kind);
        // zero_optimization.stage: 3; offload_optimizer.device and offload_param.device: cpu; optimizer.type: AdamW.
        Assert.Equal(("3", "zero_optimization.stage"), s["parallel.zero"]);
        Assert.Equal("\"optimizer+params\"", s["parallel.offload"].Value);
        Assert.Equal(("\"adamw\"", "optimizer.type"), s["optimizer"]);
        // "auto" micro-batch, accumulation and fp16.enabled are the Trainer's to fill: no field, listed as not used.
        Assert.False(s.ContainsKey("batch"));
        Assert.False(s.ContainsKey("precision"));
        Assert.Contains("train_micro_batch_size_per_gpu", config.NotUsed);
        Assert.Contains("fp16", config.NotUsed);
    }

    [Fact]
    public void Accelerate_fsdp_config_gives_the_gpu_count_and_sharding()
    {
        StackConfig config = StackConfig.Read(Example("accelerate-fsdp.yaml"));
        Dictionary<string, (string Value, string? Key)> s = Settings(config);
        Assert.Equal(StackConfigKind.Accelerate, config.Kind);
        // num_processes: 2, mixed_precision: 'bf16', fsdp_sharding_strategy: FULL_SHARD, fsdp_activation_checkpointing: false.
        Assert.Equal(("2", "num_processes"), s["parallel.gpus"]);
        Assert.Equal(("\"mixed-bf16\"", "mixed_precision"), s["precision"]);
        Assert.Equal(("\"full_shard\"", "fsdp_config.fsdp_sharding_strategy"), s["parallel.fsdp"]);
        Assert.Equal(("\"none\"", "fsdp_config.fsdp_activation_checkpointing"), s["gradient_checkpointing"]);
        // fsdp_offload_params: false changes nothing.
        Assert.Contains("fsdp_config.fsdp_offload_params", config.NotUsed);
    }

    /// <summary>
    /// Each example through <c>estimate</c>. The Axolotl files name Hub re-uploads (NousResearch/Meta-Llama-3-8B is Meta's
    /// Llama-3-8B; casperhansen/llama-3-70b-fp16 Meta's Llama-3-70B, whose architecture Llama-3.1-70B shares but for its
    /// RoPE scaling and context), so MODEL names the catalog copy; DeepSpeed and accelerate configs name no model or mode.
    /// </summary>
    [Theory]
    [InlineData("axolotl-llama-3-qlora.yml", "llama-3-8b")]
    [InlineData("axolotl-llama-3-lora-8b.yml", "llama-3-8b")]
    [InlineData("axolotl-llama-3-qlora-fsdp-70b.yaml", "llama-3.1-70b", "--gpus", "2")]
    [InlineData("torchtune-llama3_1-8B_lora_single_device.yaml")]
    [InlineData("alignment-handbook-zephyr-7b-beta-sft-config_qlora.yaml")]
    [InlineData("transformers-ds_config_zero3.json", "llama-3.1-8b", "--mode", "training")]
    [InlineData("accelerate-fsdp.yaml", "llama-3.1-8b", "--mode", "training")]
    public void Estimate_runs_on_every_published_example(string file, params string[] more)
    {
        (int code, string output, string error) = CliTests.Run(["estimate", "--config", Example(file), "--json", .. more]);
        Assert.True(code == 0, error);
        Assert.Contains("read as", Notes(output), StringComparison.Ordinal);
        Assert.True(JsonNode.Parse(output)!["total_bytes"]!.GetValue<long>() > 0);
    }

    [Theory]
    [InlineData("axolotl.yml", "base_model: x\nplugins: [axolotl.integrations.liger.LigerPlugin]\nliger_fused_linear_cross_entropy: true\n",
        "liger_fused_linear_cross_entropy")]
    [InlineData("sft.json", "{\"model_name_or_path\": \"x\", \"use_liger_kernel\": true}", "use_liger_kernel")]
    public void Liger_fused_linear_cross_entropy_becomes_cross_entropy_fused_linear(string name, string text, string key)
    {
        // Axolotl's Liger plugin key and transformers' use_liger_kernel (whose liger_kernel defaults include
        // fused_linear_cross_entropy=True) both run Liger's fused linear cross-entropy.
        string folder = Directory.CreateTempSubdirectory("stack-config-").FullName;
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        try
        {
            Assert.Equal(("\"fused-linear\"", key), Settings(StackConfig.Read(path))["cross_entropy"]);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("sft.json", "{\"model_name_or_path\": \"x\", \"use_peft\": true, \"load_in_4bit\": true, \"use_bnb_nested_quant\": true}", null)]
    [InlineData("sft.json", "{\"model_name_or_path\": \"x\", \"use_peft\": true, \"load_in_4bit\": true, \"use_bnb_nested_quant\": false}", "use_bnb_nested_quant")]
    [InlineData("qlora.yml", "base_model: x\nadapter: qlora\nload_in_4bit: true\nbnb_config_kwargs:\n  bnb_4bit_use_double_quant: false\n", "bnb_config_kwargs.bnb_4bit_use_double_quant")]
    [InlineData("qlora.yml", "base_model: x\nadapter: qlora\nload_in_4bit: true\nbnb_config_kwargs:\n  bnb_4bit_use_double_quant: true\n", null)]
    [InlineData("qlora.yml", "base_model: x\nadapter: qlora\nload_in_4bit: true\nfsdp: [full_shard]\nbnb_config_kwargs:\n  bnb_4bit_use_double_quant: false\n", null)]
    public void Double_quantization_follows_each_stack_s_default_and_key(string name, string text, string? key)
    {
        // TRL: bnb_4bit_use_double_quant=model_args.use_bnb_nested_quant (default False); Axolotl: True unless
        // bnb_config_kwargs says otherwise. Double quantization is the format nf4 as it is (no setting); a sharded config
        // reads the key and sets nothing, since only the single-GPU replay reads the field.
        string folder = Directory.CreateTempSubdirectory("stack-config-").FullName;
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        try
        {
            StackConfig config = StackConfig.Read(path);
            Dictionary<string, (string Value, string? Key)> s = Settings(config);
            if (key is null)
            {
                Assert.False(s.ContainsKey("bnb_4bit_use_double_quant"));
                Assert.DoesNotContain(config.NotUsed, k => k.Contains("double_quant", StringComparison.Ordinal) || k.Contains("nested", StringComparison.Ordinal));
            }
            else
            {
                Assert.Equal(("false", key), s["bnb_4bit_use_double_quant"]);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Flags_override_the_config_and_the_notes_say_so()
    {
        string file = Example("axolotl-llama-3-qlora.yml");
        // Wide enough that each note stays on one line.
        (int code, string output, string error) = CliTests.RunAt(400, "estimate", "llama-3-8b", "--config", file, "--batch", "1", "--seq", "2048");
        Assert.True(code == 0, error);
        Assert.Contains("micro_batch_size → batch = 2 (overridden by --batch)", output, StringComparison.Ordinal);
        Assert.Contains("base_model → model = \"NousResearch/Meta-Llama-3-8B\" (overridden by MODEL)", output, StringComparison.Ordinal);
        // The same scenario spelled out in flags (the file's other keys) gives the same total.
        (_, string fromFlags, _) = CliTests.Run("estimate", "llama-3-8b", "--mode", "qlora", "--batch", "1", "--seq", "2048", "--gradient-accumulation", "4",
            "--gradient-checkpointing", "full", "--optimizer", "paged-adamw", "--precision", "mixed-bf16", "--lora-r", "32", "--lora-targets", "all-linear",
            "--packed", "--attention", "flash", "--json");
        (_, string fromConfig, _) = CliTests.Run("estimate", "llama-3-8b", "--config", file, "--batch", "1", "--seq", "2048", "--json");
        Assert.Equal(JsonNode.Parse(fromFlags)!["total_bytes"]!.GetValue<long>(), JsonNode.Parse(fromConfig)!["total_bytes"]!.GetValue<long>());
    }

    [Fact]
    public void A_later_config_writes_over_an_earlier_one_but_not_over_what_it_implies()
    {
        // The Axolotl file trains with adapter qlora; the DeepSpeed file implies no mode, so qlora stands, and its ZeRO stage is added.
        (int code, string output, string error) = CliTests.Run("estimate", "llama-3-8b", "--config", Example("axolotl-llama-3-qlora.yml"),
            "--config", Example("transformers-ds_config_zero3.json"), "--json");
        Assert.True(code == 0, error);
        string notes = Notes(output);
        Assert.Contains("adapter → mode = \"qlora\"", notes, StringComparison.Ordinal);
        Assert.Contains("zero_optimization.stage → parallel.zero = 3", notes, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a.yml", "base_model: x\nmicro_batch_size: two\n", "micro_batch_size")]
    [InlineData("a.yml", "base_model: x\noptimizer: adamw_hyper\n", "optimizer")]
    [InlineData("a.yml", "base_model: x\nadapter: prefix\n", "adapter")]
    [InlineData("a.yml", "base_model: x\ngradient_checkpointing: sometimes\n", "gradient_checkpointing")]
    [InlineData("a.yml", "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\nbase_model: x\n", "alias")]
    [InlineData("a.yml", "base_model: x\nmicro_batch_size: 1\nmicro_batch_size: 2\n", "micro_batch_size")]
    [InlineData("a.yml", "base_model: !!python/object:os.system x\n", "tag")]
    [InlineData("a.yml", "learning_rate: 1\n", "not a config")]
    [InlineData("a.yml", "base_model: [unclosed\n", "not valid YAML")]
    [InlineData("a.json", "{\"zero_optimization\": {\"stage\": \"three\"}}", "zero_optimization.stage")]
    [InlineData("a.json", "{\"zero_optimization\": {\"stage\": 3, \"offload_optimizer\": {\"device\": \"disk\"}}}", "offload_optimizer.device")]
    [InlineData("a.json", "{\"train_batch_size\": 10, \"train_micro_batch_size_per_gpu\": 4}", "train_batch_size")]
    public void A_hostile_or_wrong_config_is_one_line_naming_the_file_and_key(string name, string text, string named)
    {
        string folder = Directory.CreateTempSubdirectory("stack-config-").FullName;
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        try
        {
            (int code, string output, string error) = CliTests.Run("estimate", "llama-3-8b", "--mode", "training", "--config", path);
            Assert.Equal(2, code);
            Assert.Equal("", output);
            Assert.Single(error.Trim().Split('\n'));
            Assert.Contains(path, error, StringComparison.Ordinal);
            Assert.Contains(named, error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Deep_nesting_and_oversized_files_are_refused_before_they_are_read_whole()
    {
        string folder = Directory.CreateTempSubdirectory("stack-config-").FullName;
        try
        {
            string deep = Path.Combine(folder, "deep.yml");
            File.WriteAllText(deep, "base_model: x\nd: " + new string('[', 10_000) + new string(']', 10_000) + "\n");
            (int code, _, string error) = CliTests.Run("estimate", "7B", "--config", deep);
            Assert.Equal(2, code);
            Assert.Contains($"nests deeper than {YamlTree.MaxDepth} levels", error, StringComparison.Ordinal);

            string large = Path.Combine(folder, "large.yml");
            using (FileStream stream = File.Create(large))
            {
                stream.SetLength(LlmMemory.Models.Limits.MaxConfigBytes + 1L);
            }

            (code, _, error) = CliTests.Run("estimate", "7B", "--config", large);
            Assert.Equal(2, code);
            Assert.Contains("is larger than", error, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
