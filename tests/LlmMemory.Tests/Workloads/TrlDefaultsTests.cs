using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmMemory.Models;
using LlmMemory.Workloads;
using LlmMemory.Workloads.StackConfigs;

namespace LlmMemory.Tests.Workloads;

/// <summary>
/// <c>trl_version</c> in a TrainingArguments/SFTConfig file: the keys the file leaves out get TRL's <c>SFTConfig</c> defaults of
/// that release, not transformers' <c>TrainingArguments</c> defaults. The defaults (<see cref="TrlRelease"/>, sources there and in
/// docs/scenario-extensions.md): <c>per_device_train_batch_size</c> 8 (TrainingArguments' own, which SFTConfig keeps),
/// <c>max_length</c> 1024 (before the rename <c>max_seq_length=None</c>, which SFTTrainer made <c>min(model_max_length, 1024)</c>),
/// from 0.19 <c>gradient_checkpointing=True</c> (TRL PR #3510) and bf16 on unless fp16 (PR #3515; later
/// <c>self.bf16 = not (self.fp16)</c>), from 1.7 <c>loss_type</c> chunked_nll (PR #5846).
/// </summary>
public sealed class TrlDefaultsTests
{
    private static readonly JsonSerializerOptions Plain = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static StackConfig Read(string json)
    {
        string folder = Directory.CreateTempSubdirectory("trl-config-").FullName;
        string path = Path.Combine(folder, "sft.json");
        File.WriteAllText(path, json);
        try
        {
            return StackConfig.Read(path);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Dictionary<string, (string Value, string? Key, bool Default)> Settings(StackConfig config) =>
        config.Settings.ToDictionary(s => s.Field, s => (s.Value?.ToJsonString(Plain) ?? "null", s.Key, s.Default));

    [Fact]
    public void From_0_19_a_left_out_key_gets_sft_config_s_default_not_training_arguments()
    {
        // {"model_name_or_path": "x", "trl_version": "0.19.0"}: TrainingArguments would give gradient_checkpointing False and
        // bf16 False (fp32, no autocast); SFTConfig 0.19 gives checkpointing on and bf16 autocast over the fp32 parameters
        // (no torch_dtype: full training in mixed-bf16), batch 8 and 1,024 tokens.
        Dictionary<string, (string Value, string? Key, bool Default)> s = Settings(Read("""{"model_name_or_path": "x", "trl_version": "0.19.0"}"""));
        Assert.Equal(("8", "trl_version", true), s["batch"]);
        Assert.Equal(("1024", "trl_version", true), s["seq"]);
        Assert.Equal(("\"full\"", "trl_version", true), s["gradient_checkpointing"]);
        Assert.Equal(("\"mixed-bf16\"", "trl_version", true), s["precision"]);
    }

    [Fact]
    public void Before_0_19_checkpointing_and_bf16_keep_training_arguments_defaults()
    {
        // TRL 0.18: SFTConfig did not yet override gradient_checkpointing or bf16, so they stay off (nothing set: the
        // scenario's own defaults, no checkpointing and, with nothing said, the format's training default); batch and length
        // are the same as from 0.19.
        Dictionary<string, (string Value, string? Key, bool Default)> s = Settings(Read("""{"model_name_or_path": "x", "trl_version": "0.18.2"}"""));
        Assert.Equal(("8", "trl_version", true), s["batch"]);
        Assert.Equal(("1024", "trl_version", true), s["seq"]);
        Assert.False(s.ContainsKey("gradient_checkpointing"));
        Assert.False(s.ContainsKey("precision"));
    }

    [Fact]
    public void Keys_the_file_gives_win_over_the_release_s_defaults()
    {
        Dictionary<string, (string Value, string? Key, bool Default)> s = Settings(Read("""
            {"model_name_or_path": "x", "trl_version": "1.7.0", "per_device_train_batch_size": 2, "max_length": 4096,
             "gradient_checkpointing": false, "fp16": true, "loss_type": "nll"}
            """));
        Assert.Equal(("2", "per_device_train_batch_size", false), s["batch"]);
        Assert.Equal(("4096", "max_length", false), s["seq"]);
        Assert.Equal(("\"none\"", "gradient_checkpointing", false), s["gradient_checkpointing"]);
        // fp16 set: SFTConfig's bf16 = not fp16 is off, so fp16 autocast.
        Assert.Equal(("\"mixed-fp16\"", "fp16", false), s["precision"]);
    }

    [Fact]
    public void From_1_7_the_left_out_loss_is_chunked_nll_which_is_listed_as_not_modelled()
    {
        StackConfig left = Read("""{"model_name_or_path": "x", "trl_version": "1.7.0"}""");
        Assert.Contains(left.NotModelled, k => k.Key == "loss_type" && k.Why.Contains("chunked_nll", StringComparison.Ordinal));
        // use_liger_kernel makes SFTConfig resolve loss_type to nll, and Liger's loss is cross_entropy fused-linear.
        StackConfig liger = Read("""{"model_name_or_path": "x", "trl_version": "1.7.0", "use_liger_kernel": true}""");
        Assert.DoesNotContain(liger.NotModelled, k => k.Key == "loss_type");
        Assert.Equal("\"fused-linear\"", Settings(liger)["cross_entropy"].Value);
        // 1.6 still resolved a left-out loss_type to nll.
        Assert.DoesNotContain(Read("""{"model_name_or_path": "x", "trl_version": "1.6.0"}""").NotModelled, k => k.Key == "loss_type");
        Assert.Contains(Read("""{"model_name_or_path": "x", "loss_type": "nll"}""").Confirmed, c => c.StartsWith("loss_type", StringComparison.Ordinal));
    }

    [Fact]
    public void Without_a_release_the_file_is_read_as_before()
    {
        StackConfig config = Read("""{"model_name_or_path": "x"}""");
        Assert.Equal(["mode", "model"], config.Settings.Select(s => s.Field).Order().ToArray());
    }

    [Theory]
    [InlineData("\"0.8.6\"", "older than SFTConfig")]
    [InlineData("\"1.8.0\"", "newer than the TRL releases modelled")]
    [InlineData("\"latest\"", "not a TRL release")]
    [InlineData("0.19", "must be a string")]
    public void An_unknown_or_unmodelled_release_is_refused_naming_the_key(string value, string reason)
    {
        ModelFormatException e = Assert.Throws<ModelFormatException>(() => Read($$"""{"model_name_or_path": "x", "trl_version": {{value}}}"""));
        Assert.Equal("trl_version", e.Key);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_release_default_does_not_replace_what_an_earlier_input_set()
    {
        // A scenario with batch 2 and then an SFTConfig without per_device_train_batch_size: the release's 8 is a default,
        // like a setting the file's kind implies, so the scenario's 2 stands; the file's own max_length replaces seq.
        StackConfig config = Read("""{"model_name_or_path": "meta-llama/Llama-3.1-8B", "trl_version": "0.19.0", "max_length": 512}""");
        using JsonDocument scenario = JsonDocument.Parse("""{"model": "meta-llama/Llama-3.1-8B", "batch": 2, "seq": 4096}""");
        ScenarioDraft draft = ScenarioDraft.FromJson(scenario.RootElement, "s.json");
        config.ApplyTo(draft);
        Scenario read = draft.Read();
        Assert.Equal(2, read.Batch);
        Assert.Equal(512, read.Seq);
    }
}
