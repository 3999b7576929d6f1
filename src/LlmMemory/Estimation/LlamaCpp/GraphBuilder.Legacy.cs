using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The inputs and attention before the March 2025 refactor (<c>llm_build_context::build_llama</c> / <c>build_gptneox</c> with
/// <c>llm_build_kv</c>; b4823, the ggml-ci V100 runs): K and V copied into cache views with <c>ggml_cpy</c>, an F32 KQ mask of
/// [n_kv, PAD(n_tokens, GGML_KQ_MASK_PAD = 64)] cast to F16 for flash attention, no <c>inp_embd</c> input and no KV index
/// inputs (docs/scenario-extensions.md, llama.cpp builds).
/// </summary>
internal sealed partial class GraphBuilder
{
    /// <summary><c>GGML_KQ_MASK_PAD</c> of that era: the mask's token dimension is padded to it.</summary>
    private const int KqMaskPad = 64;

    private void BuildLegacyInputs()
    {
        GraphFactory b = _b;
        int t = Tokens;
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
    }

    /// <summary><c>llm_build_kv</c>: expand q, k, v, copy K and V into views of the cache, then attention and the output projection.</summary>
    private GraphTensor LegacyAttention(int il, GraphTensor q, GraphTensor k, GraphTensor v, GraphTensor wo, GraphTensor? bo)
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
}
