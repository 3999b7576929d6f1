using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The inputs and attention of current master (<c>llm_graph_context</c>, llama-graph.cpp): K and V stored with SET_ROWS at
/// index inputs, a mask per stream, and since PR #21038 Hadamard rotations around a quantized cache.
/// </summary>
internal sealed partial class GraphBuilder
{
    private GraphTensor _kIndices = null!;
    private GraphTensor _vIndices = null!;
    private GraphTensor? _rotateK;
    private GraphTensor? _rotateV;

    private int TokensPerStream => _r.Tokens / _r.Streams;

    private void BuildCurrentInputs()
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
    private GraphTensor CurrentAttention(int il, GraphTensor q, GraphTensor k, GraphTensor v, GraphTensor wo, GraphTensor? bo)
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
}
