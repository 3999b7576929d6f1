"""Architecture description built from a Hugging Face config.json dict.

Every tensor of the model is listed (name, element count, role) exactly as transformers 5.x
builds it, so weights are a sum over tensors (each rounded to the allocator's 512-byte block).
Per-layer shape facts used by the activation model live on the Arch object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30


def r512(n: int) -> int:
    """PyTorch caching allocator rounds every request up to a multiple of 512 bytes (kMinBlockSize)."""
    return max(512, (n + 511) // 512 * 512)


@dataclass
class Tensor:
    name: str
    numel: int
    role: str          # 'linear' (nn.Linear weight, LoRA-targetable), 'bias', 'norm', 'embed', 'lm_head', 'expert', 'router', 'buffer', 'other'
    module: str = ''   # leaf module short name for LoRA targeting (q_proj, ...)
    d_in: int = 0
    d_out: int = 0
    fp32: bool = False  # buffer kept in fp32 regardless of model dtype


@dataclass
class Arch:
    family: str            # llama | gemma2 | gemma3 | gpt2 | bert | moe
    model_type: str
    L: int
    h: int
    a: int
    n_kv: int
    d: int
    I: int
    V: int
    tied: bool
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False          # qwen3 / gemma3 per-head RMSNorm on q and k
    norms_per_layer: int = 2       # gemma2/3: 4
    norm_kind: str = 'rms'         # rms | layer (gpt2/bert, LayerNorm with bias)
    act: str = 'silu'              # silu (SwiGLU), gelu_tanh (GeGLU gemma), gelu_new (gpt2 plain MLP), gelu (bert)
    gated: bool = True
    attn_softcap: float | None = None
    final_softcap: float | None = None
    sliding_window: int | None = None
    layer_types: list = field(default_factory=list)   # 'full' | 'sliding' per layer
    # MoE
    n_experts: int = 0
    top_k: int = 0
    I_e: int = 0
    n_pos: int = 0                 # learned positions (gpt2/bert)
    tensors: list = field(default_factory=list)

    @property
    def h_q(self):
        return self.a * self.d

    @property
    def h_kv(self):
        return self.n_kv * self.d

    def n_params(self):
        return sum(t.numel for t in self.tensors if t.role != 'buffer')

    def weight_bytes(self, beta: int) -> int:
        tot = 0
        for t in self.tensors:
            tot += r512(t.numel * (4 if t.fp32 else beta))
        return tot

    def linears(self):
        return [t for t in self.tensors if t.role in ('linear', 'lm_head')]


def _get(cfg, *keys, default=None):
    for k in keys:
        if k in cfg and cfg[k] is not None:
            return cfg[k]
    return default


def build_arch(cfg: dict) -> Arch:
    mt = cfg.get('model_type')
    if mt is None:
        archs = cfg.get('architectures') or ['']
        a0 = archs[0].lower()
        mt = 'gpt2' if 'gpt2' in a0 else ('llama' if 'llama' in a0 else a0)
    if mt in ('gpt2',):
        return _gpt2(cfg)
    if mt == 'gpt_bigcode':
        return _gpt2(cfg, bigcode=True)
    if mt == 'bert':
        return _bert(cfg)
    return _decoder(cfg, mt)


def _decoder(cfg, mt) -> Arch:
    h = cfg['hidden_size']
    a = cfg['num_attention_heads']
    n_kv = _get(cfg, 'num_key_value_heads', default=a)
    d = _get(cfg, 'head_dim', default=h // a)
    L = cfg['num_hidden_layers']
    V = cfg['vocab_size']
    I = cfg.get('intermediate_size', 4 * h)
    fam = 'llama'
    tied_default = False
    norms = 2
    qk_norm = False
    act = 'silu'
    qkv_bias = bool(cfg.get('attention_bias', False))
    o_bias = qkv_bias
    if mt == 'qwen2':
        qkv_bias, o_bias = True, False
    if mt in ('qwen3', 'qwen3_moe'):
        qk_norm = True
    if mt == 'gemma2':
        fam, tied_default, norms, act = 'gemma2', True, 4, 'gelu_tanh'
    if mt in ('gemma3_text', 'gemma3'):
        fam, tied_default, norms, act, qk_norm = 'gemma3', True, 4, 'gelu_tanh', True
    if mt == 'gemma':
        fam, tied_default, act = 'gemma', True, 'gelu_tanh'
    tied = bool(cfg.get('tie_word_embeddings', tied_default))
    ar = Arch(family=fam, model_type=mt, L=L, h=h, a=a, n_kv=n_kv, d=d, I=I, V=V, tied=tied,
              qkv_bias=qkv_bias, o_bias=o_bias, mlp_bias=bool(cfg.get('mlp_bias', False)),
              qk_norm=qk_norm, norms_per_layer=norms, act=act,
              attn_softcap=cfg.get('attn_logit_softcapping') if fam == 'gemma2' else None,
              final_softcap=cfg.get('final_logit_softcapping') if fam in ('gemma2', 'gemma3') else None)
    # sliding-window layer types (transformers 5 `layer_types`)
    sw = cfg.get('sliding_window')
    lt = cfg.get('layer_types')
    if lt:
        ar.layer_types = ['sliding' if 'sliding' in x else 'full' for x in lt]
    elif fam == 'gemma2':
        ar.layer_types = ['sliding' if (i + 1) % 2 else 'full' for i in range(L)]
    elif fam == 'gemma3':
        pat = cfg.get('sliding_window_pattern', 6)
        ar.layer_types = ['sliding' if (i + 1) % pat else 'full' for i in range(L)]
    elif mt == 'mistral' and sw:
        ar.layer_types = ['sliding'] * L
    elif mt in ('qwen2', 'qwen3', 'qwen3_moe') and cfg.get('use_sliding_window') and sw:
        mwl = cfg.get('max_window_layers', L)
        ar.layer_types = ['sliding' if i >= mwl else 'full' for i in range(L)]
    else:
        ar.layer_types = ['full'] * L
    ar.sliding_window = sw if any(t == 'sliding' for t in ar.layer_types) else None
    # MoE
    if mt == 'qwen3_moe':
        ar.family = 'moe'
        ar.n_experts = cfg['num_experts']
        ar.top_k = cfg['num_experts_per_tok']
        ar.I_e = cfg['moe_intermediate_size']
    T = ar.tensors
    T.append(Tensor('embed_tokens', V * h, 'embed'))
    for i in range(L):
        p = f'layers.{i}.'
        T.append(Tensor(p + 'q_proj', h * a * d, 'linear', 'q_proj', h, a * d))
        T.append(Tensor(p + 'k_proj', h * n_kv * d, 'linear', 'k_proj', h, n_kv * d))
        T.append(Tensor(p + 'v_proj', h * n_kv * d, 'linear', 'v_proj', h, n_kv * d))
        T.append(Tensor(p + 'o_proj', a * d * h, 'linear', 'o_proj', a * d, h))
        if ar.qkv_bias:
            T += [Tensor(p + 'q_bias', a * d, 'bias'), Tensor(p + 'k_bias', n_kv * d, 'bias'), Tensor(p + 'v_bias', n_kv * d, 'bias')]
        if ar.o_bias:
            T.append(Tensor(p + 'o_bias', h, 'bias'))
        if qk_norm:
            T += [Tensor(p + 'q_norm', d, 'norm'), Tensor(p + 'k_norm', d, 'norm')]
        for j in range(norms):
            T.append(Tensor(p + f'norm{j}', h, 'norm'))
        if ar.family == 'moe':
            E, Ie = ar.n_experts, ar.I_e
            T.append(Tensor(p + 'router', E * h, 'router', 'gate', h, E))
            # transformers 5 stores experts fused as 3-D parameters (not nn.Linear)
            T.append(Tensor(p + 'experts.gate_up_proj', E * 2 * Ie * h, 'expert'))
            T.append(Tensor(p + 'experts.down_proj', E * Ie * h, 'expert'))
        else:
            T.append(Tensor(p + 'gate_proj', h * I, 'linear', 'gate_proj', h, I))
            T.append(Tensor(p + 'up_proj', h * I, 'linear', 'up_proj', h, I))
            T.append(Tensor(p + 'down_proj', I * h, 'linear', 'down_proj', I, h))
            if ar.mlp_bias:
                T += [Tensor(p + 'gate_bias', I, 'bias'), Tensor(p + 'up_bias', I, 'bias'), Tensor(p + 'down_bias', h, 'bias')]
    T.append(Tensor('norm', h, 'norm'))
    if not tied:
        T.append(Tensor('lm_head', V * h, 'lm_head', 'lm_head', h, V))
    # buffers: RoPE inv_freq (fp32, d/2) -- gemma3 has a local and a global rotary module
    n_rope = 2 if fam == 'gemma3' else 1
    for k in range(n_rope):
        T.append(Tensor(f'rotary{k}.inv_freq', d // 2, 'buffer', fp32=True))
    if fam in ('gemma3',):
        T.append(Tensor('embed_scale', 1, 'buffer', fp32=True))
    return ar


def _gpt2(cfg, bigcode=False) -> Arch:
    h = _get(cfg, 'n_embd', 'hidden_size')
    L = _get(cfg, 'n_layer', 'num_hidden_layers')
    a = _get(cfg, 'n_head', 'num_attention_heads')
    V = cfg['vocab_size']
    P = _get(cfg, 'n_positions', 'max_position_embeddings', default=1024)
    I = _get(cfg, 'n_inner', default=None) or 4 * h
    d = h // a
    n_kv = 1 if (bigcode and cfg.get('multi_query', True)) else a
    ar = Arch(family='gpt2', model_type='gpt_bigcode' if bigcode else 'gpt2', L=L, h=h, a=a, n_kv=n_kv, d=d, I=I, V=V,
              tied=True, qkv_bias=True, o_bias=True, mlp_bias=True, norms_per_layer=2, norm_kind='layer',
              act='gelu_new', gated=False, n_pos=P)
    ar.layer_types = ['full'] * L
    T = ar.tensors
    T += [Tensor('wte', V * h, 'embed'), Tensor('wpe', P * h, 'embed')]
    qkv_out = h + 2 * n_kv * d
    for i in range(L):
        p = f'h.{i}.'
        T += [Tensor(p + 'ln_1.w', h, 'norm'), Tensor(p + 'ln_1.b', h, 'norm'),
              Tensor(p + 'c_attn', h * qkv_out, 'linear', 'c_attn', h, qkv_out), Tensor(p + 'c_attn.b', qkv_out, 'bias'),
              Tensor(p + 'attn.c_proj', h * h, 'linear', 'c_proj', h, h), Tensor(p + 'attn.c_proj.b', h, 'bias'),
              Tensor(p + 'ln_2.w', h, 'norm'), Tensor(p + 'ln_2.b', h, 'norm'),
              Tensor(p + 'c_fc', h * I, 'linear', 'c_fc', h, I), Tensor(p + 'c_fc.b', I, 'bias'),
              Tensor(p + 'mlp.c_proj', I * h, 'linear', 'c_proj', I, h), Tensor(p + 'mlp.c_proj.b', h, 'bias')]
    T += [Tensor('ln_f.w', h, 'norm'), Tensor('ln_f.b', h, 'norm')]
    return ar


def _bert(cfg) -> Arch:
    """BertForSequenceClassification (the HF single-GPU page): encoder + pooler + 2-way classifier."""
    h, L, a = cfg['hidden_size'], cfg['num_hidden_layers'], cfg['num_attention_heads']
    I, V = cfg['intermediate_size'], cfg['vocab_size']
    P = cfg.get('max_position_embeddings', 512)
    ar = Arch(family='bert', model_type='bert', L=L, h=h, a=a, n_kv=a, d=h // a, I=I, V=V, tied=False,
              qkv_bias=True, o_bias=True, mlp_bias=True, norm_kind='layer', act='gelu', gated=False, n_pos=P)
    ar.layer_types = ['full'] * L
    T = ar.tensors
    T += [Tensor('word_emb', V * h, 'embed'), Tensor('pos_emb', P * h, 'embed'),
          Tensor('type_emb', cfg.get('type_vocab_size', 2) * h, 'embed'), Tensor('emb_ln.w', h, 'norm'), Tensor('emb_ln.b', h, 'norm')]
    for i in range(L):
        p = f'layer.{i}.'
        for m in ('query', 'key', 'value', 'attn_out'):
            T += [Tensor(p + m, h * h, 'linear', m, h, h), Tensor(p + m + '.b', h, 'bias')]
        T += [Tensor(p + 'ln1.w', h, 'norm'), Tensor(p + 'ln1.b', h, 'norm'),
              Tensor(p + 'intermediate', h * I, 'linear', 'intermediate', h, I), Tensor(p + 'intermediate.b', I, 'bias'),
              Tensor(p + 'output', I * h, 'linear', 'output', I, h), Tensor(p + 'output.b', h, 'bias'),
              Tensor(p + 'ln2.w', h, 'norm'), Tensor(p + 'ln2.b', h, 'norm')]
    T += [Tensor('pooler', h * h, 'linear', 'pooler', h, h), Tensor('pooler.b', h, 'bias'),
          Tensor('classifier', 2 * h, 'linear', 'classifier', h, 2), Tensor('classifier.b', 2, 'bias')]
    # position_ids / token_type_ids buffers (int64, 512 each)
    T += [Tensor('position_ids', P * 2, 'buffer', fp32=True), Tensor('token_type_ids', P * 2, 'buffer', fp32=True)]
    return ar
