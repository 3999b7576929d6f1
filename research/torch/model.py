"""Reference estimator of PyTorch / transformers peak GPU memory on one GPU, by mechanism.

estimate(case) builds the model's tensors from its config, replays what the measured script does
(inference: one forward over batch x seq with use_cache=True under no_grad; training / lora: three
steps of forward with labels, backward, optimizer.step(), zero_grad(set_to_none=True)) on a
shape-only imitation of PyTorch (sim.py) whose allocations go through a simulator of the CUDA
caching allocator (alloc.py). It returns weights, peak_allocated, peak_reserved and device_used in
bytes, the breakdown of live memory at the allocated peak and the phase where the peak happened.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from alloc import OOM, MiB
from arch import build_arch, GiB
from programs import Model, AdamW, SGD, Optim, zero_grad
from sim import Sim

# ------------------------------------------------------------------ empirical constants (named)
# Non-PyTorch device memory = device_used - peak_reserved (CUDA context, loaded kernel modules,
# cuBLAS handles). Pinned by the 39 H100 scenarios (torch 2.11 + CUDA 13, lazy module loading):
# the value is identical across all models and sizes within each group, so it is not a fit.
CTX_H100 = {
    ('inference', False): 686.8 * MiB,   # eager / no flash kernel (gpt2, gemma-2, mistral/tinyllama eager)
    ('inference', True): 694.8 * MiB,    # flash-attention forward module loaded (+8 MiB)
    ('training', False): 750.8 * MiB,    # backward + optimizer kernels (+64 MiB), no flash
    ('training', True): 766.8 * MiB,     # + flash forward and backward modules (+16 MiB)
}
# cuBLAS workspace per (handle, stream): allocated through the caching allocator at the first GEMM
# of a thread and kept; the autograd engine runs backward on its own device thread, whose handle
# gets a second workspace. Size: see SPEC.md (pinned by the inference cases).
CUBLAS_WS = 32 * MiB
H100_TOTAL = int(79.18 * GiB)            # torch.cuda.mem_get_info()[1] on the H100 80GB HBM3


def _dt(precision, mode):
    if precision in ('fp32', 'mixed-bf16', 'mixed-fp16'):
        return 'f32'
    if precision == 'fp16':
        return 'f16'
    return 'bf16'


class WsSim(Sim):
    """Sim plus the cuBLAS workspaces (one per thread that runs GEMMs)."""

    def __init__(self, capacity=None, ws=CUBLAS_WS):
        super().__init__(capacity)
        self.ws = {}
        self.ws_size = ws
        self.thread = 'main'

    def _need_ws(self):
        if self.ws_size and self.thread not in self.ws:
            self.ws[self.thread] = self.empty((self.ws_size,), 'u8', tag='cublas_ws')

    def linear(self, x, W, b=None, out_dim=None):
        self._need_ws()
        return super().linear(x, W, b, out_dim)

    def matmul(self, a, b, out_shape, copy_a=False):
        self._need_ws()
        return super().matmul(a, b, out_shape, copy_a)

    def backward(self, root):
        t0, self.thread = self.thread, 'autograd'
        try:
            super().backward(root)
        finally:
            self.thread = t0


def _patch_bw_ws():
    """GEMMs inside backward formulas need the autograd thread's workspace."""
    import sim as _s
    for name in ('_bw_linear', '_bw_bmm'):
        f = getattr(_s, name)
        if getattr(f, '_ws', False):
            continue

        def wrap(f):
            def g(S, n, gouts, saved):
                if hasattr(S, '_need_ws'):
                    S._need_ws()
                return f(S, n, gouts, saved)
            g._ws = True
            return g
        setattr(_s, name, wrap(f))


_patch_bw_ws()
import programs as _p  # noqa: E402  (programs imported the old names at call time through sim module)


def load_config(case):
    m = case['model']
    if isinstance(m, dict) and 'config' in m:
        return m['config']
    raise ValueError('model given by id: no config')


def simulate(cfg, mode='inference', precision=None, b=1, s=2048, attn='sdpa', ckpt=False, optimizer='adamw',
             lora=None, opts=None, steps=3, ga=1, capacity=None, ctx=0, use_cache=None, train_use_cache=None):
    """Replays one run on the simulator. Returns a dict of bytes and the peak breakdown."""
    opts = dict(opts or {})
    ar = build_arch(cfg)
    precision = precision or ('bf16' if mode == 'inference' else 'mixed-bf16')
    dt = _dt(precision, mode)
    train = mode in ('training', 'lora', 'qlora')
    if train and ar.family in ('moe', 'gpt2', 'bert'):
        raise NotImplementedError(f'training replay not implemented for the {ar.family} family')
    S = WsSim(capacity, ws=opts.get('cublas_ws', CUBLAS_WS))
    S.track = False
    if mode == 'qlora':
        opts.setdefault('weights', 'nf4')
    model = Model(S, ar, dt, trainable=(mode == 'training'), lora=lora if mode in ('lora', 'qlora') else None,
                  attn=attn, ckpt=ckpt, opts=opts,
                  use_cache_cfg=cfg.get('use_cache', True) if train_use_cache is None else train_use_cache)
    weights = model.base_weights
    model.ids = S.empty((b, s), 'i64', tag='inputs')
    S.A.reset_peaks()
    S.peak = S.A.allocated
    S.track = True
    oom = None
    try:
        if not train:
            S.grad_enabled = False
            S.set_phase('forward')
            out = model.forward(b, s, labels=False, use_cache=True if use_cache is None else use_cache)
            del out
        else:
            params = model.params()
            if optimizer in ('sgd',):
                opt = SGD(S, params)
            else:
                opt = Optim(S, params, kind=optimizer, in_backward=opts.get('optimizer_in_backward', False))
            mixed = precision.startswith('mixed')
            for step in range(steps):
                for micro in range(ga):
                    tag = f'step{step + 1}' + (f'.mb{micro + 1}' if ga > 1 else '')
                    S.set_phase(tag + '.forward')
                    S.autocast = ('f16' if precision == 'mixed-fp16' else 'bf16') if mixed else None
                    loss = model.forward(b, s, labels=True, train=True)[0]
                    S.autocast = None
                    S.clear_autocast_cache()
                    S.set_phase(tag + '.backward')
                    S.backward(loss)
                    del loss
                S.set_phase(f'step{step + 1}.optimizer')
                opt.step()
                zero_grad(params)
    except OOM as e:
        oom = str(e)
    return {
        'weights': weights,
        'peak_allocated': S.A.peak_allocated,
        'peak_reserved': S.A.peak_reserved,
        'device_used': S.A.peak_reserved + int(ctx),
        'phase': S.peak_phase,
        'breakdown': named_breakdown(S.peak_breakdown or {}, ar, S.A.peak_reserved - S.A.peak_allocated, ctx),
        'nontorch': int(ctx),
        'oom': oom,
        'n_lora_params': getattr(model, 'n_lora_params', 0),
    }


def named_breakdown(bd, ar, cached, ctx):
    """Live memory at the allocated peak, by named component (bytes, block-rounded)."""
    names = {
        'weight': 'weights (fp32 = master weights in mixed precision)',
        'lora': 'LoRA/DoRA adapter weights',
        'autocast_w': 'autocast cast cache (bf16 copies of fp32 weights, kept by the graph)',
        'grad': 'gradients (param .grad)',
        'opt_state': 'optimizer states',
        'opt_tmp': 'optimizer-step temporaries (foreach sqrt copy / per-param temps)',
        'act_saved': 'saved activations (all layers, incl. checkpoints)',
        'kv_cache': 'KV cache (inference) / K,V held by the cache during a training forward',
        'act_transient': 'transient tensors at the peak (attention scores, MLP, activation grads)',
        'logits': 'logits (bf16 lm_head output)',
        'loss': 'loss region (fp32 upcast, log-softmax, its grads)',
        'cublas_ws': 'cuBLAS workspaces (one per GEMM thread)',
        'inputs': 'input ids',
    }
    out = {names.get(k, k): v for k, v in sorted(bd.items(), key=lambda kv: -kv[1])}
    if 'act_saved' in bd and ar.L:
        out['saved activations per layer (act_saved / L)'] = bd['act_saved'] // ar.L
    out['allocator cache at the reserved peak (reserved - allocated)'] = cached
    out['CUDA context + non-torch'] = int(ctx)
    return out


def estimate(case, capacity=None):
    """The measured H100 script (tools/measure_gpu.py): model from config with random weights;
    inference = one forward(use_cache=True) under no_grad; training/lora = 3 x (forward with labels,
    backward, optimizer.step, zero_grad(set_to_none=True)); autocast bf16 for mixed-bf16."""
    cfg = load_config(case)
    mode = case.get('mode', 'inference')
    precision = case.get('precision', 'bf16' if mode == 'inference' else 'mixed-bf16')
    attn = case.get('attention', 'sdpa')
    train = mode in ('training', 'lora')
    dt = _dt(precision, mode)
    flash = attn != 'eager' and (dt != 'f32' or precision.startswith('mixed'))
    ctx = CTX_H100[('training' if train else 'inference', bool(flash))]
    if capacity is None:
        capacity = H100_TOTAL - int(ctx)
    return simulate(cfg, mode=mode, precision=precision, b=case.get('batch', 1), s=case.get('seq', 2048), attn=attn,
                    ckpt=case.get('gradient_checkpointing', 'none') == 'full', optimizer=case.get('optimizer', 'adamw'),
                    lora=case.get('lora'), steps=3, capacity=capacity, ctx=ctx)


if __name__ == '__main__':
    # python3 model.py CASE.json   (a case or scenario dict; the H100 measurement semantics are used)
    # python3 model.py --id ID     (look the case up in research/cases1.jsonl / cases2.jsonl)
    if len(sys.argv) > 2 and sys.argv[1] == '--id':
        here = os.path.dirname(os.path.abspath(__file__))
        case = None
        for f in ('cases1.jsonl', 'cases2.jsonl'):
            for line in open(os.path.join(here, '..', f)):
                c = json.loads(line)
                if c['id'].startswith(sys.argv[2]):
                    case = c
                    break
            if case:
                break
    else:
        case = json.load(open(sys.argv[1]))
    r = estimate(case)
    out = {k: (round(v / GiB, 4) if isinstance(v, int) and k != 'n_lora_params' else v) for k, v in r.items() if k != 'breakdown'}
    out['breakdown_GiB'] = {k: round(v / GiB, 4) for k, v in r['breakdown'].items()}
    print(json.dumps(out, indent=1))
