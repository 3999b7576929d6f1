using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp.Graphs;

/// <summary>
/// The worst-case graph <c>llama_context::graph_reserve</c> builds on current master (71102a73 / c0c7e147): llama, qwen2 and
/// gptneox node by node, in the order <c>ggml_build_forward_expand</c> schedules them (research/llamacpp SPEC §4.3).
/// </summary>
/// <remarks>
/// Checked tensor by tensor against graph dumps of the real build (offsets and sizes of every node identical) and on 400
/// CPU compute buffers to ±60 B. All activations are F32.
/// </remarks>
internal sealed class GraphBuilder
{
    private readonly GraphShape _s;
    private readonly GraphRequest _r;
    private readonly GraphFactory _b;
    private readonly List<GraphTensor> _cacheK = [];
    private readonly List<GraphTensor> _cacheV = [];
    private GraphTensor _kIndices = null!;
    private GraphTensor _vIndices = null!;
    private GraphTensor _mask = null!;
    private GraphTensor _position = null!;
    private GraphTensor? _rotateK;
    private GraphTensor? _rotateV;
    private GraphTensor _outputIds = null!;

    private GraphBuilder(GraphShape shape, GraphRequest request)
    {
        _s = shape;
        _r = request;
        _b = new GraphFactory(request.WeightTypes);
    }

    private int Tokens => _r.Tokens;

    private int TokensPerStream => _r.Tokens / _r.Streams;

    private long KvWidth => (long)_s.KvHeads * _s.HeadDim;

    public static ComputeGraph Build(GraphShape shape, GraphRequest request)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(request);
        var builder = new GraphBuilder(shape, request);
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
        GraphTensor inpL = b.Expand(b.F32("embd", GgmlOp.GetRows, [e, t], tokenEmbedding, tokens));
        if (_r.Version.EmbeddingInputLeaf)
        {
            // PR #18550: build_inp_embd also adds the vector-embedding input (ggml_build_forward_select); a graph input with no
            // consumer in a token batch, so it is allocated first and never freed.
            b.Expand(b.Leaf("inp_embd", DataTypes.F32, [e, t], input: true));
        }

        BuildInputs();
        for (int il = 0; il < _s.Layers; il++)
        {
            b.Layer = il;
            inpL = _s.Family == GraphFamily.GptNeoX ? GptNeoXLayer(il, inpL) : LlamaLayer(il, inpL);
        }

        b.Layer = _s.Layers;
        Head.Build(b, _s, inpL, tokenEmbedding, _r.Outputs);
        b.Layer = -1;
    }

    private void BuildInputs()
    {
        GraphFactory b = _b;
        int t = Tokens;
        bool transposedV = !_r.FlashAttention;
        _position = b.Leaf("inp_pos", DataTypes.Int32, [t], input: true);
        _kIndices = b.Leaf("k_idxs", DataTypes.Int64, [t], input: true);
        // Without flash attention V is stored transposed: one index per element.
        _vIndices = b.Leaf("v_idxs", DataTypes.Int64, transposedV ? [t * KvWidth] : [t], input: true);
        _mask = b.Leaf("kq_mask", _r.FlashAttention ? DataTypes.F16 : DataTypes.F32, [_r.KvCells, TokensPerStream, 1, _r.Streams], input: true);
        _outputIds = b.Leaf("out_ids", DataTypes.Int32, [_r.Outputs], input: true);
        if (_r.Version.RotatesQuantizedCache)
        {
            // PR #21038: a quantized K (V) cache with head_dim % 64 == 0 is Hadamard-rotated; K uses the largest power-of-two
            // block dividing head_dim, V a 64 × 64 block (llama-kv-cache.cpp build_input_k_rot / v_rot).
            int d = _s.HeadDim;
            if (_r.KeyType.IsQuantized && d % 64 == 0)
            {
                int n = 64;
                while (d % (n * 2) == 0)
                {
                    n *= 2;
                }

                _rotateK = b.Leaf("attn_inp_k_rot", DataTypes.F32, [n, n], input: true);
            }

            if (_r.ValueType.IsQuantized && d % 64 == 0)
            {
                _rotateV = b.Leaf("attn_inp_v_rot", DataTypes.F32, [64, 64], input: true);
            }
        }

        for (int il = 0; il < _s.Layers; il++)
        {
            b.Layer = il;
            _cacheK.Add(b.Leaf($"cache_k_l{il}", _r.KeyType, [KvWidth, _r.KvCells, _r.Streams], external: true));
            _cacheV.Add(b.Leaf($"cache_v_l{il}", _r.ValueType, [KvWidth, _r.KvCells, _r.Streams], external: true));
        }

        b.Layer = -1;
    }

    private GraphTensor Norm(GraphTensor x, int il, GraphTensor weight, GraphTensor? bias, bool rms, string name)
    {
        GraphTensor n = _b.F32(il >= 0 ? $"norm-{il}" : "norm", rms ? GgmlOp.RmsNorm : GgmlOp.Norm, x.Ne, x);
        GraphTensor cur = _b.F32(il >= 0 ? $"{name}-{il}" : name, GgmlOp.Mul, x.Ne, n, weight);
        return bias is null ? cur : _b.F32(cur.Name + "_b", GgmlOp.Add, x.Ne, cur, bias);
    }

    /// <summary><c>llama_mul_mat_hadamard</c>: (cont|reshape)_2d → mul_mat(rot, ·) → reshape back.</summary>
    private GraphTensor Hadamard(GraphTensor cur, GraphTensor rotation)
    {
        long n = rotation.Ne[0];
        long elements = cur.Ne[0] * cur.Ne[1] * cur.Ne[2] * cur.Ne[3];
        long[] flat = [n, elements / n];
        GraphTensor x = cur.Contiguous ? _b.Reshape(cur, flat) : _b.F32(cur.Name + " (cont)", GgmlOp.Cont, flat, cur);
        x = _b.F32(cur.Name + " (rot)", GgmlOp.MulMat, flat, rotation, x);
        return _b.Reshape(x, cur.Ne);
    }

    /// <summary>
    /// <c>build_attn</c> with a KV cache: expand q, v, k ("expand k later to enable rope fusion"), store K and V with SET_ROWS,
    /// then <c>build_attn_mha</c>, which expands its output; the output projection is not expanded here.
    /// </summary>
    private GraphTensor Attention(int il, GraphTensor q, GraphTensor k, GraphTensor v, GraphTensor wo, GraphTensor? bo)
    {
        GraphFactory b = _b;
        int h = _s.Heads;
        int hkv = _s.KvHeads;
        int d = _s.HeadDim;
        int t = Tokens;
        int ts = TokensPerStream;
        int s = _r.Streams;
        long kvCells = _r.KvCells;
        if (_rotateK is not null)
        {
            q = Hadamard(q, _rotateK);
            k = Hadamard(k, _rotateK);
        }

        if (_rotateV is not null)
        {
            v = Hadamard(v, _rotateV);
        }

        b.Expand(q);
        b.Expand(v);
        b.Expand(k);
        GraphTensor k2 = k.Contiguous ? b.Reshape(k, [KvWidth, t]) : b.View(k, [KvWidth, t], k.Name + " (view)");
        b.Expand(b.Into($"cache_k_l{il} (view)", GgmlOp.SetRows, _r.KeyType, _cacheK[il].Ne, _cacheK[il], k2, _kIndices, _cacheK[il]));
        if (!_r.FlashAttention)
        {
            GraphTensor v2 = v.Contiguous ? b.Reshape(v, [KvWidth, t]) : b.F32(v.Name + " (cont)", GgmlOp.Cont, [KvWidth, t], v);
            GraphTensor v3 = b.Reshape(v2, [1, KvWidth * t]);
            GraphTensor cacheRows = b.Reshape(_cacheV[il], [1, KvWidth * kvCells * s]);
            b.Expand(b.Into(cacheRows.Name + " (view)", GgmlOp.SetRows, _r.ValueType, cacheRows.Ne, _cacheV[il], v3, _vIndices, cacheRows));
        }
        else
        {
            GraphTensor v2 = b.View(v, [KvWidth, t]);
            b.Expand(b.Into($"cache_v_l{il} (view)", GgmlOp.SetRows, _r.ValueType, _cacheV[il].Ne, _cacheV[il], v2, _vIndices, _cacheV[il]));
        }

        GraphTensor vv = b.Permute(b.View(_cacheV[il], [kvCells, hkv, d, s]), [kvCells, d, hkv, s]);
        GraphTensor kk = b.Permute(b.View(_cacheK[il], [d, hkv, kvCells, s]), [d, kvCells, hkv, s]);
        GraphTensor qq = b.Permute(b.View(q, [d, h, ts, s]), [d, ts, h, s]);
        GraphTensor cur;
        if (_r.FlashAttention)
        {
            GraphTensor o = b.F32($"fattn-{il}", GgmlOp.FlashAttnExt, [d, h, ts, s], qq, kk, vv, _mask);
            cur = b.Reshape(o, [(long)d * h, t], $"kqv_out-{il}");
        }
        else
        {
            GraphTensor kq = b.F32($"kq-{il}", GgmlOp.MulMat, [kvCells, ts, h, s], kk, qq);
            GraphTensor softmax = b.F32($"kq_soft_max-{il}", GgmlOp.SoftMax, kq.Ne, kq, _mask);
            GraphTensor kqv = b.F32($"kqv-{il}", GgmlOp.MulMat, [d, ts, h, s], vv, softmax);
            cur = b.F32($"kqv_out-{il}", GgmlOp.Cont, [(long)d * h, t], b.Permute(kqv, [d, h, ts, s]));
        }

        b.Expand(cur);
        if (_rotateV is not null)
        {
            cur = Hadamard(cur, _rotateV);
        }

        cur = b.F32($"attn_out-{il}", GgmlOp.MulMat, [_s.Embedding, t], wo, cur);
        return bo is null ? cur : b.F32($"attn_out_b-{il}", GgmlOp.Add, [_s.Embedding, t], cur, bo);
    }

    /// <summary><c>llm_build_llama</c> / <c>llm_build_qwen2</c>: one block.</summary>
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

        q = b.Reshape(q, [d, h, t]);
        k = b.Reshape(k, [d, hkv, t]);
        v = b.Reshape(v, [d, hkv, t]);
        q = b.F32($"Qrope-{il}", GgmlOp.Rope, q.Ne, q, _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, k.Ne, k, _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), null);
        if (last)
        {
            cur = b.F32("attn_out_rows", GgmlOp.GetRows, [e, _r.Outputs], cur, _outputIds);
            inpSA = b.F32("inpSA_rows", GgmlOp.GetRows, [e, _r.Outputs], inpSA, _outputIds);
        }

        int to = last ? _r.Outputs : t;
        GraphTensor ffnIn = b.F32($"ffn_inp-{il}", GgmlOp.Add, [e, to], cur, inpSA);
        cur = Norm(ffnIn, il, b.Weight(p + "ffn_norm.weight", e), null, rms: true, "ffn_norm");
        GraphTensor gate = b.F32($"ffn_gate-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_gate.weight", e, f), cur);
        GraphTensor up = b.F32($"ffn_up-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_up.weight", e, f), cur);
        GraphTensor act = b.F32($"ffn_swiglu-{il}", GgmlOp.Glu, [f, to], gate, up);
        cur = b.F32($"ffn_out-{il}", GgmlOp.MulMat, [e, to], b.Weight(p + "ffn_down.weight", f, e), act);
        return b.F32($"l_out-{il}", GgmlOp.Add, [e, to], cur, ffnIn);
    }

    /// <summary><c>llm_build_gptneox</c>: fused QKV, LayerNorm with bias, parallel residual (the output projection runs after the FFN).</summary>
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
        string p = $"blk.{il}.";
        GraphTensor cur = Norm(inpL, il, b.Weight(p + "attn_norm.weight", e), b.Weight(p + "attn_norm.bias", e), rms: false, "attn_norm");
        GraphTensor qkv = b.F32($"wqkv-{il}", GgmlOp.MulMat, [qkvWidth, t], b.Weight(p + "attn_qkv.weight", e, qkvWidth), cur);
        qkv = b.F32($"bqkv-{il}", GgmlOp.Add, qkv.Ne, qkv, b.Weight(p + "attn_qkv.bias", qkvWidth));
        GraphTensor q = b.View(qkv, [d, h, t], $"Qcur-{il}");
        GraphTensor k = b.View(qkv, [d, hkv, t], $"Kcur-{il}");
        GraphTensor v = b.View(qkv, [d, hkv, t], $"Vcur-{il}");
        q = b.F32($"Qrope-{il}", GgmlOp.Rope, [d, h, t], q, _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, [d, hkv, t], k, _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), b.Weight(p + "attn_output.bias", e));
        if (last)
        {
            cur = b.F32("attn_out_rows", GgmlOp.GetRows, [e, _r.Outputs], cur, _outputIds);
            inpL = b.F32("inpL_rows", GgmlOp.GetRows, [e, _r.Outputs], inpL, _outputIds);
        }

        int to = last ? _r.Outputs : t;
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
