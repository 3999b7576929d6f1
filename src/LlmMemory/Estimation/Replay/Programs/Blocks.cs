namespace LlmMemory.Estimation.Replay;

/// <summary>
/// Building blocks of the transformers model code, statement by statement, so that each temporary dies where CPython
/// drops it (research/torch programs.py; transformers 5 <c>modeling_llama.py</c>, <c>modeling_gemma2.py</c>,
/// <c>integrations/sdpa_attention.py</c>, <c>loss/loss_utils.py</c>).
/// </summary>
internal static class Blocks
{
    /// <summary>
    /// <c>LlamaRMSNorm</c>: <c>h = x.to(float32); var = h.pow(2).mean(-1, keepdim=True); h = h * rsqrt(var + eps);
    /// return weight * h.to(input_dtype)</c>.
    /// </summary>
    public static Tensor RmsNorm(ReplayEngine s, Tensor x, Tensor weight)
    {
        Tensor h = s.To(x, ScalarType.Float32);
        Tensor variance = s.Reduce(Operand.Take(s.Unary(h, UnaryKind.Pow)), [.. x.Shape[..^1], 1]);
        Tensor r = s.Unary(Operand.Take(s.AddScalar(variance)), UnaryKind.Rsqrt);
        variance.Release();
        h = Rebind(h, s.Mul(h, r));
        r.Release();
        Tensor y = s.Mul(weight, Operand.Take(s.To(h, x.Type)));
        h.Release();
        return y;
    }

    /// <summary>
    /// LitGPT's <c>RMSNorm.forward</c> (litgpt/model.py, read at 0420581; lit_gpt/rmsnorm.py of 2023 alike): <c>x = x.float();
    /// norm_x = torch.mean(x * x, dim=-1, keepdim=True); x_normed = x * torch.rsqrt(norm_x + eps);
    /// return (x_normed * weight.float()).to(dtype=dtype)</c>. The product with the weight is taken in fp32, so a trained weight
    /// keeps the fp32 <c>x_normed</c> for its gradient (transformers' norm keeps a 16-bit one).
    /// </summary>
    public static Tensor LitGptRmsNorm(ReplayEngine s, Tensor x, Tensor weight)
    {
        Tensor xf = s.To(x, ScalarType.Float32);
        Tensor mean = s.Reduce(Operand.Take(s.Mul(xf, xf)), [.. x.Shape[..^1], 1]);
        Tensor r = s.Unary(Operand.Take(s.AddScalar(Operand.Take(mean))), UnaryKind.Rsqrt);
        Tensor normed = s.Mul(Operand.Take(xf), Operand.Take(r));
        Tensor y = s.Mul(Operand.Take(normed), Operand.Take(s.To(weight, ScalarType.Float32)));
        return s.To(Operand.Take(y), x.Type);
    }

    /// <summary><c>GemmaRMSNorm</c>: <c>out = _norm(x.float()) * (1.0 + weight.float()); return out.type_as(x)</c>.</summary>
    public static Tensor GemmaRmsNorm(ReplayEngine s, Tensor x, Tensor weight)
    {
        Tensor xf = s.To(x, ScalarType.Float32);
        Tensor variance = s.Reduce(Operand.Take(s.Unary(xf, UnaryKind.Pow)), [.. x.Shape[..^1], 1]);
        Tensor r = s.Unary(Operand.Take(s.AddScalar(variance)), UnaryKind.Rsqrt);
        variance.Release();
        Tensor o = s.Mul(xf, r);
        xf.Release();
        r.Release();
        Tensor w1 = s.AddScalar(Operand.Take(s.To(weight, ScalarType.Float32)));
        o = Rebind(o, s.Mul(o, w1));
        Tensor y = s.To(o, x.Type);
        o.Release();
        w1.Release();
        return y;
    }

    /// <summary>
    /// An RMSNorm compiled by inductor (or a fused kernel): one kernel computes in fp32 registers and writes the output in the
    /// input type; like <c>native_layer_norm</c> it saves the input and a per-row fp32 rstd, and its backward writes the input's
    /// and the weight's gradients.
    /// </summary>
    public static Tensor FusedRmsNorm(ReplayEngine s, Tensor x, Tensor weight)
    {
        Tensor y = s.Empty(x.Shape, x.Type);
        Tensor rstd = s.Empty([.. x.Shape[..^1], 1], ScalarType.Float32);
        s.Record(y, [x, weight], [x, rstd], Derivatives.LayerNorm);
        rstd.Release();
        return y;
    }

    /// <summary>
    /// <c>native_layer_norm</c>: output in the input type (fp32 inside); saves the input, mean and rstd. Under autocast it is
    /// in the fp32 list (aten/src/ATen/autocast_mode.h <c>AT_FORALL_FP32</c>: <c>layer_norm</c>): a 16-bit input is copied to
    /// fp32 first, the copy is what it saves, and the output is fp32.
    /// </summary>
    public static Tensor LayerNorm(ReplayEngine s, Tensor x, Tensor weight, Tensor bias)
    {
        Tensor input = s.Autocast is not null && x.Type is ScalarType.BFloat16 or ScalarType.Float16 ? s.To(x, ScalarType.Float32) : x.Retain();
        Tensor y = s.Empty(input.Shape, input.Type);
        Tensor mean = s.Empty([.. input.Shape[..^1], 1], ScalarType.Float32);
        Tensor rstd = s.Empty([.. input.Shape[..^1], 1], ScalarType.Float32);
        s.Record(y, [input, weight, bias], [input, mean, rstd], Derivatives.LayerNorm);
        mean.Release();
        rstd.Release();
        input.Release();
        return y;
    }

    /// <summary><c>q_embed = q * cos + rotate_half(q) * sin</c>, the same for k.</summary>
    public static (Tensor Q, Tensor K) ApplyRope(ReplayEngine s, Tensor q, Tensor k, Tensor cos, Tensor sin) =>
        (Rope(s, q, cos, sin), Rope(s, k, cos, sin));

    /// <summary><c>repeat_kv</c>: <c>x[:, :, None].expand(...).reshape(...)</c>, a copy when the heads are repeated.</summary>
    public static Tensor RepeatKv(ReplayEngine s, Tensor x, int repeats)
    {
        if (repeats == 1)
        {
            return x.Retain();
        }

        Tensor y = s.Empty([x.Shape[0], x.Shape[1] * repeats, x.Shape[2], x.Shape[3]], x.Type);
        s.Record(y, [x], [], Derivatives.ShapeOfInput);
        return y;
    }

    /// <summary>
    /// <c>eager_attention_forward</c>: <c>matmul(q, kᵀ) * scaling</c> (with Gemma-2 soft-capping), <c>+ mask</c>,
    /// <c>softmax(dtype=float32).to(q.dtype)</c> (or in the input type, GPT-2; or to <paramref name="probabilitiesType"/>, GPT-J's
    /// <c>attn_weights.to(value.dtype)</c>), <c>matmul(probs, v)</c>; returns the output and the probabilities, which the caller keeps.
    /// With <paramref name="transposedCopy"/>, transformers 5's Llama-family function ends in
    /// <c>attn_output = attn_output.transpose(1, 2).contiguous()</c>: the [b, s, a, d] copy is made while the <c>repeat_kv</c>
    /// copies (the locals <c>key_states</c>, <c>value_states</c>) are still alive; they die only when the function returns.
    /// </summary>
    public static (Tensor Output, Tensor Probabilities) EagerAttention(ReplayEngine s, Tensor q, Tensor k, Tensor v, Tensor? mask, int repeats,
        bool softcap = false, bool softmaxFloat32 = true, ScalarType? probabilitiesType = null, bool transposedCopy = false)
    {
        (long b, long a, long n, long d) = (q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]);
        Tensor kr = RepeatKv(s, k, repeats);
        Tensor vr = RepeatKv(s, v, repeats);
        Tensor attn = s.Scale(Operand.Take(s.Matmul(q, kr, [b, a, n, k.Shape[2]], copyA: true)));
        if (softcap)
        {
            attn = Rebind(attn, s.Scale(attn));
            attn = Rebind(attn, s.Unary(attn, UnaryKind.Tanh));
            attn = Rebind(attn, s.Scale(attn));
        }

        if (mask is not null)
        {
            attn = Rebind(attn, s.Add(attn, mask));
        }

        attn = Rebind(attn, softmaxFloat32 ? s.To(Operand.Take(s.Softmax(attn)), probabilitiesType ?? q.Type) : s.Softmax(attn, attn.Type));
        Tensor output = s.Matmul(attn, vr, [b, a, n, d]);
        if (transposedCopy)
        {
            output = s.ContiguousCopy(Operand.Take(s.View(Operand.Take(output), [b, n, a, d])));
        }

        kr.Release();
        vr.Release();
        return (output, attn);
    }

    /// <summary>
    /// transformers' SDPA integration: with no mask, the flash kernel with native GQA (<c>enable_gqa</c>, <c>is_causal</c>);
    /// with a materialised mask, <c>repeat_kv</c> and the memory-efficient kernel with the mask converted to a float bias.
    /// </summary>
    public static Tensor SdpaAttention(ReplayEngine s, Tensor q, Tensor k, Tensor v, Tensor? mask, int repeats)
    {
        if (mask is null)
        {
            return s.SdpaFlash(q, k, v, repeats);
        }

        Tensor kr = RepeatKv(s, k, repeats);
        Tensor vr = RepeatKv(s, v, repeats);
        Tensor bias = s.Empty(mask.Shape, s.Autocast ?? q.Type);
        Tensor output = s.SdpaEfficient(q, kr, vr, bias);
        Release(kr, vr, bias);
        return output;
    }

    /// <summary>
    /// SDPA on fp32 tensors, which flash cannot take: the memory-efficient kernel without GQA; with <c>enable_gqa</c> and no
    /// mask it is not eligible either and the math path runs, which materialises the scores.
    /// </summary>
    public static Tensor Float32Sdpa(ReplayEngine s, Tensor q, Tensor k, Tensor v, Tensor? mask, int repeats) =>
        (mask, repeats) switch
        {
            (null, 1) => s.SdpaEfficient(q, k, v, null),
            (null, _) => SdpaMath(s, q, k, v, repeats, enableGqa: true),
            _ => SdpaAttention(s, q, k, v, mask, repeats),
        };

    /// <summary>
    /// NewGELUActivation (GPT-2): <c>0.5 * x * (1 + tanh(sqrt(2/π) * (x + 0.044715 * x³)))</c>, each op a new tensor.
    /// </summary>
    public static Tensor GeluNew(ReplayEngine s, Tensor x)
    {
        Tensor half = s.Scale(x);
        Tensor cube = s.Scale(Operand.Take(s.Unary(x, UnaryKind.Pow)));
        Tensor u = s.Add(x, cube);
        cube.Release();
        u = Rebind(u, s.Scale(u));
        u = Rebind(u, s.Unary(u, UnaryKind.Tanh));
        u = Rebind(u, s.AddScalar(u));
        Tensor y = s.Mul(half, u);
        Release(half, u);
        return y;
    }

    /// <summary>
    /// transformers' causal-LM loss (<c>loss/loss_utils.py</c> <c>ForCausalLMLoss</c>; before 4.46 the same lines in
    /// <c>LlamaForCausalLM.forward</c>): <c>logits.float()</c> (no copy of logits the model already upcast), then
    /// <c>cross_entropy = nll_loss(log_softmax(x))</c>, which saves its fp32 log-softmax output and not its input. From 4.49
    /// (<paramref name="shiftedCopy"/> false) the labels are padded by one <c>ignore_index</c> and shifted (int64, b × (n + 1)
    /// then b × n) and x is the upcast logits as they are; before it x is <c>logits[..., :-1, :].contiguous()</c>, an fp32
    /// copy one position shorter, and the labels <c>labels[..., 1:].contiguous()</c> (int64, b × (n − 1)). Every local
    /// dies when the loss returns.
    /// </summary>
    public static Tensor CausalLmLoss(ReplayEngine s, Tensor logits, bool shiftedCopy = false)
    {
        (long b, long n, long vocabulary) = (logits.Shape[0], logits.Shape[1], logits.Shape[2]);
        Tensor lf = s.To(logits, ScalarType.Float32);
        Tensor x;
        Tensor target;
        if (shiftedCopy)
        {
            x = ShiftedCopy(s, lf);
            target = s.Empty([b, n - 1], ScalarType.Int64);
        }
        else
        {
            x = lf.Retain();
            Tensor labels = s.Empty([b, n + 1], ScalarType.Int64);
            target = s.Empty([b, n], ScalarType.Int64);
            labels.Release();
        }

        Tensor lp = s.LogSoftmax(Operand.Take(s.View(x, [b * x.Shape[1], vocabulary])));
        Tensor loss = s.NllLoss(lp, target);
        Release(lf, x, target, lp);
        return loss;
    }

    /// <summary>
    /// torchtune's loss before 0.3.0 on the recipe's shifted logits (<see cref="ShiftedCopy"/> of the model's fp32 output):
    /// <c>labels[..., 1:].contiguous()</c> (int64, b × (n − 1)), then <c>logits.transpose(1, 2)</c> into
    /// <c>nn.CrossEntropyLoss</c> (recipes/lora_finetune_single_device.py until PR #1390 "chunked cross entropy" replaced
    /// these lines by labels padded with <c>ignore_index</c>). <c>log_softmax</c> over dim 1 of the transposed view (ATen
    /// <c>cuda/SoftMax.cu</c> <c>host_softmax</c>: <c>input_.contiguous()</c>) allocates its contiguous fp32 output, then a
    /// contiguous copy of the input, dropped when the kernel returns; it saves the output, which <c>nll_loss</c> (a 3-d
    /// input: <c>nll_loss2d</c> on a view) saves with the labels. The labels and log-softmax die when the loss returns; the
    /// shifted logits are the caller's.
    /// </summary>
    public static Tensor TransposedCrossEntropy(ReplayEngine s, Tensor shifted)
    {
        (long b, long n, long vocabulary) = (shifted.Shape[0], shifted.Shape[1], shifted.Shape[2]);
        Tensor target = s.Empty([b, n], ScalarType.Int64);
        Tensor lp = s.LogSoftmax(Operand.Take(s.View(shifted, [b, vocabulary, n])));
        s.Empty([b, vocabulary, n], shifted.Type).Release();
        Tensor loss = s.NllLoss(lp, target);
        Release(target, lp);
        return loss;
    }

    /// <summary>
    /// A compiled (or fused) cross-entropy over one chunk of logits: the fp32 upcast and the softmax stay inside the kernels;
    /// it saves the chunk and a per-row log-sum-exp, and its backward writes the chunk's gradient directly.
    /// </summary>
    public static Tensor FusedCrossEntropy(ReplayEngine s, Tensor logits)
    {
        Tensor loss = s.Empty([], ScalarType.Float32);
        Tensor logSumExp = s.Empty([logits.Shape[0] * logits.Shape[1]], ScalarType.Float32);
        s.Record(loss, [logits], [logits, logSumExp], Derivatives.LikeInput);
        logSumExp.Release();
        return loss;
    }

    /// <summary>
    /// <c>x[..., :-1, :].contiguous()</c> (transformers 4.45 <c>LlamaForCausalLM.forward</c> on the logits; Liger's and
    /// fms-acceleration's <c>lce_forward</c> on the hidden states): a copy one position shorter, whose backward
    /// (<c>slice_backward</c>) writes the gradient into a zeroed tensor of the full shape.
    /// </summary>
    public static Tensor ShiftedCopy(ReplayEngine s, Tensor x)
    {
        Tensor y = s.Empty([x.Shape[0], x.Shape[1] - 1, x.Shape[2]], x.Type);
        s.Record(y, [x], [], Derivatives.ShapeOfInput);
        return y;
    }

    /// <summary>
    /// Unsloth's <c>Fast_CrossEntropyLoss</c> (fms-acceleration FOAK's <c>fast_loss</c>, <c>kernels/unsloth/cross_entropy_loss.py</c>):
    /// the Triton kernel reads the logits as given, keeps them with a per-row fp32 log-sum-exp and per-row fp32 losses
    /// (summed, then dropped); its backward (<c>_cross_entropy_backward</c>) stores the gradient into the saved logits and
    /// returns them, so the loss allocates nothing of the logits' size. Unsloth's own release of the kernel runs a vocabulary
    /// above <see cref="Constants.UnslothMaxFusedSize"/> in <paramref name="vocabularyChunks"/> column chunks: an (rows × chunks) fp32
    /// log-sum-exp, reduced to one per row by <c>torch.logsumexp(logsumexp, dim = 1)</c>, which rebinds the name.
    /// </summary>
    public static Tensor InPlaceCrossEntropy(ReplayEngine s, Tensor logits, long vocabularyChunks = 1)
    {
        long rows = logits.Shape[0] * logits.Shape[1];
        Tensor losses = s.Empty([rows], ScalarType.Float32);
        Tensor logSumExp = vocabularyChunks == 1 ? s.Empty([rows], ScalarType.Float32)
            : Rebind(s.Empty([rows, vocabularyChunks], ScalarType.Float32), s.Empty([rows], ScalarType.Float32));
        Tensor loss = s.Empty([], ScalarType.Float32);
        s.Record(loss, [logits], [logits, logSumExp], Derivatives.IntoSaved);
        Release(logSumExp, losses);
        return loss;
    }

    /// <summary>
    /// A 4-bit weight's matmul (bitsandbytes <c>Linear4bit.forward</c> and <c>MatMul4Bit</c>, torchao <c>linear_nf4</c>):
    /// <c>x = x.to(compute_dtype)</c> (a copy when x is in another type: fp32 compute on 16-bit activations, or 16-bit compute
    /// on the fp32 activations of a k-bit-prepared model); the weight dequantized in its quant state's type
    /// (<paramref name="stored"/>), copied to the compute type when that differs (<c>dequantize_4bit(B).to(A.dtype)</c>), used
    /// by the GEMM and dropped; the output in the compute type, cast back to x's type (<c>.to(inp_dtype)</c>). Backward
    /// dequantizes the weight again for grad_input (the frozen base has no weight grad). bitsandbytes before 0.43.2 also kept the
    /// (compute-type) input (<paramref name="keepsInput"/>: <c>ctx.tensors = (A, B)</c>), which backward never read; it is a ctx
    /// attribute, not a saved variable, so it outlives the node's backward and goes with the graph.
    /// </summary>
    public static Tensor DequantizedLinear(ReplayEngine s, Tensor x, Tensor weight, ScalarType compute, ScalarType stored, bool keepsInput = false)
    {
        Tensor input = s.To(x, compute);
        Tensor dequantized = s.Empty(weight.Shape, stored);
        if (stored != compute)
        {
            dequantized = Rebind(dequantized, s.Empty(weight.Shape, compute));
        }

        Tensor product = s.Empty(input.WithLast(weight.Shape[0]), compute);
        dequantized.Release();
        s.Record(product, [input], [], Derivatives.DequantizedLinear(weight.Shape, stored), keepsInput ? [input] : []);
        input.Release();
        return s.To(Operand.Take(product), x.Type);
    }

    /// <summary>The column chunks of Unsloth's <c>Fast_CrossEntropyLoss</c>: <c>n_chunks = div + (mod != 0)</c> of <c>divmod(vocab_size, MAX_FUSED_SIZE)</c>.</summary>
    public static long UnslothVocabularyChunks(long vocabulary) => (vocabulary + Constants.UnslothMaxFusedSize - 1) / Constants.UnslothMaxFusedSize;

    /// <summary>The new value of a variable; the old one is dropped after the new one exists (Python rebinding).</summary>
    public static Tensor Rebind(Tensor old, Tensor value)
    {
        old.Release();
        return value;
    }

    public static void Release(params Tensor?[] tensors)
    {
        foreach (Tensor? t in tensors)
        {
            t?.Release();
        }
    }

    /// <summary><c>x * cos + rotate_half(x) * sin</c> for one tensor.</summary>
    public static Tensor Rope(ReplayEngine s, Tensor x, Tensor cos, Tensor sin)
    {
        Tensor a = s.Mul(x, cos);
        Tensor b = s.Mul(Operand.Take(RotateHalf(s, x)), sin);
        return s.Add(Operand.Take(a), Operand.Take(b));
    }

    /// <summary><c>cat((-x[..., d/2:], x[..., :d/2]), -1)</c>; the slices are views whose backward allocates the full shape.</summary>
    private static Tensor RotateHalf(ReplayEngine s, Tensor x)
    {
        Tensor x1 = Slice(s, x, x.Shape[^1] / 2);
        Tensor x2 = Slice(s, x, x.Shape[^1] / 2);
        Tensor negated = s.Unary(x2, UnaryKind.Neg);
        Tensor y = s.Cat([negated, x1], x.Shape);
        Release(negated, x1, x2);
        return y;
    }

    /// <summary>A slice of the last dimension (<c>x[..., i:j]</c>, <c>chunk</c>): a view whose backward allocates the input's full shape.</summary>
    public static Tensor Slice(ReplayEngine s, Tensor x, long width) => Select(s, x, x.WithLast(width));

    /// <summary>A part of <paramref name="x"/> by indexing (<c>x[:, 0]</c>, a slice): a view whose backward allocates the input's full shape.</summary>
    public static Tensor Select(ReplayEngine s, Tensor x, long[] shape)
    {
        Tensor y = x.Alias(shape);
        s.Record(y, [x], [], Derivatives.ShapeOfInput);
        return y;
    }

    /// <summary>
    /// <c>_scaled_dot_product_attention_math(is_causal=True)</c> (aten/src/ATen/native/transformers/attention.cpp), the backend
    /// SDPA falls back to when no fused kernel accepts the call. 16-bit q, k, v are copied to fp32 first ("keep query, key,
    /// value in high precision", unless <c>allow_fp16_bf16_reduction_math_sdp</c>, off by default); q is scaled; the causal
    /// mask is a bool (L, S) <c>ones().tril()</c> turned into a float bias (<c>convert_boolean_attn_mask</c>: <c>zeros_like</c>,
    /// <c>masked_fill_</c> of its <c>logical_not</c>); with <paramref name="enableGqa"/> k and v are <c>repeat_interleave</c>d
    /// to all heads (<c>pre_process_group_query_attention_input</c>), without it a k and v of one head broadcast in
    /// <c>at::matmul</c>, whose <c>expand().reshape()</c> copies them to all heads all the same; scores
    /// (<c>attn.add_(mask)</c> in place), the safe softmax (with its bool mask of the scores' shape), the output in fp32 and its
    /// copy to the input type; the probabilities' copy to the input type is returned beside it and dropped by
    /// <c>scaled_dot_product_attention</c>.
    /// </summary>
    public static Tensor SdpaMath(ReplayEngine s, Tensor q, Tensor k, Tensor v, int repeats, bool enableGqa)
    {
        (long b, long a, long n, long d) = (q.Shape[0], q.Shape[1], q.Shape[2], q.Shape[3]);
        ScalarType origin = s.Autocast ?? q.Type;
        Tensor queryAcc = s.To(Operand.Take(s.To(q, origin)), MathType(origin));
        Tensor keyAcc = s.To(Operand.Take(s.To(k, origin)), MathType(origin));
        Tensor valueAcc = s.To(Operand.Take(s.To(v, origin)), MathType(origin));
        Tensor query = s.Scale(queryAcc);
        Tensor ones = s.Empty([n, n], ScalarType.Bool);
        Tensor causal = s.Empty([n, n], ScalarType.Bool);
        ones.Release();
        Tensor mask = s.Empty([n, n], queryAcc.Type);
        Tensor notCausal = s.Empty([n, n], ScalarType.Bool);
        Release(notCausal, causal);
        (Tensor key, Tensor value) = enableGqa
            ? (RepeatKv(s, keyAcc, repeats), RepeatKv(s, valueAcc, repeats))
            : (keyAcc.Retain(), valueAcc.Retain());
        Tensor keyScaled = s.Scale(key);
        Tensor keyBroadcast = Broadcast(s, keyScaled, a);
        keyScaled.Release();
        Tensor attn = s.Matmul(query, Operand.Take(keyBroadcast), [b, a, n, n]);
        s.AddInPlace(attn, mask);
        // at::_safe_softmax(attn, -1) (attention.cpp): out = softmax(self); masked = self.isneginf(), a bool of the scores'
        // shape; masked_rows = all(masked, -1, keepdim); where_out(out, masked_rows, 0, out) zeroes the fully masked rows in
        // out's own storage ("reuse storage for out"), so the only tensor it keeps is the softmax's; the bool tensors die when it
        // returns. (The older composite returned where(masked_rows, 0, out), a second copy the torch 2.11 measurements do not
        // hold: Falcon-7B inference would peak 2.4 GB higher.)
        Tensor softmax = s.Softmax(attn, attn.Type);
        Tensor masked = s.Empty(attn.Shape, ScalarType.Bool);
        Tensor maskedRows = s.Empty([.. attn.Shape[..^1], 1], ScalarType.Bool);
        Release(maskedRows, masked);
        attn = Rebind(attn, softmax);
        Tensor output = s.Matmul(attn, Operand.Take(Broadcast(s, value, a)), [b, a, n, d]);
        Tensor result = s.To(Operand.Take(output), origin);
        Tensor probabilities = s.To(attn, origin);
        Release(probabilities, attn, key, value, mask, query, queryAcc, keyAcc, valueAcc);
        return result;
    }

    /// <summary>The math backend's accumulation type: fp32 for 16-bit inputs.</summary>
    private static ScalarType MathType(ScalarType type) => type is ScalarType.BFloat16 or ScalarType.Float16 ? ScalarType.Float32 : type;

    /// <summary>
    /// A tensor of fewer heads as a matmul operand of <paramref name="heads"/> heads: <c>at::matmul</c> broadcasts the batch
    /// dimensions by <c>expand(...).reshape(batch, ...)</c>, a copy when the heads really broadcast.
    /// </summary>
    private static Tensor Broadcast(ReplayEngine s, Tensor x, long heads) =>
        x.Shape[1] == heads ? x.Retain() : RepeatKv(s, x, (int)(heads / x.Shape[1]));
}
