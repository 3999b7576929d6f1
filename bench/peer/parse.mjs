// The peer: Hugging Face's @huggingface/gguf (package.json pins it; package-lock.json locks it) parsing a local GGUF file
// under node. Prints one JSON object in the same shape as `LlmMemory.Benchmarks gguf-time`:
// the median wall time of RUNS parses after 30 warm-ups, with the tensor count and the parameter count it computed.
// usage: node parse.mjs FILE [RUNS]
import { gguf } from "@huggingface/gguf";
import { basename } from "node:path";
import { statSync } from "node:fs";

const [file, runsText] = process.argv.slice(2);
const runs = Number(runsText ?? 20);
const parse = () => gguf(file, { allowLocalFile: true, computeParametersCount: true });

let result;
for (let i = 0; i < 30; i++) result = await parse();
const times = [];
for (let i = 0; i < runs; i++) {
  const start = process.hrtime.bigint();
  result = await parse();
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
times.sort((a, b) => a - b);
const median = runs % 2 ? times[(runs - 1) / 2] : (times[runs / 2 - 1] + times[runs / 2]) / 2;
console.log(JSON.stringify({
  tool: `@huggingface/gguf ${JSON.parse((await import("node:fs")).readFileSync(new URL("./node_modules/@huggingface/gguf/package.json", import.meta.url))).version} (node ${process.version})`,
  file: basename(file),
  bytes: statSync(file).size,
  runs,
  median_ms: Number(median.toFixed(3)),
  min_ms: Number(times[0].toFixed(3)),
  tensors: result.tensorInfos.length,
  parameters: result.parameterCount,
}));
