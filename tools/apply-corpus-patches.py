#!/usr/bin/env python3
"""Applies data/validation/patches.json (engine_options merged in, scenario fields set, known_gap set) to the corpus files in data/validation (idempotent). Run by tools/sync-corpus.sh."""
import json, pathlib, sys

root = pathlib.Path(__file__).resolve().parent.parent / 'data' / 'validation'
patches = json.loads((root / 'patches.json').read_text())['patches']
changed = 0
for path in sorted(root.glob('*.jsonl')):
    lines = path.read_text().splitlines()
    out = []
    for line in lines:
        if not line.strip():
            out.append(line)
            continue
        case = json.loads(line)
        before = json.dumps(case, sort_keys=True)
        for patch in patches:
            if case['id'] in patch.get('ids', []) or ('ids_prefix' in patch and case['id'].startswith(patch['ids_prefix'])):
                if 'engine_options' in patch:
                    options = dict(case.get('engine_options', {}))
                    options.update(patch['engine_options'])
                    case['engine_options'] = options
                for field, value in patch.get('fields', {}).items():
                    case[field] = value
                if 'known_gap' in patch:
                    case['known_gap'] = patch['known_gap']
        if json.dumps(case, sort_keys=True) != before:
            changed += 1
        out.append(line if json.dumps(case, sort_keys=True) == before else json.dumps(case, ensure_ascii=False))
    path.write_text('\n'.join(out) + '\n')
print(f'patched {changed} cases', file=sys.stderr)
