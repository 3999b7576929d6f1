#!/usr/bin/env python3
"""Measures real GPU memory of LLM work with PyTorch + transformers (+ peft) and writes the results as
validation cases (format: docs/scenario.md). A superset of shared/tools/measure_gpu.py: the same quantities,
the same case output, the same meaning for inference (one forward), training and lora scenarios, plus
generate(), allocator settings, AdamW implementations, more model families and one rank of an FSDP2 run.
Models are built from their config with random weights, so nothing is downloaded.

    python3 measure.py PLAN.json OUT.jsonl [--only ID ...] [--log FILE] [--dry-run]

PLAN.json is a list of scenarios (scenario.md fields, plus "id"); "model" is a path to a catalog file
(data/models/*.json, relative to the plan, holding {"config": {...}}) or {"config": {...}}. Each scenario
runs in a fresh process (its own allocator, its own CUDA context) with a timeout; a failure prints one line
and the run moves on; cases are appended and flushed after every scenario.

For each scenario it records weights (allocated after the model is on the GPU), peak_allocated and
peak_reserved (torch counters over the measured work) and device_used (total - the least free memory
sampled at the peaks, CUDA context included). Fields beyond scenario.md v1 that it reads (and writes into
the cases unchanged): new_tokens, cache, alloc_conf, foreach, fused. See README.md next to this file.

--dry-run imports no torch: it resolves every plan entry and prints what each child would do."""
import argparse, datetime, gc, json, os, signal, subprocess, sys, time

FSDP_NOTE = ("one rank of {n} measured on one GPU with PyTorch's fake process group: "
             "collectives skipped, their buffers allocated")

# scenario.md v1 fields, the fields this script adds, and the ones kept for people.
V1_FIELDS = {'model', 'mode', 'engine', 'weights', 'precision', 'optimizer', 'optimizer_in_backward', 'batch', 'seq',
             'gradient_accumulation', 'gradient_checkpointing', 'attention', 'cross_entropy', 'compile', 'packed',
             'lora', 'kv_cache_dtype', 'v_cache_dtype', 'parallel', 'engine_options', 'gpu'}
NEW_FIELDS = {'new_tokens', 'cache', 'alloc_conf', 'foreach', 'fused'}
PEOPLE_FIELDS = {'source', 'quote', 'confidence', 'assumptions', 'notes'}

# Configs without model_type (trimmed copies) and legacy custom-code configs.
ARCH_TO_TYPE = {'GPTNeoXForCausalLM': 'gpt_neox', 'GPT2LMHeadModel': 'gpt2', 'OPTForCausalLM': 'opt',
                'BloomForCausalLM': 'bloom', 'FalconForCausalLM': 'falcon', 'RWForCausalLM': 'falcon',
                'Phi3ForCausalLM': 'phi3', 'Gemma2ForCausalLM': 'gemma2', 'GPTJForCausalLM': 'gptj',
                'LlamaForCausalLM': 'llama', 'Qwen2ForCausalLM': 'qwen2', 'MistralForCausalLM': 'mistral'}
DROP_KEYS = ('architectures', 'transformers_version', 'auto_map', '_name_or_path')
# transformers' defaults where a config gives no position limit (used only for the dry-run's check).
DEFAULT_MAX_POS = {'falcon': 2048, 'gpt_neox': 2048, 'bloom': 2048}

PRECISION_DTYPE = {'bf16': 'bfloat16', 'mixed-bf16': 'float32', 'fp32': 'float32', 'fp16': 'float16'}
WEIGHTS_PRECISION = {'bf16': 'bf16', 'bfloat16': 'bf16', 'fp16': 'fp16', 'f16': 'fp16', 'float16': 'fp16',
                     'fp32': 'fp32', 'f32': 'fp32', 'float32': 'fp32'}


class Unsupported(Exception):
    pass


def hf_config_kwargs(config):
    """(model_type, kwargs for AutoConfig.for_model, notes) for a config.json dict."""
    d = dict(config)
    mt = d.pop('model_type', None)
    notes = []
    if not mt:
        mt = next((ARCH_TO_TYPE[a] for a in d.get('architectures') or [] if a in ARCH_TO_TYPE), None)
        if not mt:
            raise Unsupported('config has no model_type and no known architecture')
        notes.append(f'model_type {mt} taken from architectures')
    if mt in ('RefinedWebModel', 'RefinedWeb'):
        # Falcon's legacy custom-code config: the same model as transformers' falcon, older key names.
        d.setdefault('new_decoder_architecture', mt == 'RefinedWeb')
        for old, new in (('n_head', 'num_attention_heads'), ('n_layer', 'num_hidden_layers'),
                         ('n_head_kv', 'num_kv_heads'), ('n_embed', 'hidden_size')):
            if old in d and new not in d:
                d[new] = d.pop(old)
        notes.append(f'legacy model_type {mt} built as falcon')
        mt = 'falcon'
    for k in DROP_KEYS:
        d.pop(k, None)
    return mt, d, notes


def max_positions(mt, kw):
    for k in ('max_position_embeddings', 'n_positions', 'seq_length'):
        if kw.get(k):
            return kw[k]
    return DEFAULT_MAX_POS.get(mt)


def resolve(scn):
    """Everything a child does, decided without torch (shared by the child and --dry-run)."""
    mode = scn.get('mode', 'inference')
    engine = scn.get('engine', 'transformers')
    if engine not in ('transformers', 'pytorch'):
        raise Unsupported(f'engine {engine}')
    par = dict(scn.get('parallel') or {})
    gpus = int(par.pop('gpus', 1))
    fsdp = par.pop('fsdp', 'none')
    for k, default in (('zero', 0), ('tp', 1), ('pp', 1), ('cp', 1), ('offload', 'none')):
        if par.pop(k, default) != default:
            raise Unsupported(f'parallel.{k}')
    if par:
        raise Unsupported(f'parallel fields {sorted(par)}')
    b, s = int(scn.get('batch', 1)), int(scn.get('seq', 2048))
    r = {'batch': b, 'seq': s, 'mode': mode, 'env': {}}
    if scn.get('alloc_conf'):
        r['env']['PYTORCH_CUDA_ALLOC_CONF'] = str(scn['alloc_conf'])
    for k, bad in (('compile', True), ('optimizer_in_backward', True)):
        if scn.get(k, False) == bad:
            raise Unsupported(f'{k} {bad}')
    if scn.get('cross_entropy', 'standard') != 'standard':
        raise Unsupported(f"cross_entropy {scn['cross_entropy']}")
    if int(scn.get('gradient_accumulation', 1)) != 1:
        raise Unsupported('gradient_accumulation > 1')
    if scn.get('kv_cache_dtype') or scn.get('v_cache_dtype'):
        raise Unsupported('kv_cache_dtype')
    # precision / dtype, as the shared script: inference bf16, training mixed-bf16 unless given
    if 'precision' in scn:
        precision = scn['precision']
    elif mode == 'inference' and 'weights' in scn:
        precision = WEIGHTS_PRECISION.get(str(scn['weights']).lower())
        if precision is None:
            raise Unsupported(f"weights {scn['weights']}")
    else:
        precision = 'bf16' if mode == 'inference' else 'mixed-bf16'
    if precision not in PRECISION_DTYPE:
        raise Unsupported(f'precision {precision}')
    r['precision'], r['dtype'] = precision, PRECISION_DTYPE[precision]
    r['weights_bf16_rule'] = 'precision' not in scn and 'weights' not in scn and r['dtype'] == 'bfloat16'
    attn = scn.get('attention')
    if attn not in (None, 'sdpa', 'eager'):
        raise Unsupported(f'attention {attn}')
    r['attention'] = attn or 'sdpa'
    r['attention_fallback'] = attn is None  # sdpa refused by the model class -> eager, written into the case
    gc_mode = scn.get('gradient_checkpointing', 'none')
    if gc_mode not in ('none', 'full'):
        raise Unsupported(f'gradient_checkpointing {gc_mode}')
    r['gradient_checkpointing'] = gc_mode
    if gpus > 1 or fsdp != 'none':
        if fsdp != 'full_shard' or gpus < 2:
            raise Unsupported(f'parallel gpus {gpus} fsdp {fsdp}')
        if mode != 'training':
            raise Unsupported('FSDP measured for mode training only')
        if precision not in ('bf16', 'mixed-bf16', 'fp32'):
            raise Unsupported(f'FSDP with precision {precision}')
        r['kind'], r['world_size'] = 'fsdp', gpus
        r['mp_policy'] = 'param_dtype=bfloat16, reduce_dtype=float32' if precision == 'mixed-bf16' else None
        r['autocast'] = False
    elif mode == 'inference':
        if scn.get('new_tokens'):
            n = int(scn['new_tokens'])
            if n < 1 or n >= s:
                raise Unsupported(f'new_tokens {n} with seq {s}')
            cache = scn.get('cache', 'dynamic')
            if cache not in ('dynamic', 'static'):
                raise Unsupported(f'cache {cache}')
            r.update(kind='generate', new_tokens=n, prompt=s - n, cache=cache)
        else:
            r['kind'] = 'forward'
    elif mode in ('training', 'lora'):
        r['kind'] = 'train'
        r['autocast'] = precision == 'mixed-bf16'
    else:
        raise Unsupported(f'mode {mode}')
    if scn.get('cache') and r['kind'] != 'generate':
        raise Unsupported('cache without new_tokens')
    if mode == 'lora' and not scn.get('lora'):
        raise Unsupported('mode lora without lora')
    if mode == 'lora' and scn['lora'].get('targets') == 'attention':
        raise Unsupported('lora targets "attention" (give the module names)')
    if r['kind'] in ('train', 'fsdp'):
        opt = scn.get('optimizer', 'adamw')
        if opt not in ('adamw', 'sgd', 'sgd-momentum'):
            raise Unsupported(f'optimizer {opt}')
        kw = {'lr': 1e-5}
        if opt == 'sgd-momentum':
            kw['momentum'] = 0.9
        if opt == 'adamw' or 'foreach' in scn:
            kw['foreach'] = scn.get('foreach')  # the shared script passes foreach (None = torch's default)
        if 'fused' in scn:
            kw['fused'] = scn['fused']
        r['optimizer'] = ('AdamW' if opt == 'adamw' else 'SGD', kw)
    elif scn.get('foreach') is not None or scn.get('fused') is not None:
        raise Unsupported('foreach/fused without training')
    return r


# ----------------------------------------------------------------------------------------------- child

def _first_last(msg):
    lines = [ln.strip() for ln in str(msg).strip().splitlines() if ln.strip()] or ['']
    return lines[0] if len(lines) == 1 else f'{lines[0]} ... {lines[-1]}'


def child(scn_path, out_path):
    stage = ['start']
    try:
        _child(json.load(open(scn_path)), out_path, stage)
    except BaseException as e:
        import traceback
        traceback.print_exc()
        print(f'FAILED at {stage[0]}: {type(e).__name__}: {_first_last(e)}'[:400], file=sys.stderr, flush=True)
        os._exit(1)
    # The result file is complete: leave without interpreter/CUDA/process-group teardown, which can only fail here.
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)


def _child(scn, out_path, stage):
    t0 = time.time()
    plan = resolve(scn)
    stage[0] = 'import'
    import torch, transformers
    from transformers import AutoConfig, AutoModelForCausalLM
    torch.manual_seed(0)
    torch.cuda.set_device(0)
    dev = torch.device('cuda')
    mt, kw, notes = hf_config_kwargs(scn['model']['config'])
    stage[0] = 'config'
    cfg = AutoConfig.for_model(mt, **kw)
    dtype = getattr(torch, plan['dtype'])
    kind = plan['kind']
    b, s = plan['batch'], plan['seq']

    def build(ctx_factory):
        """from_config in `dtype` inside ctx; sdpa refused by the model class -> eager when allowed."""
        def make(attn):
            cfg._attn_implementation = attn
            with ctx_factory():
                try:
                    return AutoModelForCausalLM.from_config(cfg, dtype=dtype)
                except TypeError as e:
                    if 'dtype' not in str(e):
                        raise
                    return AutoModelForCausalLM.from_config(cfg, torch_dtype=dtype)
        refused = None
        try:
            return make(plan['attention']), None
        except (ValueError, ImportError, NotImplementedError) as e:
            text = str(e).lower()
            if not plan['attention_fallback'] or plan['attention'] == 'eager' or not ('sdpa' in text or 'attention' in text):
                raise
            refused = _first_last(e)[:200]
        gc.collect(); torch.cuda.empty_cache()
        return make('eager'), f'sdpa refused by transformers ({refused}); built with eager attention'

    free_at_peak = []

    def sample_free():
        free_at_peak.append(torch.cuda.mem_get_info()[0])

    torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
    extra = {}
    if kind == 'fsdp':
        stage[0] = 'init_process_group'
        import torch.distributed as dist
        from torch.testing._internal.distributed.fake_pg import FakeStore
        from torch.distributed.device_mesh import init_device_mesh
        try:
            from torch.distributed.fsdp import fully_shard, MixedPrecisionPolicy
        except ImportError:
            from torch.distributed._composable.fsdp import fully_shard, MixedPrecisionPolicy
        n = plan['world_size']
        os.environ.setdefault('LOCAL_RANK', '0')  # rank 0 of n, on this process's only GPU (cuda:0)
        dist.init_process_group('fake', store=FakeStore(), rank=0, world_size=n)
        mesh = init_device_mesh('cuda', (n,))
        stage[0] = 'build on meta'
        try:
            from accelerate import init_empty_weights
            ctx_factory = lambda: init_empty_weights(include_buffers=False)  # params on meta, buffers real (CPU)
        except ImportError:
            ctx_factory = lambda: torch.device('meta')
            notes.append('accelerate missing: buffers built on meta and left uninitialized')
        model, attn_note = build(ctx_factory)
        if plan['gradient_checkpointing'] == 'full':
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})
        buffers = {k: v.detach().clone() for k, v in model.named_buffers() if v.device.type != 'meta'}
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        stage[0] = 'fully_shard'
        fs_kw = {'mesh': mesh}
        if plan['mp_policy']:
            fs_kw['mp_policy'] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
        layers = _decoder_layers(model, torch)
        for layer in layers:
            fully_shard(layer, **fs_kw)
        fully_shard(model, **fs_kw)
        extra['fsdp_units'] = len(layers) + 1
        stage[0] = 'to_empty'
        model.to_empty(device=dev)
        stage[0] = 'init sharded weights'
        from torch.distributed.tensor import DTensor
        with torch.no_grad():
            for name, p in model.named_parameters():
                t = p.to_local() if isinstance(p, DTensor) else p
                if t.dim() >= 2:
                    t.normal_(0.0, 0.02)
                elif name.endswith('bias'):
                    t.zero_()
                else:
                    t.fill_(1.0)
            live = dict(model.named_buffers())
            for k, v in buffers.items():
                if k in live:
                    live[k].copy_(v)
        del buffers
        torch.cuda.synchronize()
        weights = torch.cuda.memory_allocated() - base
        notes.append(FSDP_NOTE.format(n=n))
    else:
        stage[0] = 'build'
        base = torch.cuda.memory_allocated()
        model, attn_note = build(lambda: dev)
        model.to(dev)
        torch.cuda.synchronize()
        weights = torch.cuda.memory_allocated() - base
    if attn_note:
        notes.append(attn_note)
    actual_attn = getattr(model.config, '_attn_implementation', None)
    vocab = cfg.vocab_size
    stage[0] = kind
    if kind == 'generate':
        ids = torch.randint(0, vocab, (b, plan['prompt']), device=dev)
        mask = torch.ones_like(ids)  # all ones: a random id equal to pad_token_id must not mask anything
    else:
        ids = torch.randint(0, vocab, (b, s), device=dev)
    sample_free()
    torch.cuda.reset_peak_memory_stats()
    if kind == 'forward':
        model.eval()
        with torch.no_grad():
            model(input_ids=ids, use_cache=True)
        torch.cuda.synchronize(); sample_free()
    elif kind == 'generate':
        model.eval()
        pad = getattr(cfg, 'pad_token_id', None)
        gen_kw = dict(max_new_tokens=plan['new_tokens'], min_new_tokens=plan['new_tokens'], do_sample=False,
                      use_cache=True, pad_token_id=0 if pad is None else pad)
        if plan['cache'] == 'static':
            gen_kw['cache_implementation'] = 'static'
        if hasattr(model.generation_config, 'disable_compile'):
            gen_kw['disable_compile'] = True  # generate() would otherwise torch.compile the static-cache decode step
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, **gen_kw)
        torch.cuda.synchronize(); sample_free()
        extra['generated_tokens'] = int(out.shape[1] - plan['prompt'])
        if extra['generated_tokens'] != plan['new_tokens']:
            notes.append(f"generate() produced {extra['generated_tokens']} new tokens, not {plan['new_tokens']}")
        del out
    else:
        if kind == 'train' and plan['mode'] == 'lora':
            from peft import LoraConfig, get_peft_model
            lo = scn['lora']
            model = get_peft_model(model, LoraConfig(r=lo['r'], lora_alpha=lo.get('alpha', 2 * lo['r']),
                                                     target_modules=lo['targets'], lora_dropout=0.0,
                                                     use_dora=lo.get('dora', False)))
        if kind == 'train' and plan['gradient_checkpointing'] == 'full':
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={'use_reentrant': False})
            if plan['mode'] == 'lora':
                model.enable_input_require_grads()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt_name, opt_kw = plan['optimizer']
        opt = getattr(torch.optim, opt_name)(params, **opt_kw)
        for step in range(3):
            stage[0] = f'{kind} step {step + 1}'
            with torch.autocast('cuda', dtype=torch.bfloat16, enabled=plan['autocast']):
                loss = model(input_ids=ids, labels=ids).loss
            loss.backward(); torch.cuda.synchronize(); sample_free()
            opt.step(); torch.cuda.synchronize(); sample_free()
            opt.zero_grad(set_to_none=True)
    stage[0] = 'results'
    torch.cuda.synchronize()
    total = torch.cuda.mem_get_info()[1]
    stats = torch.cuda.memory_stats()
    res = {'weights': weights, 'peak_allocated': torch.cuda.max_memory_allocated(),
           'peak_reserved': torch.cuda.max_memory_reserved(), 'device_used': total - min(free_at_peak),
           'gpu_name': torch.cuda.get_device_name(0), 'gpu_total': total,
           'versions': {'torch': torch.__version__, 'transformers': transformers.__version__},
           'attention': actual_attn, 'notes': notes, 'extra': extra,
           'alloc_conf': os.environ.get('PYTORCH_CUDA_ALLOC_CONF'),
           'num_alloc_retries': stats.get('num_alloc_retries'), 'elapsed_s': round(time.time() - t0, 1)}
    try:  # the installed version, without the seconds an import of peft costs
        from importlib.metadata import version
        res['versions']['peft'] = version('peft')
    except Exception:
        pass
    with open(out_path + '.part', 'w') as f:
        json.dump(res, f)
    os.replace(out_path + '.part', out_path)


def _decoder_layers(model, torch):
    """The modules to shard one by one: the model's _no_split_modules (its decoder layers), outermost only;
    else the longest ModuleList."""
    names = set(getattr(model, '_no_split_modules', None) or [])
    layers, inside = [], set()
    for m in model.modules():
        if id(m) in inside:
            continue
        if type(m).__name__ in names:
            layers.append(m)
            inside.update(id(x) for x in m.modules())
    if not layers:
        lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
        layers = list(max(lists, key=len)) if lists else []
    return layers


# ---------------------------------------------------------------------------------------------- parent

def load_plan(plan_path):
    plan = json.load(open(plan_path))
    here = os.path.dirname(os.path.abspath(plan_path))
    out = []
    for scn in plan:
        path = None
        if isinstance(scn.get('model'), str):
            path = os.path.normpath(os.path.join(here, scn['model']))
            scn = dict(scn, model={'config': json.load(open(path))['config']})
        out.append((scn, path))
    return out


def gpu_id(name, total):
    if 'H200' in name:
        return 'h200'
    if 'H100' in name:
        return 'h100-94gb' if 'NVL' in name or total > 90 * 2**30 else 'h100-80gb'
    return None


def child_env(plan):
    env = dict(os.environ)
    env.pop('PYTORCH_CUDA_ALLOC_CONF', None)  # the baseline is torch's default allocator
    env.pop('PYTORCH_ALLOC_CONF', None)
    env.update(plan['env'])
    env.update(PYTHONUNBUFFERED='1', TOKENIZERS_PARALLELISM='false', HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1')
    return env


def make_cases(scn, plan, r, date):
    v = r['versions']
    src = (f"measured on {r['gpu_name']} with " + ', '.join(f'{k} {v[k]}' for k in ('torch', 'transformers', 'peft') if k in v)
           + f', {date}, by tools/measure/measure.py (this project)')
    base = {k: val for k, val in scn.items() if k != 'id'}
    notes = list(r.get('notes') or [])
    actual = r.get('attention')
    if actual in ('eager', 'sdpa') and actual != plan['attention']:
        if 'attention' in scn:
            notes.append(f"requested attention {scn['attention']}, transformers ran {actual}")
        base['attention'] = actual
    if plan['kind'] == 'generate':
        notes.append(f"model.generate(): {plan['prompt']} prompt + {plan['new_tokens']} new tokens per sequence, greedy, "
                     f"{plan['cache']} cache" + (', no torch.compile' if plan['cache'] == 'static' else ''))
    if notes:
        old = base.get('notes')
        old = [] if old is None else (old if isinstance(old, list) else [old])
        allnotes = old + [n for n in notes if n not in old]
        base['notes'] = allnotes[0] if len(allnotes) == 1 else allnotes
    gpu = gpu_id(r['gpu_name'], r.get('gpu_total', 0))
    cases = []
    for what in ('weights', 'peak_allocated', 'peak_reserved', 'device_used'):
        case = dict(base)
        case.update(id=f"{scn['id']}-{what}", source=src, measured={'what': what, 'bytes': int(r[what]), 'per': 'gpu', 'exact': False})
        if gpu:
            case['gpu'] = gpu
        if plan['weights_bf16_rule']:
            case['weights'] = 'bf16'
        cases.append(case)
    return cases


def describe(scn, path, plan):
    mt, kw, notes = hf_config_kwargs(scn['model']['config'])
    fn = {'forward': 'child: model(input_ids, use_cache=True) under no_grad',
          'generate': 'child: model.generate(...) under no_grad',
          'train': 'child: 3 x (forward(labels) + backward + optimizer.step)',
          'fsdp': 'child: fake PG + fully_shard(decoder layers, root) + to_empty(cuda) + 3 steps'}[plan['kind']]
    lines = [f"  model {os.path.relpath(path) if path else 'inline'} -> AutoConfig.for_model({mt!r}) {'; '.join(notes)}".rstrip(),
             f"  scenario {json.dumps({k: v for k, v in scn.items() if k not in ('id', 'model')})}",
             f"  {fn}; dtype torch.{plan['dtype']} (precision {plan['precision']}); attention {plan['attention']}"
             + (' (eager if sdpa refused)' if plan['attention_fallback'] else '')
             + f"; batch {plan['batch']} seq {plan['seq']}",
             f"  env {plan['env'] or '{}'} (PYTORCH_CUDA_ALLOC_CONF/PYTORCH_ALLOC_CONF removed otherwise)"]
    if plan['kind'] == 'generate':
        lines.append(f"  generate: prompt {plan['prompt']} + max_new_tokens=min_new_tokens={plan['new_tokens']}, do_sample=False, "
                     f"use_cache=True, cache {plan['cache']}" + (" (cache_implementation='static', disable_compile=True)" if plan['cache'] == 'static' else ''))
    if plan['kind'] in ('train', 'fsdp'):
        name, okw = plan['optimizer']
        lines.append(f"  torch.optim.{name}({', '.join(f'{k}={v}' for k, v in okw.items())}); autocast bf16 {plan.get('autocast')}; "
                     f"gradient_checkpointing {plan['gradient_checkpointing']}" + (f"; lora {scn['lora']}" if plan['mode'] == 'lora' else ''))
    if plan['kind'] == 'fsdp':
        lines.append(f"  fsdp: world_size {plan['world_size']}, mesh cuda, MixedPrecisionPolicy {plan['mp_policy']}")
    lines.append(f"  case: weights 'bf16' added: {plan['weights_bf16_rule']}")
    warn = []
    mp = max_positions(mt, kw)
    if mp and plan['seq'] > mp:
        warn.append(f'seq {plan["seq"]} > max positions {mp}')
    unknown = set(scn) - V1_FIELDS - NEW_FIELDS - PEOPLE_FIELDS - {'id'}
    if unknown:
        warn.append(f'fields not in scenario.md or this script: {sorted(unknown)}')
    if not str(scn['id']).strip():
        warn.append('empty id')
    return lines, warn


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('plan')
    ap.add_argument('out')
    ap.add_argument('--only', nargs='+', default=None, metavar='ID')
    ap.add_argument('--log', default=None, help='append every child\'s output and the summary lines here')
    ap.add_argument('--dry-run', action='store_true', help='resolve the plan and print what each child would do; no torch')
    ap.add_argument('--timeout', type=float, default=120.0, help='seconds per scenario (default 120)')
    ap.add_argument('--deadline-at', type=float, default=None, help='epoch seconds after which no scenario is started')
    ap.add_argument('--deadline-s', type=float, default=None, help='the same, in seconds from now')
    ap.add_argument('--grace-s', type=float, default=60.0,
                    help='a scenario started before the deadline is killed this long after it (default 60)')
    a = ap.parse_args()
    t_start = time.time()
    deadline = a.deadline_at if a.deadline_at is not None else (t_start + a.deadline_s if a.deadline_s is not None else None)
    entries = load_plan(a.plan)
    ids = [s['id'] for s, _ in entries]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        sys.exit(f'duplicate ids: {dup}')
    if a.only:
        missing = set(a.only) - set(ids)
        if missing:
            print(f'--only ids not in the plan: {sorted(missing)}', flush=True)
        entries = [(s, p) for s, p in entries if s['id'] in a.only]
    if a.dry_run:
        bad = 0
        for i, (scn, path) in enumerate(entries, 1):
            try:
                plan = resolve(scn)
                lines, warn = describe(scn, path, plan)
                print(f"{i:2d}. {scn['id']} [{plan['kind']}]")
                print('\n'.join(lines))
                for w in warn:
                    print(f'  WARNING: {w}')
                bad += bool(warn)
            except Exception as e:
                bad += 1
                print(f"{i:2d}. {scn['id']}: UNSUPPORTED: {type(e).__name__}: {e}")
        print(f'{len(entries)} scenarios, {bad} with warnings or unsupported; cases would go to {a.out}')
        return
    log = open(a.log, 'a') if a.log else None

    def say(msg):
        print(msg, flush=True)
        if log:
            log.write(msg + '\n'); log.flush()

    date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    tmp_scn, tmp_res = a.out + '.scn.json', a.out + '.one.json'
    done, failed, skipped = [], [], []
    with open(a.out, 'a') as out:
        for k, (scn, _) in enumerate(entries):
            now = time.time()
            if deadline is not None and now >= deadline:
                skipped = [s['id'] for s, _ in entries[k:]]
                say(f'[{now - t_start:5.0f}s] deadline reached: {len(skipped)} scenarios not started: {" ".join(skipped)}')
                break
            try:
                plan = resolve(scn)
            except Exception as e:
                failed.append(scn['id'])
                say(f"{scn['id']}: failed: unsupported: {e}")
                continue
            timeout = a.timeout
            if deadline is not None:
                timeout = max(5.0, min(timeout, deadline + a.grace_s - now))
            if os.path.exists(tmp_res):
                os.remove(tmp_res)  # never read a result left by an earlier run
            with open(tmp_scn, 'w') as f:
                json.dump(scn, f)
            say(f"[{now - t_start:5.0f}s] start {scn['id']} ({plan['kind']}, timeout {timeout:.0f}s)")
            p = subprocess.Popen([sys.executable, os.path.abspath(__file__), '--child', tmp_scn, tmp_res], env=child_env(plan),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
            timed_out = False
            try:
                so, se = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # the child's own session: it and anything it started
                except ProcessLookupError:
                    pass
                so, se = p.communicate()
                time.sleep(2)  # let the driver take back the killed process's device memory before the next one
            if log:
                log.write(f"===== {scn['id']} rc {p.returncode}{' (timeout)' if timed_out else ''}\n"
                          f"--- stdout (tail)\n{(so or '')[-20000:]}\n--- stderr (tail)\n{(se or '')[-20000:]}\n")
                log.flush()
            r = None
            if os.path.exists(tmp_res):  # written (atomically) only once everything is measured
                try:
                    r = json.load(open(tmp_res))
                except ValueError:
                    r = None
                os.remove(tmp_res)
            if r is None:
                failed.append(scn['id'])
                why = f'timeout after {timeout:.0f}s' if timed_out else ((se or '').strip().splitlines() or [f'rc {p.returncode}, no output'])[-1][:300]
                say(f"{scn['id']}: failed: {why}")
                continue
            for case in make_cases(scn, plan, r, date):
                out.write(json.dumps(case) + '\n')
            out.flush(); os.fsync(out.fileno())
            done.append(scn['id'])
            g = 2**30
            ex = ', '.join(f'{k} {v}' for k, v in r['extra'].items())
            say(f"{scn['id']}: weights {r['weights']/g:.3f} GiB, peak allocated {r['peak_allocated']/g:.3f} GiB, "
                f"reserved {r['peak_reserved']/g:.3f} GiB, device used {r['device_used']/g:.3f} GiB "
                f"[attn {r['attention']}, retries {r['num_alloc_retries']}, {r['elapsed_s']}s{', ' + ex if ex else ''}]")
    for f in (tmp_scn, tmp_res):
        if os.path.exists(f):
            os.remove(f)
    say(f'[{time.time() - t_start:5.0f}s] measured {len(done)}, failed {len(failed)}{" (" + " ".join(failed) + ")" if failed else ""}, '
        f'not started {len(skipped)}; cases appended to {a.out}')


if __name__ == '__main__':
    if len(sys.argv) > 1 and sys.argv[1] == '--child':
        child(sys.argv[2], sys.argv[3])
    else:
        main()
