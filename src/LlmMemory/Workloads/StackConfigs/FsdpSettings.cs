using System.Text.Json.Nodes;

namespace LlmMemory.Workloads.StackConfigs;

/// <summary>
/// The FSDP settings accelerate writes under <c>fsdp_config</c> (Axolotl and transformers read the same keys, transformers
/// also without the <c>fsdp_</c> prefix): the sharding strategy (FSDP1) or <c>reshard_after_forward</c> (FSDP2), CPU
/// offload of parameters, and activation checkpointing.
/// </summary>
internal static class FsdpSettings
{
    public static void Map(ConfigKeys keys, string prefix)
    {
        string? Key(string name) => keys.Peek(prefix + "fsdp_" + name) is not null ? prefix + "fsdp_" + name
            : keys.Peek(prefix + name) is not null ? prefix + name : null;

        if (Key("sharding_strategy") is { } strategyKey)
        {
            JsonNode node = keys.Take(strategyKey)!;
            // accelerate also writes the strategy as its enum number (1 FULL_SHARD, 2 SHARD_GRAD_OP, 3 NO_SHARD, 4 HYBRID_SHARD).
            string mode = node.ToJsonString().Trim('"') switch
            {
                "FULL_SHARD" or "1" => "full_shard",
                "SHARD_GRAD_OP" or "2" => "shard_grad_op",
                "NO_SHARD" or "3" => "none",
                "HYBRID_SHARD" or "4" => "hybrid_shard",
                _ => throw keys.Error(strategyKey, $"is {ConfigKeys.Shown(node)}; expected FULL_SHARD, SHARD_GRAD_OP, HYBRID_SHARD or NO_SHARD"),
            };
            keys.Set("parallel.fsdp", JsonValue.Create(mode), strategyKey);
        }
        else if (Key("reshard_after_forward") is { } reshardKey && keys.Bool(reshardKey) is bool reshard)
        {
            keys.Set("parallel.fsdp", JsonValue.Create(reshard ? "full_shard" : "shard_grad_op"), reshardKey);
        }

        if (Key("offload_params") is { } offloadKey && keys.Bool(offloadKey) == true)
        {
            // FSDP's CPUOffload(offload_params=True) keeps parameters, gradients and the optimizer step on the host.
            keys.Set("parallel.offload", JsonValue.Create("optimizer+params"), offloadKey);
        }

        if (Key("activation_checkpointing") is { } checkpointKey && keys.Bool(checkpointKey) is bool checkpoint)
        {
            keys.Set("gradient_checkpointing", JsonValue.Create(checkpoint ? "full" : "none"), checkpointKey);
        }
    }
}
