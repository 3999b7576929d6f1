#!/usr/bin/env bash
# Issue 19's "server protects itself" check (docs/performance.md): `llm-memory serve` (Release, JIT) gets SWEEPS distinct
# 64-point Llama 3.1 405B training sweeps from CONCURRENCY clients that give up after GIVE_UP seconds. 3 s after the last
# client left, a cheap request must answer within 1 s and the server must use under 1 s of CPU in the next 3 s
# (utime + stime from /proc/PID/stat). Prints the figures and the machine's load; exits 1 unless both hold.
# usage: bench/load/abandoned-sweeps.sh [SWEEPS=40] [CONCURRENCY=20] [GIVE_UP=5]      env: PORT (5081), SERVER_DLL (a prebuilt server)
set -euo pipefail
cd "$(dirname "$0")/../.."
sweeps=${1:-40}
concurrency=${2:-20}
give_up=${3:-5}
port=${PORT:-5081}
url="http://127.0.0.1:$port"
dll=${SERVER_DLL:-artifacts/jit/llm-memory.dll}
if [[ -z "${SERVER_DLL:-}" ]]; then
  dotnet build src/LlmMemory.Cli -c Release -o artifacts/jit --nologo -v q >/dev/null
fi

dotnet "$dll" serve --urls "$url" >/tmp/llm-memory-abandoned-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "$url/api/gpus" && break; sleep 0.2; done

ticks=$(getconf CLK_TCK)
cpu_seconds() { awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$server/stat"; }
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$server/status"; }

# Sweep i varies seq over 512 + SWEEPS·j + i (j = 0…63): every point of every sweep is a scenario no other asked, so no
# answer comes from the cache. 64 points × 126 layers = 8,064, inside the API's bound of 8,192 layers × points.
body() {
  local i=$1 values
  values=$(seq -s, "$((512 + i))" "$sweeps" "$((512 + i + 63 * sweeps))")
  printf '{"scenario": {"model": "llama-3.1-405b", "mode": "training", "gpu": "h100-80gb"}, "vary": "seq", "values": [%s]}' "$values"
}
export -f body
export sweeps url give_up

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores; server CPU $(cpu_seconds) s, RSS $(rss_mib) MiB"
start=$(date +%s.%N)
seq 0 $((sweeps - 1)) | xargs -P "$concurrency" -I{} bash -c \
  'curl -s -o /dev/null -w "%{http_code}\n" --max-time "$give_up" -H "Content-Type: application/json" --data-binary "$(body {})" "$url/api/sweep" || true' \
  >/tmp/llm-memory-abandoned-codes.txt
left=$(date +%s.%N)
echo "clients: $sweeps sweeps at concurrency $concurrency, giving up after ${give_up} s; all gone after $(echo "$left - $start" | bc) s"
echo "answers (HTTP status: count; 000 = the client gave up): $(sort /tmp/llm-memory-abandoned-codes.txt | uniq -c | awk '{ printf "%s: %s  ", $2, $1 }')"
echo "server right after: CPU $(cpu_seconds) s, RSS $(rss_mib) MiB, load $(cut -d' ' -f1-3 /proc/loadavg)"

sleep 3
cheap=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" --max-time 10 "$url/api/models")
small=$(curl -s -o /dev/null -w "%{http_code} %{time_total}" --max-time 10 -H "Content-Type: application/json" \
  --data-binary '{"model": "llama-3.1-8b", "seq": 4096}' "$url/api/estimate")
before=$(cpu_seconds)
sleep 3
after=$(cpu_seconds)
used=$(echo "$after - $before" | bc)
echo "3 s after: GET /api/models $cheap s; POST /api/estimate (8B inference) $small s"
echo "server CPU in the next 3 s: $used s (RSS $(rss_mib) MiB, load $(cut -d' ' -f1-3 /proc/loadavg))"

read -r cheap_code cheap_time <<<"$cheap"
if [[ "$cheap_code" == 200 ]] && (( $(echo "$cheap_time < 1" | bc) )) && (( $(echo "$used < 1" | bc) )); then
  echo "OK: the cheap request answered in under 1 s and the server used under 1 s of CPU in 3 s"
else
  echo "FAILED: cheap request $cheap, CPU $used s in 3 s"
  exit 1
fi
