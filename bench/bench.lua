-- bench/bench.lua: the wrk script of `make bench` (bench/run.py writes the
-- spec file it reads).
--
--   wrk -t T -c C -d Ds --latency -s bench/bench.lua URL -- SPEC_FILE THREADS
--
-- SPEC_FILE has one "key value" a line:
--   method PATCH
--   pattern /api/sessions/{}/chats/{}   the route; each {} takes the next param
--   param seq PREFIX OFFSET WIDTH       PREFIX .. (OFFSET + i), zero-padded to
--                                       WIDTH digits (0: as is); PREFIX "-" is none
--   param const VALUE
--   header Name: value                  (any number)
--   body_file PATH                      sent as is
--   chats N                             i goes over 1..N in turn
--   status 200                          the one status every answer must have
--   prefix {"chat":{"id":"              how every answer's body must start
--
-- Each thread starts at its own chat (thread k of T at k*N/T) so the
-- threads update different rows. Requests are built per request (the data
-- set may hold millions of chats): only the request line changes, the rest
-- is formatted once.
--
-- done() prints one line for bench/run.py:
--   BENCH requests=.. duration_us=.. non2xx=.. connect=.. read=.. write=..
--         timeout=.. p50_us=.. p99_us=.. max_us=.. checked=.. bad_status=..
--         bad_body=.. statuses=CODE:COUNT,...
-- (non2xx: wrk's count of statuses above 399; bad_status: answers whose
-- status was not the expected one, bad_body: right status, wrong body.)

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local function read_spec(path)
  local spec = {params = {}, headers = {}}
  for line in io.lines(path) do
    local key, value = line:match("^(%S+) ?(.*)$")
    if key == "param" then
      local kind, a, b, c = value:match("^(%S+) (%S+) ?(%S*) ?(%S*)$")
      if kind == "seq" then
        table.insert(spec.params, {prefix = (a == "-" and "" or a),
                                   offset = tonumber(b), width = tonumber(c)})
      elseif kind == "const" then
        table.insert(spec.params, {const = a})
      else
        error("bench.lua: bad param line: " .. line)
      end
    elseif key == "header" then
      local name, v = value:match("^([^:]+): ?(.*)$")
      spec.headers[name] = v
    elseif key then
      spec[key] = value
    end
  end
  return spec
end

local spec, tail, pieces, n, pos
local expect_status, expect_prefix
checked, bad_status, bad_body, statuses = 0, 0, 0, {}

local function param_text(p, i)
  if p.const then return p.const end
  if p.width > 0 then
    return p.prefix .. string.format("%0" .. p.width .. "d", p.offset + i)
  end
  return p.prefix .. string.format("%d", p.offset + i)
end

function init(args)
  spec = read_spec(args[1])
  local nthreads = tonumber(args[2])
  local body = spec.body_file and read_file(spec.body_file) or nil
  -- wrk.format adds Host and Content-Length; keep all after the request line.
  local formatted = wrk.format(spec.method, "/", spec.headers, body)
  local line_end = formatted:find("\r\n", 1, true)
  tail = formatted:sub(line_end)
  pieces = {}
  for literal in (spec.pattern .. "{}"):gmatch("(.-){}") do
    table.insert(pieces, literal)
  end
  assert(#pieces == #spec.params + 1, "bench.lua: the pattern's {} and the params differ in number")
  n = tonumber(spec.chats)
  pos = math.floor((tid or 0) * n / nthreads)
  expect_status = tonumber(spec.status)
  expect_prefix = spec.prefix or ""
end

function request()
  pos = pos % n + 1
  local parts = {spec.method, " ", pieces[1]}
  for k, p in ipairs(spec.params) do
    parts[#parts + 1] = param_text(p, pos)
    parts[#parts + 1] = pieces[k + 1]
  end
  parts[#parts + 1] = " HTTP/1.1"
  parts[#parts + 1] = tail
  return table.concat(parts)
end

function response(status, headers, body)
  checked = checked + 1
  if status ~= expect_status then
    bad_status = bad_status + 1
    statuses[status] = (statuses[status] or 0) + 1
  elseif body:sub(1, #expect_prefix) ~= expect_prefix then
    bad_body = bad_body + 1
  end
end

function done(summary, latency, requests)
  local c, bs, bb, st = 0, 0, 0, {}
  for _, t in ipairs(threads) do
    c = c + t:get("checked")
    bs = bs + t:get("bad_status")
    bb = bb + t:get("bad_body")
    for code, count in pairs(t:get("statuses")) do
      st[code] = (st[code] or 0) + count
    end
  end
  local list = {}
  for code, count in pairs(st) do
    table.insert(list, string.format("%d:%d", code, count))
  end
  table.sort(list)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d " ..
    "p50_us=%d p99_us=%d max_us=%d checked=%d bad_status=%d bad_body=%d statuses=%s\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, c, bs, bb,
    #list > 0 and table.concat(list, ",") or "-"))
end
