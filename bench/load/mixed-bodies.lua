-- wrk script for docs/performance.md ("Web API under load"): POST /api/estimate with a mix of bodies.
-- Of every 100 requests: 90 valid scenarios of six kinds, 6 malformed (not JSON, wrong type, unknown field, unknown
-- model, empty, too deep), 2 oversized (1 MiB + 1 byte, over the server's limit) and 2 valid again as inline configs.
-- At the end it prints latency percentiles and the count of each status, and "FAIL" when any response was a 5xx or a
-- status other than the one expected for its body (valid: 200; malformed: 400; oversized: 413).
-- usage: wrk -t2 -c16 -d30s --latency -s bench/load/mixed-bodies.lua http://127.0.0.1:5080

local valid = {
  '{"model": "llama-3.1-8b", "seq": 8192}',
  '{"model": "llama-3.1-8b", "engine": "vllm", "gpu": "h100-80gb"}',
  '{"model": "llama-3.1-70b", "engine": "llama.cpp", "weights": "q4_k_m", "seq": 8192}',
  '{"model": "llama-3.1-8b", "mode": "training", "batch": 4, "seq": 2048, "gradient_checkpointing": "full"}',
  '{"model": "mistral-7b-v0.3", "mode": "lora", "lora": {"r": 16, "targets": "all-linear"}}',
  '{"model": "qwen2.5-7b", "mode": "qlora", "weights": "nf4", "lora": {"r": 64, "targets": "all-linear"}}',
}
local inline = '{"model": {"config": {"model_type": "llama", "hidden_size": 2048, "intermediate_size": 8192, ' ..
  '"num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "vocab_size": 128256, ' ..
  '"tie_word_embeddings": true, "torch_dtype": "bfloat16"}}, "seq": 4096}'
local malformed = {
  '{"model": "llama-3.1-8b", "seq": ',
  '{"model": "llama-3.1-8b", "seq": "long"}',
  '{"model": "llama-3.1-8b", "sequence_length": 4096}',
  '{"model": "no-such-model-9000"}',
  '',
  string.rep('[', 100) .. string.rep(']', 100),
}
local oversized = '{"model": "llama-3.1-8b", "notes": "' .. string.rep('x', 1048576) .. '"}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  -- Options after "--": "no-oversized" leaves the oversized bodies out, "no-llamacpp" the llama.cpp scenario (each to
  -- tell its cost apart: a llama.cpp estimate replays ggml's graph allocator and costs milliseconds, docs/performance.md).
  oversizedShare = 2
  for _, a in ipairs(args) do
    if a == "no-oversized" then oversizedShare = 0 end
    if a == "no-llamacpp" then
      for i = #valid, 1, -1 do
        if string.find(valid[i], "llama.cpp", 1, true) then table.remove(valid, i) end
      end
    end
  end
  n = 0
  -- Connections interleave, so a response cannot be matched to its body here; expected statuses are counted per kind
  -- when sent and compared with the statuses received in done().
  sent = { [200] = 0, [400] = 0, [413] = 0 }
  got = {}
end

function request()
  n = n + 1
  local k = n % 100
  local body, want
  if k < 90 then
    body, want = valid[(n % #valid) + 1], 200
  elseif k < 92 then
    body, want = inline, 200
  elseif k < 100 - oversizedShare then
    body, want = malformed[(n % #malformed) + 1], 400
  else
    body, want = oversized, 413
  end
  sent[want] = sent[want] + 1
  return wrk.format("POST", "/api/estimate", { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
  got[status] = (got[status] or 0) + 1
end

function done(summary, latency, requests)
  local sentTotal, gotTotal = { [200] = 0, [400] = 0, [413] = 0 }, {}
  for _, t in ipairs(threads) do
    for status, count in pairs(t:get("sent")) do sentTotal[status] = sentTotal[status] + count end
    for status, count in pairs(t:get("got")) do gotTotal[status] = (gotTotal[status] or 0) + count end
  end
  local seconds = summary.duration / 1e6
  io.write(string.format("requests: %d in %.1f s = %.0f/s; socket errors: connect %d, read %d, write %d, timeout %d; non-2xx/3xx: %d\n",
    summary.requests, seconds, summary.requests / seconds, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout, summary.errors.status))
  io.write(string.format("latency ms: p50 %.2f, p90 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
  local line = "status:"
  local fail = false
  for status, count in pairs(gotTotal) do
    line = line .. string.format(" %d×%d", status, count)
    if status >= 500 or (status ~= 200 and status ~= 400 and status ~= 413) then fail = true end
  end
  io.write(line .. "\n")
  -- Requests still in flight when the run stops were sent but not answered, so answered counts may trail sent counts by
  -- at most the number of connections.
  io.write(string.format("sent: 200-bodies %d, 400-bodies %d, 413-bodies %d\n", sentTotal[200], sentTotal[400], sentTotal[413]))
  for status, want in pairs(sentTotal) do
    local have = gotTotal[status] or 0
    if have > want or want - have > 256 then fail = true end
  end
  if summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout > 0 then fail = true end
  io.write(fail and "FAIL\n" or "OK: every response had the status its body called for, no 5xx, no socket errors\n")
end
