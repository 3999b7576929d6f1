#!/usr/bin/env python3
"""Developer check, not a test: runs the Python reference replay (research/torch: model.py, sim.py, programs.py,
published.py) and the C# port (src/LlmMemory/Estimation/Replay, through this folder's console) on the same scenarios and
reports every difference in peak_allocated, peak_reserved, weights and the peak phase.

    python3 tools/ReplayCompare/compare.py --reference /path/to/research/torch [--only SUBSTRING]

The reference is patched to the semantics the C# estimator uses where they differ on purpose (each patch says why):
  1. models come from from_pretrained (no freshly allocated lm_head for tied models; the H100 runs built them from config),
  2. a checkpointed region is recomputed under the autocast state it ran under, and leaving that autocast region clears
     its cast cache (torch.utils.checkpoint does both; the reference recomputed without autocast),
  3. the device limit is the catalog's CUDA total (85,045,477,376 B for h100-80gb) minus the context,
  4. torchtune uses AdamW(fused=True) (its configs since mid-2024) and every training replay runs 3 steps and at most
     2 micro-batches,
  5. the cuBLAS workspace and the context follow the GPU (Constants.CublasWorkspace: 8.125 MiB before Hopper),
and LoRA on lm_head is left out of both sides (the reference never adapts the output layer; the port does, as PEFT and
torchtune do when asked).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
GPUS = {g['id']: g for g in json.load(open(os.path.join(ROOT, 'data', 'gpus.json')))}


def load_reference(path):
    sys.path.insert(0, path)
    import model
    import sim
    import programs

    # patch 1: from_pretrained
    init = programs.Model.__init__

    def model_init(self, S, ar, dt, trainable=True, lora=None, attn='sdpa', ckpt=False, use_cache_cfg=True, opts=None):
        opts = dict(opts or {})
        opts['init_untied_head'] = False
        init(self, S, ar, dt, trainable, lora, attn, ckpt, use_cache_cfg, opts)
    programs.Model.__init__ = model_init

    # patch 2: recompute under the region's autocast
    def checkpoint(self, fn, *args, offload=False):
        r = sim.Region(fn, args)
        r.autocast = self.autocast
        old, self.region = self.region, r
        try:
            out = fn(*args)
        finally:
            self.region = old
        if offload:
            r.args = tuple(('offloaded', a.shape, a.dt) for a in args)
        return out
    recompute = sim.Sim._recompute

    def recompute_under_autocast(self, r):
        saved, self.autocast = self.autocast, r.autocast
        try:
            recompute(self, r)
        finally:
            if self.autocast is not None:
                self.clear_autocast_cache()
            self.autocast = saved
    sim.Sim.checkpoint = checkpoint
    sim.Sim._recompute = recompute_under_autocast
    return model


def python_replay(model, case):
    """The reference's simulate() with the C# estimator's mapping of a scenario (ReplayPlan.For)."""
    cfg = case['model']['config']
    mode = case.get('mode', 'inference')
    train = mode != 'inference'
    engine = case.get('engine', 'transformers')
    torchtune = engine in ('torchtune', 'torchtitan')
    precision = case.get('precision') or ('mixed-bf16' if train else None)
    if not train:
        precision = {'bf16': 'bf16', 'fp16': 'fp16', 'fp32': 'fp32'}[case.get('weights', 'bf16')]
    attn = case.get('attention', 'sdpa')
    dt = model._dt(precision, mode)
    flash = attn != 'eager' and (dt != 'f32' or precision.startswith('mixed'))
    ctx = model.CTX_H100[('training' if train else 'inference', bool(flash))]
    gpu = GPUS.get(case.get('gpu'))
    capacity = gpu['reported_total_bytes'] - int(ctx) if gpu else None
    hopper = gpu is None or int(str(gpu.get('compute_capability') or '9.0').split('.')[0]) >= 9
    opts = {'cublas_ws': model.CUBLAS_WS if hopper else 4096 * 2 * 1024 + 16 * 8 * 1024}
    optimizer = case.get('optimizer', 'adamw')
    if torchtune:
        opts.update({'lora_dtype': 'bf16', 'lora_style': 'torchtune', 'expand_kv': True})
        ce = case.get('cross_entropy', 'standard')
        opts['logits'] = ('tt_chunked_compiled' if case.get('compile') else 'tt_chunked') if ce == 'chunked' else 'tt_float'
    if case.get('gradient_checkpointing') == 'offload':
        opts['offload'] = True
    if case.get('optimizer_in_backward'):
        opts['optimizer_in_backward'] = True
    if mode == 'qlora':
        opts['weights'] = 'nf4'
    optimizer = {'adamw': 'adamw_fused' if torchtune else 'adamw', 'adamw-8bit': 'adamw8bit',
                 'paged-adamw-8bit': 'paged_adamw8bit', 'paged-adamw': 'paged_adamw8bit'}.get(optimizer, optimizer)
    lora = case.get('lora')
    if lora:
        lora = dict(lora)
        lora['targets'] = lora['targets'] if isinstance(lora['targets'], str) else tuple(lora['targets'])
    r = model.simulate(cfg, mode=mode, precision=precision, b=case.get('batch', 1), s=case.get('seq', 2048), attn=attn,
                       ckpt=case.get('gradient_checkpointing', 'none') != 'none', optimizer=optimizer, lora=lora, opts=opts,
                       steps=3, ga=min(case.get('gradient_accumulation', 1), 2), capacity=capacity, ctx=ctx,
                       train_use_cache=False if torchtune else None)
    return {'weights': r['weights'], 'peak_allocated': r['peak_allocated'], 'peak_reserved': r['peak_reserved'],
            'device_used': r['device_used'], 'phase': r['phase'], 'oom': r['oom']}


def cases(only):
    out = []
    seen = set()
    for name in ('gpu-h100-cases.jsonl', 'cases.jsonl'):
        for line in open(os.path.join(ROOT, 'data', 'validation', name)):
            c = json.loads(line)
            what = c['measured']['what']
            key = c['id'][:-len(what) - 1] if c['id'].endswith(what) else c['id']
            if key in seen or not isinstance(c.get('model'), dict) or 'config' not in c['model']:
                continue
            if c.get('parallel') or c.get('engine', 'transformers') not in ('transformers', 'torchtune', 'pytorch'):
                continue
            if c['model']['config'].get('model_type') in ('bert', None) or what in ('parameters', 'trainable_parameters'):
                continue
            if c['id'].startswith(('torchtune-qlora-tutorial', 'qlora-paper')):
                continue
            seen.add(key)
            c['id'] = key
            out.append(c)
    for line in open(os.path.join(HERE, 'synthetic.jsonl')):
        if line.strip():
            c = json.loads(line)
            if isinstance(c['model'], str):
                c['model'] = {'config': json.load(open(os.path.join(ROOT, 'data', 'models', c['model'] + '.json')))['config']}
            out.append(c)
    return [c for c in out if only is None or only in c['id']]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reference', required=True)
    ap.add_argument('--only')
    args = ap.parse_args()
    model = load_reference(os.path.abspath(args.reference))
    selected = cases(args.only)
    for c in selected:
        c.pop('measured', None)
        targets = (c.get('lora') or {}).get('targets')
        if isinstance(targets, list) and 'lm_head' in targets:
            targets.remove('lm_head')
            print(f"{c['id']}: lm_head left out of the LoRA targets on both sides")
    subprocess.run(['dotnet', 'build', '-v', 'q', '-nologo', os.path.join(HERE, 'ReplayCompare.csproj')], check=True,
                   stdout=subprocess.DEVNULL)
    exe = os.path.join(HERE, 'bin', 'Debug', 'net10.0', 'ReplayCompare')
    proc = subprocess.run([exe], input='\n'.join(json.dumps(c) for c in selected), capture_output=True, text=True,
                          check=True, cwd=ROOT)
    port = {r['id']: r for r in map(json.loads, proc.stdout.splitlines())}
    keys = ('weights', 'peak_allocated', 'peak_reserved', 'device_used', 'phase')
    identical = 0
    for c in selected:
        ref = python_replay(model, c)
        got = port[c['id']]
        if 'error' in got:
            print(f"{c['id']}: C# error: {got['error']}")
            continue
        diffs = [f"{k}: python {ref[k]} c# {got[k]}" + (f" ({(got[k] - ref[k]) / 2**20:+.2f} MiB)" if k != 'phase' else '')
                 for k in keys if ref[k] != got[k]]
        if bool(ref['oom']) != bool(got['oom']):
            diffs.append(f"oom: python {ref['oom']} c# {got['oom']}")
        if diffs:
            print(f"{c['id']}: " + '; '.join(diffs))
        else:
            identical += 1
            print(f"{c['id']}: identical ({got['ms']:.1f} ms)")
    print(f"\n{identical} of {len(selected)} scenarios byte-identical in {', '.join(keys)}")


if __name__ == '__main__':
    main()
