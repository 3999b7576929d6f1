#!/usr/bin/env python3
"""Developer loop (until `llm-memory validate` exists): estimates every single-GPU transformers/PyTorch/torchtune case of
data/validation with MemoryEstimate.Quantity and prints the case table and the error summary per source family.

    python3 tools/ReplayCompare/validate.py
"""
import json
import os
import statistics
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
ENGINES = ('transformers', 'pytorch', 'torchtune', 'torchtitan', 'deepspeed')
WHATS = ('weights', 'peak_allocated', 'peak_reserved', 'device_used', 'trainable_parameters')


def family(cid):
    return 'h100-measured' if cid.startswith('gpu') else '-'.join(cid.split('-')[:2])


def pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    f = int(k)
    return xs[f] + (xs[min(f + 1, len(xs) - 1)] - xs[f]) * (k - f)


def main():
    cases = []
    for name in ('gpu-h100-cases.jsonl', 'cases.jsonl'):
        for line in open(os.path.join(ROOT, 'data', 'validation', name)):
            c = json.loads(line)
            parallel = c.get('parallel') or {}
            single = parallel.get('gpus', 1) == 1 and not any(parallel.get(k) for k in ('zero', 'fsdp', 'tp', 'pp', 'cp', 'offload'))
            if c.get('engine', 'transformers') in ENGINES and single and c['measured']['what'] in WHATS:
                cases.append(c)
    subprocess.run(['dotnet', 'build', '-v', 'q', '-nologo', os.path.join(HERE, 'ReplayCompare.csproj')], check=True, stdout=subprocess.DEVNULL)
    out = subprocess.run([os.path.join(HERE, 'bin', 'Debug', 'net10.0', 'ReplayCompare'), 'validate'], cwd=ROOT, check=True,
                         input='\n'.join(json.dumps(c) for c in cases), capture_output=True, text=True).stdout
    rows = [json.loads(l) for l in out.splitlines()]
    for r in rows:
        r['err'] = (r['estimated'] - r['measured']) / r['measured'] if 'estimated' in r else None
    print(f"{'case':64s} {'what':15s} {'measured':>10s} {'estimate':>10s} {'err':>7s}  peak")
    for r in sorted(rows, key=lambda r: -abs(r['err'] or 9)):
        if r['err'] is None:
            print(f"{r['id'][:64]:64s} unsupported: {r.get('error')}")
            continue
        unit = 1 if r['what'] == 'trainable_parameters' else 2 ** 30
        print(f"{r['id'][:64]:64s} {r['what']:15s} {r['measured'] / unit:10.3f} {r['estimated'] / unit:10.3f} {r['err'] * 100:+6.1f}%  {r['phase']}"
              + (' *' if abs(r['err']) > 0.05 else ''))
    print('\nGiB = 2^30 B; * = |error| > 5 %\n')

    def summary(label, sel):
        errs = [abs(r['err']) for r in sel if r['err'] is not None]
        bad = sum(1 for r in sel if r['err'] is None)
        if errs:
            print(f"{label:32s} n={len(errs):3d}  median {statistics.median(errs) * 100:5.1f}%  p90 {pct(errs, 0.9) * 100:5.1f}%  max {max(errs) * 100:5.1f}%  unsupported={bad}")
    summary('all', rows)
    for w in WHATS:
        summary('  ' + w, [r for r in rows if r.get('what') == w])
    for f in sorted({family(r['id']) for r in rows}):
        summary('  ' + f, [r for r in rows if family(r['id']) == f])
    summary('training/lora/qlora (not H100)', [r for r in rows if not r['id'].startswith('gpu') and r.get('what') != 'weights'])
    print(f"\nestimate time: median {statistics.median(r['ms'] for r in rows if 'ms' in r):.1f} ms, max {max(r['ms'] for r in rows if 'ms' in r):.1f} ms")


if __name__ == '__main__':
    main()
