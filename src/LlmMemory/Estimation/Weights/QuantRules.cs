using LlmMemory.Numerics;

namespace LlmMemory.Estimation.Weights;

/// <summary>
/// Which ggml type <c>llama-quantize</c> gives each tensor of a file type (docs/memory-model.md §1.8): a port of
/// <c>src/llama-quant.cpp</c> (ggml-org/llama.cpp 007dbbf3) — <c>tensor_allows_quantization</c>,
/// <c>llama_tensor_get_type_impl</c>, <c>tensor_type_fallback</c> — checked against the real quantizer on 156 files
/// (research/llamacpp SPEC §1.3) and the ggml-ci type counts of b4823.
/// </summary>
/// <remarks>
/// Tensors are visited in the loader's order (<see cref="GgufTensor.CompareLoaderOrder"/>), because the counters of
/// <c>attn_v</c>-like and <c>ffn_*</c> tensors decide <c>use_more_bits</c>. Tensors that are not quantized keep the type of
/// the converted file: F32 for vectors, else F16 (the file type's own float type for f16/bf16/f32 files).
/// </remarks>
internal sealed class QuantRules
{
    private static readonly HashSet<string> LowBitIq = ["iq2_xxs", "iq2_xs", "iq1_s", "iq2_s", "iq2_m", "iq1_m"];

    private readonly LlamaCppArch _arch;
    private readonly GgufFileType _file;
    private readonly bool _qkvAsAttentionV;
    private readonly bool _hasImatrix;
    private int _attentionV;
    private int _ffnDown;
    private int _ffnGate;
    private int _ffnUp;
    private int _attentionVCount;
    private bool _tiedEmbeddings;

    private QuantRules(LlamaCppArch arch, GgufFileType file, bool qkvAsAttentionV, bool hasImatrix)
    {
        _arch = arch;
        _file = file;
        _qkvAsAttentionV = qkvAsAttentionV;
        _hasImatrix = hasImatrix;
    }

    private enum Category
    {
        TokenEmbedding,
        AttentionQ,
        AttentionV,
        AttentionK,
        AttentionQkv,
        AttentionKvB,
        AttentionOutput,
        FfnUp,
        FfnGate,
        FfnDown,
        Output,
        Other,
    }

    /// <summary>The type of every tensor, by name.</summary>
    /// <param name="tensors">The file's tensors, in any order.</param>
    /// <param name="arch">The model's architecture facts.</param>
    /// <param name="file">The file type asked for.</param>
    /// <param name="qkvAsAttentionV">Current master's rule for fused QKV (false: the older branch of its own).</param>
    /// <param name="hasImatrix">Whether an importance matrix is given (changes a few IQ and Q4_0/Q5_0 choices).</param>
    /// <exception cref="FormatException">A tensor whose rows fit neither the type nor its fallback, which llama-quantize refuses too.</exception>
    public static IReadOnlyDictionary<string, DataType> TypesOf(IReadOnlyList<GgufTensor> tensors, LlamaCppArch arch, GgufFileType file,
        bool qkvAsAttentionV = true, bool hasImatrix = false)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentNullException.ThrowIfNull(arch);
        ArgumentNullException.ThrowIfNull(file);
        var rules = new QuantRules(arch, file, qkvAsAttentionV, hasImatrix);
        List<GgufTensor> ordered = [.. tensors];
        ordered.Sort(GgufTensor.CompareLoaderOrder);

        // init_quantize_state_counters: every attn_v-like tensor counts, and the embeddings are tied until output.weight is seen.
        rules._attentionVCount = ordered.Count(t => IsAttentionVLike(CategoryOf(t.Name)));
        rules._tiedEmbeddings = !ordered.Any(t => CategoryOf(t.Name) == Category.Output);
        var types = new Dictionary<string, DataType>(StringComparer.Ordinal);
        foreach (GgufTensor tensor in ordered)
        {
            types[tensor.Name] = rules.TypeOf(tensor);
        }

        return types;
    }

    private DataType TypeOf(GgufTensor t)
    {
        if (!AllowsQuantization(t))
        {
            return t.Dimensions < 2 ? DataTypes.F32 : _file.IsQuantized ? DataTypes.F16 : _file.Default;
        }

        if (!_file.IsQuantized)
        {
            return _file.Default;
        }

        DataType type = _file.Pure ? _file.Default : Choose(_file.Default, t, CategoryOf(t.Name));
        return Fallback(type, t);
    }

    /// <summary><c>tensor_allows_quantization</c>: 2-D/3-D tensors named <c>*weight</c> that are not norms, routers or the listed small tensors.</summary>
    private static bool AllowsQuantization(GgufTensor t)
    {
        string name = t.Name;
        if (t.Dimensions < 2 || !name.EndsWith("weight", StringComparison.Ordinal))
        {
            return false;
        }

        string[] excluded =
        [
            "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj", "ssm_conv1d",
            "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight",
            "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
            "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
            "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
            "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd",
        ];
        return name is not ("position_embd.weight" or "token_types.weight")
            && !excluded.Any(part => name.Contains(part, StringComparison.Ordinal));
    }

    /// <summary><c>tensor_get_category</c>.</summary>
    private static Category CategoryOf(string name)
    {
        if (name == "output.weight")
        {
            return Category.Output;
        }

        if (name is "token_embd.weight" or "per_layer_token_embd.weight")
        {
            return Category.TokenEmbedding;
        }

        (string Part, Category Category)[] parts =
        [
            ("attn_qkv.weight", Category.AttentionQkv), ("attn_kv_b.weight", Category.AttentionKvB), ("attn_v.weight", Category.AttentionV),
            ("attn_k.weight", Category.AttentionK), ("attn_q.weight", Category.AttentionQ), ("attn_output.weight", Category.AttentionOutput),
            ("ffn_up", Category.FfnUp), ("ffn_gate", Category.FfnGate), ("ffn_down", Category.FfnDown),
        ];
        foreach ((string part, Category category) in parts)
        {
            if (name.Contains(part, StringComparison.Ordinal))
            {
                return category;
            }
        }

        return Category.Other;
    }

    /// <summary><c>category_is_attn_v</c>: attention-V-like tensors, the most sensitive to quantization.</summary>
    private static bool IsAttentionVLike(Category c) => c is Category.AttentionV or Category.AttentionQkv or Category.AttentionKvB;

    /// <summary><c>use_more_bits</c>: the first and last eighth of the layers, and every third one in between.</summary>
    private static bool UseMoreBits(int i, int n) => i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;

    private bool Is(params string[] ftypes) => ftypes.Contains(_file.Name);

    /// <summary><c>layer_info</c>: with experts, the layer comes from the name (experts are not visited in layer order).</summary>
    private int LayerOf(int counter, GgufTensor t) =>
        _arch.Experts > 1 ? GgufTensor.BlockOf(t.Name) ?? throw new FormatException($"Failed to determine the layer of tensor {t.Name}.") : counter;

    /// <summary><c>llama_tensor_get_type_impl</c>.</summary>
    private DataType Choose(DataType type, GgufTensor t, Category category)
    {
        if (category == Category.Output || (_tiedEmbeddings && category == Category.TokenEmbedding))
        {
            if (Is("mxfp4_moe") || _arch.Name == "falcon" || !type.FitsRow(t.Ne[0]))
            {
                return DataTypes.Q8_0;
            }

            return Is("iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s", "iq2_s", "iq2_m", "iq1_m") ? DataTypes.Q5_K
                : type != DataTypes.Q8_0 ? DataTypes.Q6_K : type;
        }

        if (Is("mxfp4_moe"))
        {
            return t.Ne.Length > 2 && t.Ne[2] > 1 ? DataTypes.MXFP4 : DataTypes.Q8_0;
        }

        if (category == Category.TokenEmbedding)
        {
            return Is("iq2_xxs", "iq2_xs", "iq1_s", "iq1_m") ? DataTypes.Q2_K
                : Is("iq2_s", "iq2_m", "iq3_xxs") ? DataTypes.IQ3_S
                : Is("tq1_0", "tq2_0", "q2_0") ? DataTypes.Q4_K
                : type;
        }

        bool attentionV = category == Category.AttentionV || (_qkvAsAttentionV && IsAttentionVLike(category));
        if (LowBitIq.Contains(_file.Name))
        {
            return LowBitIqType(type, t, category, attentionV);
        }

        if (attentionV)
        {
            return AttentionVType(type);
        }

        return category switch
        {
            Category.AttentionK => _arch.Experts == 8 ? DataTypes.Q8_0 : Is("iq3_xs") ? DataTypes.IQ3_XXS : Is("iq3_xxs") ? DataTypes.IQ2_S : type,
            Category.AttentionQ => Is("iq3_xs") ? DataTypes.IQ3_XXS : Is("iq3_xxs") ? DataTypes.IQ2_S : type,
            Category.FfnDown => FfnDownType(type, t),
            Category.AttentionOutput => AttentionOutputType(type),
            // Reached only under the older rule, where fused QKV had its own branch.
            Category.AttentionQkv => Is("q3_k_m", "q3_k_l", "iq3_m") ? DataTypes.Q4_K : Is("q4_k_m") ? DataTypes.Q5_K : Is("q5_k_m") ? DataTypes.Q6_K : type,
            Category.FfnGate => FfnGateUpType(type, t, ref _ffnGate),
            Category.FfnUp => FfnGateUpType(type, t, ref _ffnUp),
            _ => type,
        };
    }

    private DataType LowBitIqType(DataType type, GgufTensor t, Category category, bool attentionV)
    {
        bool s = Is("iq2_s", "iq2_m");
        if (attentionV)
        {
            _attentionV++;
            return _arch.Gqa >= 4 || _arch.Experts >= 4 ? DataTypes.Q4_K : s ? DataTypes.IQ3_S : DataTypes.Q2_K;
        }

        if (_arch.Experts == 8 && category == Category.AttentionK)
        {
            return DataTypes.Q4_K;
        }

        if (category == Category.FfnDown)
        {
            DataType chosen = _ffnDown < _arch.Layers / 8 ? s ? DataTypes.IQ3_S : DataTypes.Q2_K : type;
            _ffnDown++;
            return chosen;
        }

        if (category == Category.AttentionOutput)
        {
            return _arch.Experts == 8 ? DataTypes.Q5_K : Is("iq1_s", "iq1_m") ? DataTypes.IQ2_XXS : s ? DataTypes.IQ3_S : type;
        }

        return type;
    }

    private DataType AttentionVType(DataType type)
    {
        int i = _attentionV;
        int gqa = _arch.Gqa;
        DataType chosen = _file.Name switch
        {
            "q2_k" => gqa >= 4 ? DataTypes.Q4_K : DataTypes.Q3_K,
            "q2_k_s" when gqa >= 4 => DataTypes.Q4_K,
            "iq3_xxs" => gqa >= 4 ? DataTypes.Q4_K : !_hasImatrix ? DataTypes.IQ3_S : DataTypes.IQ3_XXS,
            "iq3_xs" or "iq3_s" when gqa >= 4 => DataTypes.Q4_K,
            "iq3_m" => DataTypes.Q4_K,
            "q3_k_m" => i < 2 ? DataTypes.Q5_K : DataTypes.Q4_K,
            "q3_k_l" => DataTypes.Q5_K,
            "iq4_nl" or "iq4_xs" when gqa >= 4 => DataTypes.Q5_K,
            "q4_k_m" or "q5_k_m" when UseMoreBits(i, _attentionVCount) => DataTypes.Q6_K,
            "q4_k_s" when i < 4 => DataTypes.Q5_K,
            _ => type,
        };

        // "In the 70B model we have 8 heads sharing the same attn_v weights ... quantizing this tensor with more bits".
        if (_arch.Is70B && (chosen == DataTypes.Q3_K || chosen == DataTypes.Q4_K))
        {
            chosen = DataTypes.Q5_K;
        }

        if (_arch.Experts == 8)
        {
            chosen = DataTypes.Q8_0;
        }

        _attentionV++;
        return chosen;
    }

    private DataType FfnDownType(DataType type, GgufTensor t)
    {
        int i = LayerOf(_ffnDown, t);
        int n = _arch.Layers;
        bool falcon = _arch.Name == "falcon";
        DataType chosen = _file.Name switch
        {
            "q2_k" => DataTypes.Q3_K,
            "q2_k_s" => i < n / 8 ? DataTypes.Q4_K : type,
            "iq3_xxs" when !_hasImatrix => i < n / 8 ? DataTypes.Q4_K : DataTypes.Q3_K,
            "q3_k_m" => i < n / 16 ? DataTypes.Q5_K : !falcon || UseMoreBits(i, n) ? DataTypes.Q4_K : DataTypes.Q3_K,
            "iq3_m" when i < n / 8 || (_arch.Experts == 8 && UseMoreBits(i, n)) => DataTypes.Q4_K,
            "q3_k_l" => falcon ? DataTypes.Q4_K : DataTypes.Q5_K,
            "q4_k_m" when falcon => i < n / 16 ? DataTypes.Q6_K : UseMoreBits(i, n) ? DataTypes.Q5_K : DataTypes.Q4_K,
            "q4_k_m" => UseMoreBits(i, n) ? DataTypes.Q6_K : type,
            "iq4_nl" or "iq4_xs" when i < n / 8 && !_hasImatrix => DataTypes.Q5_K,
            "q5_k_m" when UseMoreBits(i, n) => DataTypes.Q6_K,
            "q4_k_s" when !falcon && i < n / 8 => DataTypes.Q5_K,
            "q4_0" when _hasImatrix && i < n / 8 => DataTypes.Q4_1,
            "q5_0" when _hasImatrix && i < n / 8 => DataTypes.Q5_1,
            _ => type,
        };
        _ffnDown++;
        return chosen;
    }

    private DataType AttentionOutputType(DataType type)
    {
        if (_arch.Name == "falcon")
        {
            return Is("q3_k_l") ? DataTypes.Q4_K : type;
        }

        if (_arch.Experts == 8)
        {
            return Is("q2_k", "iq3_xs", "iq3_xxs", "q3_k_s", "q3_k_m", "iq4_nl", "q4_k_s", "q4_k_m", "iq3_s", "iq3_m", "iq4_xs") ? DataTypes.Q5_K : type;
        }

        return _file.Name switch
        {
            "q2_k" => DataTypes.Q3_K,
            "iq3_xxs" => DataTypes.IQ3_S,
            "q3_k_m" => DataTypes.Q4_K,
            "q3_k_l" => DataTypes.Q5_K,
            "iq3_m" => DataTypes.Q4_K,
            _ => type,
        };
    }

    private DataType FfnGateUpType(DataType type, GgufTensor t, ref int counter)
    {
        int i = LayerOf(counter, t);
        int n = _arch.Layers;
        counter++;
        return Is("iq3_xs") && i >= n / 8 && i < 7 * n / 8 ? DataTypes.IQ3_XXS : type;
    }

    /// <summary><c>tensor_type_fallback</c>: a row that is not a whole number of blocks takes the next type that fits, else F16.</summary>
    private static DataType Fallback(DataType wanted, GgufTensor t)
    {
        long row = t.Ne[0];
        if (wanted.FitsRow(row))
        {
            return wanted;
        }

        DataType next = wanted.Name switch
        {
            "IQ1_S" or "IQ1_M" or "IQ2_XXS" or "IQ2_XS" or "IQ2_S" or "IQ3_XXS" or "IQ3_S" or "IQ4_XS" => DataTypes.IQ4_NL,
            "Q2_0" or "Q2_K" or "Q3_K" or "TQ1_0" or "TQ2_0" => DataTypes.Q4_0,
            "Q4_K" => DataTypes.Q5_0,
            "Q5_K" => DataTypes.Q5_1,
            "Q6_K" => DataTypes.Q8_0,
            _ => throw new FormatException(
                $"llama-quantize cannot store {t.Name}: its rows of {row} are not a multiple of the {wanted.Name} block of {wanted.BlockSize}, and llama.cpp defines no fallback for {wanted.Name}."),
        };
        return next.FitsRow(row) ? next : DataTypes.F16;
    }
}
