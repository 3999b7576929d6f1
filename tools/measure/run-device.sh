#!/usr/bin/env bash
# The one command run on a borrowed GPU machine, from the repository root:
#     bash tools/measure/run-device.sh [--only ID ...]
# Runs measure.py over plan-h200.json, appending cases to $OUT/h200-cases.jsonl and everything (nvidia-smi,
# library versions, every child's output, the summary lines) to $OUT/measure.log. No scenario is started after
# MEASURE_DEADLINE_S seconds (default 480) from this script's start; one started before is killed at most
# MEASURE_GRACE_S (default 60) seconds after that, and each gets MEASURE_TIMEOUT_S (default 120) seconds at most,
# so the whole script ends within about DEADLINE + GRACE + 5 seconds. Always exits 0.
set -u
START=$(date +%s)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$PWD/measure-out}"
mkdir -p "$OUT"
LOG="$OUT/measure.log"
PLAN="${MEASURE_PLAN:-$HERE/plan-h200.json}"
DEADLINE_S="${MEASURE_DEADLINE_S:-480}"
export PYTHONUNBUFFERED=1

say() { echo "$*"; echo "$*" >> "$LOG"; }

say "== $(date -u +%Y-%m-%dT%H:%M:%SZ) run-device.sh: plan $PLAN, deadline ${DEADLINE_S}s, out $OUT"
say "gpu: $(nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv,noheader 2>&1 | head -n 4 | tr '\n' ' ')"
nvidia-smi >> "$LOG" 2>&1 || say "nvidia-smi failed"
say "versions: $(timeout 90 python3 -c 'import sys, torch, transformers, peft
try:
    import accelerate; acc = accelerate.__version__
except Exception as e:
    acc = "missing"
print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| transformers", transformers.__version__, "| peft", peft.__version__, "| accelerate", acc,
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO CUDA")' 2>&1 | tail -n 3 | tr '\n' ' ')"

python3 "$HERE/measure.py" "$PLAN" "$OUT/h200-cases.jsonl" --log "$LOG" \
    --timeout "${MEASURE_TIMEOUT_S:-120}" --deadline-at "$((START + DEADLINE_S))" --grace-s "${MEASURE_GRACE_S:-60}" "$@" \
    || say "measure.py exited with status $?"
say "== $(date -u +%Y-%m-%dT%H:%M:%SZ) done after $(( $(date +%s) - START ))s; $(wc -l < "$OUT/h200-cases.jsonl" 2>/dev/null || echo 0) case lines in $OUT/h200-cases.jsonl"
exit 0
