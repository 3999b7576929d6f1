using System.Numerics;
using LlmMemory.Models;

namespace LlmMemory.Estimation.Replay;

/// <summary>Attention, experts and the head of <see cref="DecoderProgram"/>.</summary>
internal sealed partial class DecoderProgram
{
    /// <summary>
    /// <c>LlamaAttention.forward</c>: projections viewed per head (q/k RMSNorm for Qwen3 and Gemma 3), RoPE, the cache
    /// update, then eager or SDPA attention and <c>o_proj</c>. Returns the output and eager's probabilities, which the
    /// decoder layer keeps in <c>_</c> until it returns. The rotated <c>query_states</c> and <c>key_states</c> are locals of
    /// <c>forward</c>: they die when it returns, after <c>o_proj</c> has made its output.
    /// </summary>
    private (Tensor Output, Tensor? Probabilities) Attention(int layer, Tensor x, (Tensor Cos, Tensor Sin) rope, Tensor? mask, KvCache? cache)
    {
        ReplayEngine s = Engine;
        string p = Prefix(layer) + "self_attn.";
        (long b, long n, long a) = (x.Shape[0], x.Shape[1], Model.AttentionHeadCount);
        (Tensor q, Tensor k, Tensor v) = Model.LatentAttention is { } mla ? LatentProjections(p, x, mla, rope)
            : Projections(p, x, rope);
        if (cache is not null)
        {
            (Tensor keys, Tensor values) = cache.Update(s, layer, k, v);
            k = Blocks.Rebind(k, keys);
            v = Blocks.Rebind(v, values);
        }

        int repeats = (int)(a / k.Shape[1]);
        if ((Options.Torchtune || Options.LitGpt) && repeats > 1)
        {
            // torchtune MultiHeadAttention: k.unsqueeze(2).expand(...).flatten(1, 2) before SDPA. LitGPT's CausalSelfAttention:
            // "Grouped queries: balance the number of heads across all three matrices. NOTE: flash attention requires it in
            // training mode": k.repeat_interleave(q_per_kv, dim=1) (litgpt/model.py, read at 0420581; 2023 and 2024:
            // k.expand(...) then k.reshape(B, -1, T, hs)), a copy of k and of v at all heads, which SDPA saves.
            k = Blocks.Rebind(k, Blocks.RepeatKv(s, k, repeats));
            v = Blocks.Rebind(v, Blocks.RepeatKv(s, v, repeats));
            repeats = 1;
        }

        Tensor o;
        Tensor? probabilities = null;
        if (Options.EagerAttention)
        {
            (o, probabilities) = Blocks.EagerAttention(s, q, k, v, mask, repeats, softcap: Model.AttentionLogitSoftcap is not null, transposedCopy: true);
        }
        else
        {
            Tensor output = q.Type == ScalarType.Float32 && s.Autocast is null
                ? Blocks.Float32Sdpa(s, q, k, v, mask, repeats)
                : Blocks.SdpaAttention(s, q, k, v, mask, repeats);
            o = s.View(Operand.Take(output), [b, n, a, v.Shape[^1]]);
            if (Options.LitGpt)
            {
                // LitGPT's q comes from torch.cat after RoPE, contiguous heads-major (B, nh, T, hs); SDPA's output keeps q's
                // layout (flash_api.cpp mha_fwd: out = at::empty_like(q_padded)), so `y.transpose(1, 2)` is not contiguous and
                // `y.reshape(B, T, head_size * n_head)` copies it: the proj's input, beside the output SDPA saves.
                o = s.ContiguousCopy(Operand.Take(o));
            }
        }

        o = s.View(Operand.Take(o), [b, n, a * o.Shape[^1]]);
        Tensor y = Linear(p + "o_proj.weight", o);
        o.Release();
        Blocks.Release(q, k, v);
        return (y, probabilities);
    }

    /// <summary>q, k, v per head, normed (Qwen3, Gemma 3) and rotated: q [b, a, s, d], k and v [b, n_kv, s, d].</summary>
    private (Tensor Q, Tensor K, Tensor V) Projections(string p, Tensor x, (Tensor Cos, Tensor Sin) rope)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (x.Shape[0], x.Shape[1]);
        (long a, long kv, long d) = (Model.AttentionHeadCount, Model.KeyValueHeadCount, Model.HeadDimension);
        if (Options.LitGpt)
        {
            return LitGptProjections(p, x, rope);
        }

        Tensor q;
        Tensor k;
        Tensor v;
        if (_style.FusedProjections)
        {
            // Phi-3: qkv = qkv_proj(x); q, k, v are slices of it.
            Tensor qkv = Linear(p + "qkv_proj.weight", x);
            q = s.View(Operand.Take(Blocks.Slice(s, qkv, a * d)), [b, n, a, d]);
            k = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, n, kv, d]);
            v = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, kv, n, d]);
            qkv.Release();
        }
        else
        {
            q = s.View(Operand.Take(Linear(p + "q_proj.weight", x)), [b, n, a, d]);
            k = null!;
            v = null!;
        }

        if (_style.QkNorm)
        {
            q = Blocks.Rebind(q, Norm(q, p + "q_norm.weight"));
        }

        q = s.View(Operand.Take(q), [b, a, n, d]);
        if (!_style.FusedProjections)
        {
            k = s.View(Operand.Take(Linear(p + "k_proj.weight", x)), [b, n, kv, d]);
        }

        if (_style.QkNorm)
        {
            k = Blocks.Rebind(k, Norm(k, p + "k_norm.weight"));
        }

        k = s.View(Operand.Take(k), [b, kv, n, d]);
        if (!_style.FusedProjections)
        {
            v = s.View(Operand.Take(Linear(p + "v_proj.weight", x)), [b, kv, n, d]);
        }

        (Tensor qr, Tensor kr) = Blocks.ApplyRope(s, q, k, rope.Cos, rope.Sin);
        Blocks.Release(q, k);
        return (qr, kr, v);
    }

    /// <summary>
    /// LitGPT's <c>CausalSelfAttention.forward</c> (litgpt/model.py, read at 0420581; lit_gpt/model.py of 2023 alike):
    /// <c>qkv = self.attn(x)</c>, one fused linear (with LoRA its <c>LoRAQKVLinear</c>, whose one <c>lora_dropout(x)</c> serves
    /// q, k and v: litgpt/lora.py at 01e39f5), replayed as the three projections concatenated into one (B, T, (nh + 2·ng)·hs)
    /// output; q, k and v are views of it (<c>split</c>, <c>view</c>, <c>transpose</c>); <c>apply_rope</c> and <c>torch.cat</c>
    /// make new q and k, and v stays a view, so what SDPA saves of v keeps the whole qkv output alive until backward (with
    /// grouped queries the caller copies v to all heads, and the qkv output dies).
    /// </summary>
    private (Tensor Q, Tensor K, Tensor V) LitGptProjections(string p, Tensor x, (Tensor Cos, Tensor Sin) rope)
    {
        ReplayEngine s = Engine;
        (long b, long n) = (x.Shape[0], x.Shape[1]);
        (long a, long kv, long d) = (Model.AttentionHeadCount, Model.KeyValueHeadCount, Model.HeadDimension);
        string[] names = [p + "q_proj.weight", p + "k_proj.weight", p + "v_proj.weight"];
        Tensor? dropped = names.Any(name => Weights.AdapterOf(name) is not null) ? AdapterDropout(x) : null;
        Tensor[] parts = [.. names.Select(name => Linear(name, x, adapterInput: dropped))];
        dropped?.Release();
        Tensor qkv = s.Cat(parts, [b, n, (a + 2 * kv) * d]);
        Blocks.Release(parts);
        Tensor q = s.View(Operand.Take(Blocks.Slice(s, qkv, a * d)), [b, a, n, d]);
        Tensor k = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, kv, n, d]);
        Tensor v = s.View(Operand.Take(Blocks.Slice(s, qkv, kv * d)), [b, kv, n, d]);
        qkv.Release();
        (Tensor qr, Tensor kr) = Blocks.ApplyRope(s, q, k, rope.Cos, rope.Sin);
        Blocks.Release(q, k);
        return (qr, kr, v);
    }

    /// <summary>
    /// DeepSeek multi-head latent attention as transformers runs it: q through its low-rank pair (or <c>q_proj</c>), the
    /// compressed kv and its rotary part, <c>kv_b_proj</c> expanding k and v per head, RoPE on the rotary parts and the
    /// concatenated q and k (so the cache holds the decompressed per-head k and v).
    /// </summary>
    private (Tensor Q, Tensor K, Tensor V) LatentProjections(string p, Tensor x, LatentAttention mla, (Tensor Cos, Tensor Sin) rope)
    {
        ReplayEngine s = Engine;
        (long b, long n, long a) = (x.Shape[0], x.Shape[1], Model.AttentionHeadCount);
        long qk = mla.NopeHeadDimension + mla.RopeHeadDimension;
        Tensor q = mla.QueryRank is null
            ? Linear(p + "q_proj.weight", x)
            : LowRank(p + "q_a_proj.weight", p + "q_a_layernorm.weight", p + "q_b_proj.weight", x);
        q = s.View(Operand.Take(q), [b, a, n, qk]);
        Tensor compressed = Linear(p + "kv_a_proj_with_mqa.weight", x);
        Tensor latent = Blocks.Slice(s, compressed, mla.KeyValueRank);
        Tensor kvPass = s.View(Operand.Take(LowRank(null, p + "kv_a_layernorm.weight", p + "kv_b_proj.weight", latent)),
            [b, a, n, mla.NopeHeadDimension + mla.ValueHeadDimension]);
        latent.Release();
        Tensor kRot = s.View(Operand.Take(Blocks.Slice(s, compressed, mla.RopeHeadDimension)), [b, 1, n, mla.RopeHeadDimension]);
        compressed.Release();
        Tensor qPass = Blocks.Slice(s, q, mla.NopeHeadDimension);
        Tensor qRot = Blocks.Slice(s, q, mla.RopeHeadDimension);
        q.Release();
        (Tensor qRotated, Tensor kRotated) = Blocks.ApplyRope(s, qRot, kRot, rope.Cos, rope.Sin);
        Blocks.Release(qRot, kRot);
        Tensor kPass = Blocks.Slice(s, kvPass, mla.NopeHeadDimension);
        Tensor v = Blocks.Slice(s, kvPass, mla.ValueHeadDimension);
        kvPass.Release();
        Tensor query = s.Cat([qPass, qRotated], [b, a, n, qk]);
        Tensor key = s.Cat([kPass, kRotated], [b, a, n, qk]);
        Blocks.Release(qPass, qRotated, kPass, kRotated);
        return (query, key, v);
    }

    /// <summary>A low-rank pair: <c>up(norm(down(x)))</c>; with no down projection, <paramref name="x"/> is the compressed input.</summary>
    private Tensor LowRank(string? down, string norm, string up, Tensor x)
    {
        Tensor compressed = down is null ? x.Retain() : Linear(down, x);
        Tensor normed = Norm(compressed, norm);
        compressed.Release();
        Tensor y = Linear(up, normed);
        normed.Release();
        return y;
    }

    /// <summary>
    /// A routed-experts block as transformers 5 runs it with grouped GEMMs (Qwen3-MoE <c>integrations/moe.py</c>): router
    /// logits and fp32 softmax, top-k weights and indices, tokens permuted per expert, gate-up, activation, down, weighting
    /// and the scatter back; shared experts run as a dense MLP on every token. Inference only.
    /// </summary>
    private Tensor Experts(int layer, Tensor x)
    {
        ReplayEngine s = Engine;
        MixtureOfExperts moe = Model.Experts!;
        (long b, long n, long h) = (x.Shape[0], x.Shape[1], x.Shape[2]);
        (long tokens, long k, long width) = (b * n, moe.ActiveExperts, moe.ExpertIntermediateSize);
        Tensor flat = s.View(x, [tokens, h]);
        Tensor logits = s.Linear(flat, Weights[RouterName(layer)]);
        Tensor probabilities = s.Softmax(logits);
        Tensor topWeights = s.Empty([tokens, k], ScalarType.Float32);
        Tensor topIndices = s.Empty([tokens, k], ScalarType.Int64);
        probabilities.Release();
        topWeights = Blocks.Rebind(topWeights, s.To(topWeights, x.Type));
        long routed = tokens * k;
        Tensor final = s.Empty([tokens, h], x.Type);
        Tensor permutation = s.Empty([routed], ScalarType.Int64);
        Tensor inverse = s.Empty([routed], ScalarType.Int64);
        Tensor current = s.Empty([routed, h], x.Type);
        Tensor gathered = s.Empty([routed, h], x.Type);
        current.Release();
        Tensor gateUp = s.Empty([routed, 2 * width], x.Type);
        Tensor activated = s.Empty([routed, width], x.Type);
        Tensor hidden = s.Empty([routed, width], x.Type);
        Blocks.Release(activated, gateUp);
        Tensor down = s.Empty([routed, h], x.Type);
        Blocks.Release(hidden, gathered);
        Tensor weighted = s.Empty([routed, h], x.Type);
        down.Release();
        Tensor output = s.Empty([routed, h], x.Type);
        weighted.Release();
        Blocks.Release(output, permutation, inverse, topWeights, topIndices, logits);
        Tensor y = s.View(Operand.Take(final), [b, n, h]);
        if (moe.SharedExpertIntermediateSize > 0)
        {
            y = Blocks.Rebind(y, s.Add(y, Operand.Take(SharedExperts(layer, x))));
        }

        flat.Release();
        return y;
    }

    private Tensor SharedExperts(int layer, Tensor x)
    {
        ReplayEngine s = Engine;
        string p = Prefix(layer) + "mlp." + (Model.ModelType == "qwen2_moe" ? "shared_expert." : "shared_experts.");
        Tensor activated = s.Unary(Operand.Take(Linear(p + "gate_proj.weight", x)), UnaryKind.Silu);
        return Linear(p + "down_proj.weight", Operand.Take(s.Mul(Operand.Take(activated), Operand.Take(Linear(p + "up_proj.weight", x)))));
    }

    private string RouterName(int layer) =>
        Model.Tensors.Tensors.First(t => t.Layer == layer && t.Role == TensorRole.Router && t.Form == TensorForm.LinearWeight).Name;

    /// <summary>
    /// The head: logits for every position (transformers 5 computes all of them when <c>logits_to_keep</c> is not given)
    /// in the model type, then the loss; torchtune upcasts them (<c>.float()</c>) or computes them in 8 chunks.
    /// </summary>
    private ForwardResult Head(Tensor h, bool labels, KvCache? cache)
    {
        ReplayEngine s = Engine;
        MemoryTag tag = s.Tag;
        s.Tag = MemoryTag.Logits;
        string head = Model.TiedEmbeddings && Weights.Find(ModelWeights.UntiedHeadName) is null ? "model.embed_tokens.weight" : "lm_head.weight";
        if (labels && Options.Loss is LossStyle.Chunked or LossStyle.ChunkedFused)
        {
            ForwardResult chunked = ChunkedHead(head, h);
            s.Tag = tag;
            return chunked;
        }

        if (labels && Options.Loss == LossStyle.FusedLinear)
        {
            s.Tag = MemoryTag.Loss;
            Tensor fused = FusedLinearLoss(head, h);
            s.Tag = tag;
            return new ForwardResult(fused, [], null);
        }

        Tensor logits = HeadLinear(head, h);
        h.Release();
        if (Options.Loss is LossStyle.Float or LossStyle.FloatShiftedTransposed or LossStyle.InPlace or LossStyle.TransformersInModel || (Options.Loss == LossStyle.Fused && Options.Torchtune))
        {
            logits = Blocks.Rebind(logits, s.To(logits, ScalarType.Float32));
        }

        if (Model.FinalLogitSoftcap is not null)
        {
            logits = Blocks.Rebind(logits, s.Scale(logits));
            logits = Blocks.Rebind(logits, s.Unary(logits, UnaryKind.Tanh));
            logits = Blocks.Rebind(logits, s.Scale(logits));
        }

        s.ModelReturned();
        if (labels && Options.Loss == LossStyle.FloatShiftedTransposed)
        {
            // torchtune before 0.3.0: logits = logits[..., :-1, :].contiguous() rebinds the recipe's name to the copy.
            s.Tag = MemoryTag.Loss;
            Tensor shifted = Blocks.ShiftedCopy(s, logits);
            logits.Release();
            Tensor shiftedLoss = Blocks.TransposedCrossEntropy(s, shifted);
            s.Tag = tag;
            return new ForwardResult(shiftedLoss, [shifted], cache);
        }

        Tensor? loss = null;
        if (labels)
        {
            s.Tag = MemoryTag.Loss;
            loss = Options.Loss switch
            {
                LossStyle.Fused => Blocks.FusedCrossEntropy(s, logits),
                LossStyle.InPlace => InPlaceLoss(logits, upcast: false),
                LossStyle.InPlaceLossFunction => InPlaceLoss(logits, upcast: true),
                LossStyle.InPlaceModelLogits => Blocks.InPlaceCrossEntropy(s, logits, vocabularyChunks: Blocks.UnslothVocabularyChunks(logits.Shape[2])),
                _ => Blocks.CausalLmLoss(s, logits, shiftedCopy: Options.Loss is LossStyle.TransformersShifted or LossStyle.TransformersInModel),
            };
        }

        s.Tag = tag;
        return new ForwardResult(loss, [logits], cache);
    }

    /// <summary>
    /// The shifted fp32 logits (<c>shift_logits</c>, dropped when the loss returns) into Unsloth's in-place loss. With
    /// <paramref name="upcast"/> (FOAK's <c>FastForCausalLMLoss</c>, transformers 4.46 on) the loss upcasts a copy of the
    /// model's 16-bit logits, which its output keeps, and the copy lives until the loss returns; without it (4.45) the
    /// model's forward has already upcast them.
    /// </summary>
    private Tensor InPlaceLoss(Tensor logits, bool upcast)
    {
        Tensor lf = upcast ? Engine.To(logits, ScalarType.Float32) : logits.Retain();
        Tensor shifted = Blocks.ShiftedCopy(Engine, lf);
        Tensor loss = Blocks.InPlaceCrossEntropy(Engine, shifted);
        Blocks.Release(lf, shifted);
        return loss;
    }

    /// <summary>
    /// Liger's <c>LigerFusedLinearCrossEntropyFunction</c> on <c>hidden_states[..., :-1, :].contiguous()</c>
    /// (<c>fused_linear_cross_entropy_forward</c>; fms-acceleration's copy in <c>kernels/liger</c>): under no grad, rows in
    /// chunks of <see cref="LigerChunkRows"/>; per chunk <c>logits_chunk = x_chunk @ weight.t()</c>, <c>.float()</c>, the kernel
    /// writes the gradient in place, <c>.to(dtype)</c> (the autocast type), <c>grad_logits_chunk = logits_chunk * alpha</c>,
    /// <c>grad_input[rows] = grad_logits_chunk @ weight</c>; each name is rebound by the next chunk, so the previous chunk's
    /// tensors die there. <c>grad_input</c> (zeros like the input) and, for a trained head, <c>grad_weight</c> are saved and
    /// handed on in backward (scaled in place when the incoming gradient is not 1). No logits are returned.
    /// </summary>
    private Tensor FusedLinearLoss(string head, Tensor h)
    {
        ReplayEngine s = Engine;
        Tensor input = Blocks.ShiftedCopy(s, h);
        h.Release();
        Tensor weight = Weights[head];
        (long rows, long hidden, long vocabulary) = (input.Shape[0] * input.Shape[1], input.Shape[2], weight.Shape[0]);
        ScalarType type = s.Autocast ?? input.Type;
        bool grad = s.GradEnabled;
        s.GradEnabled = false;
        Tensor? gradWeight = weight.RequiresGrad ? s.Empty(weight.Shape, weight.Type) : null;
        Tensor gradInput = s.Empty(input.Shape, input.Type);
        Tensor losses = s.Empty([rows], ScalarType.Float32);
        Tensor? logits = null;
        Tensor? scaled = null;
        long chunk = LigerChunkRows(rows, hidden, vocabulary);
        for (long start = 0; start < rows; start += chunk)
        {
            long n = Math.Min(chunk, rows - start);
            Tensor product = s.Linear(Operand.Take(input.Alias([n, hidden])), weight);
            logits?.Release();
            logits = s.To(Operand.Take(s.To(Operand.Take(product), ScalarType.Float32)), type);
            Tensor next = s.Empty(logits.Shape, logits.Type);
            scaled?.Release();
            scaled = next;
            s.Empty([n, hidden], type).Release();
        }

        Blocks.Release(logits, scaled, losses);
        s.GradEnabled = grad;
        Tensor loss = s.Empty([], ScalarType.Float32);
        s.Record(loss, [input, weight], [gradInput, gradWeight], Derivatives.IntoSaved);
        Blocks.Release(gradInput, gradWeight, input);
        return loss;
    }

    /// <summary>
    /// Liger's chunk: <c>inc_factor = ceil(V / H)</c>, <c>chunk_size = next_power_of_2(ceil(BT / inc_factor))</c>, "to achieve
    /// the same memory consumption as BT x H" (fused_linear_cross_entropy.py).
    /// </summary>
    internal static long LigerChunkRows(long rows, long hidden, long vocabulary)
    {
        long factor = (vocabulary + hidden - 1) / hidden;
        return (long)BitOperations.RoundUpToPowerOf2((ulong)((rows + factor - 1) / factor));
    }
}
