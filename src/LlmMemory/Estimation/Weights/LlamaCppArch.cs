using LlmMemory.Models;

namespace LlmMemory.Estimation.Weights;

/// <summary>What llama.cpp calls a model's architecture (<c>llm_arch</c>), and the facts its rules read from <c>llama_hparams</c>.</summary>
/// <param name="Name">llama.cpp's architecture name (<c>llama</c>, <c>qwen2</c>, <c>gptneox</c>, <c>falcon</c>, …).</param>
/// <param name="Layers">n_layer.</param>
/// <param name="Heads">n_head.</param>
/// <param name="KvHeads">n_head_kv.</param>
/// <param name="Experts">n_expert (0 for dense models).</param>
internal sealed record LlamaCppArch(string Name, int Layers, int Heads, int KvHeads, int Experts)
{
    /// <summary><c>llama_hparams::n_gqa</c>: query heads per KV head.</summary>
    public int Gqa => Heads / Math.Max(1, KvHeads);

    /// <summary>
    /// <c>LLM_TYPE_70B</c> (llama-model.cpp <c>load_hparams</c>): llama with 80 layers and GQA (80 layers of MHA are 65B),
    /// qwen2 with 80 layers. llama-quant.cpp gives such models' <c>attn_v</c> more bits.
    /// </summary>
    public bool Is70B => Layers == 80 && (Name == "qwen2" || (Name == "llama" && Heads != KvHeads));

    public static LlamaCppArch Of(ModelArchitecture model)
    {
        ArgumentNullException.ThrowIfNull(model);
        string name = model.ModelType switch
        {
            "llama" or "mistral" => "llama",
            "gpt_neox" => "gptneox",
            string other => other,
        };
        return new LlamaCppArch(name, model.LayerCount, model.AttentionHeadCount, model.KeyValueHeadCount, model.Experts?.ExpertCount ?? 0);
    }
}
