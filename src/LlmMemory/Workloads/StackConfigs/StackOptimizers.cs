using System.Collections.Frozen;
using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// The stacks' optimizer names as the scenario's optimizers, in one table: transformers' <c>OptimizerNames</c> (the
/// <c>optim</c> argument, also Axolotl's <c>optimizer</c>), torchtune's <c>_component_</c> classes and DeepSpeed's
/// <c>optimizer.type</c>. A name not listed is refused with the list, never read as AdamW.
/// </summary>
internal static class StackOptimizers
{
    /// <summary>Name → scenario optimizer, and whether torch.optim's fused AdamW is asked for.</summary>
    private static readonly FrozenDictionary<string, (string Optimizer, bool Fused)> Table = new Dictionary<string, (string, bool)>(StringComparer.Ordinal)
    {
        // transformers OptimizerNames (training_args.py); Axolotl passes them through.
        ["adamw_torch"] = ("adamw", false),
        ["adamw_torch_fused"] = ("adamw", true),
        ["adamw_bnb_8bit"] = ("adamw-8bit", false),
        ["adamw_8bit"] = ("adamw-8bit", false),
        ["paged_adamw_8bit"] = ("paged-adamw-8bit", false),
        ["paged_adamw_32bit"] = ("paged-adamw", false),
        ["adafactor"] = ("adafactor", false),
        ["sgd"] = ("sgd", false),
        ["lion_32bit"] = ("lion", false),
        // torchtune recipes: the class the optimizer's _component_ names.
        ["torch.optim.AdamW"] = ("adamw", false),
        ["torch.optim.SGD"] = ("sgd", false),
        ["bitsandbytes.optim.AdamW8bit"] = ("adamw-8bit", false),
        ["bitsandbytes.optim.PagedAdamW8bit"] = ("paged-adamw-8bit", false),
        ["bitsandbytes.optim.PagedAdamW"] = ("paged-adamw", false),
        ["bitsandbytes.optim.PagedAdamW32bit"] = ("paged-adamw", false),
        // DeepSpeed optimizer.type: Adam and AdamW hold the same two fp32 moments per parameter (FusedAdam / DeepSpeedCPUAdam).
        ["Adam"] = ("adamw", false),
        ["AdamW"] = ("adamw", false),
        ["Lion"] = ("lion", false),
    }.ToFrozenDictionary(StringComparer.Ordinal);

    /// <summary>Sets <c>optimizer</c> (and <c>fused</c> where the name says so) from the name at <paramref name="key"/>.</summary>
    public static void Map(ConfigKeys keys, string key)
    {
        string? name = keys.Text(key);
        if (name is null)
        {
            return;
        }

        if (!Table.TryGetValue(name, out (string Optimizer, bool Fused) entry))
        {
            throw keys.Error(key, $"is \"{name}\", an optimizer this tool does not model (known: {string.Join(", ", Table.Keys)})");
        }

        keys.Set("optimizer", JsonValue.Create(entry.Optimizer), key);
        if (entry.Fused)
        {
            keys.Set("fused", JsonValue.Create(true), key);
        }
    }
}
