using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp.Graphs;

/// <summary>
/// The worst-case graph before the March 2025 refactor (<c>llm_build_context::build_llama</c> / <c>build_gptneox</c> with
/// <c>llm_build_kv</c>; b4823, the ggml-ci V100 runs): K and V copied into cache views with <c>ggml_cpy</c>, an F32 KQ mask of
/// [n_kv, PAD(n_tokens, GGML_KQ_MASK_PAD = 64)] cast to F16 for flash attention, no <c>inp_embd</c> input and no KV index
/// inputs; the llama FFN as up, gate, silu, mul.
/// </summary>
/// <remarks>Reconstructed from the b4823-era source (research/llamacpp SPEC §4.7); validated through every b4823 CUDA figure.</remarks>
internal sealed class LegacyGraphBuilder
{
    /// <summary><c>GGML_KQ_MASK_PAD</c> of that era: the mask's token dimension is padded to it.</summary>
    private const int KqMaskPad = 64;

    private readonly GraphShape _s;
    private readonly GraphRequest _r;
    private readonly GraphFactory _b;
    private readonly List<GraphTensor> _cacheK = [];
    private readonly List<GraphTensor> _cacheV = [];
    private GraphTensor _mask = null!;
    private GraphTensor _position = null!;
    private GraphTensor _outputIds = null!;

    private LegacyGraphBuilder(GraphShape shape, GraphRequest request)
    {
        _s = shape;
        _r = request;
        _b = new GraphFactory(request.WeightTypes);
    }

    private int Tokens => _r.Tokens;

    private long KvWidth => (long)_s.KvHeads * _s.HeadDim;

    public static ComputeGraph Build(GraphShape shape, GraphRequest request)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(request);
        var builder = new LegacyGraphBuilder(shape, request);
        builder.BuildAll();
        return builder._b.Graph;
    }

    private void BuildAll()
    {
        GraphFactory b = _b;
        int e = _s.Embedding;
        int t = Tokens;
        GraphTensor tokenEmbedding = b.Weight("token_embd.weight", e, _s.Vocabulary);
        GraphTensor tokens = b.Leaf("inp_tokens", DataTypes.Int32, [t], input: true);
        GraphTensor inpL = b.F32("inp_embd", GgmlOp.GetRows, [e, t], tokenEmbedding, tokens);
        _position = b.Leaf("inp_pos", DataTypes.Int32, [t], input: true);
        _mask = b.Leaf("KQ_mask", DataTypes.F32, [_r.KvCells, (t + KqMaskPad - 1) / KqMaskPad * KqMaskPad], input: true);
        if (_r.FlashAttention)
        {
            _mask = b.Op("KQ_mask (copy)", GgmlOp.Cpy, DataTypes.F16, _mask.Ne, _mask);
        }

        _outputIds = b.Leaf("inp_out_ids", DataTypes.Int32, [_r.Outputs], input: true);
        for (int il = 0; il < _s.Layers; il++)
        {
            b.Layer = il;
            _cacheK.Add(b.Leaf($"cache_k_l{il}", _r.KeyType, [KvWidth * _r.KvCells], external: true));
            _cacheV.Add(b.Leaf($"cache_v_l{il}", _r.ValueType, [KvWidth * _r.KvCells], external: true));
        }

        b.Layer = -1;
        for (int il = 0; il < _s.Layers; il++)
        {
            b.Layer = il;
            inpL = _s.Family == GraphFamily.GptNeoX ? GptNeoXLayer(il, inpL) : LlamaLayer(il, inpL);
        }

        b.Layer = _s.Layers;
        Head.Build(b, _s, inpL, tokenEmbedding, _r.Outputs);
        b.Layer = -1;
    }

    private GraphTensor Norm(GraphTensor x, int il, GraphTensor weight, GraphTensor? bias, bool rms, string name)
    {
        GraphTensor n = _b.F32($"norm-{il}", rms ? GgmlOp.RmsNorm : GgmlOp.Norm, x.Ne, x);
        GraphTensor cur = _b.F32($"{name}-{il}", GgmlOp.Mul, x.Ne, n, weight);
        return bias is null ? cur : _b.F32(cur.Name + "_b", GgmlOp.Add, x.Ne, cur, bias);
    }

    /// <summary><c>llm_build_kv</c>: expand q, k, v, copy K and V into views of the cache, then attention and the output projection.</summary>
    private GraphTensor Attention(int il, GraphTensor q, GraphTensor k, GraphTensor v, GraphTensor wo, GraphTensor? bo)
    {
        GraphFactory b = _b;
        int h = _s.Heads;
        int hkv = _s.KvHeads;
        int d = _s.HeadDim;
        int t = Tokens;
        long kvCells = _r.KvCells;
        b.Expand(q);
        b.Expand(k);
        b.Expand(v);
        GraphTensor kView = b.View(_cacheK[il], [KvWidth * t], $"k_cache_view-{il}");
        b.Expand(b.Into($"k_cpy-{il}", GgmlOp.Cpy, DataTypes.F16, kView.Ne, _cacheK[il], k, kView));
        GraphTensor vSource;
        GraphTensor vView;
        if (_r.FlashAttention)
        {
            vSource = v;
            vView = b.View(_cacheV[il], [KvWidth * t], $"v_cache_view-{il}");
        }
        else
        {
            vSource = b.View(v, [t, KvWidth], v.Name + " (transposed)", GgmlOp.Transpose);
            vView = b.View(_cacheV[il], [t, KvWidth], $"v_cache_view-{il}");
        }

        b.Expand(b.Into($"v_cpy-{il}", GgmlOp.Cpy, DataTypes.F16, vView.Ne, _cacheV[il], vSource, vView));
        GraphTensor qp = b.Permute(q, [d, t, h]);
        GraphTensor kk = b.View(_cacheK[il], [d, kvCells, hkv], $"k-{il}");
        GraphTensor cur;
        if (_r.FlashAttention)
        {
            GraphTensor vv = b.View(_cacheV[il], [d, kvCells, hkv], $"v-{il}");
            GraphTensor o = b.F32($"fattn-{il}", GgmlOp.FlashAttnExt, [d, h, t], qp, kk, vv, _mask);
            cur = b.Reshape(o, [(long)d * h, t]);
        }
        else
        {
            GraphTensor kq = b.F32($"kq-{il}", GgmlOp.MulMat, [kvCells, t, h], kk, qp);
            GraphTensor softmax = b.F32($"kq_soft_max_ext-{il}", GgmlOp.SoftMax, kq.Ne, kq, _mask);
            GraphTensor vv = b.View(_cacheV[il], [kvCells, d, hkv], $"v-{il}");
            GraphTensor kqv = b.F32($"kqv-{il}", GgmlOp.MulMat, [d, t, h], vv, softmax);
            cur = b.F32($"kqv_merged_cont-{il}", GgmlOp.Cont, [(long)d * h, t], b.Permute(kqv, [d, h, t]));
        }

        b.Expand(cur);
        cur = b.F32($"kqv_wo-{il}", GgmlOp.MulMat, [_s.Embedding, t], wo, cur);
        return bo is null ? cur : b.F32($"kqv_out-{il}", GgmlOp.Add, [_s.Embedding, t], cur, bo);
    }

    private GraphTensor LlamaLayer(int il, GraphTensor inpL)
    {
        GraphFactory b = _b;
        int e = _s.Embedding;
        int f = _s.FeedForward;
        int h = _s.Heads;
        int hkv = _s.KvHeads;
        int d = _s.HeadDim;
        int t = Tokens;
        long qWidth = (long)h * d;
        bool last = il == _s.Layers - 1;
        int to = last ? _r.Outputs : t;
        string p = $"blk.{il}.";
        GraphTensor inpSA = inpL;
        GraphTensor cur = Norm(inpL, il, b.Weight(p + "attn_norm.weight", e), null, rms: true, "attn_norm");
        GraphTensor q = b.F32($"Qcur-{il}", GgmlOp.MulMat, [qWidth, t], b.Weight(p + "attn_q.weight", e, qWidth), cur);
        GraphTensor k = b.F32($"Kcur-{il}", GgmlOp.MulMat, [KvWidth, t], b.Weight(p + "attn_k.weight", e, KvWidth), cur);
        GraphTensor v = b.F32($"Vcur-{il}", GgmlOp.MulMat, [KvWidth, t], b.Weight(p + "attn_v.weight", e, KvWidth), cur);
        if (_s.Family == GraphFamily.Qwen2)
        {
            q = b.F32($"Qcur_b-{il}", GgmlOp.Add, q.Ne, q, b.Weight(p + "attn_q.bias", qWidth));
            k = b.F32($"Kcur_b-{il}", GgmlOp.Add, k.Ne, k, b.Weight(p + "attn_k.bias", KvWidth));
            v = b.F32($"Vcur_b-{il}", GgmlOp.Add, v.Ne, v, b.Weight(p + "attn_v.bias", KvWidth));
        }

        q = b.F32($"Qrope-{il}", GgmlOp.Rope, [d, h, t], b.Reshape(q, [d, h, t]), _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, [d, hkv, t], b.Reshape(k, [d, hkv, t]), _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), null);
        if (last)
        {
            cur = b.F32("attn_rows", GgmlOp.GetRows, [e, to], cur, _outputIds);
            inpSA = b.F32("inpSA_rows", GgmlOp.GetRows, [e, to], inpSA, _outputIds);
        }

        GraphTensor ffnIn = b.F32($"ffn_inp-{il}", GgmlOp.Add, [e, to], cur, inpSA);
        cur = Norm(ffnIn, il, b.Weight(p + "ffn_norm.weight", e), null, rms: true, "ffn_norm");
        GraphTensor up = b.F32($"ffn_up-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_up.weight", e, f), cur);
        GraphTensor gate = b.F32($"ffn_gate-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_gate.weight", e, f), cur);
        gate = b.F32($"ffn_silu-{il}", GgmlOp.Unary, [f, to], gate);
        GraphTensor act = b.F32($"ffn_gate_par-{il}", GgmlOp.Mul, [f, to], gate, up);
        cur = b.F32($"ffn_out-{il}", GgmlOp.MulMat, [e, to], b.Weight(p + "ffn_down.weight", f, e), act);
        return b.F32($"l_out-{il}", GgmlOp.Add, [e, to], cur, ffnIn);
    }

    private GraphTensor GptNeoXLayer(int il, GraphTensor inpL)
    {
        GraphFactory b = _b;
        int e = _s.Embedding;
        int f = _s.FeedForward;
        int h = _s.Heads;
        int hkv = _s.KvHeads;
        int d = _s.HeadDim;
        int t = Tokens;
        long qWidth = (long)h * d;
        long qkvWidth = qWidth + 2 * KvWidth;
        bool last = il == _s.Layers - 1;
        int to = last ? _r.Outputs : t;
        string p = $"blk.{il}.";
        GraphTensor cur = Norm(inpL, il, b.Weight(p + "attn_norm.weight", e), b.Weight(p + "attn_norm.bias", e), rms: false, "attn_norm");
        cur = b.F32($"wqkv-{il}", GgmlOp.MulMat, [qkvWidth, t], b.Weight(p + "attn_qkv.weight", e, qkvWidth), cur);
        cur = b.F32($"bqkv-{il}", GgmlOp.Add, [qkvWidth, t], cur, b.Weight(p + "attn_qkv.bias", qkvWidth));
        GraphTensor q = b.F32($"Qcur-{il}", GgmlOp.Cont, [qWidth, t], b.View(cur, [qWidth, t]));
        GraphTensor k = b.F32($"Kcur-{il}", GgmlOp.Cont, [KvWidth, t], b.View(cur, [KvWidth, t]));
        GraphTensor v = b.F32($"Vcur-{il}", GgmlOp.Cont, [KvWidth, t], b.View(cur, [KvWidth, t]));
        q = b.F32($"Qrope-{il}", GgmlOp.Rope, [d, h, t], b.Reshape(q, [d, h, t]), _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, [d, hkv, t], b.Reshape(k, [d, hkv, t]), _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), b.Weight(p + "attn_output.bias", e));
        if (last)
        {
            cur = b.F32("attn_rows", GgmlOp.GetRows, [e, to], cur, _outputIds);
            inpL = b.F32("inpL_rows", GgmlOp.GetRows, [e, to], inpL, _outputIds);
        }

        GraphTensor attentionOut = cur;
        cur = Norm(inpL, il, b.Weight(p + "ffn_norm.weight", e), b.Weight(p + "ffn_norm.bias", e), rms: false, "ffn_norm");
        cur = b.F32($"ffn_up-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_up.weight", e, f), cur);
        cur = b.F32($"ffn_up_b-{il}", GgmlOp.Add, [f, to], cur, b.Weight(p + "ffn_up.bias", f));
        cur = b.F32($"ffn_gelu-{il}", GgmlOp.Unary, [f, to], cur);
        cur = b.F32($"ffn_down-{il}", GgmlOp.MulMat, [e, to], b.Weight(p + "ffn_down.weight", f, e), cur);
        cur = b.F32($"ffn_down_b-{il}", GgmlOp.Add, [e, to], cur, b.Weight(p + "ffn_down.bias", e));
        cur = b.F32($"ffn_out-{il}", GgmlOp.Add, [e, to], cur, inpL);
        return b.F32($"l_out-{il}", GgmlOp.Add, [e, to], cur, attentionOut);
    }
}
