"""A shape-only imitation of PyTorch eager execution, detailed enough to reproduce its memory.

Every tensor is a FT (fake tensor): shape, dtype and a Storage that owns one allocator block.
Storages are freed by CPython reference counting, exactly when PyTorch frees a tensor whose last
Python/autograd reference disappears, so the forward code below is written like the real module
code (transformers 5.x, peft) and temporaries die at the same statement as in the real run.

Autograd is imitated too: an op whose input requires grad creates a Node that keeps references to
the tensors the real derivative formula saves (tools/autograd/derivatives.yaml); backward runs the
nodes in decreasing sequence number (the engine's ready queue order), allocates the gradients each
formula produces, frees the incoming gradient and the node's saved tensors after the node ran
(release_variables), accumulates multiple incoming gradients in place (InputBuffer::accumulate) and
steals a leaf's first gradient into .grad (AccumulateGrad). Non-reentrant activation checkpointing
(torch.utils.checkpoint, use_reentrant=False) keeps only the region inputs and recomputes the
region's saved tensors when the first of its nodes runs in backward (with early stop).
autocast (torch.autocast cuda bf16) casts inputs of lower-precision ops (linear/matmul/bmm/sdpa),
runs fp32-list ops in fp32, and caches the cast copies of leaf weights that require grad until
the autocast region exits (cached_cast / clear_autocast_cache).
"""
from __future__ import annotations

import heapq
import math
import weakref
from collections import defaultdict

from alloc import Allocator

DT = {'bf16': 2, 'f16': 2, 'f32': 4, 'i64': 8, 'i32': 4, 'bool': 1, 'u8': 1, 'nf4': 0.5}


def prod(s):
    p = 1
    for x in s:
        p *= x
    return p


def bshape(a, b):
    """numpy broadcasting of two shapes"""
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        else:
            raise ValueError(f'cannot broadcast {a} {b}')
    return tuple(out)


def promote(a, b):
    if a == b:
        return a
    fl = {'f32': 3, 'bf16': 2, 'f16': 2}
    if a in fl and b in fl:
        return a if fl[a] >= fl[b] else b
    if a in fl:
        return a
    return b


class Storage:
    __slots__ = ('sim', 'blk', 'tag', 'nsaved', '__weakref__')

    def __init__(self, sim, nbytes, tag):
        self.sim = sim
        self.tag = tag
        self.nsaved = 0
        self.blk = sim.A.malloc(nbytes)
        sim.live.add(self)
        sim._after_alloc()

    def __del__(self):
        try:
            self.sim.A.free(self.blk)
        except Exception:
            pass


class FT:
    __slots__ = ('sim', 'shape', 'dt', 'st', 'rg', 'fn', 'grad', 'is_param', 'name', 'acc', '__weakref__')

    def __init__(self, sim, shape, dt, st=None, tag=None, rg=False):
        self.sim = sim
        self.shape = tuple(int(x) for x in shape)
        self.dt = dt
        self.st = st if st is not None else Storage(sim, self.nbytes, tag or sim.tag)
        self.rg = rg
        self.fn = None
        self.grad = None
        self.is_param = False
        self.name = ''
        self.acc = None

    @property
    def numel(self):
        return prod(self.shape)

    @property
    def nbytes(self):
        return self.numel * DT[self.dt]

    def __repr__(self):
        return f'FT{self.shape}:{self.dt}'


class StopRecompute(Exception):
    pass


class Region:
    """One non-reentrant checkpoint region (one decoder layer)."""

    def __init__(self, fn, args):
        self.fn = fn
        self.args = args        # the checkpoint keeps its inputs alive
        self.n = 0              # nodes created in the original forward
        self.last_saving = -1   # index of the last node that saves something
        self.store = None       # idx -> saved tensors, filled by recomputation
        self.done = 0


class Node:
    __slots__ = ('seq', 'edges', 'metas', 'saved', 'apply', 'name', 'region', 'ridx', 'extra', '__weakref__')

    def __init__(self, seq, name):
        self.seq = seq
        self.name = name
        self.edges = []
        self.metas = []
        self.saved = []
        self.apply = None
        self.region = None
        self.ridx = -1
        self.extra = None

    def __lt__(self, o):
        return self.seq > o.seq


class AccNode(Node):
    """AccumulateGrad: sequence number UINT64_MAX (runs as soon as it is ready)."""
    __slots__ = ('param',)

    def __init__(self, param):
        super().__init__(1 << 62, 'AccumulateGrad')
        self.param = weakref.ref(param)


class Sim:
    def __init__(self, capacity=None):
        self.A = Allocator(capacity)
        self.live = weakref.WeakSet()
        self.grad_enabled = True
        self.autocast = None
        self.ac_cache = {}
        self.seq = 0
        self.tag = 'act'
        self.phase = 'init'
        self.peak = 0
        self.peak_phase = None
        self.peak_breakdown = None
        self.track = True
        self.region = None       # checkpoint region being recorded (forward)
        self.recomp = None       # region being recomputed
        self.events = 0
        self.on_grad = None

    # ---------------------------------------------------------------- accounting
    def _after_alloc(self):
        self.events += 1
        if self.track and self.A.allocated > self.peak:
            self.peak = self.A.allocated
            self.peak_phase = self.phase
            self.peak_breakdown = None
            self._want_breakdown = True
            self._snap()

    def _snap(self):
        bd = defaultdict(int)
        for s in list(self.live):
            if s.blk.free:
                continue
            tag = s.tag
            if tag == 'act':
                tag = 'act_saved' if s.nsaved > 0 else 'act_transient'
            bd[tag] += s.blk.size
        self.peak_breakdown = dict(bd)

    def set_phase(self, p):
        self.phase = p

    # ---------------------------------------------------------------- creation
    def empty(self, shape, dt, tag=None, rg=False):
        return FT(self, shape, dt, tag=tag, rg=rg)

    def param(self, shape, dt, name='', rg=True, tag='weight'):
        t = FT(self, shape, dt, tag=tag, rg=rg)
        t.is_param = True
        t.name = name
        return t

    def view(self, x, shape, grad_node=True):
        y = FT(self, shape, x.dt, st=x.st)
        if x.rg and self.grad_enabled and grad_node:
            self._node('View', [x], [], y, _bw_view)
        return y

    # ---------------------------------------------------------------- autograd core
    def _edge(self, x):
        if x.fn is not None:
            return x.fn
        if x.is_param or x.rg:
            if x.acc is None:
                x.acc = AccNode(x)
            return x.acc
        return None

    def _node(self, name, inputs, saved, out, bw, extra=None):
        """Create a grad node for `out` if any input requires grad. `saved` are the tensors kept
        (an op that saves its own output passes an alias FT, as SavedVariable does, so no cycle)."""
        if not self.grad_enabled or not any(i is not None and i.rg for i in inputs):
            return None
        out.rg = True
        saved = [s for s in saved if s is not None]
        if self.recomp is not None:
            r = self.recomp
            idx = r.n
            r.n += 1
            if saved:
                r.store[idx] = saved
                for s in saved:
                    s.st.nsaved += 1
            if idx >= r.last_saving:
                raise StopRecompute()
            return None
        self.seq += 1
        n = Node(self.seq, name)
        for i in inputs:
            if i is not None and i.rg:
                n.edges.append(self._edge(i))
                n.metas.append((i.shape, i.dt))
            else:
                n.edges.append(None)
                n.metas.append(None if i is None else (i.shape, i.dt))
        n.apply = bw
        n.extra = extra
        if self.region is not None:
            r = self.region
            n.region = r
            n.ridx = r.n
            if saved:
                r.last_saving = r.n
            r.n += 1
        else:
            n.saved = saved
            for s in saved:
                s.st.nsaved += 1
        out.fn = n
        return n

    def _get_saved(self, n):
        if n.region is None:
            return n.saved
        r = n.region
        if r.store is None:
            self._recompute(r)
        sv = r.store.pop(n.ridx, [])
        n.saved = sv
        return sv

    def _recompute(self, r):
        r.store = {}
        r.n = 0
        prev_phase = self.phase
        self.phase = prev_phase + '/recompute'
        self.recomp = r
        old_region, self.region = self.region, None
        old_grad, self.grad_enabled = self.grad_enabled, True
        try:
            args = tuple(FT(self, a[1], a[2], rg=True) if isinstance(a, tuple) else a for a in r.args)
            r.fn(*args)
        except StopRecompute:
            pass
        finally:
            self.recomp = None
            self.region = old_region
            self.grad_enabled = old_grad
            self.phase = prev_phase

    def checkpoint(self, fn, *args, offload=False):
        """torch.utils.checkpoint(fn, *args, use_reentrant=False). offload: the saved region inputs
        live in host memory (torchtune OffloadActivations) and are copied back for recomputation."""
        r = Region(fn, args)
        old, self.region = self.region, r
        try:
            out = fn(*args)
        finally:
            self.region = old
        if offload:
            r.args = tuple(('offloaded', a.shape, a.dt) for a in args)
        return out

    def backward(self, root):
        phase0 = self.phase
        deps = defaultdict(int)
        start = root.fn
        seen = {id(start)}
        stack = [start]
        while stack:
            n = stack.pop()
            for e in n.edges:
                if e is None:
                    continue
                deps[id(e)] += 1
                if id(e) not in seen:
                    seen.add(id(e))
                    stack.append(e)
        buffers = {id(start): [self.empty(root.shape, root.dt)]}
        heap = [start]
        while heap:
            n = heapq.heappop(heap)
            gouts = buffers.pop(id(n))
            if isinstance(n, AccNode):
                p = n.param()
                g = gouts[0]
                del gouts
                if p is not None and g is not None and self.on_grad is not None:
                    self.on_grad(p, g)          # optimizer step in backward: grad consumed at once
                elif p is not None and g is not None:
                    if p.grad is None:
                        if g.st.tag != 'grad' and (g.dt == p.dt and g.shape == p.shape):
                            g.st.tag = 'grad'
                            p.grad = g
                        else:
                            p.grad = self.empty(p.shape, p.dt, tag='grad')
                    # else: in-place accumulation, g freed
                del g
                continue
            saved = self._get_saved(n)
            grads = n.apply(self, n, gouts, saved)
            del gouts
            for s in n.saved:
                s.st.nsaved -= 1
            n.saved = []
            del saved
            n.extra = None
            if n.region is not None and n.ridx == 0:
                n.region.args = None   # the checkpoint frame (and its saved inputs) dies with its last node
            for e, g in zip(n.edges, grads):
                if e is None:
                    continue
                k = id(e)
                if g is not None:
                    if k in buffers and buffers[k][0] is not None:
                        pass  # accumulate in place into the existing buffer
                    else:
                        buffers[k] = [g]
                elif k not in buffers:
                    buffers[k] = [None]
                deps[k] -= 1
                if deps[k] == 0:
                    heapq.heappush(heap, e)
            del grads
        self.phase = phase0

    # ---------------------------------------------------------------- autocast helpers
    def _ac_cast(self, x, dt):
        """autocast cast of an op input; leaf weights requiring grad are cached for the region."""
        if x.dt == dt or x.dt not in ('f32', 'bf16', 'f16'):
            return x
        if x.is_param and x.rg:
            k = id(x)
            c = self.ac_cache.get(k)
            if c is None:
                tag0, self.tag = self.tag, 'autocast_w'
                c = self.to(x, dt)
                self.tag = tag0
                self.ac_cache[k] = c
            return c
        return self.to(x, dt)

    def clear_autocast_cache(self):
        self.ac_cache = {}

    # ---------------------------------------------------------------- ops
    def to(self, x, dt):
        if x.dt == dt:
            return x
        y = self.empty(x.shape, dt)
        self._node('ToCopy', [x], [], y, _bw_tocopy)
        return y

    def contiguous_copy(self, x):
        y = self.empty(x.shape, x.dt)
        self._node('Clone', [x], [], y, _bw_same)
        return y

    def linear(self, x, W, b=None, out_dim=None):
        """F.linear (mm/addmm on the 2-D view of x). W shape (d_out, d_in)."""
        if self.autocast:
            x = self._ac_cast(x, self.autocast)
            W = self._ac_cast(W, self.autocast)
            if b is not None:
                b = self._ac_cast(b, self.autocast)
        d_out = W.shape[0]
        y = self.empty(x.shape[:-1] + (d_out,), promote(x.dt, W.dt))
        saved = []
        if W.rg:
            saved.append(x)
        if x.rg:
            saved.append(W)
        self._node('Linear', [x, W, b], saved, y, _bw_linear)
        return y

    def matmul(self, a, b, out_shape, copy_a=False):
        """torch.matmul on 4-D operands -> bmm on (batch*heads, m, k) views. copy_a: `a` is a
        transposed view (q laid out (b,s,a,d)) whose reshape to 3-D cannot be a view, so matmul
        makes a contiguous copy (the bmm then saves the copy)."""
        if self.autocast:
            a = self._ac_cast(a, self.autocast)
            b = self._ac_cast(b, self.autocast)
        if copy_a:
            a = self.contiguous_copy(a)
        y = self.empty(out_shape, promote(a.dt, b.dt))
        saved = []
        if b.rg:
            saved.append(a)
        if a.rg:
            saved.append(b)
        self._node('Bmm', [a, b], saved, y, _bw_bmm)
        return y

    def unary(self, x, kind, dt=None):
        """elementwise unary. kind: silu/gelu/pow2 (save input), tanh/exp/rsqrt/sigmoid (save output),
        neg/scal (mul/div by a python scalar)/scal_add (add a scalar): nothing saved."""
        y = self.empty(x.shape, dt or x.dt)
        if kind in ('silu', 'gelu', 'pow2'):
            sv = [x]
        elif kind in ('tanh', 'exp', 'rsqrt', 'sigmoid'):
            sv = [FT(self, y.shape, y.dt, st=y.st)]
        else:
            sv = []
        self._node('U_' + kind, [x], sv, y, _bw_unary, extra=kind)
        return y

    def binary(self, a, b, kind, out_dt=None):
        """add/sub (no saves) or mul/div (saves the other operand(s) as needed)."""
        shp = bshape(a.shape, b.shape)
        dt = out_dt or promote(a.dt, b.dt)
        y = self.empty(shp, dt)
        saved = []
        if kind in ('mul', 'div'):
            if b.rg:
                saved.append(a)
            if a.rg or (kind == 'div' and b.rg):
                saved.append(b)
        self._node('B_' + kind, [a, b], saved, y, _bw_binary, extra=kind)
        return y

    def reduce(self, x, out_shape, dt=None):
        """mean/sum over a dim (saves nothing but shapes)"""
        y = self.empty(out_shape, dt or x.dt)
        self._node('Reduce', [x], [], y, _bw_expand)
        return y

    def cat(self, xs, out_shape):
        y = self.empty(out_shape, xs[0].dt)
        self._node('Cat', list(xs), [], y, _bw_cat)
        return y

    def embedding(self, ids, W):
        y = self.empty(ids.shape + (W.shape[1],), W.dt)
        self._node('Embedding', [W], [ids], y, _bw_embedding, extra=ids.numel)
        return y

    def softmax(self, x, dt='f32', save=True):
        """nn.functional.softmax(x, dim=-1, dtype=dt): CompositeImplicit -> x.to(dt) then _softmax.
        (The half_to_float fused path exists only for fp16 input on CUDA.)"""
        if x.dt == 'f16' and dt == 'f32':
            y = self.empty(x.shape, 'f32')
            self._node('Softmax', [x], [FT(self, y.shape, y.dt, st=y.st)] if save else [], y, _bw_softmax_h2f)
            return y
        xc = self.to(x, dt)
        y = self.empty(x.shape, dt)
        self._node('Softmax', [xc], [FT(self, y.shape, y.dt, st=y.st)] if save else [], y, _bw_softmax)
        return y

    def log_softmax(self, x):
        y = self.empty(x.shape, x.dt)
        self._node('LogSoftmax', [x], [FT(self, y.shape, y.dt, st=y.st)], y, _bw_softmax)
        return y

    def nll_loss(self, logp, target):
        y = self.empty((), 'f32')
        self._node('NllLoss', [logp], [logp, target], y, _bw_nll)
        return y

    def sdpa_flash(self, q, k, v, gqa_rep=1):
        """aten::_scaled_dot_product_flash_attention: q (b,a,s,d) k,v (b,n_kv,s,d).
        saves q, k, v, out, logsumexp (fp32 b*a*s) (+ rng state)."""
        b, a, s, d = q.shape
        if self.autocast:
            q = self._ac_cast(q, self.autocast)
            k = self._ac_cast(k, self.autocast)
            v = self._ac_cast(v, self.autocast)
        out = self.empty((b, a, s, d), q.dt)
        lse = self.empty((b, a, s), 'f32')
        self._node('FlashAttn', [q, k, v], [q, k, v, FT(self, out.shape, out.dt, st=out.st), lse], out, _bw_flash, extra=gqa_rep)
        return out

    def sdpa_efficient(self, q, k, v, mask):
        """aten::_scaled_dot_product_efficient_attention with an additive bias (bool mask converted).
        saves q, k, v, bias, out, logsumexp."""
        b, a, s, d = q.shape
        if self.autocast:
            q = self._ac_cast(q, self.autocast)
            k = self._ac_cast(k, self.autocast)
            v = self._ac_cast(v, self.autocast)
        out = self.empty((b, a, s, d), q.dt)
        lse = self.empty((b, a, ((s + 31) // 32) * 32), 'f32')
        self._node('EffAttn', [q, k, v], [q, k, v, mask, FT(self, out.shape, out.dt, st=out.st), lse], out, _bw_flash, extra=1)
        return out


# ---------------------------------------------------------------------------- backward formulas
# Each returns one gradient per edge (None where the input needs none). Allocation order follows the
# generated autograd code (first input first).

def _g(sim, meta, like=None):
    if meta is None:
        return None
    shape, dt = meta
    return sim.empty(shape, dt)


def _bw_view(sim, n, gouts, saved):
    g = gouts[0]
    shape, dt = n.metas[0]
    return [FT(sim, shape, g.dt, st=g.st) if g is not None else None]


def _bw_same(sim, n, gouts, saved):
    return [gouts[0]]


def _bw_tocopy(sim, n, gouts, saved):
    g = gouts[0]
    if g is None:
        return [None]
    shape, dt = n.metas[0]
    if dt == g.dt:
        return [g]
    return [sim.empty(shape, dt)]


def _bw_linear(sim, n, gouts, saved):
    g = gouts[0]
    mx, mw, mb = n.metas
    gx = sim.empty(mx[0], g.dt) if n.edges[0] is not None else None
    gw = sim.empty(mw[0], g.dt) if n.edges[1] is not None else None
    gb = sim.empty(mb[0], g.dt) if (len(n.edges) > 2 and n.edges[2] is not None) else None
    return [gx, gw, gb]


def _bw_bmm(sim, n, gouts, saved):
    g = gouts[0]
    ma, mb = n.metas
    ga = sim.empty(ma[0], g.dt) if n.edges[0] is not None else None
    gb = sim.empty(mb[0], g.dt) if n.edges[1] is not None else None
    return [ga, gb]


def _bw_unary(sim, n, gouts, saved):
    g = gouts[0]
    kind = n.extra
    shape, dt = n.metas[0]
    if kind == 'pow2':
        # pow_backward: grad * (2 * self.pow(1)) -> two temporaries of the input's size
        t1 = sim.empty(shape, dt)
        t2 = sim.empty(shape, dt)
        del t1
        out = sim.empty(shape, dt)
        del t2
        return [out]
    if kind == 'scal_add':
        return [g]
    return [sim.empty(shape, g.dt if dt == g.dt else dt)]


def _sum_to(sim, g, meta):
    shape, dt = meta
    if g.shape == tuple(shape) and g.dt == dt:
        return g
    if g.shape == tuple(shape):
        return sim.empty(shape, dt)
    # reduction (broadcast input) then maybe cast
    return sim.empty(shape, dt)


def _bw_binary(sim, n, gouts, saved):
    g = gouts[0]
    kind = n.extra
    out = []
    for e, m in zip(n.edges, n.metas):
        if e is None:
            out.append(None)
            continue
        if kind in ('add', 'sub'):
            if kind == 'sub' and len(out) == 1:
                t = sim.empty(g.shape, g.dt)
                out.append(_sum_to(sim, t, m))
                del t
            else:
                out.append(_sum_to(sim, g, m))
        else:
            t = sim.empty(g.shape, g.dt)  # grad * other
            r = _sum_to(sim, t, m)
            del t
            out.append(r)
    return out


def _bw_expand(sim, n, gouts, saved):
    shape, dt = n.metas[0]
    return [sim.empty(shape, gouts[0].dt)]


def _bw_cat(sim, n, gouts, saved):
    g = gouts[0]
    out = []
    for e, m in zip(n.edges, n.metas):
        out.append(FT(sim, m[0], g.dt, st=g.st) if (e is not None and g is not None) else None)
    return out


def _bw_embedding(sim, n, gouts, saved):
    g = gouts[0]
    shape, dt = n.metas[0]
    # embedding_dense_backward (CUDA): sort indices + per-segment partial sums, then a zeroed grad table
    T = n.extra
    t_idx = sim.empty((4 * T,), 'i64')
    part = sim.empty((T, shape[1]), 'f32')
    gw = sim.empty(shape, g.dt)
    del part, t_idx
    return [gw]


def _bw_softmax(sim, n, gouts, saved):
    g = gouts[0]
    shape, dt = n.metas[0]
    return [sim.empty(shape, dt)]


def _bw_softmax_h2f(sim, n, gouts, saved):
    shape, dt = n.metas[0]
    return [sim.empty(shape, dt)]


def _bw_nll(sim, n, gouts, saved):
    shape, dt = n.metas[0]
    return [sim.empty(shape, dt)]


def _bw_flash(sim, n, gouts, saved):
    """_flash_attention_backward (FA2 in aten): dq, dk, dv + softmax_d (fp32 b*a*s_rounded) +
    dq_accum (fp32 b*s_rounded*a*d_rounded); with GQA dk/dv are computed at a heads then summed."""
    g = gouts[0]
    (qs, qdt), (ks, kdt), (vs, vdt) = n.metas[0], n.metas[1], n.metas[2]
    b, a, s, d = qs
    rep = n.extra or 1
    s128 = (s + 127) // 128 * 128
    d32 = (d + 31) // 32 * 32
    dq = sim.empty(qs, qdt)
    dk = sim.empty(ks, kdt)
    dv = sim.empty(vs, vdt)
    soft_d = sim.empty((b, a, s128), 'f32')
    dq_acc = sim.empty((b, s128, a, d32), 'f32')
    if rep > 1:
        dke = sim.empty((b, a, s, d), kdt)
        dve = sim.empty((b, a, s, d), vdt)
        del dke, dve
    del soft_d, dq_acc
    return [dq if n.edges[0] is not None else None,
            dk if n.edges[1] is not None else None,
            dv if n.edges[2] is not None else None]
