#!/usr/bin/env bash
# Web API under load (docs/performance.md): `llm-memory serve` (Release, JIT) on a loopback port, 10 s of warm-up, then
# 30 s of wrk with bench/load/mixed-bodies.lua (valid, malformed and oversized bodies). Exits 1 unless the script says OK.
# usage: bench/load.sh [CONNECTIONS=8] [SECONDS=30] [-- no-llamacpp|no-oversized]      needs: apt-get install wrk
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-8}
seconds=${2:-30}
shift $(( $# < 2 ? $# : 2 ))
[[ "${1:-}" == "--" ]] && shift
port=${PORT:-5080}
out=artifacts/jit
dotnet build src/LlmMemory.Cli -c Release -o "$out" --nologo -v q >/dev/null
dotnet "$out/llm-memory.dll" serve --urls "http://127.0.0.1:$port" >/tmp/llm-memory-load-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/api/gpus" && break; sleep 0.2; done
wrk -t2 -c"$connections" -d10s -s bench/load/mixed-bodies.lua "http://127.0.0.1:$port" -- "$@" >/dev/null
echo "wrk -t2 -c$connections -d${seconds}s --latency -s bench/load/mixed-bodies.lua -- $* (after 10 s of warm-up)"
wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/load/mixed-bodies.lua "http://127.0.0.1:$port" -- "$@" | tee /tmp/llm-memory-load.txt
grep -q '^OK:' /tmp/llm-memory-load.txt
