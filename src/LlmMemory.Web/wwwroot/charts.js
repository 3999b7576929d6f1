// Inline SVG charts drawn by hand: a stacked bar of the breakdown against the GPU's memory, and memory-versus-x curves.
// Each component has a colour *and* a pattern, and every mark has a text label or a <title>, so the charts read without
// colour and with a screen reader (the tables next to them carry the same numbers).

const SVG = 'http://www.w3.org/2000/svg';
export const GIB = 2 ** 30;

/** One look per component kind, in the order the estimate lists kinds. */
const LOOKS = {
  Weights: { color: '#4e79a7', pattern: 'solid' },
  MasterWeights: { color: '#a0cbe8', pattern: 'diagonal' },
  Gradients: { color: '#f28e2b', pattern: 'dots' },
  OptimizerStates: { color: '#e15759', pattern: 'cross' },
  Adapters: { color: '#59a14f', pattern: 'vertical' },
  Activations: { color: '#edc948', pattern: 'horizontal' },
  Logits: { color: '#b07aa1', pattern: 'backdiagonal' },
  KvCache: { color: '#76b7b2', pattern: 'grid' },
  ComputeBuffer: { color: '#ff9da7', pattern: 'dots' },
  OutputBuffer: { color: '#9c755f', pattern: 'vertical' },
  Workspace: { color: '#bab0ac', pattern: 'diagonal' },
  Communication: { color: '#8cd17d', pattern: 'cross' },
  AllocatorReserve: { color: '#d7b5a6', pattern: 'horizontal' },
  Runtime: { color: '#79706e', pattern: 'backdiagonal' },
};

export function lookOf(kind) {
  return LOOKS[kind] ?? { color: '#999999', pattern: 'grid' };
}

function el(name, attributes = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A <pattern> for a kind: its colour under black strokes in its own shape. */
function pattern(id, look) {
  const p = el('pattern', { id, patternUnits: 'userSpaceOnUse', width: 8, height: 8 });
  p.append(el('rect', { width: 8, height: 8, fill: look.color }));
  const stroke = { stroke: '#1a1a1a', 'stroke-width': 1.2, 'stroke-opacity': 0.55 };
  switch (look.pattern) {
    case 'diagonal': p.append(el('path', { d: 'M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6', ...stroke })); break;
    case 'backdiagonal': p.append(el('path', { d: 'M-2,6 L2,10 M0,0 L8,8 M6,-2 L10,2', ...stroke })); break;
    case 'dots': p.append(el('circle', { cx: 4, cy: 4, r: 1.6, fill: '#1a1a1a', 'fill-opacity': 0.6 })); break;
    case 'cross': p.append(el('path', { d: 'M0,0 L8,8 M8,0 L0,8', ...stroke })); break;
    case 'vertical': p.append(el('path', { d: 'M4,0 L4,8', ...stroke })); break;
    case 'horizontal': p.append(el('path', { d: 'M0,4 L8,4', ...stroke })); break;
    case 'grid': p.append(el('path', { d: 'M4,0 L4,8 M0,4 L8,4', ...stroke })); break;
    default: break;
  }
  return p;
}

/** A small swatch (for tables and legends) showing a kind's colour and pattern. */
export function swatch(kind) {
  const svg = el('svg', { width: 28, height: 16, viewBox: '0 0 28 16', 'aria-hidden': 'true', focusable: 'false', class: 'swatch' });
  const id = `sw-${kind}-${Math.random().toString(36).slice(2, 8)}`;
  const defs = el('defs');
  defs.append(pattern(id, lookOf(kind)));
  svg.append(defs, el('rect', { x: 0.5, y: 0.5, width: 27, height: 15, fill: `url(#${id})`, stroke: '#1a1a1a' }));
  return svg;
}

export function gib(bytes, digits = 2) {
  return (bytes / GIB).toFixed(digits);
}

/** Horizontal grid lines at a nice GiB step up to ymax, their labels, and the vertical "GiB per device" title. */
function gibAxis(svg, { W, H, left, right, top, bottom, ymax, y }) {
  const step = niceStep(ymax / GIB);
  for (let v = 0; v * GIB <= ymax; v += step) {
    svg.append(el('line', { x1: left, x2: W - right, y1: y(v * GIB), y2: y(v * GIB), stroke: '#d0d0d0' }));
    svg.append(el('text', { x: left - 8, y: y(v * GIB) + 4, 'text-anchor': 'end', class: 'tick' }, `${v}`));
  }
  svg.append(el('text', { x: 16, y: (top + H - bottom) / 2, transform: `rotate(-90 16 ${(top + H - bottom) / 2})`, 'text-anchor': 'middle', class: 'axis-label' }, 'GiB per device'));
}

/** Round steps for a GiB axis: at most about six ticks. */
function niceStep(max) {
  const steps = [0.25, 0.5, 1, 2, 4, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000];
  return steps.find((s) => max / s <= 6) ?? 20000;
}

function clear(svg) {
  while (svg.firstChild) svg.firstChild.remove();
}

/**
 * The breakdown as one horizontal stacked bar, with the device budget as a dashed line.
 * components: [{name, kind, bytes}]; budget: bytes or null; budgetLabel: text.
 */
export function drawBar(svg, components, budget, budgetLabel) {
  clear(svg);
  const W = 800, H = 128, left = 12, right = 12, top = 34, barH = 44;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const total = components.reduce((s, c) => s + c.bytes, 0);
  const max = Math.max(total, budget ?? 0) * 1.04 || 1;
  const x = (bytes) => left + (bytes / max) * (W - left - right);
  const defs = el('defs');
  svg.append(defs);
  const kinds = [...new Set(components.map((c) => c.kind))];
  for (const kind of kinds) defs.append(pattern(`bar-${kind}`, lookOf(kind)));

  let at = 0;
  for (const c of components) {
    if (c.bytes <= 0) continue;
    const x0 = x(at), x1 = x(at + c.bytes);
    const g = el('g');
    g.append(el('title', {}, `${c.name}: ${gib(c.bytes)} GiB (${((c.bytes / total) * 100).toFixed(1)}%)`));
    g.append(el('rect', { x: x0, y: top, width: Math.max(x1 - x0, 0.5), height: barH, fill: `url(#bar-${c.kind})`, stroke: '#1a1a1a', 'stroke-width': 1 }));
    const label = c.name.replace(/_/g, ' ');
    if (x1 - x0 > label.length * 7.2 + 10) {
      g.append(el('rect', { x: (x0 + x1) / 2 - label.length * 3.6 - 4, y: top + barH / 2 - 9, width: label.length * 7.2 + 8, height: 18, fill: '#ffffff', 'fill-opacity': 0.85, rx: 3 }));
      g.append(el('text', { x: (x0 + x1) / 2, y: top + barH / 2 + 4, 'text-anchor': 'middle', class: 'bar-label' }, label));
    }
    svg.append(g);
    at += c.bytes;
  }

  // Axis in GiB under the bar.
  const axisY = top + barH + 8;
  const step = niceStep(max / GIB);
  for (let v = 0; v * GIB <= max; v += step) {
    svg.append(el('line', { x1: x(v * GIB), x2: x(v * GIB), y1: axisY, y2: axisY + 5, stroke: '#555' }));
    svg.append(el('text', { x: x(v * GIB), y: axisY + 18, 'text-anchor': v === 0 ? 'start' : 'middle', class: 'tick' }, `${v} GiB`));
  }

  if (budget) {
    const bx = x(budget);
    svg.append(el('line', { x1: bx, x2: bx, y1: top - 14, y2: top + barH + 6, stroke: '#000', 'stroke-width': 2.5, 'stroke-dasharray': '6 4' }));
    const anchor = bx > W * 0.6 ? 'end' : 'start';
    svg.append(el('text', { x: anchor === 'end' ? bx - 6 : bx + 6, y: top - 8, 'text-anchor': anchor, class: 'budget-label' }, budgetLabel));
  }
  svg.append(el('text', { x: left, y: 14, class: 'bar-total' }, `Total ${gib(total)} GiB`));
}

function shortNumber(v) {
  if (v >= 1 << 20 && v % (1 << 20) === 0) return `${v / (1 << 20)}M`;
  if (v >= 1024 && v % 1024 === 0) return `${v / 1024}k`;
  return String(v);
}

/**
 * Memory against one setting, on a log2 x axis: a line through the points, circles where the scenario fits and crosses
 * where it does not, the budget as a dashed line and the current setting as a dotted one.
 * points: [{value, total_bytes, fits}].
 */
export function drawCurve(svg, points, { xLabel, budget, budgetLabel, current }) {
  clear(svg);
  const W = 800, H = 330, left = 72, right = 24, top = 40, bottom = 56;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  if (points.length === 0) return;
  const xs = points.map((p) => Math.log2(p.value));
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  // With a budget, the axis stops at about twice it so the crossing stays readable; points above are drawn on the top
  // edge as open triangles, and their values are in the title and the data table.
  const highest = Math.max(...points.map((p) => p.total_bytes));
  const ceiling = budget && highest > budget * 2.2 ? budget * 2 : highest;
  const ymax = Math.max(ceiling, budget ?? 0) * 1.08 || 1;
  const x = (v) => left + (x1 === x0 ? 0.5 : (Math.log2(v) - x0) / (x1 - x0)) * (W - left - right);
  const y = (bytes) => H - bottom - (bytes / ymax) * (H - top - bottom);

  gibAxis(svg, { W, H, left, right, top, bottom, ymax, y });
  for (const p of points) {
    svg.append(el('line', { x1: x(p.value), x2: x(p.value), y1: H - bottom, y2: H - bottom + 5, stroke: '#555' }));
    svg.append(el('text', { x: x(p.value), y: H - bottom + 18, 'text-anchor': 'middle', class: 'tick' }, shortNumber(p.value)));
  }
  svg.append(el('text', { x: (left + W - right) / 2, y: H - 12, 'text-anchor': 'middle', class: 'axis-label' }, `${xLabel} (log scale)`));
  svg.append(el('line', { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, stroke: '#333' }));
  svg.append(el('line', { x1: left, x2: left, y1: top, y2: H - bottom, stroke: '#333' }));

  if (budget) {
    svg.append(el('line', { x1: left, x2: W - right, y1: y(budget), y2: y(budget), stroke: '#000', 'stroke-width': 2, 'stroke-dasharray': '6 4' }));
    svg.append(el('text', { x: W - right - 4, y: y(budget) - 6, 'text-anchor': 'end', class: 'budget-label' }, budgetLabel));
  }
  if (current !== undefined) {
    svg.append(el('line', { x1: x(current), x2: x(current), y1: top, y2: H - bottom, stroke: '#333', 'stroke-dasharray': '2 3' }));
    const end = x(current) > W * 0.75;
    svg.append(el('text', { x: x(current) + (end ? -4 : 4), y: H - bottom - 6, 'text-anchor': end ? 'end' : 'start', class: 'tick' }, `current: ${current.toLocaleString('en-US')}`));
  }

  const clipped = (bytes) => Math.min(bytes, ymax);
  svg.append(el('polyline', { points: points.map((p) => `${x(p.value)},${y(clipped(p.total_bytes))}`).join(' '), fill: 'none', stroke: '#2a5d8f', 'stroke-width': 2.5 }));
  for (const p of points) {
    const g = el('g');
    const verdict = p.fits === true ? 'fits' : p.fits === false ? 'does not fit' : 'no budget';
    g.append(el('title', {}, `${xLabel} ${p.value.toLocaleString('en-US')}: ${gib(p.total_bytes)} GiB, ${verdict}`));
    const cx = x(p.value), cy = y(clipped(p.total_bytes));
    if (p.total_bytes > ymax) {
      g.append(el('path', { d: `M${cx - 7},${cy + 8} L${cx},${cy - 4} L${cx + 7},${cy + 8} Z`, fill: '#ffffff', stroke: '#b00020', 'stroke-width': 2.5 }));
    } else if (p.fits === false) {
      g.append(el('path', { d: `M${cx - 6},${cy - 6} L${cx + 6},${cy + 6} M${cx + 6},${cy - 6} L${cx - 6},${cy + 6}`, stroke: '#b00020', 'stroke-width': 3 }));
    } else {
      g.append(el('circle', { cx, cy, r: 5.5, fill: p.fits === true ? '#2a5d8f' : '#ffffff', stroke: '#2a5d8f', 'stroke-width': 2 }));
    }
    svg.append(g);
  }
  const above = points.some((p) => p.total_bytes > ymax) ? '    △ above the chart (see the data)' : '';
  svg.append(el('text', { x: left, y: 16, class: 'tick' }, (budget ? '● fits    ✕ does not fit    - - - usable memory of the GPU    ⋯ current setting' : '● estimate    ⋯ current setting') + above));
}

/**
 * Two or three scenarios as stacked bars on one shared GiB axis, each with its own budget as a dashed mark.
 * items: [{label, components: [{name, kind, bytes}], budget: bytes or null}].
 */
export function drawCompare(svg, items) {
  clear(svg);
  const W = 800, left = 12, right = 12, rowH = 74, barH = 36, top = 8;
  const H = top + items.length * rowH + 30;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const totals = items.map((item) => item.components.reduce((s, c) => s + c.bytes, 0));
  const max = Math.max(...totals, ...items.map((item) => item.budget ?? 0)) * 1.04 || 1;
  const x = (bytes) => left + (bytes / max) * (W - left - right);
  const defs = el('defs');
  svg.append(defs);
  for (const kind of new Set(items.flatMap((item) => item.components.map((c) => c.kind)))) defs.append(pattern(`cmp-${kind}`, lookOf(kind)));

  items.forEach((item, i) => {
    const y = top + i * rowH + 22;
    const row = el('g', { class: 'scenario' });
    row.append(el('text', { x: left, y: y - 6, class: 'bar-total' }, `${i + 1}. ${item.label}: ${gib(totals[i])} GiB`));
    let at = 0;
    for (const c of item.components) {
      if (c.bytes <= 0) continue;
      const g = el('g');
      g.append(el('title', {}, `${item.label}: ${c.name.replace(/_/g, ' ')} ${gib(c.bytes)} GiB`));
      g.append(el('rect', { x: x(at), y, width: Math.max(x(at + c.bytes) - x(at), 0.5), height: barH, fill: `url(#cmp-${c.kind})`, stroke: '#1a1a1a', 'stroke-width': 1 }));
      row.append(g);
      at += c.bytes;
    }
    if (item.budget) {
      row.append(el('line', { x1: x(item.budget), x2: x(item.budget), y1: y - 4, y2: y + barH + 4, stroke: '#000', 'stroke-width': 2.5, 'stroke-dasharray': '6 4' }));
    }
    svg.append(row);
  });

  const axisY = top + items.length * rowH;
  const step = niceStep(max / GIB);
  for (let v = 0; v * GIB <= max; v += step) {
    svg.append(el('line', { x1: x(v * GIB), x2: x(v * GIB), y1: axisY, y2: axisY + 5, stroke: '#555' }));
    svg.append(el('text', { x: x(v * GIB), y: axisY + 18, 'text-anchor': v === 0 ? 'start' : 'middle', class: 'tick' }, `${v} GiB`));
  }
}

/**
 * Memory at each phase boundary of one training step, in order, as a line with a point per boundary; the peak is drawn
 * larger and labelled, and the other phase names are in each point's title and in the data table.
 * points: [{phase, bytes}].
 */
export function drawTimeline(svg, points, { budget, budgetLabel }) {
  clear(svg);
  const W = 800, H = 280, left = 72, right = 24, top = 30, bottom = 40;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const ymax = Math.max(...points.map((p) => p.bytes), budget ?? 0) * 1.08 || 1;
  const x = (i) => left + (points.length === 1 ? 0.5 : i / (points.length - 1)) * (W - left - right);
  const y = (bytes) => H - bottom - (bytes / ymax) * (H - top - bottom);

  gibAxis(svg, { W, H, left, right, top, bottom, ymax, y });
  svg.append(el('text', { x: (left + W - right) / 2, y: H - 12, 'text-anchor': 'middle', class: 'axis-label' }, 'phases of the step, in order'));
  svg.append(el('line', { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, stroke: '#333' }));
  svg.append(el('line', { x1: left, x2: left, y1: top, y2: H - bottom, stroke: '#333' }));
  if (budget) {
    svg.append(el('line', { x1: left, x2: W - right, y1: y(budget), y2: y(budget), stroke: '#000', 'stroke-width': 2, 'stroke-dasharray': '6 4' }));
    svg.append(el('text', { x: W - right - 4, y: y(budget) - 6, 'text-anchor': 'end', class: 'budget-label' }, budgetLabel));
  }
  svg.append(el('polyline', { points: points.map((p, i) => `${x(i)},${y(p.bytes)}`).join(' '), fill: 'none', stroke: '#2a5d8f', 'stroke-width': 2.5 }));
  const peak = points.reduce((best, p, i) => (p.bytes > points[best].bytes ? i : best), 0);
  points.forEach((p, i) => {
    const g = el('g');
    g.append(el('title', {}, `${p.phase}: ${gib(p.bytes)} GiB`));
    g.append(el('circle', { cx: x(i), cy: y(p.bytes), r: i === peak ? 6.5 : 3.5, fill: i === peak ? '#b00020' : '#2a5d8f' }));
    svg.append(g);
  });
  const end = x(peak) > W * 0.6;
  svg.append(el('text', { x: x(peak) + (end ? -10 : 10), y: Math.max(y(points[peak].bytes) - 8, top - 10), 'text-anchor': end ? 'end' : 'start', class: 'bar-label' },
    `${points[peak].phase}: ${gib(points[peak].bytes)} GiB`));
}
