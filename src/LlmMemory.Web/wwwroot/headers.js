// Reads the header of a .gguf or .safetensors file in the browser: only the first bytes are read (File.slice), never the
// weights, and nothing is uploaded. Every count and length is checked against the bytes that remain and a named limit,
// because a dropped file is as hostile as any other input.
//
// Formats: GGUF v2/v3 (ggml-org/ggml docs/gguf.md), safetensors (huggingface/safetensors README "Format").

/** First read of a GGUF header; doubled on demand. Most headers (vocabulary included) fit in 8 MiB. */
const GGUF_FIRST_READ = 8 << 20;
/** Largest GGUF header read: 256k-token vocabularies with merges take tens of MiB; 256 MiB is far above any real one. */
const GGUF_MAX_HEADER = 256 << 20;
/** safetensors caps its JSON header at 100 MB (safetensors/src/tensor.rs MAX_HEADER_SIZE). */
const SAFETENSORS_MAX_HEADER = 100_000_000;
/** Tensors in one file: the largest MoE checkpoints hold tens of thousands. */
const MAX_TENSORS = 1 << 20;
/** Metadata entries in one GGUF file: real files hold a few dozen. */
const MAX_KV = 1 << 16;
/** Bytes of a key or tensor name (ggml's GGML_MAX_NAME is 64; keys are short). */
const MAX_NAME = 1 << 16;
/** ggml tensors have at most 4 dimensions (GGML_MAX_DIMS). */
const MAX_DIMS = 4;
/** Numeric arrays kept in full (per-layer head counts and the like); longer ones keep only their length. */
const KEEP_ARRAY = 4096;

export class HeaderError extends Error {}

class NeedMore extends Error {}

/** Reads a dropped file's header. dtypes is /api/dtypes's list (block sizes and ggml ids come from the library). */
export async function readModelFile(file, dtypes) {
  const name = file.name.toLowerCase();
  if (name.endsWith('.gguf')) return readGguf(file, dtypes);
  if (name.endsWith('.safetensors')) return readSafetensors(file, dtypes);
  if (name.endsWith('.json')) return readConfig(file);
  if (name.endsWith('.yaml') || name.endsWith('.yml')) return { format: 'stack-config', name: file.name, text: await configText(file) };
  throw new HeaderError(`${file.name}: not a .gguf, .safetensors, config.json or fine-tuning config (.yaml, .yml, .json) file.`);
}

/** The library's config-file limit (Models/Limits.MaxConfigBytes): the server refuses more. */
const MAX_CONFIG_BYTES = 16 << 20;

async function configText(file) {
  if (file.size > MAX_CONFIG_BYTES) throw new HeaderError(`${file.name}: ${file.size} bytes is too large for a config file.`);
  return file.text();
}

/** A JSON file: a model's config.json (it names its model_type or architectures), or else a fine-tuning stack's config. */
async function readConfig(file) {
  const text = await configText(file);
  let config;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new HeaderError(`${file.name}: not valid JSON (${e.message}).`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new HeaderError(`${file.name}: not a JSON object.`);
  if (!('model_type' in config) && !('architectures' in config)) return { format: 'stack-config', name: file.name, text };
  return { format: 'config.json', name: file.name, config };
}

// ---------------------------------------------------------------- GGUF

async function readGguf(file, dtypes) {
  const byId = new Map(dtypes.filter((t) => t.ggml_id !== null && t.ggml_id !== undefined).map((t) => [t.ggml_id, t]));
  let size = Math.min(file.size, GGUF_FIRST_READ);
  for (;;) {
    const buffer = await file.slice(0, size).arrayBuffer();
    try {
      return parseGguf(new DataView(buffer), file, byId);
    } catch (e) {
      if (!(e instanceof NeedMore)) throw e;
      if (size >= file.size) throw new HeaderError(`${file.name}: the file ends inside its GGUF header (truncated).`);
      if (size >= GGUF_MAX_HEADER) throw new HeaderError(`${file.name}: the GGUF header is larger than ${GGUF_MAX_HEADER >> 20} MiB.`);
      size = Math.min(file.size, size * 4, GGUF_MAX_HEADER);
    }
  }
}

function parseGguf(view, file, byId) {
  const r = new Reader(view, file.name);
  if (r.u32() !== 0x46554747) throw new HeaderError(`${file.name}: not a GGUF file (no "GGUF" magic).`);
  const version = r.u32();
  if (version !== 2 && version !== 3) throw new HeaderError(`${file.name}: GGUF version ${version} is not supported (2 and 3 are).`);
  const tensorCount = r.count(MAX_TENSORS, 'tensor count');
  const kvCount = r.count(MAX_KV, 'metadata count');
  const meta = {};
  for (let i = 0; i < kvCount; i++) {
    const key = r.string(MAX_NAME, 'metadata key');
    meta[key] = r.value(r.u32(), key);
  }
  const tensors = [];
  for (let i = 0; i < tensorCount; i++) {
    const tensorName = r.string(MAX_NAME, 'tensor name');
    const nDims = r.u32();
    if (nDims < 1 || nDims > MAX_DIMS) throw new HeaderError(`${file.name}: tensor ${tensorName} has ${nDims} dimensions (1 to ${MAX_DIMS}).`);
    const dims = [];
    for (let d = 0; d < nDims; d++) dims.push(r.u64(`dimension of ${tensorName}`));
    const typeId = r.u32();
    const offset = r.u64(`offset of ${tensorName}`);
    const type = byId.get(typeId);
    if (!type) throw new HeaderError(`${file.name}: tensor ${tensorName} has ggml type ${typeId}, which is not known.`);
    const elements = product(dims, file.name, tensorName);
    if (dims[0] % type.block_size !== 0) {
      throw new HeaderError(`${file.name}: tensor ${tensorName} has rows of ${dims[0]}, not a whole number of ${type.name} blocks of ${type.block_size}.`);
    }
    tensors.push({ name: tensorName, dims, typeId, type: type.name, elements, bytes: (elements / type.block_size) * type.block_bytes, offset });
  }
  const alignment = typeof meta['general.alignment'] === 'number' ? meta['general.alignment'] : 32;
  if (!Number.isInteger(alignment) || alignment < 1 || alignment > 1 << 20) throw new HeaderError(`${file.name}: general.alignment ${alignment} is not valid.`);
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  for (const t of tensors) {
    if (dataStart + t.offset + t.bytes > file.size) {
      throw new HeaderError(`${file.name}: tensor ${t.name} ends at byte ${dataStart + t.offset + t.bytes}, past the end of the file (${file.size} bytes).`);
    }
  }
  return summarize({ format: `GGUF v${version}`, name: file.name, size: file.size, headerBytes: dataStart, meta, tensors });
}

/** Sequential little-endian reader; running out of bytes asks the caller for a longer slice. */
class Reader {
  constructor(view, fileName) {
    this.view = view;
    this.pos = 0;
    this.fileName = fileName;
    this.decoder = new TextDecoder('utf-8', { fatal: false });
  }

  need(n) {
    if (this.pos + n > this.view.byteLength) throw new NeedMore();
  }

  u8() { this.need(1); return this.view.getUint8(this.pos++); }
  i8() { this.need(1); return this.view.getInt8(this.pos++); }
  u16() { this.need(2); const v = this.view.getUint16(this.pos, true); this.pos += 2; return v; }
  i16() { this.need(2); const v = this.view.getInt16(this.pos, true); this.pos += 2; return v; }
  u32() { this.need(4); const v = this.view.getUint32(this.pos, true); this.pos += 4; return v; }
  i32() { this.need(4); const v = this.view.getInt32(this.pos, true); this.pos += 4; return v; }
  f32() { this.need(4); const v = this.view.getFloat32(this.pos, true); this.pos += 4; return v; }
  f64() { this.need(8); const v = this.view.getFloat64(this.pos, true); this.pos += 8; return v; }

  /** An unsigned 64-bit value that must be an exact JavaScript number (below 2^53). */
  u64(what) {
    this.need(8);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new HeaderError(`${this.fileName}: ${what} is ${v}, beyond 2^53.`);
    return Number(v);
  }

  i64(what) {
    this.need(8);
    const v = this.view.getBigInt64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) throw new HeaderError(`${this.fileName}: ${what} is ${v}, beyond 2^53.`);
    return Number(v);
  }

  count(max, what) {
    const n = this.u64(what);
    if (n > max) throw new HeaderError(`${this.fileName}: ${what} ${n} is above the limit of ${max}.`);
    return n;
  }

  string(max, what) {
    const n = this.count(max, `${what} length`);
    this.need(n);
    const s = this.decoder.decode(new Uint8Array(this.view.buffer, this.view.byteOffset + this.pos, n));
    this.pos += n;
    return s;
  }

  value(type, key) {
    switch (type) {
      case 0: return this.u8();
      case 1: return this.i8();
      case 2: return this.u16();
      case 3: return this.i16();
      case 4: return this.u32();
      case 5: return this.i32();
      case 6: return this.f32();
      case 7: return this.u8() !== 0;
      case 8: return this.string(1 << 30, `value of ${key}`);
      case 9: return this.array(key);
      case 10: return this.u64(`value of ${key}`);
      case 11: return this.i64(`value of ${key}`);
      case 12: return this.f64();
      default: throw new HeaderError(`${this.fileName}: metadata ${key} has value type ${type}, which is not a GGUF type.`);
    }
  }

  /** Arrays: numbers kept when short; strings (vocabularies) skipped, keeping only their count. */
  array(key) {
    const type = this.u32();
    if (type === 9) throw new HeaderError(`${this.fileName}: metadata ${key} is an array of arrays, which GGUF files do not use.`);
    const n = this.u64(`length of ${key}`);
    const minBytes = type === 8 ? 8 : [1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8][type];
    if (minBytes === undefined) throw new HeaderError(`${this.fileName}: metadata ${key} holds value type ${type}, which is not a GGUF type.`);
    if (n * minBytes > GGUF_MAX_HEADER) throw new HeaderError(`${this.fileName}: metadata ${key} claims ${n} elements, more than a header can hold.`);
    if (type === 8) {
      for (let i = 0; i < n; i++) {
        const len = this.u64(`string length in ${key}`);
        this.need(len);
        this.pos += len;
      }
      return { array: 'string', length: n };
    }
    if (n > KEEP_ARRAY) {
      this.need(n * minBytes);
      this.pos += n * minBytes;
      return { array: 'number', length: n };
    }
    const values = [];
    for (let i = 0; i < n; i++) values.push(this.value(type, key));
    return values;
  }
}

function product(dims, fileName, tensorName) {
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (!Number.isSafeInteger(n)) throw new HeaderError(`${fileName}: tensor ${tensorName} has more than 2^53 elements.`);
  }
  return n;
}

// ---------------------------------------------------------------- safetensors

/** safetensors dtype names that differ from the library's type names. */
const SAFETENSORS_ALIASES = { f8_e8m0: 'e8m0', f4: 'fp4', u16: 'i16', u32: 'i32', u64: 'i64' };

async function readSafetensors(file, dtypes) {
  const byName = new Map(dtypes.map((t) => [t.name, t]));
  if (file.size < 8) throw new HeaderError(`${file.name}: too short for a safetensors file.`);
  const lengthView = new DataView(await file.slice(0, 8).arrayBuffer());
  const length = lengthView.getBigUint64(0, true);
  if (length > BigInt(SAFETENSORS_MAX_HEADER)) throw new HeaderError(`${file.name}: header length ${length} is above safetensors' limit of ${SAFETENSORS_MAX_HEADER} bytes.`);
  const n = Number(length);
  if (8 + n > file.size) throw new HeaderError(`${file.name}: header length ${n} runs past the end of the file (truncated).`);
  let header;
  try {
    header = JSON.parse(await file.slice(8, 8 + n).text());
  } catch (e) {
    throw new HeaderError(`${file.name}: the header is not valid JSON (${e.message}).`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new HeaderError(`${file.name}: the header is not a JSON object.`);
  const tensors = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    if (tensors.length >= MAX_TENSORS) throw new HeaderError(`${file.name}: more than ${MAX_TENSORS} tensors.`);
    if (!info || typeof info.dtype !== 'string' || !Array.isArray(info.shape) || !Array.isArray(info.data_offsets) || info.data_offsets.length !== 2) {
      throw new HeaderError(`${file.name}: tensor ${name} lacks dtype, shape or data_offsets.`);
    }
    const lower = info.dtype.toLowerCase();
    const type = byName.get(SAFETENSORS_ALIASES[lower] ?? lower);
    if (!type) throw new HeaderError(`${file.name}: tensor ${name} has dtype ${info.dtype}, which is not known.`);
    if (!info.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new HeaderError(`${file.name}: tensor ${name} has a malformed shape.`);
    const elements = product(info.shape.length ? info.shape : [1], file.name, name);
    const [begin, end] = info.data_offsets;
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || begin < 0 || end < begin || 8 + n + end > file.size) {
      throw new HeaderError(`${file.name}: tensor ${name} has data_offsets [${begin}, ${end}] outside the file.`);
    }
    const bytes = end - begin;
    if (elements % type.block_size !== 0 || (elements / type.block_size) * type.block_bytes !== bytes) {
      throw new HeaderError(`${file.name}: tensor ${name} holds ${bytes} bytes, not what ${elements} ${info.dtype} elements take.`);
    }
    tensors.push({ name, dims: info.shape, type: type.name, elements, bytes });
  }
  return summarize({ format: 'safetensors', name: file.name, size: file.size, headerBytes: 8 + n, meta: header.__metadata__ ?? {}, tensors });
}

// ---------------------------------------------------------------- summary and the API's GGUF header form

function summarize(h) {
  const byType = new Map();
  let elements = 0;
  let bytes = 0;
  for (const t of h.tensors) {
    elements += t.elements;
    bytes += t.bytes;
    const row = byType.get(t.type) ?? { type: t.type, tensors: 0, elements: 0, bytes: 0 };
    row.tensors += 1;
    row.elements += t.elements;
    row.bytes += t.bytes;
    byType.set(t.type, row);
  }
  return { ...h, elements, bytes, byType: [...byType.values()].sort((a, b) => b.bytes - a.bytes) };
}

/**
 * The header as the API takes it ({"model": {"gguf": …}}, docs/sources.md): the metadata the library's GGUF reader uses
 * (general.architecture and general.file_type, every key of the architecture, the vocabulary's length) and every tensor's
 * name, dimensions (row length first) and ggml type id. The library builds the model from it as from the file itself.
 */
export function ggufHeader(h) {
  const arch = h.meta['general.architecture'];
  const metadata = {};
  for (const [key, value] of Object.entries(h.meta)) {
    const used = key === 'general.architecture' || key === 'general.file_type' || key === 'tokenizer.ggml.tokens'
      || (typeof arch === 'string' && key.startsWith(`${arch}.`));
    // Arrays read without their values (strings, long arrays) go as their length.
    if (used) metadata[key] = value !== null && typeof value === 'object' && !Array.isArray(value) ? { length: value.length } : value;
  }
  return { metadata, tensors: h.tensors.map((t) => ({ name: t.name, shape: t.dims, type: t.typeId })) };
}
