namespace LlmMemory.Models;

/// <summary>The mixture-of-experts layout of a model.</summary>
/// <param name="ExpertCount">Routed experts per MoE layer (<c>num_local_experts</c>, <c>num_experts</c>, <c>n_routed_experts</c>).</param>
/// <param name="ActiveExperts">Routed experts per token (<c>num_experts_per_tok</c>, <c>experts_per_token</c>).</param>
/// <param name="ExpertIntermediateSize">FFN width of one expert (<c>moe_intermediate_size</c>, else <c>intermediate_size</c>).</param>
/// <param name="SharedExpertIntermediateSize">Total FFN width of the always-on shared experts, 0 when none.</param>
/// <param name="MoeLayers">Indices of the blocks whose FFN is a MoE layer (DeepSeek's first dense layers and Qwen's <c>mlp_only_layers</c> are not).</param>
public sealed record MixtureOfExperts(int ExpertCount, int ActiveExperts, int ExpertIntermediateSize, int SharedExpertIntermediateSize,
    IReadOnlyList<int> MoeLayers);
