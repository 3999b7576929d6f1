"""Reference model of llama.cpp memory: GGUF weights (per tensor, quant mixes, host/GPU split),
KV cache, compute buffer (graph-allocator simulation) and output buffer.

No dependencies. See SPEC.md for the formulas and their sources.
Part 1: types and weights.  Part 2: KV cache.  Part 3: compute buffer (graph + ggml-alloc simulation).
"""
import math

# ---------------------------------------------------------------------------------------------
# ggml types: name -> (block size, bytes per block)   [ggml/src/ggml.c type_traits, ggml-common.h]
# ---------------------------------------------------------------------------------------------
GGML_TYPES = {
    'F32': (1, 4), 'F16': (1, 2), 'BF16': (1, 2), 'F64': (1, 8),
    'I8': (1, 1), 'I16': (1, 2), 'I32': (1, 4), 'I64': (1, 8),
    'Q4_0': (32, 18), 'Q4_1': (32, 20), 'Q5_0': (32, 22), 'Q5_1': (32, 24), 'Q8_0': (32, 34), 'Q8_1': (32, 36),
    'Q2_K': (256, 84), 'Q3_K': (256, 110), 'Q4_K': (256, 144), 'Q5_K': (256, 176), 'Q6_K': (256, 210), 'Q8_K': (256, 292),
    'IQ2_XXS': (256, 66), 'IQ2_XS': (256, 74), 'IQ3_XXS': (256, 98), 'IQ1_S': (256, 50), 'IQ4_NL': (32, 18),
    'IQ3_S': (256, 110), 'IQ2_S': (256, 82), 'IQ4_XS': (256, 136), 'IQ1_M': (256, 56),
    'TQ1_0': (256, 54), 'TQ2_0': (256, 66), 'MXFP4': (32, 17), 'NVFP4': (64, 36), 'Q1_0': (128, 18), 'Q2_0': (64, 18),
}
QUANTIZED = {t for t, (b, _) in GGML_TYPES.items() if b > 1}


def row_size(t, ne0):
    """ggml_row_size: bytes of one row of ne0 elements."""
    b, s = GGML_TYPES[t.upper()]
    if ne0 % b:
        raise ValueError('row of %d not a multiple of block %d for %s' % (ne0, b, t))
    return ne0 // b * s


def nbytes(t, ne):
    n = row_size(t, ne[0])
    for x in ne[1:]:
        n *= x
    return n


def pad(x, a):
    return (x + a - 1) // a * a


MiB = 1048576.0

# ---------------------------------------------------------------------------------------------
# hyper-parameters from a HF config.json (the case files inline one)
# ---------------------------------------------------------------------------------------------
ARCH_OF = {
    'LlamaForCausalLM': 'llama', 'MistralForCausalLM': 'llama', 'Qwen2ForCausalLM': 'qwen2',
    'GPTNeoXForCausalLM': 'gptneox',
}


def hparams(cfg):
    arch = None
    for a in cfg.get('architectures', []):
        arch = ARCH_OF.get(a, arch)
    if arch is None:
        arch = {'llama': 'llama', 'mistral': 'llama', 'qwen2': 'qwen2', 'gpt_neox': 'gptneox'}.get(cfg.get('model_type'), 'llama')
    n_embd = cfg['hidden_size']
    n_head = cfg['num_attention_heads']
    n_head_kv = cfg.get('num_key_value_heads') or n_head
    head_dim = cfg.get('head_dim') or n_embd // n_head
    hp = dict(
        arch=arch, n_embd=n_embd, n_layer=cfg['num_hidden_layers'], n_head=n_head, n_head_kv=n_head_kv,
        head_dim=head_dim, n_ff=cfg['intermediate_size'], n_vocab=cfg['vocab_size'],
        tied=bool(cfg.get('tie_word_embeddings', arch == 'qwen2' and False)),
        n_ctx_train=cfg.get('max_position_embeddings', 2048),
        rope_theta=cfg.get('rope_theta', 10000.0),
        rope_freqs=bool((cfg.get('rope_scaling') or {}).get('rope_type') == 'llama3'),
        sliding_window=cfg.get('sliding_window') if cfg.get('use_sliding_window', arch == 'llama') else None,
        layer_types=cfg.get('layer_types'), swa_pattern=cfg.get('sliding_window_pattern'),
    )
    if arch == 'gptneox':
        # GPTNeoXForCausalLM defaults (transformers): untied embed_out, rotary_pct 0.25, parallel residual
        hp['tied'] = bool(cfg.get('tie_word_embeddings', False))
        hp['n_rot'] = int(head_dim * cfg.get('rotary_pct', 0.25))
        hp['sliding_window'] = None
    else:
        hp['n_rot'] = head_dim
    if arch == 'qwen2':
        hp['tied'] = bool(cfg.get('tie_word_embeddings', False))
        hp['sliding_window'] = None  # llama.cpp's qwen2 graph has no SWA
    if arch == 'llama':
        hp['sliding_window'] = None   # llama.cpp's llama graph has no SWA (Mistral-7B-v0.1's window is ignored)
    return hp


# ---------------------------------------------------------------------------------------------
# GGUF tensor list per architecture (names and ne[] exactly as llama.cpp's LLM_TN / load_tensors)
# ---------------------------------------------------------------------------------------------
def gguf_tensors(hp):
    """list of dicts: name, ne (list, ne[0] = row length), layer (-1 input, n_layer = output, i = block i)"""
    E, L, V, F = hp['n_embd'], hp['n_layer'], hp['n_vocab'], hp['n_ff']
    q = hp['n_head'] * hp['head_dim']
    kv = hp['n_head_kv'] * hp['head_dim']
    arch = hp['arch']
    T = []

    def add(name, ne, layer):
        T.append(dict(name=name, ne=list(ne), layer=layer))

    add('token_embd.weight', [E, V], -1)
    if arch == 'gptneox':
        add('output_norm.weight', [E], L); add('output_norm.bias', [E], L)
    else:
        add('output_norm.weight', [E], L)
    if not hp['tied']:
        add('output.weight', [E, V], L)
    if hp.get('rope_freqs'):
        # Llama-3.1+ rope scaling: one [n_rot/2] F32 tensor in the file (llama.cpp duplicates it per layer, 128-256 B)
        add('rope_freqs.weight', [hp['n_rot'] // 2], 0)
    for i in range(L):
        p = 'blk.%d.' % i
        if arch == 'gptneox':
            add(p + 'attn_norm.weight', [E], i); add(p + 'attn_norm.bias', [E], i)
            add(p + 'attn_qkv.weight', [E, q + 2 * kv], i); add(p + 'attn_qkv.bias', [q + 2 * kv], i)
            add(p + 'attn_output.weight', [q, E], i); add(p + 'attn_output.bias', [E], i)
            add(p + 'ffn_norm.weight', [E], i); add(p + 'ffn_norm.bias', [E], i)
            add(p + 'ffn_up.weight', [E, F], i); add(p + 'ffn_up.bias', [F], i)
            add(p + 'ffn_down.weight', [F, E], i); add(p + 'ffn_down.bias', [E], i)
        else:
            add(p + 'attn_norm.weight', [E], i)
            add(p + 'attn_q.weight', [E, q], i)
            add(p + 'attn_k.weight', [E, kv], i)
            add(p + 'attn_v.weight', [E, kv], i)
            if arch == 'qwen2':
                add(p + 'attn_q.bias', [q], i); add(p + 'attn_k.bias', [kv], i); add(p + 'attn_v.bias', [kv], i)
            add(p + 'attn_output.weight', [q, E], i)
            add(p + 'ffn_norm.weight', [E], i)
            add(p + 'ffn_gate.weight', [E, F], i)
            add(p + 'ffn_down.weight', [F, E], i)
            add(p + 'ffn_up.weight', [E, F], i)
    return T


def category(name):
    """llama-quant.cpp tensor_get_category"""
    if name == 'output.weight':
        return 'OUTPUT'
    if name in ('token_embd.weight', 'per_layer_token_embd.weight'):
        return 'TOKEN_EMBD'
    for key, cat in (('attn_qkv.weight', 'ATTENTION_QKV'), ('attn_kv_b.weight', 'ATTENTION_KV_B'),
                     ('attn_v.weight', 'ATTENTION_V'), ('attn_k.weight', 'ATTENTION_K'), ('attn_q.weight', 'ATTENTION_Q'),
                     ('attn_output.weight', 'ATTENTION_OUTPUT'), ('ffn_up', 'FFN_UP'), ('ffn_gate', 'FFN_GATE'),
                     ('ffn_down', 'FFN_DOWN')):
        if key in name:
            return cat
    return 'OTHER'


# llama_ftype_get_default_type
FTYPE_DEFAULT = {
    'Q4_0': 'Q4_0', 'Q4_1': 'Q4_1', 'Q5_0': 'Q5_0', 'Q5_1': 'Q5_1', 'Q8_0': 'Q8_0', 'F16': 'F16', 'BF16': 'BF16', 'F32': 'F32',
    'Q2_K': 'Q2_K', 'Q2_K_S': 'Q2_K', 'Q3_K_S': 'Q3_K', 'Q3_K_M': 'Q3_K', 'Q3_K_L': 'Q3_K',
    'Q4_K_S': 'Q4_K', 'Q4_K_M': 'Q4_K', 'Q5_K_S': 'Q5_K', 'Q5_K_M': 'Q5_K', 'Q6_K': 'Q6_K',
    'IQ2_XXS': 'IQ2_XXS', 'IQ2_XS': 'IQ2_XS', 'IQ2_S': 'IQ2_XS', 'IQ2_M': 'IQ2_S', 'IQ3_XXS': 'IQ3_XXS',
    'IQ3_XS': 'IQ3_S', 'IQ3_S': 'IQ3_S', 'IQ3_M': 'IQ3_S', 'IQ1_S': 'IQ1_S', 'IQ1_M': 'IQ1_M',
    'IQ4_NL': 'IQ4_NL', 'IQ4_XS': 'IQ4_XS', 'TQ1_0': 'TQ1_0', 'TQ2_0': 'TQ2_0', 'MXFP4_MOE': 'MXFP4',
}
ALIASES = {'Q2_K_M': 'Q2_K', 'Q3_K': 'Q3_K_M', 'Q4_K': 'Q4_K_M', 'Q5_K': 'Q5_K_M', 'FP16': 'F16', 'FP32': 'F32'}

FALLBACK = {  # llama-quant.cpp tensor_type_fallback (ne0 % block != 0)
    'IQ1_S': 'IQ4_NL', 'IQ1_M': 'IQ4_NL', 'IQ2_XXS': 'IQ4_NL', 'IQ2_XS': 'IQ4_NL', 'IQ2_S': 'IQ4_NL',
    'IQ3_XXS': 'IQ4_NL', 'IQ3_S': 'IQ4_NL', 'IQ4_XS': 'IQ4_NL',
    'Q2_0': 'Q4_0', 'Q2_K': 'Q4_0', 'Q3_K': 'Q4_0', 'TQ1_0': 'Q4_0', 'TQ2_0': 'Q4_0',
    'Q4_K': 'Q5_0', 'Q5_K': 'Q5_1', 'Q6_K': 'Q8_0',
}


def use_more_bits(i, n):
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def quant_types(hp, ftype, qkv_rule='attn_v', has_imatrix=False, leave_output=False, pure=False):
    """name -> ggml type for every tensor of the GGUF (llama-quant.cpp llama_tensor_get_type).
    qkv_rule: 'attn_v'  = current master (category_is_attn_v() includes ATTENTION_QKV, so fused QKV follows attn_v rules)
              'legacy'  = older releases (e.g. b4823): fused attn_qkv has its own branch (Q3_K_M/L->Q4_K, Q4_K_M->Q5_K, Q5_K_M->Q6_K)"""
    ftype = ALIASES.get(ftype.upper(), ftype.upper())
    default = FTYPE_DEFAULT[ftype]
    tensors = gguf_tensors(hp)
    # tensors are visited in llama_model_loader::weights_map order: weight_name_comparer (layer number, then name)
    def key(t):
        return (t['layer'] if t['name'].startswith('blk.') else -1, t['name'])
    tensors = sorted(tensors, key=key)
    has_tied = not any(t['name'] == 'output.weight' for t in tensors)
    n_gqa = hp['n_head'] // hp['n_head_kv']
    n_expert = hp.get('n_expert', 0)
    # llama_model::load_hparams: llama 80 layers -> LLM_TYPE_70B if GQA (65B if MHA); qwen2 80 layers -> 70B
    is70b = hp['n_layer'] == 80 and (hp['arch'] == 'qwen2' or (hp['arch'] == 'llama' and hp['n_head'] != hp['n_head_kv']))
    arch = hp['arch']
    if qkv_rule == 'attn_v':
        attn_v_cats = ('ATTENTION_V', 'ATTENTION_QKV', 'ATTENTION_KV_B')
    else:
        attn_v_cats = ('ATTENTION_V',)
    n_attention_wv = sum(1 for t in tensors if category(t['name']) in ('ATTENTION_V', 'ATTENTION_QKV', 'ATTENTION_KV_B'))
    n_layer = hp['n_layer']
    st = dict(i_wv=0, i_down=0)
    out = {}
    for t in tensors:
        name, ne = t['name'], t['ne']
        cat = category(name)
        allows = (len(ne) >= 2 and name.endswith('weight') and '_norm.weight' not in name
                  and 'ffn_gate_inp.weight' not in name and not (leave_output and name == 'output.weight'))
        if not allows or not default in QUANTIZED:
            if not allows:
                out[name] = 'F32' if len(ne) < 2 else (default if default in ('F16', 'BF16', 'F32') else 'F16')
            else:
                out[name] = default
            continue
        nt = default
        if not pure:
            nt = _get_type_impl(nt, name, cat, ne, ftype, arch, n_gqa, n_expert, is70b, has_tied, attn_v_cats,
                                n_attention_wv, n_layer, st, has_imatrix, qkv_rule)
        # tensor_type_fallback
        if ne[0] % GGML_TYPES[nt][0]:
            fb = FALLBACK.get(nt)
            if fb is None:
                raise ValueError('no fallback for %s' % nt)
            nt = fb if ne[0] % GGML_TYPES[fb][0] == 0 else 'F16'
        out[name] = nt
    return out


def _get_type_impl(nt, name, cat, ne, ftype, arch, n_gqa, n_expert, is70b, has_tied, attn_v_cats,
                   n_wv, n_layer, st, has_imatrix, qkv_rule):
    IQ_LOW = ('IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M')
    if cat == 'OUTPUT' or (has_tied and cat == 'TOKEN_EMBD'):
        nx = ne[0]
        if ftype == 'MXFP4_MOE':
            return 'Q8_0'
        if arch == 'falcon' or nx % GGML_TYPES[nt][0] != 0:
            return 'Q8_0'
        if ftype in ('IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ2_S', 'IQ2_M', 'IQ1_M'):
            return 'Q5_K'
        if nt != 'Q8_0':
            return 'Q6_K'
        return nt
    if ftype == 'MXFP4_MOE':
        return 'MXFP4' if len(ne) > 2 and ne[2] > 1 else 'Q8_0'
    if cat == 'TOKEN_EMBD':
        if ftype in ('IQ2_XXS', 'IQ2_XS', 'IQ1_S', 'IQ1_M'):
            return 'Q2_K'
        if ftype in ('IQ2_S', 'IQ2_M', 'IQ3_XXS'):
            return 'IQ3_S'
        if ftype in ('TQ1_0', 'TQ2_0', 'Q2_0'):
            return 'Q4_K'
        return nt
    if ftype in IQ_LOW:
        if cat in attn_v_cats:
            if n_gqa >= 4 or n_expert >= 4:
                nt = 'Q4_K'
            else:
                nt = 'IQ3_S' if ftype in ('IQ2_S', 'IQ2_M') else 'Q2_K'
            st['i_wv'] += 1
        elif n_expert == 8 and cat == 'ATTENTION_K':
            nt = 'Q4_K'
        elif cat == 'FFN_DOWN':
            if st['i_down'] < n_layer // 8:
                nt = 'IQ3_S' if ftype in ('IQ2_S', 'IQ2_M') else 'Q2_K'
            st['i_down'] += 1
        elif cat == 'ATTENTION_OUTPUT':
            if n_expert == 8:
                nt = 'Q5_K'
            elif ftype in ('IQ1_S', 'IQ1_M'):
                nt = 'IQ2_XXS'
            elif ftype in ('IQ2_S', 'IQ2_M'):
                nt = 'IQ3_S'
        return nt
    if cat in attn_v_cats:
        i = st['i_wv']
        if ftype == 'Q2_K':
            nt = 'Q4_K' if n_gqa >= 4 else 'Q3_K'
        elif ftype == 'Q2_K_S' and n_gqa >= 4:
            nt = 'Q4_K'
        elif ftype == 'IQ3_XXS':
            nt = 'Q4_K' if n_gqa >= 4 else ('IQ3_S' if not has_imatrix else 'IQ3_XXS')
        elif ftype in ('IQ3_XS', 'IQ3_S') and n_gqa >= 4:
            nt = 'Q4_K'
        elif ftype == 'IQ3_M':
            nt = 'Q4_K'
        elif ftype == 'Q3_K_M':
            nt = 'Q5_K' if i < 2 else 'Q4_K'
        elif ftype == 'Q3_K_L':
            nt = 'Q5_K'
        elif ftype in ('IQ4_NL', 'IQ4_XS') and n_gqa >= 4:
            nt = 'Q5_K'
        elif ftype in ('Q4_K_M', 'Q5_K_M') and use_more_bits(i, n_wv):
            nt = 'Q6_K'
        elif ftype == 'Q4_K_S' and i < 4:
            nt = 'Q5_K'
        if is70b and nt in ('Q3_K', 'Q4_K'):
            nt = 'Q5_K'
        if n_expert == 8:
            nt = 'Q8_0'
        st['i_wv'] += 1
        return nt
    if cat == 'ATTENTION_K':
        if n_expert == 8:
            return 'Q8_0'
        if ftype == 'IQ3_XS':
            return 'IQ3_XXS'
        if ftype == 'IQ3_XXS':
            return 'IQ2_S'
        return nt
    if cat == 'ATTENTION_Q':
        if ftype == 'IQ3_XS':
            return 'IQ3_XXS'
        if ftype == 'IQ3_XXS':
            return 'IQ2_S'
        return nt
    if cat == 'FFN_DOWN':
        # n_expert <= 1: the counter i_ffn_down is the layer index (tensors are visited in layer order)
        i, n = st['i_down'], n_layer
        if ftype == 'Q2_K':
            nt = 'Q3_K'
        elif ftype == 'Q2_K_S':
            if i < n // 8:
                nt = 'Q4_K'
        elif ftype == 'IQ3_XXS' and not has_imatrix:
            nt = 'Q4_K' if i < n // 8 else 'Q3_K'
        elif ftype == 'Q3_K_M':
            nt = 'Q5_K' if i < n // 16 else ('Q4_K' if arch != 'falcon' or use_more_bits(i, n) else 'Q3_K')
        elif ftype == 'IQ3_M' and (i < n // 8 or (n_expert == 8 and use_more_bits(i, n))):
            nt = 'Q4_K'
        elif ftype == 'Q3_K_L':
            nt = 'Q4_K' if arch == 'falcon' else 'Q5_K'
        elif ftype == 'Q4_K_M':
            if arch == 'falcon':
                nt = 'Q6_K' if i < n // 16 else ('Q5_K' if use_more_bits(i, n) else 'Q4_K')
            elif use_more_bits(i, n):
                nt = 'Q6_K'
        elif i < n // 8 and ftype in ('IQ4_NL', 'IQ4_XS') and not has_imatrix:
            nt = 'Q5_K'
        elif ftype == 'Q5_K_M' and use_more_bits(i, n):
            nt = 'Q6_K'
        elif ftype == 'Q4_K_S' and arch != 'falcon' and i < n // 8:
            nt = 'Q5_K'
        elif ftype in ('Q4_0', 'Q5_0') and has_imatrix and i < n // 8:
            nt = 'Q4_1' if ftype == 'Q4_0' else 'Q5_1'
        st['i_down'] += 1
        return nt
    if cat == 'ATTENTION_OUTPUT':
        if arch != 'falcon':
            if n_expert == 8:
                if ftype in ('Q2_K', 'IQ3_XS', 'IQ3_XXS', 'Q3_K_S', 'Q3_K_M', 'IQ4_NL', 'Q4_K_S', 'Q4_K_M', 'IQ3_S', 'IQ3_M', 'IQ4_XS'):
                    nt = 'Q5_K'
            else:
                nt = {'Q2_K': 'Q3_K', 'IQ3_XXS': 'IQ3_S', 'Q3_K_M': 'Q4_K', 'Q3_K_L': 'Q5_K', 'IQ3_M': 'Q4_K'}.get(ftype, nt)
        elif ftype == 'Q3_K_L':
            nt = 'Q4_K'
        return nt
    if cat == 'ATTENTION_QKV':  # reachable only with qkv_rule='legacy'
        if ftype in ('Q3_K_M', 'Q3_K_L', 'IQ3_M'):
            return 'Q4_K'
        if ftype == 'Q4_K_M':
            return 'Q5_K'
        if ftype == 'Q5_K_M':
            return 'Q6_K'
        return nt
    if cat in ('FFN_GATE', 'FFN_UP'):
        i = int(name.split('.')[1])
        if ftype == 'IQ3_XS' and n_layer // 8 <= i < 7 * n_layer // 8:
            nt = 'IQ3_XXS'
        return nt
    return nt


def weights(hp, ftype, n_gpu_layers=0, output_on_gpu_rule='current', qkv_rule='attn_v', gpu_align=128, host_align=32,
            cuda_row_padding=True, tensor_types=None):
    """Weight bytes per buffer.
    n_gpu_layers: -ngl.  output_on_gpu_rule: 'current' = i_gpu_start = max(n_layer+1-ngl, 0) (output layer offloaded first);
                  'legacy' (b4823-era) = i_gpu_start = max(n_layer-ngl, 0), output offloaded only when ngl > n_layer.
    Returns dict(host=..., gpu=..., total=..., per_tensor=[...], types={type: count})."""
    types = tensor_types or quant_types(hp, ftype, qkv_rule=qkv_rule)
    L = hp['n_layer']
    ngl = n_gpu_layers
    if output_on_gpu_rule == 'current':
        i_gpu_start = max(L + 1 - ngl, 0)
    else:
        i_gpu_start = max(L - ngl, 0)
    act = min(ngl, L + 1)

    def on_gpu(il):
        return ngl > 0 and i_gpu_start <= il < i_gpu_start + act

    host = gpu = 0
    per = []
    counts = {}
    for t in gguf_tensors(hp):
        ty = types[t['name']]
        nb = nbytes(ty, t['ne'])
        counts[ty] = counts.get(ty, 0) + 1
        # token_embd (input layer) always stays on the CPU [llama-model.cpp load_tensors: dev_input = cpu]
        g = t['layer'] >= 0 and on_gpu(t['layer'])
        if g:
            sz = nb
            # ggml-cuda get_alloc_size: quantized rows padded to MATRIX_ROW_PADDING = 512 elements
            if cuda_row_padding and ty in QUANTIZED and t['ne'][0] % 512:
                sz += row_size(ty, 512 - t['ne'][0] % 512)
            gpu += pad(sz, gpu_align)
        else:
            host += pad(nb, host_align)
        per.append((t['name'], ty, t['ne'], nb, 'gpu' if g else 'host'))
    if hp['tied'] and on_gpu(L):
        # no output.weight in the file: the output layer gets a duplicate of token_embd on the GPU
        ty = types['token_embd.weight']
        sz = nbytes(ty, [hp['n_embd'], hp['n_vocab']])
        if cuda_row_padding and ty in QUANTIZED and hp['n_embd'] % 512:
            sz += row_size(ty, 512 - hp['n_embd'] % 512)
        gpu += pad(sz, gpu_align)
        per.append(('output.weight (duplicate of token_embd)', ty, [hp['n_embd'], hp['n_vocab']], sz, 'gpu'))
    return dict(host=host, gpu=gpu, total=host + gpu, per_tensor=per, types=counts)


# ---------------------------------------------------------------------------------------------
# GGUF metadata for the synthetic test files (tools/gguf_writer.py)
# ---------------------------------------------------------------------------------------------
def gguf_layout(spec):
    hp = hparams(spec['config'])
    a = hp['arch']
    kv = [('general.architecture', 'STRING', a), ('general.name', 'STRING', 'synthetic'),
          ('%s.context_length' % a, 'U32', hp['n_ctx_train']), ('%s.embedding_length' % a, 'U32', hp['n_embd']),
          ('%s.block_count' % a, 'U32', hp['n_layer']), ('%s.feed_forward_length' % a, 'U32', hp['n_ff']),
          ('%s.attention.head_count' % a, 'U32', hp['n_head']), ('%s.attention.head_count_kv' % a, 'U32', hp['n_head_kv']),
          ('%s.rope.freq_base' % a, 'F32', float(hp['rope_theta'])), ('%s.rope.dimension_count' % a, 'U32', hp['n_rot'])]
    if hp['head_dim'] != hp['n_embd'] // hp['n_head']:
        kv += [('%s.attention.key_length' % a, 'U32', hp['head_dim']), ('%s.attention.value_length' % a, 'U32', hp['head_dim'])]
    if a == 'gptneox':
        kv += [('%s.attention.layer_norm_epsilon' % a, 'F32', 1e-5), ('%s.use_parallel_residual' % a, 'BOOL', True)]
    else:
        kv += [('%s.attention.layer_norm_rms_epsilon' % a, 'F32', 1e-5)]
    if hp.get('sliding_window') and a == 'llama':
        kv += [('%s.attention.sliding_window' % a, 'U32', hp['sliding_window'])]
    ftype = spec.get('ftype', 'F16')
    types = quant_types(hp, ftype, qkv_rule=spec.get('qkv_rule', 'attn_v'))
    if ftype.upper() == 'F16':
        types = {k: ('F16' if v not in ('F32',) else v) for k, v in types.items()}
    tensors = [(t['name'], types[t['name']], t['ne']) for t in gguf_tensors(hp)]
    return kv, tensors


# =============================================================================================
# Part 2: KV cache
# =============================================================================================
def kv_cells(n_ctx, n_seq=1, kv_unified=None, pad_to=256):
    """Cells per stream and number of streams (llama-context.cpp ctor, current master since PR #17046).
    kv_unified defaults to (n_seq == 1) as in llama-completion/llama-server (-kvu off unless requested)."""
    if kv_unified is None:
        kv_unified = n_seq == 1
    n_ctx = pad(n_ctx, pad_to)
    if kv_unified:
        return n_ctx, 1
    n_ctx_seq = pad(n_ctx // n_seq, pad_to) if pad_to > 1 else n_ctx // n_seq
    return n_ctx_seq, n_seq


def swa_layers(hp):
    """Which layers use sliding-window attention (from HF layer_types / sliding_window_pattern). llama.cpp implements
    SWA only for some architectures (gemma2/3, gpt-oss, ...); its llama/qwen2 graphs treat every layer as full."""
    L = hp['n_layer']
    if not hp.get('sliding_window'):
        return [False] * L
    lt = hp.get('layer_types')
    if lt:
        return [t == 'sliding_attention' for t in lt]
    p = hp.get('swa_pattern') or 0
    if p:
        return [(il % p) < (p - 1) for il in range(L)]   # e.g. gemma3: 5 local : 1 global
    return [True] * L


def kv_cache_bytes(hp, n_ctx, type_k='F16', type_v=None, n_seq=1, kv_unified=None, n_layers=None, pad_to=256,
                   n_ubatch=512, swa_full=False):
    """K + V bytes: per layer K = row_size(type_k, n_embd_k_gqa) * kv_size * n_stream, same for V.
    Sliding-window layers (llama_kv_cache_iswa) get their own cache of
        size_swa = min(kv_size, PAD(n_swa * (unified ? n_seq_max : 1) + n_ubatch, 256))
    cells per stream (checked on the local c0c7e147 build: 11 gemma3-shaped runs); --swa-full gives kv_size."""
    type_v = type_v or type_k
    if kv_unified is None:
        kv_unified = n_seq == 1
    kv_size, n_stream = kv_cells(n_ctx, n_seq, kv_unified, pad_to)
    L = hp['n_layer'] if n_layers is None else n_layers
    e_k = hp['n_head_kv'] * hp['head_dim']
    e_v = hp['n_head_kv'] * hp['head_dim']
    swa = swa_layers(hp) if n_layers is None else [False] * L
    size_swa = kv_size
    if any(swa) and not swa_full:
        size_swa = min(kv_size, pad(hp['sliding_window'] * (n_seq if kv_unified else 1) + n_ubatch, pad_to))
    k = v = 0
    for il in range(L):
        cells = size_swa if swa[il] else kv_size
        k += row_size(type_k.upper(), e_k) * cells * n_stream
        v += row_size(type_v.upper(), e_v) * cells * n_stream
    return dict(k=k, v=v, total=k + v, kv_size=kv_size, n_stream=n_stream, kv_size_swa=size_swa if any(swa) else None)


def output_buffer_bytes(hp, n_outputs_max=1, embeddings=False):
    """llama_context::output_reserve: logits n_vocab*4 per output row (+ n_embd*4 when embeddings are requested).
    n_outputs_max = n_seq_max for plain generation (llama-completion / llama-server)."""
    return hp['n_vocab'] * 4 * n_outputs_max + (hp['n_embd'] * 4 * n_outputs_max if embeddings else 0)


# =============================================================================================
# Part 3: compute buffer = a simulation of ggml-alloc (ggml_gallocr) on the reserved worst-case graph
# =============================================================================================
INPLACE_OPS = {'FILL', 'SCALE', 'DIAG_MASK_ZERO', 'DIAG_MASK_INF', 'ADD', 'ADD_ID', 'ADD1', 'SUB', 'MUL', 'DIV', 'SQR', 'SQRT',
               'LOG', 'UNARY', 'ROPE', 'ROPE_BACK', 'SILU_BACK', 'RMS_NORM', 'RMS_NORM_BACK', 'CLAMP', 'SOFT_MAX', 'SOFT_MAX_BACK'}
VIEW_OPS = {'VIEW', 'RESHAPE', 'PERMUTE', 'TRANSPOSE'}
FLAG_INPUT, FLAG_OUTPUT = 1, 2
_CUR_IL = [-1]


class Tensor(object):
    __slots__ = ('name', 'op', 'type', 'ne', 'src', 'view_src', 'flags', 'external', 'view_offs', 'contig', 'il')

    def __init__(self, name, op, type_, ne, src=(), view_src=None, flags=0, external=False, view_offs=0, contig=True):
        self.il = _CUR_IL[0]   # layer the tensor was created in (-1: inputs, n_layer: output head)
        self.name, self.op, self.type, self.ne = name, op, type_, list(ne) + [1] * (4 - len(ne))
        self.src, self.view_src, self.flags, self.external = list(src), view_src, flags, external
        self.view_offs, self.contig = view_offs, contig

    def nbytes(self):
        return nbytes(self.type, self.ne)

    def __repr__(self):
        return '%s(%s %s %s)' % (self.name, self.op, self.type, self.ne)


class Graph(object):
    """ggml_cgraph built the way ggml_build_forward_expand does it: depth-first over src[0..], post-order."""

    def __init__(self):
        self.nodes, self.leafs, self.visited = [], [], set()

    def expand(self, t):
        stack = [(t, 0)]
        while stack:
            cur, i = stack.pop()
            if i == 0 and id(cur) in self.visited:
                continue
            if i == 0:
                self.visited.add(id(cur))
            if i < len(cur.src):
                stack.append((cur, i + 1))
                s = cur.src[i]
                if s is not None and id(s) not in self.visited:
                    stack.append((s, 0))
                continue
            if cur.op == 'NONE':
                self.leafs.append(cur)
            else:
                self.nodes.append(cur)
        return t


class DynAllocator(object):
    """ggml_dyn_tallocr: best-fit over free blocks (excluding the last), else the last block; merge on free."""

    def __init__(self, alignment):
        self.align = alignment
        self.blocks = [[0, 1 << 62]]  # sorted [offset, size]
        self.max_size = 0

    def alloc(self, size):
        size = pad(size, self.align)
        best, best_size = -1, None
        for i in range(len(self.blocks) - 1):
            b = self.blocks[i]
            if b[1] >= size and (best_size is None or b[1] <= best_size):
                best, best_size = i, b[1]
        if best == -1:
            best = len(self.blocks) - 1
        b = self.blocks[best]
        off = b[0]
        b[0] += size
        b[1] -= size
        if b[1] == 0:
            del self.blocks[best]
        self.max_size = max(self.max_size, off + size)
        return off

    def free(self, off, size):
        size = pad(size, self.align)
        bl = self.blocks
        for i, b in enumerate(bl):
            if b[0] + b[1] == off:
                b[1] += size
                if i + 1 < len(bl) and b[0] + b[1] == bl[i + 1][0]:
                    b[1] += bl[i + 1][1]
                    del bl[i + 1]
                return
            if off + size == b[0]:
                b[0] = off
                b[1] += size
                if i > 0 and bl[i - 1][0] + bl[i - 1][1] == b[0]:
                    bl[i - 1][1] += b[1]
                    del bl[i]
                return
        j = 0
        while j < len(bl) and bl[j][0] < off:
            j += 1
        bl.insert(j, [off, size])


def gallocr_run(graph, alignment=32, alloc_size=None, trace=None, buf_of=None, alignments=None):
    """ggml_gallocr_alloc_graph_impl (ggml-alloc.c). Returns (max_size of buffer 0, hash) or, with buf_of/alignments
    (one dynamic allocator per backend buffer), ({buffer: max_size}, hash)."""
    alloc_size = alloc_size or (lambda t: t.nbytes())
    multi = buf_of is not None
    buf_of = buf_of or (lambda t: 0)
    alignments = alignments or {0: alignment}
    A = dict((k, DynAllocator(a)) for k, a in alignments.items())
    H = {}

    def h(t):
        k = id(t)
        if k not in H:
            H[k] = dict(n_children=0, n_views=0, allocated=False, off=None, t=t, buf=None)
        return H[k]

    def allocate(t):
        hn = h(t)
        if t.external or hn['allocated'] or t.view_src is not None:
            return
        hn['allocated'] = True
        bid = buf_of(t)
        if t.op in INPLACE_OPS:
            for p in t.src:
                if p is None:
                    continue
                ph = h(p)
                if not ph['allocated']:          # ggml_gallocr_is_own: views and external tensors are never reused
                    continue
                if p.flags & FLAG_OUTPUT:
                    continue
                if p.type != t.type or p.ne != t.ne or not p.contig:
                    continue
                if ph['n_children'] == 1 and ph['n_views'] == 0:
                    hn['off'], hn['buf'] = ph['off'], ph['buf']
                    ph['allocated'] = False
                    a = A[ph['buf']]
                    ps, ns = pad(alloc_size(p), a.align), pad(alloc_size(t), a.align)
                    if ps > ns:
                        a.free(ph['off'] + ns, ps - ns)
                    if trace is not None:
                        trace.append((t.name, t.op, hn['off'], alloc_size(t), 'inplace:' + p.name))
                    return
        hn['buf'] = bid
        hn['off'] = A[bid].alloc(alloc_size(t))
        if trace is not None:
            trace.append((t.name, t.op, hn['off'], alloc_size(t), ''))

    def free(t):
        if t.flags & FLAG_OUTPUT:
            return
        hn = h(t)
        A[hn['buf']].free(hn['off'], alloc_size(t))
        hn['allocated'] = False

    for l in graph.leafs:
        allocate(l)
    for n in graph.nodes:
        if n.view_src is not None and n.op != 'NONE':
            h(n.view_src)['n_views'] += 1
        if n.flags & FLAG_INPUT:
            allocate(n)
        for s in n.src:
            if s is None:
                continue
            h(s)['n_children'] += 1
            if s.flags & FLAG_INPUT:
                allocate(s)
    for n in graph.nodes:
        for s in n.src:
            if s is not None:
                allocate(s)
        allocate(n)
        for p in n.src:
            if p is None:
                continue
            ph = h(p)
            ph['n_children'] -= 1
            if ph['n_children'] == 0 and ph['n_views'] == 0:
                if p.view_src is not None:
                    vh = h(p.view_src)
                    vh['n_views'] -= 1
                    if vh['n_views'] == 0 and vh['n_children'] == 0 and vh['allocated']:
                        free(p.view_src)
                elif ph['allocated']:
                    free(p)
    if multi:
        return dict((k, a.max_size) for k, a in A.items()), H
    return A[0].max_size, H


class _B(object):
    """Helpers that mirror the ggml ops used by llama.cpp graphs (shape + type + src + view semantics only)."""

    def __init__(self):
        self.g = Graph()
        self.n = 0

    def t(self, name, op, type_, ne, src=(), **kw):
        return Tensor(name, op, type_, ne, src, **kw)

    def leaf(self, name, type_, ne, external=False, inp=False):
        return Tensor(name, 'NONE', type_, ne, (), flags=FLAG_INPUT if inp else 0, external=external)

    def view(self, a, ne, name=None, op='VIEW', offs=0, contig=False):
        src = a.view_src if a.view_src is not None else a
        return Tensor(name or a.name + ' (view)', op, a.type, ne, [a], view_src=src, external=a.external,
                      view_offs=offs, contig=contig)

    def reshape(self, a, ne, name=None):
        return self.view(a, ne, name or a.name + ' (reshaped)', 'RESHAPE', contig=a.contig)

    def permute(self, a, ne, name=None):
        return self.view(a, ne, name or a.name + ' (permuted)', 'PERMUTE')

    def op(self, name, op, type_, ne, *src):
        return Tensor(name, op, type_, ne, src)


def build_graph(hp, n_tokens, n_kv, n_stream=1, fa=False, n_outputs=None, version='current', gguf_types=None,
                type_k='F16', type_v='F16'):
    """The worst-case graph that llama_context::graph_reserve builds (llama.cpp master ~ 71102a73 / c0c7e147).
    Supported: llama (and mistral), qwen2 (llama graph + q/k/v biases), gptneox (parallel residual, fused qkv)."""
    arch = hp['arch']
    E, L, V, F = hp['n_embd'], hp['n_layer'], hp['n_vocab'], hp['n_ff']
    H, HKV, D = hp['n_head'], hp['n_head_kv'], hp['head_dim']
    T = n_tokens
    n_outputs = T if n_outputs is None else n_outputs
    Ts = T // n_stream
    b = _B()
    g = b.g
    _CUR_IL[0] = -1
    wtypes = gguf_types or {}
    # the weight type matters only when a weight is copied into a compute buffer (partial offload)
    W = lambda name, ne: b.leaf(name, wtypes.get(name, 'F32' if len(ne) == 1 else 'F16'), ne, external=True)

    # --- inputs (llm_graph_context::build_inp_*) ---
    tok_embd = W('token_embd.weight', [E, V])
    inp_tokens = b.leaf('inp_tokens', 'I32', [T], inp=True)
    embd = b.op('embd', 'GET_ROWS', 'F32', [E, T], tok_embd, inp_tokens)
    g.expand(embd)
    if version == 'current':
        # PR #18550: build_inp_embd adds the vector-embedding input too (ggml_build_forward_select); it is a graph
        # input, allocated first and never freed.
        g.expand(b.leaf('inp_embd', 'F32', [E, T], inp=True))
    inpL = embd
    inp_pos = b.leaf('inp_pos', 'I32', [T], inp=True)
    k_idxs = b.leaf('k_idxs', 'I64', [T], inp=True)
    v_trans = not fa
    v_idxs = b.leaf('v_idxs', 'I64', [T * HKV * D] if v_trans else [T], inp=True)
    kq_mask = b.leaf('kq_mask', 'F16' if fa else 'F32', [n_kv, Ts, 1, n_stream], inp=True)
    out_ids = b.leaf('out_ids', 'I32', [n_outputs], inp=True)
    # PR #21038 (2026-04): Hadamard rotation of Q/K (and V, output) when the K (V) cache type is quantized and
    # head_dim % 64 == 0; K uses the largest power-of-2 block dividing head_dim, V a 64x64 block.
    rot_k = rot_v = None
    if version == 'current':
        if type_k.upper() in QUANTIZED and D % 64 == 0:
            nrot = 64
            while D % (nrot * 2) == 0:
                nrot *= 2
            rot_k = b.leaf('attn_inp_k_rot', 'F32', [nrot, nrot], inp=True)
        if type_v.upper() in QUANTIZED and D % 64 == 0:
            rot_v = b.leaf('attn_inp_v_rot', 'F32', [64, 64], inp=True)
    cache_k, cache_v = [], []
    for i in range(L):
        _CUR_IL[0] = i
        cache_k.append(b.leaf('cache_k_l%d' % i, type_k, [HKV * D, n_kv, n_stream], external=True))
        cache_v.append(b.leaf('cache_v_l%d' % i, type_v, [HKV * D, n_kv, n_stream], external=True))
    _CUR_IL[0] = -1

    def norm(x, il, w, bias=None, rms=True, name='norm'):
        n = b.op('norm-%d' % il if il >= 0 else 'norm', 'RMS_NORM' if rms else 'NORM', 'F32', x.ne, x)
        cur = b.op('%s-%d' % (name, il) if il >= 0 else name, 'MUL', 'F32', x.ne, n, w)
        if bias is not None:
            cur = b.op(cur.name + '_b', 'ADD', 'F32', x.ne, cur, bias)
        return cur

    def hadamard(cur, rot):
        # llama_mul_mat_hadamard: (cont|reshape)_2d -> mul_mat(rot, .) -> reshape_4d
        n = rot.ne[0]
        nel = cur.ne[0] * cur.ne[1] * cur.ne[2] * cur.ne[3]
        x = b.reshape(cur, [n, nel // n]) if cur.contig else b.op(cur.name + ' (cont)', 'CONT', 'F32', [n, nel // n], cur)
        x = b.op(cur.name + ' (rot)', 'MUL_MAT', 'F32', [n, nel // n], rot, x)
        return b.reshape(x, cur.ne)

    def attention(il, q, k, v, wo, bo=None):
        # build_attn (KV cache): expand q, v, k (k last "to enable rope fusion"), store K and V, then build_attn_mha
        if rot_k is not None:
            q = hadamard(q, rot_k)
            k = hadamard(k, rot_k)
        if rot_v is not None:
            v = hadamard(v, rot_v)
        g.expand(q); g.expand(v); g.expand(k)
        kv2 = b.view(k, [HKV * D, T], name=k.name + ' (view)') if not k.contig else b.reshape(k, [HKV * D, T])
        g.expand(b.t('cache_k_l%d (view)' % il, 'SET_ROWS', type_k, cache_k[il].ne, [kv2, k_idxs, cache_k[il]],
                     view_src=cache_k[il], external=True))
        if v_trans:
            v2 = b.reshape(v, [HKV * D, T]) if v.contig else b.op(v.name + ' (cont)', 'CONT', 'F32', [HKV * D, T], v)
            v3 = b.reshape(v2, [1, HKV * D * T])
            cvr = b.reshape(cache_v[il], [1, HKV * D * n_kv * n_stream])
            g.expand(b.t(cvr.name + ' (view)', 'SET_ROWS', type_v, cvr.ne, [v3, v_idxs, cvr], view_src=cache_v[il], external=True))
        else:
            v2 = b.view(v, [HKV * D, T])
            g.expand(b.t('cache_v_l%d (view)' % il, 'SET_ROWS', type_v, cache_v[il].ne, [v2, v_idxs, cache_v[il]],
                         view_src=cache_v[il], external=True))
        vv = b.permute(b.view(cache_v[il], [n_kv, HKV, D, n_stream]), [n_kv, D, HKV, n_stream])
        kk = b.permute(b.view(cache_k[il], [D, HKV, n_kv, n_stream]), [D, n_kv, HKV, n_stream])
        qq = b.permute(b.view(q, [D, H, Ts, n_stream]), [D, Ts, H, n_stream])
        if fa:
            o = b.op('fattn-%d' % il, 'FLASH_ATTN_EXT', 'F32', [D, H, Ts, n_stream], qq, kk, vv, kq_mask)
            cur = b.reshape(o, [D * H, T], name='kqv_out-%d' % il)
        else:
            kq = b.op('kq-%d' % il, 'MUL_MAT', 'F32', [n_kv, Ts, H, n_stream], kk, qq)
            sm = b.op('kq_soft_max-%d' % il, 'SOFT_MAX', 'F32', kq.ne, kq, kq_mask)
            kqv = b.op('kqv-%d' % il, 'MUL_MAT', 'F32', [D, Ts, H, n_stream], vv, sm)
            p = b.permute(kqv, [D, H, Ts, n_stream])
            cur = b.op('kqv_out-%d' % il, 'CONT', 'F32', [D * H, T], p)
        g.expand(cur)  # build_attn_mha ends with ggml_build_forward_expand(gf, cur): kqv_out is scheduled here
        if rot_v is not None:
            cur = hadamard(cur, rot_v)
        # the output projection is NOT expanded here: it is scheduled where the residual add visits it
        # (for GPT-NeoX's parallel residual this is after the FFN)
        cur = b.op('attn_out-%d' % il, 'MUL_MAT', 'F32', [E, T], wo, cur)
        if bo is not None:
            cur = b.op('attn_out_b-%d' % il, 'ADD', 'F32', [E, T], cur, bo)
        return cur

    for il in range(L):
        _CUR_IL[0] = il
        last = il == L - 1
        p = 'blk.%d.' % il
        if arch in ('llama', 'qwen2'):
            inpSA = inpL
            cur = norm(inpL, il, W(p + 'attn_norm.weight', [E]), name='attn_norm')
            q = b.op('Qcur-%d' % il, 'MUL_MAT', 'F32', [H * D, T], W(p + 'attn_q.weight', [E, H * D]), cur)
            k = b.op('Kcur-%d' % il, 'MUL_MAT', 'F32', [HKV * D, T], W(p + 'attn_k.weight', [E, HKV * D]), cur)
            v = b.op('Vcur-%d' % il, 'MUL_MAT', 'F32', [HKV * D, T], W(p + 'attn_v.weight', [E, HKV * D]), cur)
            if arch == 'qwen2':
                q = b.op('Qcur_b-%d' % il, 'ADD', 'F32', q.ne, q, W(p + 'attn_q.bias', [H * D]))
                k = b.op('Kcur_b-%d' % il, 'ADD', 'F32', k.ne, k, W(p + 'attn_k.bias', [HKV * D]))
                v = b.op('Vcur_b-%d' % il, 'ADD', 'F32', v.ne, v, W(p + 'attn_v.bias', [HKV * D]))
            q = b.reshape(q, [D, H, T]); k = b.reshape(k, [D, HKV, T]); v = b.reshape(v, [D, HKV, T])
            q = b.op('Qrope-%d' % il, 'ROPE', 'F32', q.ne, q, inp_pos)
            k = b.op('Krope-%d' % il, 'ROPE', 'F32', k.ne, k, inp_pos)
            cur = attention(il, q, k, v, W(p + 'attn_output.weight', [H * D, E]))
            if last:
                cur = b.op('attn_out_rows', 'GET_ROWS', 'F32', [E, n_outputs], cur, out_ids)
                inpSA = b.op('inpSA_rows', 'GET_ROWS', 'F32', [E, n_outputs], inpSA, out_ids)
            To = n_outputs if last else T
            ffn_inp = b.op('ffn_inp-%d' % il, 'ADD', 'F32', [E, To], cur, inpSA)
            cur = norm(ffn_inp, il, W(p + 'ffn_norm.weight', [E]), name='ffn_norm')
            gate = b.op('ffn_gate-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_gate.weight', [E, F]), cur)
            up = b.op('ffn_up-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_up.weight', [E, F]), cur)
            act = b.op('ffn_swiglu-%d' % il, 'GLU', 'F32', [F, To], gate, up)
            cur = b.op('ffn_out-%d' % il, 'MUL_MAT', 'F32', [E, To], W(p + 'ffn_down.weight', [F, E]), act)
            cur = b.op('l_out-%d' % il, 'ADD', 'F32', [E, To], cur, ffn_inp)
            inpL = cur
        elif arch == 'gptneox':
            cur = norm(inpL, il, W(p + 'attn_norm.weight', [E]), W(p + 'attn_norm.bias', [E]), rms=False, name='attn_norm')
            qkv = b.op('wqkv-%d' % il, 'MUL_MAT', 'F32', [H * D + 2 * HKV * D, T], W(p + 'attn_qkv.weight', [E, H * D + 2 * HKV * D]), cur)
            qkv = b.op('bqkv-%d' % il, 'ADD', 'F32', qkv.ne, qkv, W(p + 'attn_qkv.bias', [H * D + 2 * HKV * D]))
            q = b.view(qkv, [D, H, T], name='Qcur-%d' % il)
            k = b.view(qkv, [D, HKV, T], name='Kcur-%d' % il, offs=4 * H * D)
            v = b.view(qkv, [D, HKV, T], name='Vcur-%d' % il, offs=4 * (H + HKV) * D)
            q = b.op('Qrope-%d' % il, 'ROPE', 'F32', [D, H, T], q, inp_pos)
            k = b.op('Krope-%d' % il, 'ROPE', 'F32', [D, HKV, T], k, inp_pos)
            cur = attention(il, q, k, v, W(p + 'attn_output.weight', [H * D, E]), W(p + 'attn_output.bias', [E]))
            if last:
                cur = b.op('attn_out_rows', 'GET_ROWS', 'F32', [E, n_outputs], cur, out_ids)
                inpL = b.op('inpL_rows', 'GET_ROWS', 'F32', [E, n_outputs], inpL, out_ids)
            To = n_outputs if last else T
            attn_out = cur
            cur = norm(inpL, il, W(p + 'ffn_norm.weight', [E]), W(p + 'ffn_norm.bias', [E]), rms=False, name='ffn_norm')
            cur = b.op('ffn_up-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_up.weight', [E, F]), cur)
            cur = b.op('ffn_up_b-%d' % il, 'ADD', 'F32', [F, To], cur, W(p + 'ffn_up.bias', [F]))
            cur = b.op('ffn_gelu-%d' % il, 'UNARY', 'F32', [F, To], cur)
            cur = b.op('ffn_down-%d' % il, 'MUL_MAT', 'F32', [E, To], W(p + 'ffn_down.weight', [F, E]), cur)
            cur = b.op('ffn_down_b-%d' % il, 'ADD', 'F32', [E, To], cur, W(p + 'ffn_down.bias', [E]))
            cur = b.op('ffn_out-%d' % il, 'ADD', 'F32', [E, To], cur, inpL)
            cur = b.op('l_out-%d' % il, 'ADD', 'F32', [E, To], cur, attn_out)
            inpL = cur
        else:
            raise ValueError('arch %s not supported by the graph model' % arch)

    _CUR_IL[0] = L
    if arch == 'gptneox':
        cur = norm(inpL, -1, W('output_norm.weight', [E]), W('output_norm.bias', [E]), rms=False, name='result_norm')
    else:
        cur = norm(inpL, -1, W('output_norm.weight', [E]), name='result_norm')
    cur.flags |= FLAG_OUTPUT
    # tied embeddings: llama.cpp creates output.weight as a TENSOR_DUPLICATED copy of token_embd in the output layer's
    # buffer, so for scheduling it is a weight of the output layer
    out_w = W('output.weight', [E, V]) if not hp['tied'] else b.leaf('output.weight', tok_embd.type, [E, V], external=True)
    logits = b.op('result_output', 'MUL_MAT', 'F32', [V, n_outputs], out_w, cur)
    logits.flags |= FLAG_OUTPUT
    g.expand(logits)
    _CUR_IL[0] = -1
    return g


def compute_buffer(hp, n_ctx, n_ubatch, n_batch=None, fa=False, n_seq=1, kv_unified=None, type_k='F16', type_v=None,
                   alignment=32, version='current', trace=None):
    """CPU compute buffer = max over the graphs llama_context::sched_reserve reserves (pp: n_tokens = n_outputs =
    min(n_ubatch, n_batch, n_ctx) with a full KV cache; tg: 1 token), each sized by the ggml-alloc simulation."""
    type_v = type_v or type_k
    n_batch = n_batch or n_ubatch
    kv_size, n_stream = kv_cells(n_ctx, n_seq, kv_unified)
    n_ctx_p = kv_size * n_stream
    n_batch_eff = min(n_ctx_p, n_batch)
    ub = min(n_batch_eff, n_ubatch)
    sizes = []
    # llama_context::sched_reserve: worst case n_tokens = n_ubatch with n_seqs = n_seq_max, all tokens output;
    # graph_reserve rounds n_tokens up to a multiple of n_seqs (n_outputs stays n_ubatch); the tg graph has
    # n_tokens = n_outputs = n_seqs.
    n_seqs = max(1, n_seq)
    for n_tok, n_out in ((-(-ub // n_seqs) * n_seqs, ub), (n_seqs, n_seqs)):
        g = build_graph(hp, n_tok, kv_size, n_stream=n_stream, fa=fa, n_outputs=n_out, version=version,
                        type_k=type_k, type_v=type_v)
        size, _ = gallocr_run(g, alignment, trace=trace if n_out == ub else None)
        sizes.append(size)
    return max(sizes)


def build_graph_legacy(hp, n_tokens, n_kv, fa=False, n_outputs=None, kq_mask_pad=64, wtypes=None, type_k='F16', type_v='F16'):
    """Worst-case graph of llama.cpp before the Mar-2025 graph refactor (e.g. b4823, the ggml-ci V100 runs):
    llm_build_context::build_llama / build_gptneox with llm_build_kv (ggml_cpy into KV views), an F32 KQ mask of
    [n_kv, GGML_PAD(n_tokens, GGML_KQ_MASK_PAD)] cast to F16 for flash attention, no inp_embd, no k/v index inputs.
    Written from the b4823-era source as recalled; validated only through the pythia CUDA figures (see SPEC.md)."""
    arch = hp['arch']
    E, L, V, F = hp['n_embd'], hp['n_layer'], hp['n_vocab'], hp['n_ff']
    H, HKV, D = hp['n_head'], hp['n_head_kv'], hp['head_dim']
    T = n_tokens
    n_outputs = T if n_outputs is None else n_outputs
    b = _B(); g = b.g
    _CUR_IL[0] = -1
    wtypes = wtypes or {}
    W = lambda name, ne: b.leaf(name, wtypes.get(name, 'F32' if len(ne) == 1 else 'F16'), ne, external=True)
    tok_embd = W('token_embd.weight', [E, V])
    inp_tokens = b.leaf('inp_tokens', 'I32', [T], inp=True)
    inpL = b.op('inp_embd', 'GET_ROWS', 'F32', [E, T], tok_embd, inp_tokens)
    inp_pos = b.leaf('inp_pos', 'I32', [T], inp=True)
    mask = b.leaf('KQ_mask', 'F32', [n_kv, pad(T, kq_mask_pad)], inp=True)
    if fa:
        mask = b.op('KQ_mask (copy)', 'CPY', 'F16', mask.ne, mask)
    out_ids = b.leaf('inp_out_ids', 'I32', [n_outputs], inp=True)
    cache_k, cache_v = [], []
    for i in range(L):
        _CUR_IL[0] = i
        cache_k.append(b.leaf('cache_k_l%d' % i, type_k, [HKV * D * n_kv], external=True))
        cache_v.append(b.leaf('cache_v_l%d' % i, type_v, [HKV * D * n_kv], external=True))
    _CUR_IL[0] = -1

    def norm(x, il, w, bias=None, rms=True, name='norm'):
        n = b.op('norm-%d' % il, 'RMS_NORM' if rms else 'NORM', 'F32', x.ne, x)
        cur = b.op('%s-%d' % (name, il), 'MUL', 'F32', x.ne, n, w)
        if bias is not None:
            cur = b.op(cur.name + '_b', 'ADD', 'F32', x.ne, cur, bias)
        return cur

    def kv(il, q, k, v, wo, bo):
        g.expand(q); g.expand(k); g.expand(v)
        kview = b.view(cache_k[il], [HKV * D * T], name='k_cache_view-%d' % il)
        g.expand(Tensor('k_cpy-%d' % il, 'CPY', 'F16', kview.ne, [k, kview], view_src=cache_k[il], external=True))
        if fa:
            vt = v
            vview = b.view(cache_v[il], [HKV * D * T], name='v_cache_view-%d' % il)
        else:
            vt = b.view(v, [T, HKV * D], name=v.name + ' (transposed)', op='TRANSPOSE')
            vview = b.view(cache_v[il], [T, HKV * D], name='v_cache_view-%d' % il)
        g.expand(Tensor('v_cpy-%d' % il, 'CPY', 'F16', vview.ne, [vt, vview], view_src=cache_v[il], external=True))
        qp = b.permute(q, [D, T, H])
        kk = b.view(cache_k[il], [D, n_kv, HKV], name='k-%d' % il)
        if fa:
            vv = b.view(cache_v[il], [D, n_kv, HKV], name='v-%d' % il)
            o = b.op('fattn-%d' % il, 'FLASH_ATTN_EXT', 'F32', [D, H, T], qp, kk, vv, mask)
            cur = b.reshape(o, [D * H, T])
        else:
            kq = b.op('kq-%d' % il, 'MUL_MAT', 'F32', [n_kv, T, H], kk, qp)
            sm = b.op('kq_soft_max_ext-%d' % il, 'SOFT_MAX', 'F32', kq.ne, kq, mask)
            vv = b.view(cache_v[il], [n_kv, D, HKV], name='v-%d' % il)
            kqv = b.op('kqv-%d' % il, 'MUL_MAT', 'F32', [D, T, H], vv, sm)
            cur = b.op('kqv_merged_cont-%d' % il, 'CONT', 'F32', [D * H, T], b.permute(kqv, [D, H, T]))
        g.expand(cur)
        cur = b.op('kqv_wo-%d' % il, 'MUL_MAT', 'F32', [E, T], wo, cur)
        if bo is not None:
            cur = b.op('kqv_out-%d' % il, 'ADD', 'F32', [E, T], cur, bo)
        return cur

    for il in range(L):
        _CUR_IL[0] = il
        last = il == L - 1
        To = n_outputs if last else T
        p = 'blk.%d.' % il
        if arch in ('llama', 'qwen2'):
            inpSA = inpL
            cur = norm(inpL, il, W(p + 'attn_norm.weight', [E]), name='attn_norm')
            q = b.op('Qcur-%d' % il, 'MUL_MAT', 'F32', [H * D, T], W(p + 'attn_q.weight', [E, H * D]), cur)
            k = b.op('Kcur-%d' % il, 'MUL_MAT', 'F32', [HKV * D, T], W(p + 'attn_k.weight', [E, HKV * D]), cur)
            v = b.op('Vcur-%d' % il, 'MUL_MAT', 'F32', [HKV * D, T], W(p + 'attn_v.weight', [E, HKV * D]), cur)
            if arch == 'qwen2':
                q = b.op('Qcur_b-%d' % il, 'ADD', 'F32', q.ne, q, W(p + 'attn_q.bias', [H * D]))
                k = b.op('Kcur_b-%d' % il, 'ADD', 'F32', k.ne, k, W(p + 'attn_k.bias', [HKV * D]))
                v = b.op('Vcur_b-%d' % il, 'ADD', 'F32', v.ne, v, W(p + 'attn_v.bias', [HKV * D]))
            q = b.op('Qrope-%d' % il, 'ROPE', 'F32', [D, H, T], b.reshape(q, [D, H, T]), inp_pos)
            k = b.op('Krope-%d' % il, 'ROPE', 'F32', [D, HKV, T], b.reshape(k, [D, HKV, T]), inp_pos)
            cur = kv(il, q, k, v, W(p + 'attn_output.weight', [H * D, E]), None)
            if last:
                cur = b.op('attn_rows', 'GET_ROWS', 'F32', [E, To], cur, out_ids)
                inpSA = b.op('inpSA_rows', 'GET_ROWS', 'F32', [E, To], inpSA, out_ids)
            ffn_inp = b.op('ffn_inp-%d' % il, 'ADD', 'F32', [E, To], cur, inpSA)
            cur = norm(ffn_inp, il, W(p + 'ffn_norm.weight', [E]), name='ffn_norm')
            gate_in = cur
            up = b.op('ffn_up-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_up.weight', [E, F]), gate_in)
            gate = b.op('ffn_gate-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_gate.weight', [E, F]), gate_in)
            gate = b.op('ffn_silu-%d' % il, 'UNARY', 'F32', [F, To], gate)
            act = b.op('ffn_gate_par-%d' % il, 'MUL', 'F32', [F, To], gate, up)
            cur = b.op('ffn_out-%d' % il, 'MUL_MAT', 'F32', [E, To], W(p + 'ffn_down.weight', [F, E]), act)
            cur = b.op('l_out-%d' % il, 'ADD', 'F32', [E, To], cur, ffn_inp)
            inpL = cur
        else:  # gptneox
            cur = norm(inpL, il, W(p + 'attn_norm.weight', [E]), W(p + 'attn_norm.bias', [E]), rms=False, name='attn_norm')
            n3 = H * D + 2 * HKV * D
            cur = b.op('wqkv-%d' % il, 'MUL_MAT', 'F32', [n3, T], W(p + 'attn_qkv.weight', [E, n3]), cur)
            cur = b.op('bqkv-%d' % il, 'ADD', 'F32', [n3, T], cur, W(p + 'attn_qkv.bias', [n3]))
            q = b.op('Qcur-%d' % il, 'CONT', 'F32', [H * D, T], b.view(cur, [H * D, T]))
            k = b.op('Kcur-%d' % il, 'CONT', 'F32', [HKV * D, T], b.view(cur, [HKV * D, T], offs=4 * H * D))
            v = b.op('Vcur-%d' % il, 'CONT', 'F32', [HKV * D, T], b.view(cur, [HKV * D, T], offs=4 * (H + HKV) * D))
            q = b.op('Qrope-%d' % il, 'ROPE', 'F32', [D, H, T], b.reshape(q, [D, H, T]), inp_pos)
            k = b.op('Krope-%d' % il, 'ROPE', 'F32', [D, HKV, T], b.reshape(k, [D, HKV, T]), inp_pos)
            cur = kv(il, q, k, v, W(p + 'attn_output.weight', [H * D, E]), W(p + 'attn_output.bias', [E]))
            if last:
                cur = b.op('attn_rows', 'GET_ROWS', 'F32', [E, To], cur, out_ids)
                inpL = b.op('inpL_rows', 'GET_ROWS', 'F32', [E, To], inpL, out_ids)
            attn_out = cur
            cur = norm(inpL, il, W(p + 'ffn_norm.weight', [E]), W(p + 'ffn_norm.bias', [E]), rms=False, name='ffn_norm')
            cur = b.op('ffn_up-%d' % il, 'MUL_MAT', 'F32', [F, To], W(p + 'ffn_up.weight', [E, F]), cur)
            cur = b.op('ffn_up_b-%d' % il, 'ADD', 'F32', [F, To], cur, W(p + 'ffn_up.bias', [F]))
            cur = b.op('ffn_gelu-%d' % il, 'UNARY', 'F32', [F, To], cur)
            cur = b.op('ffn_down-%d' % il, 'MUL_MAT', 'F32', [E, To], W(p + 'ffn_down.weight', [F, E]), cur)
            cur = b.op('ffn_down_b-%d' % il, 'ADD', 'F32', [E, To], cur, W(p + 'ffn_down.bias', [E]))
            cur = b.op('ffn_out-%d' % il, 'ADD', 'F32', [E, To], cur, inpL)
            cur = b.op('l_out-%d' % il, 'ADD', 'F32', [E, To], cur, attn_out)
            inpL = cur
    _CUR_IL[0] = L
    if arch == 'gptneox':
        cur = norm(inpL, -1, W('output_norm.weight', [E]), W('output_norm.bias', [E]), rms=False, name='result_norm')
    else:
        cur = norm(inpL, -1, W('output_norm.weight', [E]), name='result_norm')
    cur.flags |= FLAG_OUTPUT
    # tied embeddings: llama.cpp creates output.weight as a TENSOR_DUPLICATED copy of token_embd in the output layer's
    # buffer, so for scheduling it is a weight of the output layer
    out_w = W('output.weight', [E, V]) if not hp['tied'] else b.leaf('output.weight', tok_embd.type, [E, V], external=True)
    logits = b.op('result_output', 'MUL_MAT', 'F32', [V, n_outputs], out_w, cur)
    logits.flags |= FLAG_OUTPUT
    g.expand(logits)
    _CUR_IL[0] = -1
    return g


VIEW_LIKE = {'VIEW', 'RESHAPE', 'PERMUTE', 'TRANSPOSE', 'NONE'}


def _batch_size(t):
    """ggml-cuda get_op_batch_size (op offload needs >= 32)."""
    if t.op == 'GET_ROWS':
        return 0
    if t.op == 'MUL_MAT':
        return t.ne[1]
    return t.ne[1] * t.ne[2] * t.ne[3]


def sched_simulate(graph, n_layer, dev_of_layer, out_dev, n_gpus, op_offload=True, n_copies=1, full_offload=True,
                   gpu_align=128, cpu_align=32, cuda_row_padding=True, min_batch=32, not_host=()):
    """ggml_backend_sched_split_graph + ggml_gallocr_reserve_n for layer placement over GPUs and the CPU.
    Backends 0..n_gpus-1 are GPUs, n_gpus is the CPU (lowest priority). dev_of_layer(il) -> backend of layer il's
    weights and KV cache; out_dev: backend of the output layer; token_embd is always on the CPU.
    Pass 1: pre-allocated destinations (KV-cache views) -> their buffer; graph inputs -> CPU; ops with a weight ->
    the weight's backend, or GPU 0 when the weight is in host memory and the op has >= 32 rows (op offload, not for
    GET_ROWS); 'norm-il' is pinned to layer il's device when fully offloaded. Pass 2: GPU assignments expand down,
    then up, then any assignment down/up. Views follow their source. Splits: runs of one backend; an offloaded weight
    starts a new split. Each split gets a copy of every tensor it reads from another backend (once per backend);
    with n_copies > 1 (pipeline parallelism) the copies, n_copies of each plus n_copies of every graph input, are
    allocated first and never freed. Returns {backend: compute buffer bytes}."""
    CPU = n_gpus
    nodes = graph.nodes
    be = {}

    def leaf_backend(t):
        if t.op != 'NONE':
            return be.get(id(t))
        if t.flags & FLAG_INPUT or not t.external:
            return CPU
        il = t.il
        if t.name.startswith('token_embd'):
            return CPU
        if il is None or il < 0:
            return CPU
        if il >= n_layer:
            return out_dev
        return dev_of_layer(il)

    def is_weight(t):
        return t.external and t.op == 'NONE' and not t.name.startswith('cache_')

    # pass 1
    for n in nodes:
        if n.view_src is not None and n.view_src.external:
            be[id(n)] = leaf_backend(n.view_src)
            continue
        if n.flags & FLAG_INPUT:
            be[id(n)] = CPU
            continue
        if full_offload and n.name == 'norm-%d' % n.il and 0 <= n.il < n_layer and n.op in ('NORM', 'RMS_NORM'):
            be[id(n)] = dev_of_layer(n.il)
            continue
        for s in n.src:
            if s is not None and is_weight(s):
                b = leaf_backend(s)
                # op offload needs the weight in a host buffer: repacked (CPU_REPACK / CPU_AARCH64) weights are not
                if (b == CPU and op_offload and n_gpus > 0 and n.op != 'GET_ROWS' and _batch_size(n) >= min_batch
                        and s.name not in not_host):
                    b = 0
                be[id(n)] = b
                break
    # pass 2: expand
    nv = [n for n in nodes if n.op not in VIEW_LIKE]
    for seq, gpu_only in ((nv, True), (nv[::-1], True), (nv, False), (nv[::-1], False)):
        cur = None
        for n in seq:
            b = be.get(id(n))
            if b is not None:
                cur = None if (gpu_only and b == CPU) else b
            elif cur is not None:
                be[id(n)] = cur
    for n in nodes:
        if id(n) not in be and n.op not in VIEW_LIKE:
            be[id(n)] = CPU
    # pass 4: views follow their source
    for n in nodes:
        if n.op in VIEW_LIKE and id(n) not in be:
            src = n.view_src if n.view_src is not None else n.src[0]
            be[id(n)] = leaf_backend(src) if src.op == 'NONE' else be.get(id(src), CPU)

    def backend_of(t):
        return be[id(t)] if t.op != 'NONE' or id(t) in be else leaf_backend(t)

    # pass 5: splits and copies
    copies = {}           # (id(src), backend) -> copy tensor
    graph_inputs = []
    splits = []           # list of (backend, [inputs], [nodes])
    cur_b, cur = None, None
    for n in nodes:
        b = backend_of(n)
        if n.op in VIEW_LIKE and cur is not None:
            cur[2].append(n)
            continue
        new_split = cur is None or b != cur_b
        if not new_split and cur[1]:
            for s in n.src:
                if s is not None and is_weight(s) and leaf_backend(s) != cur_b:
                    new_split = True
                    break
        if new_split:
            cur_b = b
            cur = (b, [], [])
            splits.append(cur)
        new_src = []
        for s in n.src:
            if s is None:
                new_src.append(s)
                continue
            sb = backend_of(s)
            if n_copies > 1 and s.op == 'NONE' and s.flags & FLAG_INPUT and id(s) not in [id(x) for x in graph_inputs]:
                graph_inputs.append(s)
            if sb != b:
                key = (id(s), b)
                if key not in copies:
                    c = Tensor('B%d#%s' % (b, s.name), 'NONE', s.type, s.ne, [])
                    c.contig = True
                    if n_copies > 1:
                        c.flags = FLAG_INPUT | FLAG_OUTPUT
                    copies[key] = c
                    be[id(c)] = b
                    cur[1].append((s, c))
                s = copies[key]
            new_src.append(s)
        n.src = new_src
        cur[2].append(n)
    # graph copy
    gc = Graph()
    extra_leafs = []
    if n_copies > 1:
        for s in graph_inputs:
            for c in range(n_copies):
                t = s if c == 0 else Tensor('%s#%d' % (s.name, c), 'NONE', s.type, s.ne, [], flags=FLAG_INPUT | FLAG_OUTPUT)
                be[id(t)] = CPU
                extra_leafs.append(t)
        for b, inputs, _ in splits:
            for s, c in inputs:
                for k in range(n_copies):
                    t = c if k == 0 else Tensor('%s#%d' % (c.name, k), 'NONE', c.type, c.ne, [], flags=FLAG_INPUT | FLAG_OUTPUT)
                    be[id(t)] = b
                    extra_leafs.append(t)
    gc.leafs = extra_leafs + [l for l in graph.leafs if not l.external]
    for b, inputs, ns in splits:
        for s, c in inputs:
            dep = Tensor('dep#' + s.name, 'NONE', s.type, s.ne, [s], view_src=s)
            be[id(dep)] = backend_of(s)
            gc.nodes.append(dep)
            gc.nodes.append(c)
        gc.nodes.extend(ns)

    def alloc_size(t):
        n = t.nbytes()
        b = be.get(id(t), CPU)
        if cuda_row_padding and b != CPU and t.type in QUANTIZED and t.ne[0] % 512:
            n += row_size(t.type, 512 - t.ne[0] % 512)
        return n

    aligns = dict((i, gpu_align) for i in range(n_gpus))
    aligns[CPU] = cpu_align
    sizes, _ = gallocr_run(gc, buf_of=lambda t: be.get(id(t), CPU), alignments=aligns, alloc_size=alloc_size)
    return sizes


# =============================================================================================
# Host-side weight buffers: CPU repack (extra buffer type) and the mmap'ed range
# =============================================================================================
REPACK_TYPES_X86 = ('Q4_0', 'Q4_K', 'IQ4_NL')   # observed on AVX2/AVX512 at 71102a73 (Q8_0 and Q6_K were not repacked)


def host_weight_buffers(hp, types, mmap=True, repack=True, repack_types=REPACK_TYPES_X86, host_tensors=None):
    """CPU model buffers: with repack, every 2-D MUL_MAT weight of a repackable type (not token_embd, which only feeds
    GET_ROWS) goes to CPU_REPACK (an interleaved copy). Without mmap the rest is one 'CPU' buffer; with mmap the
    'CPU_Mapped' buffer spans the file range from the first to the last non-repacked tensor (repacked tensors inside
    that range are still mapped, i.e. counted twice). File order = llama-quantize order: non-layer tensors first, then
    blk.0 .. blk.N, names sorted within a group (weight_name_comparer). Each tensor's data is 32-byte aligned."""
    ts = gguf_tensors(hp)
    if host_tensors is not None:
        ts = [t for t in ts if t['name'] in host_tensors]
    ts = sorted(ts, key=lambda t: (t['layer'] if t['name'].startswith('blk.') else -1, t['name']))
    off, ranges, rp = 0, [], 0
    for t in ts:
        nb = nbytes(types[t['name']], t['ne'])
        is_rp = (repack and types[t['name']] in repack_types and len(t['ne']) == 2 and t['name'] != 'token_embd.weight'
                 and t['ne'][1] % 8 == 0)
        ranges.append((off, off + nb, is_rp))
        rp += nb if is_rp else 0
        off = pad(off + nb, 32)
    plain = [r for r in ranges if not r[2]]
    if mmap:
        mapped = (plain[-1][1] - plain[0][0]) if plain else 0
    else:
        mapped = sum(pad(b - a, 32) for a, b, _ in plain)
    return dict(mapped_or_cpu=mapped, repack=rp, total=mapped + rp, repacked=[t['name'] for t, r in zip(ts, ranges) if r[2]])


# =============================================================================================
# Top level
# =============================================================================================
VERSIONS = {
    # graph: llama-graph.cpp era; kv_pad: cache padding; quant_qkv: fused-QKV quant rule; ngl: output-layer rule
    'current': dict(graph='current', kv_pad=lambda fa: 256, qkv_rule='attn_v', ngl='current'),   # 71102a73 / c0c7e147 (2026)
    'legacy': dict(graph='legacy', kv_pad=lambda fa: 256 if fa else 32, qkv_rule='legacy', ngl='legacy'),  # b4823 era (<= Mar 2025)
}


def estimate(cfg, weights_type='f16', n_ctx=4096, n_batch=2048, n_ubatch=512, n_seq=1, flash_attn=False,
             type_k='F16', type_v=None, kv_unified=None, n_gpu_layers=0, gpus=0, layer_split=None, n_copies=None,
             version='current', mmap=True, repack=True):
    """Memory of one llama.cpp context. gpus = number of GPUs (0: CPU only). layer_split: layers per GPU (default:
    even split of the offloaded layers). n_copies: pipeline-parallel copies (default 4 when gpus > 1 and everything is
    offloaded, as GGML_SCHED_MAX_COPIES; else 1). Returns bytes per buffer."""
    V_ = VERSIONS[version]
    type_v = type_v or type_k
    hp = hparams(cfg) if 'arch' not in cfg else cfg
    L = hp['n_layer']
    types = quant_types(hp, weights_type, qkv_rule=V_['qkv_rule'])
    if type_k.upper() in QUANTIZED and hp['head_dim'] % GGML_TYPES[type_k.upper()][0]:
        raise ValueError('K cache type %s needs head_dim %% %d == 0' % (type_k, GGML_TYPES[type_k.upper()][0]))
    if type_v.upper() in QUANTIZED and not flash_attn:
        raise ValueError('a quantized V cache needs flash attention')
    out = {}
    # --- layer placement ---
    if gpus == 0:
        n_gpu_layers = 0
    if V_['ngl'] == 'current':
        i_gpu_start = max(L + 1 - n_gpu_layers, 0)
    else:
        i_gpu_start = max(L - n_gpu_layers, 0)
    act = min(n_gpu_layers, L + 1)
    gpu_layers = [il for il in range(L + 1) if n_gpu_layers > 0 and i_gpu_start <= il < i_gpu_start + act]
    blocks_on_gpu = [il for il in gpu_layers if il < L]
    if gpus > 0:
        if layer_split is None:
            per = -(-len(blocks_on_gpu) // gpus) if blocks_on_gpu else 0
            layer_split = [min(per, max(0, len(blocks_on_gpu) - per * k)) for k in range(gpus)]
        dev = {}
        k = 0
        for gi in range(gpus):
            for _ in range(layer_split[gi]):
                if k < len(blocks_on_gpu):
                    dev[blocks_on_gpu[k]] = gi
                    k += 1
        out_dev = (gpus - 1) if L in gpu_layers else gpus
    else:
        dev, out_dev = {}, 0
    CPU = gpus
    dev_of_layer = lambda il: dev.get(il, CPU)
    # --- weights ---
    w = weights(hp, weights_type, n_gpu_layers=n_gpu_layers if gpus else 0, output_on_gpu_rule=V_['ngl'],
                qkv_rule=V_['qkv_rule'], tensor_types=types)
    per_dev = {}
    layer_of = dict((t['name'], t['layer']) for t in gguf_tensors(hp))
    for name, ty, ne, nb, where in w['per_tensor']:
        if where == 'gpu':
            il = layer_of.get(name, L)
            d = out_dev if il == L else dev_of_layer(il)
            per_dev[d] = per_dev.get(d, 0) + pad(nb + (row_size(ty, 512 - ne[0] % 512) if ty in QUANTIZED and ne[0] % 512 else 0), 128)
    host_names = set(n for n, ty, ne, nb, where in w['per_tensor'] if where == 'host')
    hb = host_weight_buffers(hp, types, mmap=mmap, repack=repack, host_tensors=host_names)
    repacked = set(hb['repacked'])
    out['weights_gpu'] = per_dev
    out['weights_host'] = hb['total']
    out['weights_host_detail'] = hb
    out['weights_file'] = sum(nbytes(types[t['name']], t['ne']) for t in gguf_tensors(hp))
    out['weight_types'] = w['types']
    # --- KV cache ---
    kv = kv_cache_bytes(hp, n_ctx, type_k, type_v, n_seq=n_seq, kv_unified=kv_unified, pad_to=V_['kv_pad'](flash_attn),
                        n_ubatch=n_ubatch)
    per_layer = kv['total'] // L
    kvd = {}
    for il in range(L):
        d = dev_of_layer(il)
        kvd[d] = kvd.get(d, 0) + per_layer
    out['kv_total'] = kv['total']
    out['kv_per_device'] = kvd
    out['kv_cells'] = kv['kv_size']
    # --- compute buffers ---
    kv_size, n_stream = kv['kv_size'], kv['n_stream']
    n_batch_eff = min(kv_size * n_stream, n_batch)
    ub = min(n_batch_eff, n_ubatch)
    if gpus == 0:
        if V_['graph'] == 'current':
            out['compute'] = {CPU: compute_buffer(hp, n_ctx, n_ubatch, n_batch, fa=flash_attn, n_seq=n_seq, kv_unified=kv_unified,
                                                  type_k=type_k, type_v=type_v)}
        else:
            g = build_graph_legacy(hp, ub, kv_size, fa=flash_attn, type_k=type_k, type_v=type_v)
            out['compute'] = {CPU: gallocr_run(g, 32)[0]}
    else:
        full = n_gpu_layers > L
        if n_copies is None:
            n_copies = 4 if (gpus > 1 and full) else 1
        sizes = {}
        n_seqs = max(1, n_seq)
        for n_tok, n_out in ((-(-ub // n_seqs) * n_seqs, ub), (n_seqs, n_seqs)):
            if V_['graph'] == 'current':
                g = build_graph(hp, n_tok, kv_size, n_stream=n_stream, fa=flash_attn, n_outputs=n_out, type_k=type_k,
                                type_v=type_v, gguf_types=types)
            else:
                g = build_graph_legacy(hp, n_tok, kv_size, fa=flash_attn, n_outputs=n_out, wtypes=types, type_k=type_k, type_v=type_v)
            s = sched_simulate(g, L, dev_of_layer, out_dev, gpus, n_copies=n_copies, full_offload=full, not_host=repacked)
            for k2, v2 in s.items():
                sizes[k2] = max(sizes.get(k2, 0), v2)
        out['compute'] = sizes
    out['output_host'] = output_buffer_bytes(hp, max(1, n_seq))
    out['backend_names'] = dict([(i, 'GPU%d' % i) for i in range(gpus)] + [(CPU, 'CPU/host')])
    return out


def compute_buffer_approx(hp, n_ctx, n_ubatch, n_batch=None, fa=False, n_seq=1, kv_unified=None):
    """Closed-form approximation of the CPU compute buffer of the current graph (no allocator simulation):
    max(A logits phase, B attention phase [FA off], C FFN phase). Exact when the logits phase dominates and the
    final norm lands right after inp_embd (53/60 measured CPU cases); within -11%..+13% on 400 local runs.
    Use compute_buffer() (the simulation) for exact figures."""
    n_batch = n_batch or n_ubatch
    kv_size, ns = kv_cells(n_ctx, n_seq, kv_unified)
    ub = min(min(kv_size * ns, n_batch), n_ubatch)
    T = -(-ub // max(1, n_seq)) * max(1, n_seq)
    no = ub
    E, V, H, D, HKV, F = hp['n_embd'], hp['n_vocab'], hp['n_head'], hp['head_dim'], hp['n_head_kv'], hp['n_ff']
    A = 4 * T + 4 * E * T + 4 * E * no + 4 * V * no
    inputs = 4 * T + 4 * E * T + 4 * T + 8 * T + (8 * T if fa else 8 * T * HKV * D) + (2 if fa else 4) * kv_size * T + 4 * no
    B = 0 if fa else inputs + 4 * E * T * 2 + 4 * H * D * T * 2 + 4 * kv_size * T * H
    C = inputs + 4 * E * T * 2 + (3 * 4 * F * T if hp['arch'] != 'gptneox' else 4 * F * T)
    return max(A, B, C)
