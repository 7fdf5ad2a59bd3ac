-- wrk script of `make bench` (tests/bench/bench_orders.py runs it; see tests/bench/loadgen.py).
--
-- Environment:
--   BENCH_MODE     post: POST /api/orders; cold: GET /api/orders/{id}, each id of BENCH_IDS
--                  once (the thread stops at the first answer after the last id went out,
--                  leaving at most one read per connection unanswered); cached: the same ids,
--                  round and round
--   BENCH_TOKEN    the shopper's access token (Bearer)
--   BENCH_PRODUCT  the product to order (post)
--   BENCH_RUN      a prefix that makes every Idempotency-Key unique (post)
--   BENCH_IDS      a file of order ids, one a line (cold, cached)
--   BENCH_THREADS  wrk's -t: thread n of N reads ids n, n + N, n + 2N, ...
--   BENCH_OUT      a directory: post writes answers.txt ("order_id epoch_seconds" per 201),
--                  cold writes done.<thread> once its thread has read all its ids
-- done() prints one line "BENCH key=value ...", which the Python side parses.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]])
local CLOCK_REALTIME = 0
local timespec = ffi.new("bench_timespec")

-- Seconds since the epoch to the microsecond (os.time has whole seconds only): the Python
-- side compares an order's answer with when its notification reached Redis (time.time()).
local function now()
  ffi.C.clock_gettime(CLOCK_REALTIME, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

local mode = os.getenv("BENCH_MODE")
local out = os.getenv("BENCH_OUT")
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local function read_ids(path, tid, nthreads)
  local mine, n = {}, 0
  for line in io.lines(path) do
    n = n + 1
    if (n - 1) % nthreads == tid - 1 then
      table.insert(mine, line)
    end
  end
  return mine
end

function init(args)
  tid = tid or 1
  answered, sent, hits, misses = 0, 0, 0, 0
  statuses, answers = {}, {}
  headers = {
    ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
    ["Content-Type"] = "application/json",
  }
  if mode == "post" then
    run = os.getenv("BENCH_RUN")
    body = string.format('{"product_id": %d, "quantity": 1}', tonumber(os.getenv("BENCH_PRODUCT")))
  else
    ids = read_ids(os.getenv("BENCH_IDS"), tid, tonumber(os.getenv("BENCH_THREADS")) or 1)
  end
end

function request()
  if tid == 1 and not verified then
    -- wrk calls request() once on its first thread to check the script, before any
    -- connection: answer with the first request, without counting it as sent.
    verified = true
    local ahead = ids and ids[1] and "/api/orders/" .. ids[1] or "/api/orders"
    return wrk.format(ids and "GET" or "POST", ahead, headers, body)
  end
  first = first or now()
  sent = sent + 1
  if mode == "post" then
    headers["Idempotency-Key"] = string.format("%s-%d-%d", run, tid, sent)
    return wrk.format("POST", "/api/orders", headers, body)
  end
  if mode == "cold" and sent > #ids then
    return "" -- every id is out: send nothing more (an empty write); the next answer stops
  end
  return wrk.format("GET", "/api/orders/" .. ids[(sent - 1) % #ids + 1], headers)
end

local function finished()
  local marker = io.open(string.format("%s/done.%d", out, tid), "w")
  marker:close()
  wrk.thread:stop()
end

function response(status, response_headers, response_body)
  last = now()
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  local cache = response_headers["X-Cache"]
  if cache == "HIT" then
    hits = hits + 1
  elseif cache == "MISS" then
    misses = misses + 1
  end
  if mode == "post" and status == 201 then
    local id = string.match(response_body, '"id"%s*:%s*(%d+)')
    table.insert(answers, string.format("%s %.6f", id, last))
  elseif mode == "cold" and sent >= #ids then
    finished()
  end
end

function done(summary, latency, requests)
  local total, first_at, last_at, hit, miss = 0, math.huge, 0, 0, 0
  local codes = {}
  local file = mode == "post" and io.open(out .. "/answers.txt", "w")
  for _, thread in ipairs(threads) do
    total = total + thread:get("answered")
    hit, miss = hit + thread:get("hits"), miss + thread:get("misses")
    first_at = math.min(first_at, thread:get("first") or math.huge)
    last_at = math.max(last_at, thread:get("last") or 0)
    for status, n in pairs(thread:get("statuses")) do
      codes[status] = (codes[status] or 0) + n
    end
    if file then
      for _, line in ipairs(thread:get("answers")) do
        file:write(line, "\n")
      end
    end
  end
  if file then
    file:close()
  end
  local parts = {}
  for status, n in pairs(codes) do
    table.insert(parts, string.format("%d:%d", status, n))
  end
  local errors = summary.errors
  print(string.format(
    "BENCH answered=%d seconds=%.6f p50_ms=%.3f p99_ms=%.3f hits=%d misses=%d " ..
      "socket_errors=%d timeouts=%d statuses=%s",
    total, math.max(last_at - first_at, 1e-9), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, hit, miss,
    errors.connect + errors.read + errors.write, errors.timeout, table.concat(parts, ",")
  ))
end
