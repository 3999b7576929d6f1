using LlmMemory.Numerics;

namespace LlmMemory.Models;

/// <summary>The numbers memory estimation needs about a model, and its exact tensor inventory.</summary>
/// <remarks>
/// Built from a Hugging Face <c>config.json</c>, a safetensors header or a GGUF file; every source ends in this record.
/// Config keys are named in the doc comments; the readers hold the key aliases.
/// </remarks>
public sealed record ModelArchitecture
{
    /// <summary>The <c>model_type</c> (normalized: legacy names such as <c>RefinedWeb</c> map to <c>falcon</c>).</summary>
    public required string ModelType { get; init; }

    /// <summary>Block layout family, which decides the activation structure.</summary>
    public required ModelFamily Family { get; init; }

    /// <summary>Transformer blocks (<c>num_hidden_layers</c>, <c>n_layer</c>); decoder blocks for encoder-decoders.</summary>
    public required int LayerCount { get; init; }

    /// <summary>Residual stream width (<c>hidden_size</c>, <c>n_embd</c>, <c>d_model</c>).</summary>
    public required int HiddenSize { get; init; }

    /// <summary>Query heads (<c>num_attention_heads</c>, <c>n_head</c>).</summary>
    public required int AttentionHeadCount { get; init; }

    /// <summary>Key/value heads (<c>num_key_value_heads</c>); equal to the query heads when absent (MHA).</summary>
    public required int KeyValueHeadCount { get; init; }

    /// <summary>Per-head width (<c>head_dim</c>); <c>hidden_size / num_attention_heads</c> when absent.</summary>
    public required int HeadDimension { get; init; }

    /// <summary>Value head width where it differs from <see cref="HeadDimension"/> (MLA <c>v_head_dim</c>).</summary>
    public int ValueHeadDimension { get; init; }

    /// <summary>Dense FFN width (<c>intermediate_size</c>, <c>n_inner</c>, <c>ffn_dim</c>, <c>d_ff</c>).</summary>
    public required int IntermediateSize { get; init; }

    /// <summary>Embedding rows (<c>vocab_size</c>), the padded count, not the tokenizer length.</summary>
    public required int VocabularySize { get; init; }

    /// <summary>Trained context length (<c>max_position_embeddings</c>, <c>n_positions</c>); null when the config has none.</summary>
    public int? MaxPositions { get; init; }

    /// <summary>Whether the output head shares the token embedding (<c>tie_word_embeddings</c>, with family defaults).</summary>
    public required bool TiedEmbeddings { get; init; }

    /// <summary>FFN shape: gated (SwiGLU/GeGLU: gate, up, down) or plain (up, activation, down).</summary>
    public required bool GatedFeedForward { get; init; }

    /// <summary>LayerNorm with bias (GPT-2, BERT, …) rather than RMSNorm.</summary>
    public required bool LayerNormWithBias { get; init; }

    /// <summary>Mixture-of-experts layout; null for dense models.</summary>
    public MixtureOfExperts? Experts { get; init; }

    /// <summary>Latent attention (DeepSeek MLA); null otherwise.</summary>
    public LatentAttention? LatentAttention { get; init; }

    /// <summary>Attention window of sliding layers (<c>sliding_window</c>); null when no layer slides.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>Per-block attention kind (<c>layer_types</c>, <c>sliding_window_pattern</c>, family rules); length = <see cref="LayerCount"/>.</summary>
    public required IReadOnlyList<AttentionKind> LayerAttention { get; init; }

    /// <summary>RoPE scaling kind (<c>rope_scaling.rope_type</c>, or <c>type</c>: <c>llama3</c>, <c>yarn</c>, <c>linear</c>, …); null without scaling.</summary>
    public string? RopeScaling { get; init; }

    /// <summary>Stored weight type (<c>torch_dtype</c>, <c>dtype</c>); null when the config does not say.</summary>
    public DataType? StoredType { get; init; }

    /// <summary>Pre-quantized checkpoint settings; null for plain checkpoints.</summary>
    public QuantizationConfig? Quantization { get; init; }

    /// <summary>Final logit soft-capping (Gemma 2 <c>final_logit_softcapping</c>): one more vocabulary-sized copy in eager mode.</summary>
    public double? FinalLogitSoftcap { get; init; }

    /// <summary>Attention score soft-capping (Gemma 2 <c>attn_logit_softcapping</c>): a tanh over the scores in eager attention.</summary>
    public double? AttentionLogitSoftcap { get; init; }

    /// <summary>
    /// Attention and MLP read the same block input and their outputs are added to it together (GPT-J; GPT-NeoX
    /// <c>use_parallel_residual</c>; Falcon <c>parallel_attn</c>), instead of one after the other.
    /// </summary>
    public bool ParallelBlock { get; init; }

    /// <summary>
    /// The MLP's activation is ReLU (OPT <c>activation_function</c>, "relu" by default): its backward reads its output
    /// (derivatives.yaml <c>threshold_backward(grad, result, 0)</c>), which the second linear saves too, where GELU keeps its input.
    /// </summary>
    public bool ReluActivation { get; init; }

    /// <summary>Leading dimensions of each head that rotary positions rotate (GPT-NeoX <c>rotary_ndims</c>); null: the whole head.</summary>
    public int? RotaryDimension { get; init; }

    /// <summary>
    /// Dropout probability on the embeddings' output in training (GPT-2 and GPT-BigCode <c>embd_pdrop</c>, GPT-J, GPT-NeoX's
    /// <c>hidden_dropout</c>); 0 where the family
    /// has none or the replay does not read it yet.
    /// </summary>
    public double EmbeddingDropout { get; init; }

    /// <summary>
    /// Dropout probability on the attention and MLP outputs before each residual add in training (GPT-2 and GPT-BigCode
    /// <c>resid_pdrop</c>, GPT-J's, OPT's <c>dropout</c>, GPT-NeoX's and BLOOM's <c>hidden_dropout</c>); 0 where the family has
    /// none or the replay does not read it yet.
    /// </summary>
    public double ResidualDropout { get; init; }

    /// <summary>Whether the model builds a KV cache by default (<c>use_cache</c>, default true), also in a training forward.</summary>
    public bool UseCache { get; init; } = true;

    /// <summary>Encoder blocks of an encoder-decoder (T5); 0 for decoder-only and encoder-only models.</summary>
    public int EncoderLayerCount { get; init; }

    /// <summary>Parameters of DeepSeek's multi-token-prediction layers, kept apart from the main count (models/README.md trap 3).</summary>
    public long PredictionLayerParameters { get; init; }

    /// <summary>The weights file(s) the tensors were read from; null when only a config described the model.</summary>
    public WeightsFile? WeightsFile { get; init; }

    /// <summary>Every parameter tensor.</summary>
    public required TensorInventory Tensors { get; init; }

    /// <summary>Exact parameter count.</summary>
    public long ParameterCount => Tensors.ParameterCount;

    /// <summary>Parameters used for one token: all but the routed experts a token does not visit.</summary>
    public long ActiveParameterCount
    {
        get
        {
            if (Experts is null)
            {
                return ParameterCount;
            }

            long routed = Tensors.CountOf(TensorRole.Expert);
            return ParameterCount - routed + routed / Experts.ExpertCount * Experts.ActiveExperts;
        }
    }

    /// <summary>Width of all key (or value) heads of one token in one block.</summary>
    public long KeyValueWidth => (long)KeyValueHeadCount * HeadDimension;
}

/// <summary>Block layout families: how a block is wired, which decides the activations it saves.</summary>
public enum ModelFamily
{
    /// <summary>Pre-norm decoder with RMSNorm, RoPE and a gated FFN: Llama, Mistral, Qwen, Gemma, Phi-3, DeepSeek, gpt-oss, Granite.</summary>
    LlamaLike,

    /// <summary>GPT-2 style: learned positions, LayerNorm, fused QKV with bias, GELU MLP (GPT-2, GPT-BigCode).</summary>
    Gpt2,

    /// <summary>GPT-NeoX / Pythia: fused QKV with bias, parallel residual, LayerNorm.</summary>
    GptNeoX,

    /// <summary>GPT-J: parallel attention and MLP sharing one LayerNorm.</summary>
    GptJ,

    /// <summary>Falcon: fused multi-query or grouped QKV, parallel attention.</summary>
    Falcon,

    /// <summary>OPT: learned positions with an offset of 2, LayerNorm, ReLU MLP.</summary>
    Opt,

    /// <summary>BLOOM: ALiBi, LayerNorm after the embeddings.</summary>
    Bloom,

    /// <summary>BERT encoder with pooler.</summary>
    Bert,

    /// <summary>T5 encoder-decoder.</summary>
    T5,
}
