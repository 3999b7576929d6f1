using LlmMemory.Workloads.StackConfigs;

namespace LlmMemory.Tests.Workloads;

/// <summary>
/// The config keys that turn on offloaded gradient checkpointing (<c>gradient_checkpointing: offload</c>, each checkpointed
/// layer's input held in host memory): Axolotl's <c>gradient_checkpointing: unsloth</c> (axolotl PR #1528, Unsloth's
/// offloaded checkpointer) and <c>offload</c>; transformers' <c>gradient_checkpointing_kwargs: {offload: true}</c> (transformers
/// PR #48444: the checkpointing function wrapped in <c>save_on_cpu(pin_memory=True)</c>), which needs checkpointing on.
/// </summary>
public sealed class OffloadedCheckpointingKeysTests
{
    private static string? Checkpointing(string name, string text)
    {
        string folder = Directory.CreateTempSubdirectory("offload-config-").FullName;
        string path = Path.Combine(folder, name);
        File.WriteAllText(path, text);
        try
        {
            StackSetting? setting = StackConfig.Read(path).Settings.SingleOrDefault(s => s.Field == "gradient_checkpointing");
            return setting is null ? null : $"{setting.Value?.GetValue<string>()} ({setting.Key})";
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData("a.yml", "base_model: x\ngradient_checkpointing: unsloth\n", "offload (gradient_checkpointing)")]
    [InlineData("a.yml", "base_model: x\ngradient_checkpointing: offload\n", "offload (gradient_checkpointing)")]
    [InlineData("sft.json", """{"model_name_or_path": "x", "gradient_checkpointing": true, "gradient_checkpointing_kwargs": {"offload": true}}""",
        "offload (gradient_checkpointing_kwargs.offload)")]
    [InlineData("sft.json", """{"model_name_or_path": "x", "trl_version": "0.19.0", "gradient_checkpointing_kwargs": {"offload": true}}""",
        "offload (gradient_checkpointing_kwargs.offload)")]
    [InlineData("sft.json", """{"model_name_or_path": "x", "gradient_checkpointing": false, "gradient_checkpointing_kwargs": {"offload": true}}""",
        "none (gradient_checkpointing)")]
    [InlineData("sft.json", """{"model_name_or_path": "x", "gradient_checkpointing_kwargs": {"offload": true}}""", null)]
    public void Offloading_keys_set_gradient_checkpointing_offload_only_where_checkpointing_runs(string name, string text, string? expected) =>
        Assert.Equal(expected, Checkpointing(name, text));
}
