using LlmMemory.Numerics;

namespace LlmMemory.Estimation.LlamaCpp;

/// <summary>
/// The worst-case graph <c>llama_context::graph_reserve</c> builds: llama, qwen2 and gptneox node by node, in the order
/// <c>ggml_build_forward_expand</c> schedules them (research/llamacpp SPEC §4.3). The blocks are built here for both eras:
/// current master (71102a73 / c0c7e147) and the builds before the March 2025 refactor (<see cref="LlamaCppVersion.LegacyGraph"/>),
/// which differ in a few ops marked where they happen, and in their inputs and attention (GraphBuilder.Current.cs,
/// GraphBuilder.Legacy.cs).
/// </summary>
/// <remarks>
/// Current master is checked tensor by tensor against graph dumps of the real build (offsets and sizes of every node
/// identical) and on 400 CPU compute buffers to ±60 B; the b4823 graph is reconstructed from that era's source (SPEC §4.7)
/// and validated through every b4823 CUDA figure. All activations are F32.
/// </remarks>
internal sealed partial class GraphBuilder
{
    private readonly GraphShape _s;
    private readonly GraphRequest _r;
    private readonly GraphFactory _b;
    private readonly List<GraphTensor> _cacheK = [];
    private readonly List<GraphTensor> _cacheV = [];
    private GraphTensor _mask = null!;
    private GraphTensor _position = null!;
    private GraphTensor _outputIds = null!;

    private GraphBuilder(GraphShape shape, GraphRequest request)
    {
        _s = shape;
        _r = request;
        _b = new GraphFactory(request.WeightTypes);
    }

    /// <summary>The graph before PR #12181 (≈ b4880): <c>llm_build_context</c> with <c>llm_build_kv</c>.</summary>
    private bool Legacy => _r.Version.LegacyGraph;

    private int Tokens => _r.Tokens;

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
        GraphTensor inpL;
        if (Legacy)
        {
            // The embedding rows are reached from the first block, not expanded first.
            inpL = b.F32("inp_embd", GgmlOp.GetRows, [e, t], tokenEmbedding, tokens);
            BuildLegacyInputs();
        }
        else
        {
            inpL = b.Expand(b.F32("embd", GgmlOp.GetRows, [e, t], tokenEmbedding, tokens));
            if (_r.Version.EmbeddingInputLeaf)
            {
                // PR #18550: build_inp_embd also adds the vector-embedding input (ggml_build_forward_select); a graph input with no
                // consumer in a token batch, so it is allocated first and never freed.
                b.Expand(b.Leaf("inp_embd", DataTypes.F32, [e, t], input: true));
            }

            BuildCurrentInputs();
        }

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

    private GraphTensor Attention(int il, GraphTensor q, GraphTensor k, GraphTensor v, GraphTensor wo, GraphTensor? bo) =>
        Legacy ? LegacyAttention(il, q, k, v, wo, bo) : CurrentAttention(il, q, k, v, wo, bo);

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
        if (!Legacy)
        {
            // llm_build_kv took V as [n_embd_v_gqa, n_tokens]; build_attn takes it per head.
            v = b.Reshape(v, [d, hkv, t]);
        }

        q = b.F32($"Qrope-{il}", GgmlOp.Rope, q.Ne, q, _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, k.Ne, k, _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), null);
        if (last)
        {
            cur = b.F32(Legacy ? "attn_rows" : "attn_out_rows", GgmlOp.GetRows, [e, _r.Outputs], cur, _outputIds);
            inpSA = b.F32("inpSA_rows", GgmlOp.GetRows, [e, _r.Outputs], inpSA, _outputIds);
        }

        int to = last ? _r.Outputs : t;
        GraphTensor ffnIn = b.F32($"ffn_inp-{il}", GgmlOp.Add, [e, to], cur, inpSA);
        cur = Norm(ffnIn, il, b.Weight(p + "ffn_norm.weight", e), null, rms: true, "ffn_norm");
        GraphTensor gate = b.F32($"ffn_gate-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_gate.weight", e, f), cur);
        GraphTensor up = b.F32($"ffn_up-{il}", GgmlOp.MulMat, [f, to], b.Weight(p + "ffn_up.weight", e, f), cur);
        // The gate's SiLU times up: one fused GLU op now, SILU then MUL before the refactor.
        GraphTensor act = Legacy
            ? b.F32($"ffn_gate_par-{il}", GgmlOp.Mul, [f, to], b.F32($"ffn_silu-{il}", GgmlOp.Unary, [f, to], gate), up)
            : b.F32($"ffn_swiglu-{il}", GgmlOp.Glu, [f, to], gate, up);
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
        GraphTensor q, k, v;
        if (Legacy)
        {
            // Each of Q, K, V copied out of the fused result (ggml_cont of a view), then Q and K reshaped per head.
            q = b.Reshape(b.F32($"Qcur-{il}", GgmlOp.Cont, [qWidth, t], b.View(qkv, [qWidth, t])), [d, h, t]);
            k = b.Reshape(b.F32($"Kcur-{il}", GgmlOp.Cont, [KvWidth, t], b.View(qkv, [KvWidth, t])), [d, hkv, t]);
            v = b.F32($"Vcur-{il}", GgmlOp.Cont, [KvWidth, t], b.View(qkv, [KvWidth, t]));
        }
        else
        {
            q = b.View(qkv, [d, h, t], $"Qcur-{il}");
            k = b.View(qkv, [d, hkv, t], $"Kcur-{il}");
            v = b.View(qkv, [d, hkv, t], $"Vcur-{il}");
        }

        q = b.F32($"Qrope-{il}", GgmlOp.Rope, [d, h, t], q, _position);
        k = b.F32($"Krope-{il}", GgmlOp.Rope, [d, hkv, t], k, _position);
        cur = Attention(il, q, k, v, b.Weight(p + "attn_output.weight", qWidth, e), b.Weight(p + "attn_output.bias", e));
        if (last)
        {
            cur = b.F32(Legacy ? "attn_rows" : "attn_out_rows", GgmlOp.GetRows, [e, _r.Outputs], cur, _outputIds);
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
