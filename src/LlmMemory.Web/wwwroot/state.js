// The page's whole state, its URL form (the part after '#', so it never reaches the server) and the scenario it asks
// the API about. The scenario is docs/scenario.md's: fields left at "default" are not sent, so the library's defaults
// apply exactly as they would to a scenario file.

export const DEFAULTS = Object.freeze({
  model: 'llama-3.1-8b',
  config: null,
  gguf: null,
  label: '',
  mode: 'inference',
  engine: '',
  weights: '',
  kv_cache_dtype: '',
  batch: 1,
  seq: 2048,
  precision: '',
  optimizer: '',
  gradient_checkpointing: '',
  gradient_accumulation: 1,
  attention: '',
  lora_r: '',
  lora_targets: '',
  gpu: 'rtx-4090',
  gpus: 1,
  zero: '',
  fsdp: '',
  tp: 1,
  gpu_memory_utilization: '',
  max_num_seqs: '',
  engine_version: '',
  alloc_conf: '',
  /** Scenario fields a dropped fine-tuning config set that the form has no control for ({"packed": true, …}), sent as they are. */
  extra: null,
  /** The file those fields came from. */
  extra_label: '',
});

/** The page's serving controls and the engine_options field each sets. The context is the serving engine's max_model_len
 *  (the library refuses both at once), so the context control sets it. */
export const SERVING = Object.freeze({
  gpu_memory_utilization: 'gpu_memory_utilization',
  max_num_seqs: 'max_num_seqs',
  engine_version: 'version',
});

/** By engine, the scenario fields its inference estimate reads (the API's /api/choices), so only those are offered and sent. */
let inferenceFields = {};
export function setInferenceFields(map) { inferenceFields = map ?? {}; }

/** Whether the state's inference engine reads <field> (a scenario JSON path); training settings are the training path's. */
export function engineReads(state, field) {
  const fields = inferenceFields[state.engine || 'transformers'];
  return !fields || fields.includes(field);
}

/** Whether the serving control <key> (a key of SERVING) applies: inference on an engine that reads it. */
export function servingControlApplies(state, key) {
  return !training(state) && engineReads(state, `engine_options.${SERVING[key]}`);
}

/** Whether the batch applies: always in training; in inference, where the engine reads it (vLLM and SGLang size by the GPU). */
export function batchApplies(state) {
  return training(state) || engineReads(state, 'batch');
}

const NUMBERS = new Set(['batch', 'seq', 'gradient_accumulation', 'gpus', 'tp']);
/** Always written to the URL, so a shared link reads as a sentence even when these are defaults. */
const ALWAYS = new Set(['mode', 'gpu', 'batch', 'seq']);

/** Reads a state from a URL hash such as "#model=llama-3.1-8b&mode=qlora&gpu=rtx-4090". Unknown keys are ignored. */
export function fromHash(hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const state = { ...DEFAULTS };
  for (const key of Object.keys(DEFAULTS)) {
    if (!params.has(key) || key === 'config' || key === 'gguf' || key === 'extra') continue;
    const value = params.get(key);
    state[key] = NUMBERS.has(key) ? Number(value) : value;
  }
  for (const key of ['config', 'gguf']) {
    if (!params.has(key)) continue;
    try {
      state[key] = JSON.parse(decodeBase64Url(params.get(key)));
      state.model = '';
    } catch {
      state[key] = null;
    }
  }
  if (params.has('extra')) {
    try {
      const extra = JSON.parse(decodeBase64Url(params.get('extra')));
      state.extra = extra !== null && typeof extra === 'object' && !Array.isArray(extra) ? extra : null;
    } catch {
      state.extra = null;
    }
  }
  return state;
}

/** The URL hash of a state: the fields that differ from the defaults, plus mode, gpu, batch and seq. */
export function toHash(state) {
  const params = new URLSearchParams();
  if (state.config || state.gguf) {
    const key = state.config ? 'config' : 'gguf';
    params.set(key, encodeBase64Url(JSON.stringify(state[key])));
    if (state.label) params.set('label', state.label);
  } else {
    params.set('model', state.model);
  }
  for (const key of Object.keys(DEFAULTS)) {
    if (key === 'model' || key === 'config' || key === 'gguf' || key === 'label' || key === 'extra') continue;
    if (ALWAYS.has(key) || String(state[key]) !== String(DEFAULTS[key])) params.set(key, String(state[key]));
  }
  if (state.extra) params.set('extra', encodeBase64Url(JSON.stringify(state.extra)));
  return '#' + params.toString();
}

const training = (state) => state.mode !== 'inference';

/** A bare parameter count ("7B", "6.7e9", the element count of a dropped safetensors file), as the library reads one
 *  (Sources/ModelResolver.TryParseCount). A count has no layers, so the library refuses batch and seq for it. */
const COUNT = /^\s*\d+(\.\d+)?([eE][+-]?\d+)?\s*[kKmMbBtT]?\s*$/;
const isCount = (state) => !state.config && COUNT.test(String(state.model));
const lora = (state) => state.mode === 'lora' || state.mode === 'qlora';

/** The scenario (docs/scenario.md) that the state describes; settings that do not apply to the mode are left out. */
export function toScenario(state) {
  const s = { model: state.config ? { config: state.config } : state.gguf ? { gguf: state.gguf } : state.model, mode: state.mode };
  if (state.engine) s.engine = state.engine;
  if (state.weights) s.weights = state.weights;
  if (!training(state) && state.kv_cache_dtype) s.kv_cache_dtype = state.kv_cache_dtype;
  if (!isCount(state)) {
    if (batchApplies(state)) s.batch = state.batch;
    s.seq = state.seq;
  }
  if (training(state)) {
    if (state.precision) s.precision = state.precision;
    if (state.optimizer) s.optimizer = state.optimizer;
    if (state.gradient_checkpointing) s.gradient_checkpointing = state.gradient_checkpointing;
    if (state.gradient_accumulation !== 1) s.gradient_accumulation = state.gradient_accumulation;
    if (state.attention) s.attention = state.attention;
  }
  if (lora(state) && (state.lora_r || state.lora_targets)) {
    s.lora = {};
    if (state.lora_r) s.lora.r = Number(state.lora_r);
    if (state.lora_targets) s.lora.targets = state.lora_targets;
  }
  if (state.gpus !== 1 || state.zero || state.fsdp || state.tp !== 1) {
    s.parallel = { gpus: state.gpus };
    if (state.zero) s.parallel.zero = Number(state.zero);
    if (state.fsdp) s.parallel.fsdp = state.fsdp;
    if (state.tp !== 1) s.parallel.tp = state.tp;
  }
  for (const key of Object.keys(SERVING)) {
    if (state[key] === '' || !servingControlApplies(state, key)) continue;
    s.engine_options ??= {};
    s.engine_options[SERVING[key]] = key === 'engine_version' ? state[key] : Number(state[key]);
  }
  if (state.alloc_conf && allocConfApplies(state)) s.alloc_conf = state.alloc_conf;
  if (state.gpu) s.gpu = state.gpu;
  for (const [field, value] of Object.entries(state.extra ?? {})) setPath(s, field, value);
  return s;
}

/** Whether PyTorch's allocator settings apply: an inference engine that reads them, or training replayed on one GPU. */
export function allocConfApplies(state) {
  return training(state)
    ? state.gpus === 1 && !state.zero && !state.fsdp && state.tp === 1
    : engineReads(state, 'alloc_conf');
}

/** Sets a dotted scenario field ("parallel.offload") in a scenario object. */
function setPath(scenario, field, value) {
  const parts = field.split('.');
  let at = scenario;
  for (const part of parts.slice(0, -1)) {
    if (at[part] === null || typeof at[part] !== 'object') at[part] = {};
    at = at[part];
  }
  at[parts.at(-1)] = value;
}

/** A scenario's name in the compare view: the settings people vary between the scenarios they compare. */
export function describe(state) {
  const s = toScenario(state);
  const parts = [state.config || state.gguf ? state.label : state.model, s.mode];
  if (s.weights) parts.push(s.weights);
  if (s.engine) parts.push(s.engine);
  if ('seq' in s) parts.push('batch' in s ? `batch ${s.batch} × ${s.seq.toLocaleString('en-US')} tokens` : `${s.seq.toLocaleString('en-US')} tokens`);
  parts.push(`${s.parallel?.gpus ?? 1} × ${s.gpu ?? 'no GPU chosen'}`);
  return parts.join(', ');
}

/** The same estimate from the command line. */
export function toCommand(state) {
  if (state.config || state.extra) {
    return "# save the scenario below as scenario.json, then:\nllm-memory estimate --scenario scenario.json";
  }
  const s = toScenario(state);
  // A dropped GGUF file: the CLI reads the same header from the file itself.
  const args = ['llm-memory', 'estimate', quote(state.gguf ? state.label : state.model), '--mode', s.mode];
  const flag = (name, value) => { if (value !== undefined && value !== '') args.push(name, quote(String(value))); };
  flag('--engine', s.engine);
  flag('--weights', s.weights);
  flag('--kv-cache-dtype', s.kv_cache_dtype);
  flag('--batch', s.batch);
  flag('--seq', s.seq);
  flag('--precision', s.precision);
  flag('--optimizer', s.optimizer);
  flag('--gradient-checkpointing', s.gradient_checkpointing);
  flag('--gradient-accumulation', s.gradient_accumulation);
  flag('--attention', s.attention);
  flag('--lora-r', s.lora?.r);
  flag('--lora-targets', s.lora?.targets);
  flag('--gpus', s.parallel?.gpus);
  flag('--zero', s.parallel?.zero);
  flag('--fsdp', s.parallel?.fsdp);
  flag('--tp', s.parallel?.tp);
  flag('--gpu-memory-utilization', s.engine_options?.gpu_memory_utilization);
  flag('--max-num-seqs', s.engine_options?.max_num_seqs);
  flag('--engine-version', s.engine_options?.version);
  flag('--alloc-conf', s.alloc_conf);
  flag('--gpu', s.gpu);
  return args.join(' ');
}

function quote(text) {
  return /^[A-Za-z0-9._\/:+-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

function encodeBase64Url(text) {
  const bytes = new TextEncoder().encode(text);
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function decodeBase64Url(text) {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
}
