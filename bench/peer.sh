#!/usr/bin/env bash
# GGUF header reading side by side (docs/performance.md): @huggingface/gguf under node, llm-memory's reader, and reading
# the whole file, on the same sparse Llama 3.1 Q4_K_M files of 4.9 GB (8B) and 42.5 GB (70B), in one run.
# usage: bench/peer.sh [RUNS=20]      needs: node and npm (the peer is pinned by bench/peer/package-lock.json)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
dir=${BENCH_FILES:-/tmp/llm-memory-bench}
mkdir -p "$dir"
(cd bench/peer && npm ci --no-audit --no-fund --silent)
dotnet build bench/LlmMemory.Benchmarks -c Release --nologo -v q >/dev/null
bench=bench/LlmMemory.Benchmarks/bin/Release/net10.0/LlmMemory.Benchmarks.dll
results=$(mktemp)
for size in 8b 70b; do
  file="$dir/llama-3.1-$size-q4_k_m.gguf"
  [[ -f "$file" ]] || dotnet "$bench" gguf-file "$size" "$file"
  node bench/peer/parse.mjs "$file" "$runs" | tee -a "$results"
  dotnet "$bench" gguf-time "$file" "$runs" --naive | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
by = {}
for r in rows:
    by.setdefault(r["file"], {})[r["tool"].split(" (")[0].split(" 0.")[0]] = r
print()
print("| file | bytes | @huggingface/gguf (node) | llm-memory | naive (read whole file) | peer ÷ ours | naive ÷ ours |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for f, t in by.items():
    peer, ours, naive = t["@huggingface/gguf"], t["llm-memory"], t["naive"]
    print(f"| {f} | {ours['bytes']:,} | {peer['median_ms']:.1f} ms | {ours['median_ms']:.2f} ms | {naive['median_ms']:,.0f} ms "
          f"| {peer['median_ms'] / ours['median_ms']:.0f}× | {naive['median_ms'] / ours['median_ms']:,.0f}× |")
PY
