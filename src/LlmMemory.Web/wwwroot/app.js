// The page: a form over the scenario, the API's answers drawn as a bar, curves and tables. No arithmetic on memory
// happens here: every number shown comes from the API (the library); the page only formats and draws it.

import { DEFAULTS, SERVING, fromHash, toHash, toScenario, toCommand, describe, setInferenceFields, servingControlApplies, batchApplies, engineReads, allocConfApplies } from './state.js';
import { drawBar, drawCurve, drawCompare, drawTimeline, swatch, gib } from './charts.js';
import { readModelFile, ggufHeader, HeaderError } from './headers.js';

const $ = (id) => document.getElementById(id);
const number = (n) => Number(n).toLocaleString('en-US');

const catalog = { models: [], gpus: [], dtypes: [], choices: {} };
let state = { ...DEFAULTS };
let fileHeader = null;
let fileNote = '';
let inflight = null;
let timer = 0;
/** The scenarios kept for the compare view: [{label, estimate}], at most MAX_COMPARED. */
const compared = [];
const MAX_COMPARED = 3;

async function getJson(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

/** A busy server refuses sweeps and fits at once with 503 and Retry-After (seconds): wait that long and ask again, a few times. */
const BUSY_TRIES = 5;

async function postJson(path, body, signal) {
  let response;
  for (let attempt = 1; ; attempt++) {
    response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal });
    const wait = Number(response.headers.get('retry-after'));
    if (response.status !== 503 || !wait || attempt === BUSY_TRIES) break;
    await new Promise(resolve => setTimeout(resolve, 1000 * wait));
  }
  let json = null;
  try { json = await response.json(); } catch { json = null; }
  return { ok: response.ok, status: response.status, json };
}

// ---------------------------------------------------------------- form

function fillSelect(id, values, defaultLabel = 'default') {
  const select = $(id);
  select.replaceChildren(new Option(defaultLabel, ''), ...values.map((v) => new Option(v, v)));
}

function fillCatalogs() {
  $('model-list').replaceChildren(...catalog.models.flatMap((m) => [
    new Option(`${m.hf_id}: ${(m.parameters / 1e9).toFixed(2)} B parameters, ${m.model_type}`, m.alias),
    new Option(m.alias, m.hf_id),
  ]));
  fillSelect('engine', catalog.choices.engine, 'default (transformers)');
  fillSelect('weights', catalog.choices.weights, "the model's own dtype");
  fillSelect('kv_cache_dtype', catalog.choices.kv_cache_dtype, 'default (compute dtype)');
  fillSelect('precision', catalog.choices.precision, 'default (mixed-bf16)');
  fillSelect('optimizer', catalog.choices.optimizer, 'default (adamw)');
  fillSelect('gradient_checkpointing', catalog.choices.gradient_checkpointing, 'default (none)');
  fillSelect('attention', catalog.choices.attention, 'default (sdpa)');
  fillSelect('fsdp', catalog.choices.fsdp.filter((v) => v !== 'none'), 'none');
  const gpu = $('gpu');
  gpu.replaceChildren(new Option('none (total only)', ''));
  const vendors = new Map();
  for (const g of catalog.gpus) {
    if (!vendors.has(g.vendor)) vendors.set(g.vendor, []);
    vendors.get(g.vendor).push(g);
  }
  for (const [vendor, gpus] of vendors) {
    const group = document.createElement('optgroup');
    group.label = vendor === 'cpu' ? 'host memory' : vendor.toUpperCase();
    for (const g of gpus) {
      const budget = g.budget_bytes ? `: ${gib(g.budget_bytes)} GiB usable` : '';
      group.append(new Option(`${g.name}${budget}`, g.id));
    }
    gpu.append(group);
  }
}

/** Puts the state into the controls (on load, and when a shared link is opened). */
function showState() {
  $('model-search').value = state.config || state.gguf ? '' : state.model;
  for (const radio of document.querySelectorAll('input[name=mode]')) radio.checked = radio.value === state.mode;
  for (const key of ['engine', 'weights', 'kv_cache_dtype', 'batch', 'seq', 'precision', 'optimizer', 'gradient_checkpointing',
    'gradient_accumulation', 'attention', 'lora_r', 'lora_targets', 'gpu', 'gpus', 'zero', 'fsdp', 'tp', 'alloc_conf', ...Object.keys(SERVING)]) {
    const control = $(key);
    const value = String(state[key]);
    if (control.tagName === 'SELECT' && ![...control.options].some((o) => o.value === value)) control.append(new Option(value, value));
    control.value = value;
  }
  showModeSettings();
}

function showModeSettings() {
  const training = state.mode !== 'inference';
  $('training-settings').hidden = !training;
  $('inference-settings').hidden = training;
  $('lora-settings').hidden = !(state.mode === 'lora' || state.mode === 'qlora');
  // The serving controls the chosen engine reads (vLLM: all of them; SGLang: length, utilization and version; llama.cpp: version).
  let serving = false;
  for (const key of Object.keys(SERVING)) {
    const applies = servingControlApplies(state, key);
    for (const element of document.querySelectorAll(`[data-serving="${key}"]`)) element.hidden = !applies;
    serving ||= applies;
  }
  $('serving-settings').hidden = !serving;
  $('batch').hidden = $('batch-label').hidden = !batchApplies(state);
  $('alloc_conf').hidden = $('alloc_conf-label').hidden = $('alloc_conf-help').hidden = !allocConfApplies(state);
  $('seq-label').textContent = training ? 'Sequence length (tokens)'
    : engineReads(state, 'engine_options.max_model_len') ? 'Context length = max model length (tokens)' : 'Context length (tokens)';
  $('batch-label').textContent = training ? 'Micro-batch (sequences)' : 'Batch (sequences at once)';
}

/** Reads the controls into the state. Model choice is handled by its own events. */
function readControls() {
  state.mode = document.querySelector('input[name=mode]:checked')?.value ?? 'inference';
  for (const key of ['engine', 'weights', 'kv_cache_dtype', 'precision', 'optimizer', 'gradient_checkpointing', 'attention', 'lora_r', 'lora_targets', 'gpu', 'zero', 'fsdp',
    'alloc_conf', ...Object.keys(SERVING)]) {
    state[key] = $(key).value.trim();
  }
  for (const key of ['batch', 'seq', 'gradient_accumulation', 'gpus', 'tp']) {
    const value = $(key).value.trim();
    state[key] = value === '' ? DEFAULTS[key] : Number(value);
  }
}

function chooseCatalogModel(text) {
  const wanted = text.trim().toLowerCase();
  const model = catalog.models.find((m) => m.alias.toLowerCase() === wanted || m.hf_id.toLowerCase() === wanted);
  if (!model && !/^\d+(\.\d+)?([eE][+-]?\d+)?\s*[kKmMbBtT]?$/.test(text.trim())) return false;
  leaveGguf();
  state.model = model ? model.alias : text.trim();
  state.config = null;
  state.label = '';
  hideFile();
  return true;
}

/** A dropped GGUF file chose llama.cpp for itself; the next model gets the engine back to its default. */
function leaveGguf() {
  if (!state.gguf) return;
  state.gguf = null;
  state.engine = DEFAULTS.engine;
  $('engine').value = state.engine;
}

function useConfig(config, label) {
  leaveGguf();
  state.config = config;
  state.model = '';
  state.label = label;
  $('model-search').value = '';
}

function hideFile() {
  fileHeader = null;
  $('file-info').hidden = true;
}

// ---------------------------------------------------------------- files

async function onFile(file) {
  try {
    const header = await readModelFile(file, catalog.dtypes);
    if (header.format === 'stack-config') {
      await readStackConfig(header);
      return;
    }
    if (header.format === 'config.json') {
      hideFile();
      useConfig(header.config, header.name);
      $('config-text').value = JSON.stringify(header.config, null, 2);
    } else {
      showFile(header);
    }
    schedule(0);
  } catch (e) {
    showProblem({ detail: e instanceof HeaderError ? e.message : `${file.name}: ${e.message}`, field: 'file' });
  }
}

// ---------------------------------------------------------------- fine-tuning configs

/** Scenario fields a stack config sets that the form has a control for: the state key each goes to. */
const FORM_FIELDS = {
  mode: 'mode', engine: 'engine', weights: 'weights', precision: 'precision', optimizer: 'optimizer',
  gradient_checkpointing: 'gradient_checkpointing', attention: 'attention', batch: 'batch', seq: 'seq',
  gradient_accumulation: 'gradient_accumulation', 'lora.r': 'lora_r', 'parallel.gpus': 'gpus', 'parallel.zero': 'zero',
  'parallel.fsdp': 'fsdp', 'parallel.tp': 'tp', alloc_conf: 'alloc_conf',
};
const NUMBER_FIELDS = new Set(['batch', 'seq', 'gradient_accumulation', 'gpus', 'tp']);

/** Sends a dropped fine-tuning config to the server, which reads it as `--config` does, and puts what it sets into the form. */
async function readStackConfig(header) {
  const answer = await postJson('/api/stack-config', { name: header.name, text: header.text });
  if (!answer.ok) {
    const detail = plain(answer.json?.detail) ?? `HTTP ${answer.status}`;
    showProblem({ detail: detail.startsWith(header.name) ? detail : `${header.name}: ${detail}`, field: 'file' });
    return;
  }
  const read = answer.json;
  const extra = {};
  for (const { field, value } of read.settings) {
    const key = FORM_FIELDS[field];
    if (field === 'model') {
      leaveGguf();
      hideFile();
      state.model = String(value);
      state.config = null;
      state.label = '';
    } else if (field === 'lora.targets' && typeof value === 'string' && [...$('lora_targets').options].some((o) => o.value === value)) {
      state.lora_targets = value;
    } else if (key) {
      state[key] = NUMBER_FIELDS.has(key) ? Number(value) : String(value);
    } else {
      extra[field] = value;
    }
  }
  state.extra = Object.keys(extra).length ? extra : null;
  state.extra_label = header.name;
  showState();
  renderStackConfig(read);
  schedule(0);
}

/** What the config set, what it moves that is not modelled, and what was not used: the notes `--config` prints. */
function renderStackConfig(read) {
  $('stack-summary').textContent = `${read.file} read as ${read.kind_description}.`
    + (state.extra ? ' Settings the form has no control for are sent as they are (listed below, marked "beside the form").' : '');
  const used = read.settings.map((s) => `${s.key ?? "(the file's kind)"} → ${s.field} = ${JSON.stringify(s.value)}`
    + (state.extra && s.field in state.extra ? ' (beside the form)' : ''));
  $('stack-used').replaceChildren(...[...used, ...read.confirmed].map((text) => Object.assign(document.createElement('li'), { textContent: text })));
  $('stack-not-modelled').textContent = read.not_modelled.length
    ? `Moves memory but is not modelled yet: ${read.not_modelled.map((k) => `${k.key} (${k.why})`).join('; ')}.` : '';
  $('stack-not-used').textContent = read.not_used.length
    ? `Not used (no effect on memory, or left to the tool at run time): ${read.not_used.join(', ')}.` : '';
  $('stack-clear').hidden = !state.extra;
  $('stack-info').hidden = false;
}

/** A shared link carries the fields beside the form, not the file: list them. */
function renderExtraFromLink() {
  if (!state.extra) return;
  $('stack-summary').textContent = 'Settings from a fine-tuning config that the form has no control for, sent as they are:';
  $('stack-used').replaceChildren(...Object.entries(state.extra).map(([field, value]) =>
    Object.assign(document.createElement('li'), { textContent: `${field} = ${JSON.stringify(value)}` })));
  $('stack-not-modelled').textContent = '';
  $('stack-not-used').textContent = '';
  $('stack-clear').hidden = false;
  $('stack-info').hidden = false;
}

function showFile(header) {
  fileHeader = header;
  const arch = header.meta['general.architecture'];
  const facts = [
    ['file-name', 'File', header.name],
    ['file-format', 'Format', header.format],
    ['file-arch', 'Architecture', typeof arch === 'string' ? arch : 'not stated'],
    ['file-size', 'File size', `${number(header.size)} bytes`],
    ['file-header-bytes', 'Header read', `${number(header.headerBytes)} bytes`],
    ['file-tensors', 'Tensors', number(header.tensors.length)],
    ['file-parameters', 'Parameters (tensor elements)', number(header.elements)],
    ['file-bytes', 'Tensor bytes', `${number(header.bytes)} bytes (${gib(header.bytes)} GiB)`],
  ];
  $('file-facts').replaceChildren(...facts.flatMap(([id, term, value]) => {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dd.id = id;
    return [dt, dd];
  }));
  $('file-types').tBodies[0].replaceChildren(...header.byType.map((row) => tableRow([row.type, number(row.tensors), number(row.elements), number(row.bytes)], [1, 2, 3])));
  $('file-info').hidden = false;

  if (header.format.startsWith('GGUF')) {
    // The header goes to the API as it is; the library builds the model from its tensors, as the CLI does from the file.
    state.gguf = ggufHeader(header);
    state.config = null;
    state.model = '';
    state.label = header.name;
    state.engine = 'llama.cpp';
    $('model-search').value = '';
    fileNote = `Estimating the file's own ${number(header.tensors.length)} tensors (their ggml types and exact bytes) with llama.cpp's rules.`;
  } else {
    leaveGguf();
    state.config = null;
    state.label = '';
    state.model = String(header.elements);
    $('model-search').value = state.model;
    fileNote = 'A safetensors file holds no architecture, so this is the rule-of-thumb estimate from its element count; paste the neighbouring config.json for the full estimate.';
  }
  $('file-note').textContent = fileNote;
  showState();
}

// ---------------------------------------------------------------- results

function tableRow(cells, numeric = []) {
  const tr = document.createElement('tr');
  cells.forEach((cell, i) => {
    const td = document.createElement(i === 0 ? 'th' : 'td');
    if (i === 0) td.scope = 'row';
    if (numeric.includes(i)) td.className = 'num';
    if (cell instanceof Node) td.append(cell); else td.textContent = cell;
    tr.append(td);
  });
  return tr;
}

function gpuOf(id) {
  return catalog.gpus.find((g) => g.id === id);
}

function budgetLabel(estimate) {
  const g = gpuOf(estimate.gpu);
  return g ? `${g.name.replace(/^(NVIDIA|AMD) /, '')}: ${gib(estimate.gpu_bytes)} GiB usable` : '';
}

function renderEstimate(estimate) {
  const total = estimate.total_bytes;
  $('total-gib').textContent = `${gib(total)} GiB`;
  $('total-bytes').textContent = `(${number(total)} bytes${estimate.devices > 1 ? `; ${number(estimate.all_devices_bytes)} on all ${estimate.devices} devices` : ''}${estimate.host_bytes ? `; ${gib(estimate.host_bytes)} GiB in host memory` : ''})`;
  $('total-bytes').dataset.bytes = String(total);

  const p = estimate.parameters;
  const m = estimate.model;
  const shape = m.layers ? `, ${m.model_type}, ${m.layers} layers, hidden ${number(m.hidden_size)}, ${m.attention_heads} heads (${m.kv_heads} KV)` : '';
  $('model-summary').textContent = `${m.hf_id || state.label || m.name}: ${number(p.total)} parameters${shape}.`;
  $('model-summary').dataset.parameters = String(p.total);
  if (fileHeader && state.gguf) {
    const same = p.total === fileHeader.elements;
    $('file-note').textContent = fileNote
      + (same ? ` The library counts ${number(p.total)} parameters, every element of the file's tensors.`
        : ` The library counts ${number(p.total)} parameters of the file's ${number(fileHeader.elements)} tensor elements; the rest are not parameters (see the notes).`);
  }

  const device = estimate.components.filter((c) => c.residence === 'device');
  drawBar($('bar'), device, estimate.gpu_bytes ?? null, budgetLabel(estimate));
  $('bar-desc').textContent = device.map((c) => `${c.name.replace(/_/g, ' ')} ${gib(c.bytes)} GiB`).join(', ')
    + (estimate.gpu_bytes ? `; the GPU allows ${gib(estimate.gpu_bytes)} GiB.` : '.');
  $('components').tBodies[0].replaceChildren(...estimate.components.map((c) => tableRow([
    c.name.replace(/_/g, ' ') + (c.residence === 'host' ? ' (host memory)' : ''),
    swatch(c.kind),
    gib(c.bytes),
    number(c.bytes),
    c.residence === 'device' && total > 0 ? `${((c.bytes / total) * 100).toFixed(1)}%` : 'n/a',
    c.formula,
  ], [2, 3, 4])));
  const notes = [...estimate.notes, ...estimate.comparisons.map((c) => `For comparison, ${c.name.replace(/_/g, ' ')}: ${gib(c.bytes)} GiB (${c.formula}).`)];
  $('notes').replaceChildren(...notes.map((n) => Object.assign(document.createElement('li'), { textContent: n })));
  $('notes-section').hidden = notes.length === 0;

  const line = $('fit-line');
  if (estimate.fits === true) {
    line.textContent = `✓ Fits: ${gib(estimate.gpu_bytes - total)} GiB to spare on ${budgetLabel(estimate)}.`;
  } else if (estimate.fits === false && estimate.engine_accepts === false && total <= estimate.gpu_bytes) {
    line.textContent = `✗ Does not fit: the memory would, but the engine refuses to start (see the notes).`;
  } else if (estimate.fits === false) {
    line.textContent = `✗ Does not fit: ${gib(total - estimate.gpu_bytes)} GiB over ${budgetLabel(estimate)}.`;
  } else {
    line.textContent = estimate.gpu ? 'No memory budget is known for this device.' : 'Choose a GPU to see whether it fits.';
  }
  line.dataset.fits = String(estimate.fits ?? 'unknown');
  renderServingFacts(estimate.facts ?? {});
  renderTimeline(estimate);
}

/** A serving engine's KV pool in words: the facts the estimate reports (tokens, blocks, lengths, concurrency). */
const SERVING_FACTS = [
  ['kv_tokens', 'KV cache pool', (f) => `${number(f.kv_tokens)} tokens${f.kv_blocks !== undefined ? ` (${number(f.kv_blocks)} blocks)` : ''}`],
  ['max_model_len', 'Max model length', (f) => `${number(f.max_model_len)} tokens`],
  ['max_concurrency', 'Requests of that length at once', (f) => number(f.max_concurrency)],
  ['longest_max_model_len', 'Longest max model length the pool allows', (f) => `${number(f.longest_max_model_len)} tokens`],
];

function renderServingFacts(facts) {
  const rows = SERVING_FACTS.filter(([key]) => key in facts);
  $('serving-facts').replaceChildren(...rows.flatMap(([key, term, value]) => [
    Object.assign(document.createElement('dt'), { textContent: term }),
    Object.assign(document.createElement('dd'), { textContent: value(facts), id: `fact-${key}` }),
  ]));
  $('serving-facts').hidden = rows.length === 0;
}

/** The estimate's memory at each phase boundary of one step, where the estimator models the step. */
function renderTimeline(estimate) {
  const points = estimate.timeline;
  $('timeline').hidden = points.length < 2;
  if (points.length < 2) return;
  const training = state.mode !== 'inference';
  $('timeline-title').textContent = training ? 'Memory over one training step' : 'Memory as the model loads and runs';
  drawTimeline($('timeline-chart'), points, { budget: estimate.gpu_bytes, budgetLabel: estimate.gpu_bytes ? `usable ${gib(estimate.gpu_bytes)} GiB` : '' });
  const peak = points.reduce((best, p) => (p.bytes > best.bytes ? p : best));
  $('timeline-desc').textContent = `${points.length} moments from ${points[0].phase} to ${points.at(-1).phase}; the most held at once is ${gib(peak.bytes)} GiB. `
    + 'Each point is the memory held on the device at that moment; the total above is the most the device must hold, so it can be larger.';
  const head = document.createElement('thead');
  const headRow = document.createElement('tr');
  headRow.append(...['Moment', 'GiB per device', 'Bytes'].map((text) => Object.assign(document.createElement('th'), { scope: 'col', textContent: text })));
  head.append(headRow);
  const body = document.createElement('tbody');
  body.append(...points.map((p) => tableRow([p.phase, gib(p.bytes), number(p.bytes)], [1, 2])));
  $('timeline-table').replaceChildren(head, body);
}

// ---------------------------------------------------------------- compare

/** Keeps the form's scenario, estimated afresh, for the compare view. */
async function addToCompare() {
  const label = describe(state);
  $('compare-status').textContent = `Estimating ${label}…`;
  try {
    const estimate = await postJson('/api/estimate', toScenario(state));
    if (!estimate.ok) {
      $('compare-status').textContent = `Not added: ${plain(estimate.json?.detail) ?? `HTTP ${estimate.status}`}`;
      return;
    }
    if (compared.length < MAX_COMPARED) compared.push({ label, estimate: estimate.json });
    $('compare-status').textContent = `Added ${label}.`
      + (compared.length === MAX_COMPARED ? ` ${MAX_COMPARED} scenarios is the most; remove one to add another.` : '');
  } catch (e) {
    $('compare-status').textContent = `Not added: the server could not be reached (${e.message}).`;
  }
  renderCompare();
}

function renderCompare() {
  $('compare-add').disabled = compared.length >= MAX_COMPARED;
  $('compare-clear').disabled = compared.length === 0;
  $('compare-view').hidden = compared.length === 0;
  if (compared.length === 0) return;
  const items = compared.map(({ label, estimate }) => ({
    label, components: estimate.components.filter((c) => c.residence === 'device'), budget: estimate.gpu_bytes ?? null,
  }));
  drawCompare($('compare-chart'), items);
  $('compare-desc').textContent = items.map((item) => `${item.label}: ${item.components.map((c) => `${c.name.replace(/_/g, ' ')} ${gib(c.bytes)} GiB`).join(', ')}`
    + (item.budget ? `; the GPU allows ${gib(item.budget)} GiB` : '')).join('. ') + '.';
  const kinds = new Map();
  for (const c of items.flatMap((item) => item.components)) if (!kinds.has(c.kind)) kinds.set(c.kind, c.name.replace(/_/g, ' '));
  $('compare-legend').replaceChildren(...[...kinds].map(([kind, name]) => {
    const li = document.createElement('li');
    li.append(swatch(kind), name);
    return li;
  }), Object.assign(document.createElement('li'), { textContent: '- - - usable memory of each GPU' }));
  $('compare-table').tBodies[0].replaceChildren(...compared.map(({ label, estimate }, i) => {
    const remove = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Remove', className: 'secondary' });
    remove.setAttribute('aria-label', `Remove ${i + 1}. ${label}`);
    remove.addEventListener('click', () => {
      compared.splice(i, 1);
      $('compare-status').textContent = `Removed ${label}.`;
      renderCompare();
      $('compare-add').focus();
    });
    const fits = estimate.fits === true ? 'yes' : estimate.fits === false ? 'no' : 'no GPU chosen';
    return tableRow([`${i + 1}. ${label}`, gib(estimate.total_bytes), fits, remove], [1]);
  }));
}

function sweepValues(current, top, bottom) {
  const values = new Set([current]);
  for (let v = bottom; v <= top; v *= 2) values.add(v);
  return [...values].sort((a, b) => a - b).slice(-40);
}

function renderCurve(which, sweep, xLabel, current) {
  drawCurve($(`${which}-chart`), sweep.points, { xLabel, budget: sweep.gpu_bytes, budgetLabel: sweep.gpu_bytes ? `usable ${gib(sweep.gpu_bytes)} GiB` : '', current });
  const table = $(`${which}-table`);
  const head = document.createElement('thead');
  head.append(tableRow([xLabel, 'GiB per device', 'Bytes', 'Fits']));
  head.querySelectorAll('th, td').forEach((c) => { const th = document.createElement('th'); th.scope = 'col'; th.textContent = c.textContent; c.replaceWith(th); });
  const body = document.createElement('tbody');
  body.append(...sweep.points.map((p) => tableRow([number(p.value), gib(p.total_bytes), number(p.total_bytes), p.fits === true ? 'yes' : p.fits === false ? 'no' : 'n/a'], [1, 2])));
  table.replaceChildren(head, body);
  const fitting = sweep.points.filter((p) => p.fits === true);
  $(`${which}-desc`).textContent = `${sweep.points.length} points from ${number(sweep.points[0].value)} to ${number(sweep.points.at(-1).value)}; `
    + (sweep.gpu_bytes ? `${fitting.length} fit.` : 'no GPU chosen.');
}

/** No curve: the estimate of a bare parameter count is the same at every context and batch. */
const FLAT_COUNT = 'A bare parameter count has no layers, so its estimate does not change with context or batch; give a model id or config.json for the curves.';

function renderFlat(which, why = FLAT_COUNT) {
  drawCurve($(`${which}-chart`), [], {});
  $(`${which}-table`).replaceChildren();
  $(`${which}-desc`).textContent = why;
}

/** The solvers' answers as the CLI's `fit` prints them: question, answer, why. */
function fitTable(plan) {
  const training = plan.mode !== 'inference';
  const answer = (value, unit) => value === null || value === undefined ? 'none' : `${number(value)}${unit ? ` ${unit}` : ''}`;
  const rows = [
    ['Fits as given?', plan.fits ? 'yes' : 'no', plan.total_bytes === null || plan.total_bytes === undefined ? plan.refusal ?? 'refused'
      : `${gib(plan.total_bytes)} GiB of ${gib(plan.gpu_bytes)} GiB at ${plan.peak_phase}${plan.refusal ? `, but ${plan.refusal}` : ''}`],
    [plan.serves_requests ? 'Largest max_model_len' : `Largest ${training ? 'sequence length' : 'context'} at batch ${number(plan.batch)}`, answer(plan.max_seq, 'tokens'), plan.max_seq_reason],
    [`Largest ${training ? 'micro-batch' : 'batch'} at ${number(plan.context)} tokens`, answer(plan.max_batch), plan.max_batch_reason],
    ['Fewest GPUs', answer(plan.min_gpus), plan.min_gpus_reason],
  ];
  if (!training) {
    rows.push(['Weight format needed', plan.format_needed ?? 'none fits', plan.format_needed ? 'the most bits that fit' : 'no format fits this GPU']);
    if (plan.serving) {
      rows.push([`Served by ${plan.serving.engine}`, plan.serving.max_concurrency === null ? '-' : `${number(plan.serving.max_concurrency)} requests`,
        plan.serving.reason ?? plan.serving.refusal ?? '']);
    }
  } else if (plan.cheapest_change !== undefined) {
    const cheapest = plan.changes?.find((c) => c.name === plan.cheapest_change);
    rows.push(['Cheapest change that fits', plan.fits ? 'none needed' : plan.cheapest_change ?? 'none tried fits',
      plan.fits ? 'the scenario fits as given' : cheapest?.cost ?? 'none of the changes tried fits this GPU']);
  }
  const table = document.createElement('table');
  table.className = 'fit-table';
  const head = document.createElement('thead');
  const headRow = document.createElement('tr');
  headRow.append(...['Question', 'Answer', 'Why'].map((text) => Object.assign(document.createElement('th'), { scope: 'col', textContent: text })));
  head.append(headRow);
  const body = document.createElement('tbody');
  body.append(...rows.map((r) => tableRow(r)));
  table.append(head, body);
  return table;
}

function renderFit(fit, estimate) {
  const box = $('fit-answers');
  box.replaceChildren();
  const add = (text) => box.append(Object.assign(document.createElement('p'), { textContent: text }));
  if (!estimate.gpu_bytes) {
    add('Choose a GPU to see what fits on it.');
    return;
  }
  if (fit.ok && fit.json) {
    const scroll = Object.assign(document.createElement('div'), { className: 'scroll', tabIndex: 0 });
    scroll.setAttribute('role', 'region');
    scroll.setAttribute('aria-label', 'What fits');
    scroll.append(fitTable(fit.json));
    box.append(scroll);
  }
  if (!fit.ok && fit.json?.detail && fit.status === 501) {
    add(`Exact answers (solvers): ${fit.json.detail}`);
  }
}

/** The API names the request body as the source of a bad field ("request body: …"); on the page the form is the source. */
const plain = (detail) => detail?.replace(/^request body: /, '');

/** Shows the problem in place of the result: the result no longer answers the form, so it is hidden until the next answer. */
function showProblem(problem) {
  const box = $('error');
  const detail = plain(problem?.detail);
  box.textContent = problem?.field && problem.field !== 'body' && problem.field !== 'file'
    ? `${detail} (field: ${problem.field})`
    : detail ?? 'The estimate failed.';
  box.hidden = false;
  $('result-body').hidden = true;
  document.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
  const control = problem?.field && document.querySelector(`[data-field="${CSS.escape(problem.field)}"]`);
  if (control) control.setAttribute('aria-invalid', 'true');
  $('results').dataset.status = 'error';
}

function clearProblem() {
  $('error').hidden = true;
  $('result-body').hidden = false;
  document.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
}

// ---------------------------------------------------------------- update cycle

/** Marks the results stale at once, drops any answer still on its way, and asks again after a short pause. */
function schedule(delay = 200) {
  $('results').dataset.status = 'loading';
  inflight?.abort();
  inflight = null;
  clearTimeout(timer);
  timer = setTimeout(refresh, delay);
}

async function refresh() {
  inflight?.abort();
  const controller = new AbortController();
  inflight = controller;
  const signal = controller.signal;
  const scenario = toScenario(state);
  const hash = toHash(state);
  if (location.hash !== hash) history.replaceState(null, '', hash);
  $('share-url').value = location.href;
  $('cli-command').textContent = toCommand(state);
  $('scenario-json').textContent = JSON.stringify(scenario, null, 2);
  try {
    const estimate = await postJson('/api/estimate', scenario, signal);
    if (signal.aborted) return;
    if (!estimate.ok) {
      showProblem(estimate.json ?? { detail: `HTTP ${estimate.status}` });
      return;
    }
    clearProblem();
    renderEstimate(estimate.json);
    if (!('seq' in scenario)) {
      // A bare parameter count has no layers: its memory does not depend on context or batch, so there is nothing to chart.
      for (const which of ['seq', 'batch']) renderFlat(which);
      const fit = await postJson('/api/fit', scenario, signal);
      if (signal.aborted) return;
      renderFit(fit, estimate.json);
      $('results').dataset.scenario = JSON.stringify(scenario);
      $('results').dataset.status = 'ready';
      return;
    }
    const top = Math.min(Math.max(estimate.json.model.max_positions ?? 131072, 1024), 1 << 20);
    const seqValues = sweepValues(state.seq, top, Math.max(1, top >> 10));
    const batchValues = sweepValues(state.batch, Math.max(256, state.batch), 1);
    // A serving engine sizes its KV pool from the GPU, not from a batch: there is no batch to vary, and the fit table says
    // how many requests fit at once.
    const byBatch = 'batch' in scenario;
    const [seqSweep, batchSweep, fit] = await Promise.all([
      postJson('/api/sweep', { scenario, vary: 'seq', values: seqValues }, signal),
      byBatch ? postJson('/api/sweep', { scenario, vary: 'batch', values: batchValues }, signal) : null,
      postJson('/api/fit', scenario, signal),
    ]);
    if (signal.aborted) return;
    if (!seqSweep.ok || (byBatch && !batchSweep.ok)) {
      showProblem((seqSweep.ok ? batchSweep : seqSweep).json);
      return;
    }
    renderCurve('seq', seqSweep.json, state.mode === 'inference' ? 'Context length' : 'Sequence length', state.seq);
    if (byBatch) renderCurve('batch', batchSweep.json, 'Batch size', state.batch);
    else renderFlat('batch', `${state.engine} sizes its KV pool from the GPU, not from a batch; "What fits" says how many requests fit at once.`);
    renderFit(fit, estimate.json);
    if (signal.aborted) return;
    $('results').dataset.scenario = JSON.stringify(scenario);
    $('results').dataset.status = 'ready';
  } catch (e) {
    if (e.name !== 'AbortError') showProblem({ detail: `The server could not be reached (${e.message}).` });
  }
}

// ---------------------------------------------------------------- wiring

function wire() {
  const form = $('form');
  form.addEventListener('submit', (e) => e.preventDefault());
  form.addEventListener('change', (e) => {
    if (e.target.id === 'model-search' || e.target.id === 'file-input' || e.target.id === 'config-text') return;
    readControls();
    showModeSettings();
    schedule();
  });
  form.addEventListener('input', (e) => {
    if (e.target.type === 'number') { readControls(); schedule(400); }
  });
  const search = $('model-search');
  const pick = () => {
    if (chooseCatalogModel(search.value)) {
      search.removeAttribute('aria-invalid');
      schedule(0);
    } else if (search.value.trim() !== '') {
      search.setAttribute('aria-invalid', 'true');
      $('model-summary').textContent = `"${search.value}" is not in the catalog; try an alias such as llama-3.1-8b, a count such as 7B, or paste a config.json.`;
    }
  };
  search.addEventListener('change', pick);
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); pick(); } });
  search.addEventListener('input', () => {
    const wanted = search.value.trim().toLowerCase();
    if (catalog.models.some((m) => m.alias.toLowerCase() === wanted || m.hf_id.toLowerCase() === wanted)) pick();
  });

  $('config-use').addEventListener('click', () => {
    let config;
    try {
      config = JSON.parse($('config-text').value);
    } catch (e) {
      showProblem({ detail: `The pasted config.json is not valid JSON (${e.message}).`, field: 'model.config' });
      return;
    }
    hideFile();
    useConfig(config, 'pasted config.json');
    schedule(0);
  });

  $('file-input').addEventListener('change', (e) => {
    const file = e.target.files?.[0];
    if (file) onFile(file);
  });
  const zone = $('drop-zone');
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add('over'); });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    const file = e.dataTransfer?.files?.[0];
    if (file) onFile(file);
  });
  // A file dropped beside the zone must not replace the page.
  window.addEventListener('dragover', (e) => e.preventDefault());
  window.addEventListener('drop', (e) => e.preventDefault());

  $('stack-clear').addEventListener('click', () => {
    state.extra = null;
    $('stack-info').hidden = true;
    schedule(0);
  });

  $('compare-add').addEventListener('click', addToCompare);
  $('compare-clear').addEventListener('click', () => {
    compared.length = 0;
    $('compare-status').textContent = 'The compare view is empty.';
    renderCompare();
    $('compare-add').focus();
  });

  $('copy-url').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText($('share-url').value);
      $('copy-status').textContent = 'Link copied.';
    } catch {
      $('share-url').select();
      $('copy-status').textContent = 'Select the link and copy it (Ctrl+C).';
    }
  });
  window.addEventListener('hashchange', () => {
    if (location.hash === toHash(state)) return;
    state = fromHash(location.hash);
    hideFile();
    showState();
    $('stack-info').hidden = true;
    renderExtraFromLink();
    schedule(0);
  });
}

async function start() {
  try {
    [catalog.models, catalog.gpus, catalog.dtypes, catalog.choices] = await Promise.all([
      getJson('/api/models'), getJson('/api/gpus'), getJson('/api/dtypes').then((d) => d.dtypes), getJson('/api/choices'),
    ]);
  } catch (e) {
    showProblem({ detail: `The catalogs could not be loaded (${e.message}).` });
    return;
  }
  setInferenceFields(catalog.choices.inference_fields);
  fillCatalogs();
  state = fromHash(location.hash);
  if (state.config) $('config-text').value = JSON.stringify(state.config, null, 2);
  showState();
  renderExtraFromLink();
  wire();
  schedule(0);
}

start();
