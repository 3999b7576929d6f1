namespace LlmMemory.Models;

/// <summary>Multi-head latent attention dimensions (DeepSeek-V2/V3): the KV cache holds one compressed latent per token.</summary>
/// <param name="QueryRank">Rank of the query compression (<c>q_lora_rank</c>); null when queries are projected directly (V2-Lite).</param>
/// <param name="KeyValueRank">Rank of the key/value latent (<c>kv_lora_rank</c>), 512 in DeepSeek-V2/V3.</param>
/// <param name="NopeHeadDimension">Per-head query/key dimensions without rotary embedding (<c>qk_nope_head_dim</c>).</param>
/// <param name="RopeHeadDimension">Rotary dimensions shared by all heads (<c>qk_rope_head_dim</c>), 64.</param>
/// <param name="ValueHeadDimension">Per-head value dimension (<c>v_head_dim</c>).</param>
public sealed record LatentAttention(int? QueryRank, int KeyValueRank, int NopeHeadDimension, int RopeHeadDimension, int ValueHeadDimension)
{
    /// <summary>Elements cached per token per layer: the latent plus the shared rotary key (memory-model.md §2.3).</summary>
    public int LatentWidth => KeyValueRank + RopeHeadDimension;
}
