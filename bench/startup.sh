#!/usr/bin/env bash
# Cold start of `llm-memory estimate llama-3.1-8b` (docs/performance.md): the NativeAOT binary against the JIT build
# (framework-dependent, Release), timed by hyperfine without a shell. needs: apt-get install hyperfine
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet publish src/LlmMemory.Cli -c Release -r linux-x64 -p:PublishAot=true -o artifacts/aot --nologo -v q
dotnet build src/LlmMemory.Cli -c Release -o artifacts/jit --nologo -v q >/dev/null
ls -l artifacts/aot/llm-memory
hyperfine -N --warmup 10 --runs 60 --export-markdown /tmp/llm-memory-startup.md \
  'artifacts/aot/llm-memory estimate llama-3.1-8b' \
  'dotnet artifacts/jit/llm-memory.dll estimate llama-3.1-8b'
