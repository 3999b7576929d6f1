"""Forward programs of the transformers 5.x model families, written against the fake-tensor Sim so
that every tensor is created and dropped at the same statement as in the real code.

Sources read (transformers 5.x): models/llama/modeling_llama.py (LlamaRMSNorm, apply_rotary_pos_emb,
LlamaMLP, LlamaAttention, eager_attention_forward, LlamaDecoderLayer, LlamaForCausalLM.forward),
integrations/sdpa_attention.py (use_gqa_in_sdpa, is_causal), masking_utils.py (sdpa_mask,
_ignore_causal_mask_sdpa, eager_mask), cache_utils.py (DynamicLayer / DynamicSlidingWindowLayer
update = torch.cat), loss/loss_utils.py (ForCausalLMLoss), models/gemma2 (softcapping, 4 norms,
GemmaRMSNorm in fp32), models/gemma3 (q/k norm, sliding layers), models/qwen3 (q/k norm),
models/qwen3_moe + integrations/moe.py (grouped_mm experts), models/gpt2. peft 0.2x tuners/lora/layer.py
(Linear.forward with _cast_input_dtype; DoRA variant) and torch.optim AdamW/SGD foreach paths.
"""
from __future__ import annotations

from sim import Sim, FT, prod


def _alias(S, y):
    return FT(S, y.shape, y.dt, st=y.st)


# ---------------------------------------------------------------- small ops built on Sim primitives
def scal(S, x):
    """x * python_scalar (or / scalar): new tensor, nothing saved; backward allocates grad*scalar."""
    return S.unary(x, 'scal')


def add_scalar(S, x):
    return S.unary(x, 'scal_add')


def rmsnorm_llama(S, x, w):
    """LlamaRMSNorm.forward:
        input_dtype = hs.dtype; hs = hs.to(float32); var = hs.pow(2).mean(-1, keepdim=True)
        hs = hs * torch.rsqrt(var + eps); return self.weight * hs.to(input_dtype)"""
    in_dt = x.dt
    h = S.to(x, 'f32')
    var = S.reduce(S.unary(h, 'pow2'), x.shape[:-1] + (1,))
    r = S.unary(add_scalar(S, var), 'rsqrt')
    del var
    h = S.binary(h, r, 'mul')
    del r
    return S.binary(w, S.to(h, in_dt), 'mul')


def rmsnorm_gemma(S, x, w):
    """GemmaRMSNorm: out = _norm(x.float()) * (1.0 + weight.float()); return out.type_as(x)"""
    xf = S.to(x, 'f32')
    var = S.reduce(S.unary(xf, 'pow2'), x.shape[:-1] + (1,))
    r = S.unary(add_scalar(S, var), 'rsqrt')
    del var
    o = S.binary(xf, r, 'mul')
    del xf, r
    w1 = add_scalar(S, S.to(w, 'f32'))
    o = S.binary(o, w1, 'mul')
    return S.to(o, x.dt)


def layernorm(S, x, w, b):
    """native_layer_norm: out in input dtype (fp32 math inside), saves input, mean, rstd."""
    y = S.empty(x.shape, x.dt)
    mean = S.empty(x.shape[:-1] + (1,), 'f32')
    rstd = S.empty(x.shape[:-1] + (1,), 'f32')
    S._node('LayerNorm', [x, w, b], [x, mean, rstd], y, _bw_layernorm)
    return y


def _bw_layernorm(S, n, gouts, saved):
    g = gouts[0]
    out = []
    for e, m in zip(n.edges, n.metas):
        out.append(S.empty(m[0], m[1]) if e is not None else None)
    return out


def slice_half(S, x, first):
    """x[..., :d/2] or x[..., d/2:]: a view; its backward (slice_backward) allocates a zero tensor of the
    full input shape and copies the gradient in."""
    shp = x.shape[:-1] + (x.shape[-1] // 2,)
    y = FT(S, shp, x.dt, st=x.st)
    S._node('Slice', [x], [], y, _bw_slice)
    return y


def _bw_slice(S, n, gouts, saved):
    shape, dt = n.metas[0]
    return [S.empty(shape, gouts[0].dt)]


def rotate_half(S, x):
    x1 = slice_half(S, x, True)
    x2 = slice_half(S, x, False)
    return S.cat([S.unary(x2, 'neg'), x1], x.shape)


def apply_rope(S, q, k, cos, sin):
    """q_embed = (q * cos) + (rotate_half(q) * sin); same for k. cos/sin: (1,1,s,d) in the
    hidden-state dtype (cos.to(x.dtype) in the rotary module)."""
    q_embed = S.binary(S.binary(q, cos, 'mul'), S.binary(rotate_half(S, q), sin, 'mul'), 'add')
    k_embed = S.binary(S.binary(k, cos, 'mul'), S.binary(rotate_half(S, k), sin, 'mul'), 'add')
    return q_embed, k_embed


def repeat_kv(S, x, n_rep):
    """hidden[:, :, None].expand(...).reshape(b, n_kv*n_rep, s, d): a copy when n_rep > 1."""
    if n_rep == 1:
        return x
    b, nk, s, d = x.shape
    y = S.empty((b, nk * n_rep, s, d), x.dt)
    S._node('RepeatKV', [x], [], y, _bw_repeat)
    return y


def _bw_repeat(S, n, gouts, saved):
    shape, dt = n.metas[0]
    return [S.empty(shape, gouts[0].dt)]


class Cache:
    """DynamicCache(config): DynamicLayer.update -> self.keys = torch.cat([self.keys, key_states], -2)
    (a copy of the new keys); DynamicSlidingWindowLayer.update -> full = torch.cat([...]); keys =
    full[..., -W+1:, :] (a view, so the full prefill copy stays allocated)."""

    def __init__(self, S):
        self.S = S
        self.k = []
        self.v = []

    def update(self, k, v):
        S = self.S
        tag0, S.tag = S.tag, 'kv_cache'
        kc = S.cat([k], k.shape)
        vc = S.cat([v], v.shape)
        S.tag = tag0
        self.k.append(kc)
        self.v.append(vc)
        return kc, vc


# ---------------------------------------------------------------- attention
def eager_attention(S, q, k, v, mask, n_rep, softcap=None, softmax_f32=True):
    b, a, s, d = q.shape
    kv_len = k.shape[2]
    kr = repeat_kv(S, k, n_rep)
    vr = repeat_kv(S, v, n_rep)
    attn = scal(S, S.matmul(q, kr, (b, a, s, kv_len), copy_a=True))
    if softcap is not None:
        attn = scal(S, attn)            # / softcap
        attn = S.unary(attn, 'tanh')    # tanh saves its output
        attn = scal(S, attn)            # * softcap
    if mask is not None:
        attn = S.binary(attn, mask, 'add')
    if softmax_f32:
        attn = S.to(S.softmax(attn, 'f32'), q.dt)
    else:
        attn = S.softmax(attn, attn.dt)
    out = S.matmul(attn, vr, (b, a, s, d))
    return out, attn      # eager_attention_forward returns (attn_output, attn_weights)


def sdpa_attention(S, q, k, v, mask, n_rep):
    """integrations/sdpa_attention.py: enable_gqa (no repeat) and is_causal when mask is None ->
    flash kernel; with a materialised mask: repeat_kv + mem-efficient kernel with an additive bias
    (the bool mask is converted by aten to a float bias in q's dtype)."""
    if mask is None:
        return S.sdpa_flash(q, k, v, gqa_rep=n_rep)
    kr = repeat_kv(S, k, n_rep)
    vr = repeat_kv(S, v, n_rep)
    bias = S.empty(mask.shape, q.dt if not S.autocast else S.autocast)   # convert_boolean_attn_mask
    out = S.sdpa_efficient(q, kr, vr, bias)
    return out


def fp32_attention_sdpa(S, q, k, v, mask, n_rep):
    """fp32 tensors: flash has no fp32 kernel. Without GQA the mem-efficient kernel runs; with
    enable_gqa=True (mask None, n_kv < a) mem-efficient is not eligible either and SDPA falls back
    to the math path (aten _scaled_dot_product_attention_math), which materialises the scores."""
    if mask is None and n_rep == 1:
        return S.sdpa_efficient(q, k, v, None)
    if mask is None:
        return sdpa_math(S, q, k, v, n_rep)
    return sdpa_attention(S, q, k, v, mask, n_rep)


def sdpa_math(S, q, k, v, n_rep):
    """_scaled_dot_product_attention_math(is_causal, enable_gqa):
      query = q * sqrt(scale); causal mask = ones(L,S,bool).tril() -> float (L,S);
      key/value repeat_interleave'd to a heads; attn = matmul(query, key_exp.T * sqrt(scale));
      attn.add_(mask); attn = _safe_softmax(attn, -1); out = matmul(attn, value_exp)."""
    b, a, s, d = q.shape
    q2 = scal(S, q)
    mb = S.empty((s, s), 'bool')
    mask = S.empty((s, s), q.dt)
    del mb
    ke = repeat_kv(S, k, n_rep)
    ve = repeat_kv(S, v, n_rep)
    k2 = scal(S, ke)
    del ke
    attn = S.matmul(q2, k2, (b, a, s, s))
    del q2, k2
    p = S.softmax(attn, attn.dt)
    del attn, mask
    return S.matmul(p, ve, (b, a, s, d))


# ---------------------------------------------------------------- the model
LORA_ALL_LINEAR = ('q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj',
                   'c_attn', 'c_proj', 'c_fc')
LORA_ATTENTION = ('q_proj', 'k_proj', 'v_proj', 'o_proj')


class Model:
    """Parameters are created in the order transformers builds the model under `with device:`
    (embedding, then per layer q,k,v,o(+biases)(+q/k norm), norms, mlp, then final norm, lm_head,
    buffers); PEFT adapters are created afterwards (peft moves each new adapter to the base
    layer's device right after creating it)."""

    def __init__(self, S: Sim, ar, dt, trainable=True, lora=None, attn='sdpa', ckpt=False,
                 use_cache_cfg=True, opts=None):
        self.S, self.ar, self.dt = S, ar, dt
        self.opts = opts or {}
        self.attn_impl = attn
        self.ckpt = ckpt
        self.use_cache_cfg = use_cache_cfg
        self.W = {}
        S.tag = 'weight'
        nf4 = self.opts.get('weights') == 'nf4'
        for t in ar.tensors:
            if t.role == 'buffer':
                p = S.empty((t.numel,), 'f32', tag='weight')
            elif nf4 and t.role == 'linear':
                # torchao NF4Tensor: 4-bit codes (n/2 bytes) + per-64 int8 scalers + per-256-block fp32 factors
                n = t.numel
                p = S.param((n // 2 + n // 64 + 4 * (n // (64 * 256) + 1),), 'u8', name=t.name, rg=False)
                p.shape = (t.d_out, t.d_in)
                p.dt = 'nf4'
                self.W[t.name] = p
                continue
            else:
                p = S.param((t.numel,), dt, name=t.name, rg=trainable)
                if t.d_in:
                    p.shape = (t.d_out, t.d_in)
                elif t.role == 'embed':
                    p.shape = (t.numel // ar.h, ar.h)
            self.W[t.name] = p
        if ar.tied and self.opts.get('init_untied_head', True):
            # XForCausalLM.__init__ builds nn.Linear(h, V) for lm_head on the device, then post_init()
            # ties it to the input embedding: the freshly allocated V x h weight is dropped and its
            # block stays cached in the allocator (reserved, not allocated) before the run starts.
            tmp = S.empty((ar.V, ar.h), dt, tag='weight')
            del tmp
        S.tag = 'act'
        self.tied = ar.tied
        self.lora = {}
        self.base_weights = S.A.allocated     # measured `weights`: allocated after model.to(device)
        if lora:
            self._make_lora(lora)

    def _make_lora(self, lo):
        S, ar = self.S, self.ar
        r = lo['r']
        targets = lo['targets']
        if targets == 'all-linear':
            targets = LORA_ALL_LINEAR
        elif targets == 'attention':
            targets = LORA_ATTENTION
        dora = lo.get('dora', False)
        for t in ar.tensors:
            if t.role != 'linear' or t.module not in targets:
                continue
            ldt = self.opts.get('lora_dtype', 'f32')
            A = S.param((r, t.d_in), ldt, name=t.name + '.lora_A', rg=True, tag='lora')
            B = S.param((t.d_out, r), ldt, name=t.name + '.lora_B', rg=True, tag='lora')
            m = S.param((t.d_out,), ldt, name=t.name + '.dora_m', rg=True, tag='lora') if dora else None
            self.lora[t.name] = (A, B, m)
        self.n_lora_params = sum(a.numel + b.numel + (m.numel if m is not None else 0)
                                 for a, b, m in self.lora.values())

    def params(self):
        if self.lora:
            out = []
            for a, b, m in self.lora.values():
                out += [a, b] + ([m] if m is not None else [])
            return out
        return [p for p in self.W.values() if p.is_param and p.rg]

    # ------------------------------------------------------------ building blocks
    def lin(self, name, x, bias=None):
        S = self.S
        W = self.W[name]
        b = self.W.get(bias) if bias else None
        lo = self.lora.get(name)
        if W.dt == 'nf4':
            result = self._linear_nf4(x, W, b)
        else:
            result = None
        if lo is None:
            return result if result is not None else S.linear(x, W, b)
        A, B, m = lo
        if result is None:
            result = S.linear(x, W, b)
        tdt = result.dt
        if self.opts.get('lora_style') == 'torchtune':
            # torchtune LoRALinear: out + (alpha/rank) * lora_b(lora_a(dropout(x))), all in the model dtype
            return S.binary(result, scal(S, S.linear(S.linear(x, A), B)), 'add')
        if not S.autocast:
            x = S.to(x, A.dt)                     # LoraLayer._cast_input_dtype: x.to(lora_A.weight.dtype)
        if m is None:
            result = S.binary(result, scal(S, S.linear(S.linear(x, A), B)), 'add')
        else:
            result = S.binary(result, self._dora(x, W, A, B, m, result), 'add')
        return S.to(result, tdt)

    def _linear_nf4(self, x, W, b):
        """torchao linear_nf4: forward F.linear(x, W.to(x.dtype)) with a transient dequantised weight;
        backward dequantises again for grad_input (frozen base: no weight grad)."""
        S = self.S
        wd = S.empty(W.shape, x.dt)
        y = S.empty(x.shape[:-1] + (W.shape[0],), x.dt)
        del wd
        S._node('LinearNF4', [x], [], y, _bw_nf4, extra=W.shape)
        return y

    def _dora(self, x, W, A, B, m, base_result):
        """peft DoraLinearLayer.forward (lora_dropout=0 -> base_result reused):
        lora_weight = lora_B(lora_A(eye(d_in))).T ; weight = W.to(x.dtype);
        weight_norm = ||weight + s*lora_weight||_row (detached); mag = m / weight_norm;
        result_dora = (mag - 1) * base_result + mag * lora_B(lora_A(x)) * s"""
        S = self.S
        d_out, d_in = W.shape
        with_grad = S.grad_enabled
        eye = S.empty((d_in, d_in), x.dt)
        lw = S.linear(S.linear(eye, A), B)       # (d_in, d_out), graph dies with lw
        del eye
        lw = S.view(lw, (d_out, d_in))           # .T
        S.grad_enabled = False
        wf = S.to(W, x.dt) if W.dt != x.dt else S.empty(W.shape, x.dt)
        t = scal(S, lw)
        wsum = S.binary(wf, t, 'add')
        del t, wf
        wn = S.empty((d_out,), x.dt)
        del wsum
        S.grad_enabled = with_grad
        del lw
        mag = S.binary(m, wn, 'div')
        lora_result = S.linear(S.linear(x, A), B)
        t1 = S.binary(add_scalar(S, mag), base_result, 'mul')
        t2 = scal(S, S.binary(mag, lora_result, 'mul'))
        return S.binary(t1, t2, 'add')

    def norm(self, x, name):
        if self.ar.family in ('gemma2', 'gemma3', 'gemma'):
            return rmsnorm_gemma(self.S, x, self.W[name])
        return rmsnorm_llama(self.S, x, self.W[name])

    def attention(self, li, x, rope, mask, cache):
        S, ar = self.S, self.ar
        b, s, _ = x.shape
        a, nk, d = ar.a, ar.n_kv, ar.d
        p = f'layers.{li}.'
        bias = ar.qkv_bias
        q = S.view(self.lin(p + 'q_proj', x, p + 'q_bias' if bias else None), (b, s, a, d))
        if ar.qk_norm:
            q = self.norm(q, p + 'q_norm')
        q = S.view(q, (b, a, s, d))
        k = S.view(self.lin(p + 'k_proj', x, p + 'k_bias' if bias else None), (b, s, nk, d))
        if ar.qk_norm:
            k = self.norm(k, p + 'k_norm')
        k = S.view(k, (b, nk, s, d))
        v = S.view(self.lin(p + 'v_proj', x, p + 'v_bias' if bias else None), (b, nk, s, d))
        cos, sin = rope
        q, k = apply_rope(S, q, k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)
        n_rep = a // nk
        if self.opts.get('expand_kv') and n_rep > 1:
            # torchtune MultiHeadAttention: k.unsqueeze(2).expand(...).flatten(1, 2) before SDPA
            k = repeat_kv(S, k, n_rep)
            v = repeat_kv(S, v, n_rep)
            n_rep = 1
        if self.attn_impl == 'eager':
            softcap = ar.attn_softcap
            o, w = eager_attention(S, q, k, v, mask, n_rep, softcap=softcap)
            o = S.contiguous_copy(S.view(o, (b, s, a, d)))      # .transpose(1, 2).contiguous()
        else:
            w = None
            if q.dt == 'f32' and not S.autocast:
                o = fp32_attention_sdpa(S, q, k, v, mask, n_rep)
            else:
                o = sdpa_attention(S, q, k, v, mask, n_rep)
            o = S.view(o, (b, s, a, d))
        del q, k, v
        o = S.view(o, (b, s, a * d))
        # LlamaAttention returns (attn_output, attn_weights); the decoder layer unpacks it into
        # `hidden_states, _ = self.self_attn(...)`, so eager's attention probabilities stay
        # referenced by `_` until the decoder layer returns (through the MLP).
        return self.lin(p + 'o_proj', o, p + 'o_bias' if ar.o_bias else None), w

    def mlp(self, li, x):
        S, ar = self.S, self.ar
        p = f'layers.{li}.'
        if ar.family == 'moe':
            return self.moe(li, x)
        act = 'silu' if ar.act == 'silu' else 'gelu'
        return self.lin(p + 'down_proj', S.binary(S.unary(self.lin(p + 'gate_proj', x), act),
                                                  self.lin(p + 'up_proj', x), 'mul'))

    def moe(self, li, x):
        """Qwen3MoeSparseMoeBlock: router linear + softmax(fp32) + topk, experts via grouped_mm."""
        S, ar = self.S, self.ar
        b, s, h = x.shape
        T = b * s
        E, k, Ie = ar.n_experts, ar.top_k, ar.I_e
        p = f'layers.{li}.'
        hs = S.view(x, (T, h))
        logits = S.linear(hs, self.W[p + 'router'])
        probs = S.softmax(logits, 'f32')
        tw = S.empty((T, k), 'f32')
        ti = S.empty((T, k), 'i64')
        del probs
        tw = S.to(tw, x.dt)
        Sn = T * k
        final = S.empty((T, h), x.dt)
        perm = S.empty((Sn,), 'i64')
        inv = S.empty((Sn,), 'i64')
        cur = S.empty((Sn, h), x.dt)
        cur_g = S.empty((Sn, h), x.dt)
        del cur
        gu = S.empty((Sn, 2 * Ie), x.dt)
        act = S.empty((Sn, Ie), x.dt)
        hid = S.empty((Sn, Ie), x.dt)
        del act, gu
        out_g = S.empty((Sn, h), x.dt)
        del hid, cur_g
        out_w = S.empty((Sn, h), x.dt)
        del out_g
        out = S.empty((Sn, h), x.dt)
        del out_w
        del out, perm, inv, tw, ti, logits
        return S.view(final, (b, s, h))

    def layer(self, li, x, rope, mask, cache):
        S, ar = self.S, self.ar
        p = f'layers.{li}.'
        gem = ar.family in ('gemma2', 'gemma3')
        residual = x
        h = self.norm(x, p + 'norm0')
        h, _w = self.attention(li, h, rope, mask, cache)
        if gem:
            h = self.norm(h, p + 'norm1')
        x = S.binary(residual, h, 'add')
        del h, residual
        residual = x
        h = self.norm(x, p + ('norm2' if gem else 'norm1'))
        h = self.mlp(li, h)
        if gem:
            h = self.norm(h, p + 'norm3')
        return S.binary(residual, h, 'add')

    # ------------------------------------------------------------ whole model
    def forward(self, b, s, labels=False, use_cache=None, train=False):
        """XForCausalLM.forward(input_ids, labels=..., use_cache=...). Returns (loss, logits, cache);
        the caller drops them at the end of its statement."""
        S, ar = self.S, self.ar
        if ar.family == 'gpt2':
            return self.forward_gpt2(b, s, use_cache)
        ids = self.ids
        if use_cache is None:
            use_cache = self.use_cache_cfg and not (train and self.ckpt)
        x = S.embedding(ids, self.W['embed_tokens'])
        if ar.family in ('gemma2', 'gemma3', 'gemma'):
            norm_c = S.empty((), x.dt)
            x = S.binary(x, norm_c, 'mul')       # hidden_states * normalizer
        if self.lora and self.ckpt and train:
            # enable_input_require_grads: forward hook output.requires_grad_(True)
            x.rg = True
        cache = Cache(S) if use_cache else None
        cache_pos = S.empty((s,), 'i64')
        # masks (created once per forward)
        masks = {}
        types = ar.layer_types
        for lt in set(types):
            local = ar.sliding_window if lt == 'sliding' else None
            if self.attn_impl == 'eager':
                bm = S.empty((1, 1, s, s), 'bool')
                masks[lt] = S.empty((b, 1, s, s), x.dt)      # torch.where(mask, 0, min) in the embeds dtype
                del bm
            else:
                skip = local is None or s < local
                if skip:
                    masks[lt] = None
                else:
                    t1 = S.empty((1, 1, s, s), 'bool')
                    t2 = S.empty((1, 1, s, s), 'bool')
                    del t1
                    masks[lt] = t2
        # rotary (cos, sin) in the hidden dtype, (1, s, d); gemma3 has a local and a global one
        ropes = {}
        rope_kinds = ('full', 'sliding') if ar.family == 'gemma3' else ('full',)
        for rk in rope_kinds:
            f = S.empty((1, s, ar.d), 'f32')
            cos = S.to(S.empty((1, s, ar.d), 'f32'), x.dt)
            sin = S.to(S.empty((1, s, ar.d), 'f32'), x.dt)
            del f
            ropes[rk] = (S.view(cos, (1, 1, s, ar.d)), S.view(sin, (1, 1, s, ar.d)))
        for li in range(ar.L):
            lt = types[li]
            rope = ropes['sliding' if (ar.family == 'gemma3' and lt == 'sliding') else 'full']
            mask = masks[lt]
            S.set_phase(S.phase.split(':')[0] + f':layer{li}')
            if train and self.ckpt:
                fn = (lambda li_, rope_, mask_: (lambda hx: self.layer(li_, hx, rope_, mask_, None)))(li, rope, mask)
                x = S.checkpoint(fn, x, offload=self.opts.get('offload', False))
            else:
                x = self.layer(li, x, rope, mask, cache)
        del masks, ropes
        S.set_phase(S.phase.split(':')[0] + ':head')
        h = self.norm(x, 'norm')
        del x
        tag0, S.tag = S.tag, 'logits'
        lm = self.W['embed_tokens'] if self.tied else self.W['lm_head']
        lmode = self.opts.get('logits')
        if lmode in ('tt_chunked', 'tt_chunked_compiled') and labels:
            # torchtune: output = [self.output(chunk) for chunk in h.chunk(8, dim=1)] (bf16 chunks);
            # CEWithChunkedOutputLoss: sum over chunks of cross_entropy(chunk.float(), labels_chunk)
            nch = 8
            chunks = [S.linear(S.view(h, (h.shape[0], h.shape[1] // nch, h.shape[2])), lm) for _ in range(nch)]
            del h
            S.tag = 'loss'
            total = None
            for ch in chunks:
                if lmode == 'tt_chunked_compiled':
                    l = fused_ce(S, ch)
                else:
                    l = causal_lm_loss(S, ch)
                total = l if total is None else S.binary(total, l, 'add')
            S.tag = tag0
            return total, chunks, None
        logits = S.linear(h, lm)
        del h
        if lmode == 'tt_float':
            logits = S.to(logits, 'f32')          # torchtune TransformerDecoder: self.output(h).float()
        if ar.final_softcap:
            logits = scal(S, logits)
            logits = S.unary(logits, 'tanh')
            logits = scal(S, logits)
        loss = None
        if labels:
            S.tag = 'loss'
            loss = causal_lm_loss(S, logits)
        S.tag = tag0
        return loss, logits, cache

    def forward_gpt2(self, b, s, use_cache):
        """GPT2LMHeadModel (inference): wte + wpe, pre-LN blocks with Conv1D (addmm), eager
        attention with a float causal mask, softmax in the input dtype, gelu_new, tied lm_head."""
        S, ar = self.S, self.ar
        h, a, d = ar.h, ar.a, ar.d
        ids = self.ids
        pos = S.empty((1, s), 'i64')
        x = S.binary(S.embedding(ids, self.W['wte']), S.embedding(pos, self.W['wpe']), 'add')
        cache = Cache(S) if use_cache else None
        bm = S.empty((1, 1, s, s), 'bool')
        mask = S.empty((b, 1, s, s), x.dt)
        del bm
        for li in range(ar.L):
            S.set_phase(S.phase.split(':')[0] + f':layer{li}')
            p = f'h.{li}.'
            residual = x
            y = layernorm(S, x, self.W[p + 'ln_1.w'], self.W[p + 'ln_1.b'])
            qkv = S.linear(y, self.W[p + 'c_attn'], self.W[p + 'c_attn.b'])
            del y
            q = FT(S, (b, a, s, d), qkv.dt, st=qkv.st)
            k = FT(S, (b, a, s, d), qkv.dt, st=qkv.st)
            v = FT(S, (b, a, s, d), qkv.dt, st=qkv.st)
            del qkv
            if cache is not None:
                k, v = cache.update(k, v)
            o, w = eager_attention(S, q, k, v, mask, 1, softmax_f32=False)
            del q, k, v
            o = S.contiguous_copy(S.view(o, (b, s, a, d)))
            o = S.linear(S.view(o, (b, s, h)), self.W[p + 'attn.c_proj'], self.W[p + 'attn.c_proj.b'])
            x = S.binary(o, residual, 'add')
            del o, residual
            residual = x
            y = layernorm(S, x, self.W[p + 'ln_2.w'], self.W[p + 'ln_2.b'])
            f = S.linear(y, self.W[p + 'c_fc'], self.W[p + 'c_fc.b'])
            del y
            f = gelu_new(S, f)
            f = S.linear(f, self.W[p + 'mlp.c_proj'], self.W[p + 'mlp.c_proj.b'])
            x = S.binary(residual, f, 'add')
            del f, residual, w
        del mask
        S.set_phase(S.phase.split(':')[0] + ':head')
        y = layernorm(S, x, self.W['ln_f.w'], self.W['ln_f.b'])
        del x
        tag0, S.tag = S.tag, 'logits'
        logits = S.linear(y, self.W['wte'])
        S.tag = tag0
        return None, logits, cache


def gelu_new(S, x):
    """NewGELUActivation: 0.5 * x * (1.0 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3))))"""
    t = scal(S, x)                    # 0.5 * x
    p3 = S.unary(x, 'pow2')           # pow(x, 3)
    p3 = scal(S, p3)                  # 0.044715 * .
    u = S.binary(x, p3, 'add')
    del p3
    u = scal(S, u)
    u = S.unary(u, 'tanh')
    u = add_scalar(S, u)
    return S.binary(t, u, 'mul')


def _bw_nf4(S, n, gouts, saved):
    g = gouts[0]
    shape, dt = n.metas[0]
    wd = S.empty(n.extra, g.dt)
    gx = S.empty(shape, g.dt)
    del wd
    return [gx]


def fused_ce(S, logits):
    """cross_entropy(logits.float()) compiled by inductor (torchtune compiles compute_cross_entropy):
    the fp32 upcast and the softmax stay inside fused kernels; saved: the bf16 chunk and a per-row
    logsumexp. Backward writes the bf16 grad of the chunk directly (plus an fp32 row buffer)."""
    b, s, V = logits.shape
    y = S.empty((), 'f32')
    lse = S.empty((b * s,), 'f32')
    S._node('FusedCE', [logits], [logits, lse], y, _bw_fused_ce)
    return y


def _bw_fused_ce(S, n, gouts, saved):
    shape, dt = n.metas[0]
    return [S.empty(shape, dt)]


def causal_lm_loss(S, logits):
    """loss/loss_utils.py ForCausalLMLoss: logits = logits.float(); labels padded and shifted
    (int64); cross_entropy(logits.view(-1, V), shift_labels) = nll_loss(log_softmax(.))."""
    b, s, V = logits.shape
    T = b * s
    lf = S.to(logits, 'f32')
    lab = S.empty((b, s + 1), 'i64')
    tgt = S.empty((b, s), 'i64')
    del lab
    lp = S.log_softmax(S.view(lf, (T, V)))
    loss = S.nll_loss(lp, tgt)
    return loss


# ---------------------------------------------------------------- optimizers (torch.optim, foreach)
class AdamW:
    """torch.optim.AdamW(foreach=None -> foreach on CUDA). First step: state['exp_avg'] and
    ['exp_avg_sq'] = zeros_like(p) per param (interleaved), step on CPU. _multi_tensor_adamw:
    in-place foreach ops except exp_avg_sq_sqrt = torch._foreach_sqrt(exp_avg_sqs), a full copy
    of v for the (device, dtype) group, freed when the step returns."""

    def __init__(self, S, params, fused=False):
        self.S, self.params, self.state, self.fused = S, params, None, fused

    def step(self):
        S = self.S
        ps = [p for p in self.params if p.grad is not None]
        if self.state is None:
            self.state = []
            for p in ps:
                m = S.empty(p.shape, p.dt, tag='opt_state')
                v = S.empty(p.shape, p.dt, tag='opt_state')
                self.state.append((m, v))
        if self.fused:
            return
        groups = {}
        for p in ps:
            groups.setdefault(p.dt, []).append(p)
        for dt, gp in groups.items():
            tmp = [S.empty(p.shape, p.dt, tag='opt_tmp') for p in gp]
            del tmp


class Optim:
    """Generic optimizer with the state / temporary behaviour of the implementations used by the
    published runs:
      adamw          torch.optim.AdamW foreach: 2 states (param dtype) + _foreach_sqrt copy of the group
      adamw_fused    torch.optim.AdamW(fused=True): 2 states, no temporary
      adamw_hf       transformers.AdamW (2022): per-param loop, denom = exp_avg_sq.sqrt().add_(eps)
                     -> one temporary the size of the param being updated
      adamw8bit      bitsandbytes 8-bit blockwise Adam: uint8 m, v + fp32 absmax per 256 (tensors with
                     < 4096 elements keep fp32 states); update kernel in place
      paged_adamw8bit same states in CUDA managed memory: outside torch's counters (0 here)
      adafactor      transformers.Adafactor(beta1=None): factored row/col fp32 second moment for
                     matrices, full fp32 for vectors; per-param temporaries (grad**2+eps, update) of
                     the param's size in fp32
    in_backward: the step runs per parameter inside backward (torchtune optimizer_in_bwd): the
    gradient is consumed and freed at once, states are created lazily per parameter."""

    def __init__(self, S, params, kind='adamw', in_backward=False):
        self.S, self.params, self.kind, self.inb = S, params, kind, in_backward
        self.state = {}
        if in_backward:
            S.on_grad = self._step_one

    def _init(self, p):
        S, k = self.S, self.kind
        if id(p) in self.state:
            return
        st = []
        if k in ('adamw', 'adamw_fused', 'adamw_hf'):
            st = [S.empty(p.shape, p.dt, tag='opt_state'), S.empty(p.shape, p.dt, tag='opt_state')]
        elif k == 'adamw8bit':
            n = p.numel
            if n < 4096:
                st = [S.empty(p.shape, 'f32', tag='opt_state'), S.empty(p.shape, 'f32', tag='opt_state')]
            else:
                st = [S.empty((n,), 'u8', tag='opt_state'), S.empty((n,), 'u8', tag='opt_state'),
                      S.empty((n // 256 + 1,), 'f32', tag='opt_state'), S.empty((n // 256 + 1,), 'f32', tag='opt_state')]
        elif k == 'adafactor':
            if len(p.shape) == 2:
                st = [S.empty((p.shape[0],), 'f32', tag='opt_state'), S.empty((p.shape[1],), 'f32', tag='opt_state')]
            else:
                st = [S.empty(p.shape, 'f32', tag='opt_state')]
        elif k == 'sgd-momentum':
            st = [S.empty(p.shape, p.dt, tag='opt_state')]
        self.state[id(p)] = st

    def _temp_one(self, p):
        S, k = self.S, self.kind
        if k == 'adamw_hf':
            t = S.empty(p.shape, p.dt, tag='opt_tmp')
            del t
        elif k == 'adafactor':
            t1 = S.empty(p.shape, 'f32', tag='opt_tmp')
            t2 = S.empty(p.shape, 'f32', tag='opt_tmp')
            del t1, t2

    def _step_one(self, p, g):
        self._init(p)
        self._temp_one(p)
        if self.kind == 'adamw':
            t = self.S.empty(p.shape, p.dt, tag='opt_tmp')
            del t

    def step(self):
        if self.inb:
            return
        S = self.S
        ps = [p for p in self.params if p.grad is not None]
        for p in ps:
            self._init(p)
        if self.kind == 'adamw':
            groups = {}
            for p in ps:
                groups.setdefault(p.dt, []).append(p)
            for dt, gp in groups.items():
                tmp = [S.empty(p.shape, p.dt, tag='opt_tmp') for p in gp]
                del tmp
        else:
            for p in ps:
                self._temp_one(p)


class SGD:
    """torch.optim.SGD foreach: no momentum -> _foreach_add_(params, grads, alpha=-lr) in place;
    momentum -> first step: buf = torch.clone(grad).detach() per param, then in-place."""

    def __init__(self, S, params, momentum=0.0):
        self.S, self.params, self.momentum, self.bufs = S, params, momentum, None

    def step(self):
        if self.momentum and self.bufs is None:
            self.bufs = [self.S.empty(p.shape, p.dt, tag='opt_state') for p in self.params if p.grad is not None]


def zero_grad(params):
    for p in params:
        p.grad = None
