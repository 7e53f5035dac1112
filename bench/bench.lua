-- bench/bench.lua: wrk script of `make bench` (scripts/bench.sh).
--
--   wrk -t T -c C -d Ds -s bench/bench.lua URL -- API N T CREDENTIAL BODY
--
-- API is recoup, neptun, leanmcp (a PATCH that updates chat i of the data
-- set in bench/data.sql, rotating over i = 1..N) or healthz (GET /healthz).
-- Every request is formatted once in init(); request() only picks the next.
-- Each thread starts at its own offset (thread k of T at k*N/T), so the
-- threads update different chats.
--
-- done() prints one line for scripts/bench.sh:
--   BENCH requests=.. duration_us=.. non2xx=.. connect=.. read=.. write=..
--         timeout=.. p50_us=.. p99_us=.. mean_us=.. max_us=..
-- (non2xx is wrk's count of statuses outside 200-399.)

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function chat_request(api, i, credential, body)
  local h = {["Content-Type"] = "application/json"}
  local path
  if api == "recoup" then
    path = string.format("/api/sessions/%d/chats/%d", 1000000 + i, 2000000 + i)
    h["x-api-key"] = credential
  elseif api == "neptun" then
    path = string.format("/api/users/1000000/chats/%d", 1000000 + i)
    h["Cookie"] = "neptun-session=" .. credential
  elseif api == "leanmcp" then
    path = string.format("/api/chats/id/00000000-0000-4000-8000-%012d", i)
    h["Authorization"] = "Bearer " .. credential
  else
    error("bench.lua: unknown API " .. tostring(api))
  end
  return wrk.format("PATCH", path, h, body)
end

local reqs = {}
local pos = 0

function init(args)
  local api = args[1]
  if api == "healthz" then
    reqs[1] = wrk.format("GET", "/healthz")
    return
  end
  local n, nthreads = tonumber(args[2]), tonumber(args[3])
  for i = 1, n do
    reqs[i] = chat_request(api, i, args[4], args[5])
  end
  pos = math.floor((tid or 0) * n / nthreads)
end

function request()
  pos = pos % #reqs + 1
  return reqs[pos]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p99_us=%d mean_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), math.floor(latency.mean), latency.max))
end
