#!/usr/bin/env bash
# Copies the public measurement corpus from ../shared/validation into data/validation, for a developer to run by hand
# when the shared corpus grows; review the diff and commit it. Tests never read ../shared, so this copy is what CI checks.
#
#   tools/sync-corpus.sh [SHARED_VALIDATION_DIR]     (default: ../shared/validation next to the repository)
#
# - Every *.jsonl there is copied over its namesake here. Files that exist only here (gpu-h100-cases.jsonl, measured by
#   this project, and gpu-plan2.json) are kept: nothing is deleted.
# - README.md is replaced by the shared one, but everything from the line "<!-- project cases -->" to the end of the
#   current README (the sections on this project's own cases) is kept and appended.
# - data/validation/patches.json is applied to the copies (fields the shared cases leave out; each patch says why).
# Then run `dotnet test LlmMemory.slnx` (CorpusTests checks every file parses and ids are unique) and regenerate
# docs/accuracy.md with the command at its top.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
shared=${1:-"$repo/../shared/validation"}
target="$repo/data/validation"
marker='<!-- project cases -->'

[[ -d "$shared" ]] || { echo "error: $shared is not a folder" >&2; exit 2; }
[[ -f "$shared/README.md" ]] || { echo "error: $shared has no README.md" >&2; exit 2; }
grep -qxF "$marker" "$target/README.md" || { echo "error: $target/README.md lacks the line $marker; add it above this project's sections first" >&2; exit 2; }

shopt -s nullglob
files=("$shared"/*.jsonl)
((${#files[@]})) || { echo "error: no .jsonl files in $shared" >&2; exit 2; }
for file in "${files[@]}"; do
  cp "$file" "$target/"
done

local_part=$(mktemp)
trap 'rm -f "$local_part"' EXIT
sed -n "/^$marker\$/,\$p" "$target/README.md" >"$local_part"
{ cat "$shared/README.md"; echo; cat "$local_part"; } >"$target/README.md"

python3 "$repo/tools/apply-corpus-patches.py"
echo "copied ${#files[@]} case files and README.md from $shared, then applied data/validation/patches.json"
git -C "$repo" status --short -- data/validation
