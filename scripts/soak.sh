#!/usr/bin/env bash
# soak: mixed valid and invalid traffic for all three APIs through nginx to
# the normal build's worker pool (build/chatpatch), on a private stack
# (scripts/stack.sh up in a temp folder on free ports, with sql/demo.sql and
# tests/memcheck/fixtures.sql loaded), for SOAK_SECONDS at SOAK_CLIENTS
# concurrent clients, with wrk and the Lua script below. The stack is stopped
# at the end however the script ends.
#
# Every request kind has the one status it must get (SPEC sections 1-5 and
# the demo data); any other status counts as unexpected. The workers' RSS
# (VmRSS summed over the children of the pid in CHATPATCH_PIDFILE) is taken
# after a warm-up, every SOAK_SAMPLE seconds, and at the end.
#
# Knobs (environment):
#   SOAK_SECONDS  300   length of the load (wrk -d; it stops by itself)
#   WORKERS       4     worker processes
#   SOAK_CLIENTS  8     concurrent clients (wrk threads, one connection each)
#   SOAK_WARMUP   SOAK_SECONDS/6, 5..30: seconds before the first RSS sample
#   SOAK_SAMPLE   10    seconds between RSS samples
#   SOAK_MAX_GROWTH 5   fail when RSS grew by this many percent or more
#   SOAK_KEEP_STACK=1   leave the stack folder (logs) behind
#
# Fails (exit 1) on any unexpected status, socket error or timeout, a
# worker that died (its pid changed), or RSS growth >= SOAK_MAX_GROWTH %.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# (make soak has done it already.)
[ -n "${SOAK_DEPS_DONE:-}" ] || bash scripts/deps.sh build run bench

SOAK_SECONDS=${SOAK_SECONDS:-300}
WORKERS=${WORKERS:-4}
SOAK_CLIENTS=${SOAK_CLIENTS:-8}
SOAK_SAMPLE=${SOAK_SAMPLE:-10}
SOAK_MAX_GROWTH=${SOAK_MAX_GROWTH:-5}
if [ -z "${SOAK_WARMUP:-}" ]; then
    SOAK_WARMUP=$((SOAK_SECONDS / 6))
    [ "$SOAK_WARMUP" -ge 5 ] || SOAK_WARMUP=5
    [ "$SOAK_WARMUP" -le 30 ] || SOAK_WARMUP=30
fi
for v in SOAK_SECONDS WORKERS SOAK_CLIENTS SOAK_SAMPLE SOAK_WARMUP SOAK_MAX_GROWTH; do
    if ! { [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ]; }; then
        echo "soak: bad $v: ${!v}" >&2
        exit 2
    fi
done
[ "$SOAK_WARMUP" -lt "$SOAK_SECONDS" ] ||
    { echo "soak: SOAK_WARMUP ($SOAK_WARMUP) must be below SOAK_SECONDS ($SOAK_SECONDS)" >&2; exit 2; }

CHATPATCH_BIN=$ROOT/build/chatpatch
[ -x "$CHATPATCH_BIN" ] || { echo "soak: $CHATPATCH_BIN is missing (make build/chatpatch)" >&2; exit 2; }

# ---- the private stack ---------------------------------------------------------

# shellcheck source=private-stack.sh source-path=SCRIPTDIR
. scripts/private-stack.sh
STACK_DIR=$(mktemp -d /tmp/chatpatch-soak.XXXXXX)
WORK=$STACK_DIR/soak
mkdir -p "$WORK"
wrk_pid=''

# (Called by the trap that private_stack_init sets.)
# shellcheck disable=SC2317
stop_wrk() {
    if [ -n "$wrk_pid" ]; then
        kill "$wrk_pid" 2>/dev/null || true
        wait "$wrk_pid" 2>/dev/null || true
    fi
}
# One client address sends everything here: lift the stack's per-client
# limits (nginx/chatpatch.conf), which would answer most of it 429.
export LIMIT_CONN=65535 LIMIT_REQ_RATE=1000000 LIMIT_REQ_BURST=1000000
private_stack_init soak "$WORK/down.log" stop_wrk
private_stack_up "$WORK/up.log"

/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" \
    -U "$PGUSER" -d "$PGDATABASE" -f tests/memcheck/fixtures.sql >/dev/null

# ---- RSS of the pool ---------------------------------------------------------------

pool_children() {
    local parent
    parent=$(head -n 1 "$CHATPATCH_PIDFILE")
    ps -o pid= --ppid "$parent" | tr -d ' ' | sort -n | tr '\n' ' '
}

# Sum of VmRSS (kB) over the given pids.
rss_kb() {
    local pid sum=0 kb
    for pid in "$@"; do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
        sum=$((sum + ${kb:-0}))
    done
    echo "$sum"
}

# ---- the load ------------------------------------------------------------------------

# Bodies that do not fit on a line.
big_title=$(head -c $((8 * 1024)) /dev/zero | tr '\0' t)
near_limit=$(head -c $((60 * 1024)) /dev/zero | tr '\0' n)
too_large=$(head -c $((70 * 1024)) /dev/zero | tr '\0' x)

cat >"$WORK/soak.lua" <<EOF
-- One connection per wrk thread and no pipelining: request() and response()
-- alternate on a thread, so the kind of the request in flight is known.
local R = "/api/sessions/sess_demo/chats/chat_demo"
local N = "/api/users/1/chats/1"
local L = "/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f"
local J = "application/json"
local RK = "demo-recoup-key"
local NC = "neptun-session=demo-neptun-session"
local LK = "Bearer demo-leanmcp-key"
local BIG_TITLE = "$big_title"
local NEAR_LIMIT = "$near_limit"
local TOO_LARGE = "$too_large"

-- name, weight, method, path, headers, body, expected status
local kinds = {
  {"recoup-ok",            4, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"Soak title"}', 200},
  {"recoup-ok-bearer",     2, "PATCH", R, {["Authorization"]="bearer " .. RK, ["Content-Type"]=J}, '{"modelId":" openai/gpt-5.4 "}', 200},
  {"recoup-ok-8k-title",   1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"' .. BIG_TITLE .. '"}', 200},
  {"recoup-no-credential", 1, "PATCH", R, {["Content-Type"]=J}, '{"title":"x"}', 401},
  {"recoup-both",          1, "PATCH", R, {["x-api-key"]=RK, ["Authorization"]="Bearer " .. RK, ["Content-Type"]=J}, '{"title":"x"}', 401},
  {"recoup-basic",         1, "PATCH", R, {["Authorization"]="Basic eDp5", ["Content-Type"]=J}, '{"title":"x"}', 401},
  {"recoup-unknown-key",   1, "PATCH", R, {["x-api-key"]="nope", ["Content-Type"]=J}, '{"title":"x"}', 401},
  {"recoup-revoked-key",   1, "PATCH", R, {["x-api-key"]="demo-recoup-revoked", ["Content-Type"]=J}, '{"title":"x"}', 401},
  {"recoup-no-session",    1, "PATCH", "/api/sessions/sess_none/chats/chat_demo", {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"x"}', 404},
  {"recoup-forbidden",     1, "PATCH", "/api/sessions/sess_mc_other/chats/chat_mc_other", {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"x"}', 403},
  {"recoup-no-chat",       1, "PATCH", "/api/sessions/sess_demo/chats/chat_mc_other", {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"x"}', 404},
  {"recoup-bad-json",      1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":', 400},
  {"recoup-deep",          1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":' .. string.rep("[", 40) .. string.rep("]", 40) .. '}', 400},
  {"recoup-schema",        1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":" ","foo":1}', 400},
  {"recoup-60k-schema",    1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"junk":"' .. NEAR_LIMIT .. '"}', 400},
  {"recoup-415",           1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]="text/plain"}, '{"title":"x"}', 415},
  {"recoup-413",           1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J}, '{"title":"' .. TOO_LARGE .. '"}', 413},
  {"recoup-405",           1, "PUT",   R, {["x-api-key"]=RK}, nil, 405},
  {"recoup-get",           1, "GET",   R, {["x-api-key"]=RK}, nil, 200},
  {"recoup-get-304",       1, "GET",   R, {["x-api-key"]=RK, ["If-None-Match"]="*"}, nil, 304},
  {"recoup-preflight",     1, "OPTIONS", R, {["Origin"]="http://example.com", ["Access-Control-Request-Method"]="PATCH"}, nil, 204},
  {"recoup-412",           1, "PATCH", R, {["x-api-key"]=RK, ["Content-Type"]=J, ["If-Match"]='"0"'}, '{"title":"x"}', 412},

  {"neptun-ok",            4, "PATCH", N, {["Cookie"]=NC, ["Content-Type"]=J}, '{"name":"Soak name"}', 200},
  {"neptun-ok-zeros",      1, "PATCH", "/api/users/01/chats/001", {["Cookie"]="x=y; " .. NC, ["Content-Type"]=J}, '{"name":" Zeros ","extra":[1,{"a":null}]}', 200},
  {"neptun-no-cookie",     1, "PATCH", N, {["Content-Type"]=J}, '{"name":"x"}', 401},
  {"neptun-expired",       1, "PATCH", N, {["Cookie"]="neptun-session=demo-neptun-expired", ["Content-Type"]=J}, '{"name":"x"}', 401},
  {"neptun-bad-id",        1, "PATCH", "/api/users/1/chats/abc", {["Cookie"]=NC, ["Content-Type"]=J}, '{"name":"x"}', 400},
  {"neptun-other-chat",    1, "PATCH", "/api/users/1/chats/900002", {["Cookie"]=NC, ["Content-Type"]=J}, '{"name":"x"}', 404},
  {"neptun-bad-json",      1, "PATCH", N, {["Cookie"]=NC, ["Content-Type"]=J}, '[1,', 400},
  {"neptun-name-blank",    1, "PATCH", N, {["Cookie"]=NC, ["Content-Type"]=J}, '{"name":"   "}', 400},
  {"neptun-415",           1, "PATCH", N, {["Cookie"]=NC}, '{"name":"x"}', 415},
  {"neptun-413",           1, "PATCH", N, {["Cookie"]=NC, ["Content-Type"]=J}, '{"name":"' .. TOO_LARGE .. '"}', 413},
  {"neptun-405",           1, "DELETE", N, {["Cookie"]=NC}, nil, 405},
  {"neptun-get",           1, "GET",   N, {["Cookie"]=NC}, nil, 200},

  {"leanmcp-ok",           4, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J},
     '{"title":"Soak","summary":"s","modelUsed":"m","systemMessageId":"x","metadata":{"k":[1,2,{"n":null}],"s":"v"}}', 200},
  {"leanmcp-ok-empty",     1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J}, '{}', 200},
  {"leanmcp-no-auth",      1, "PATCH", L, {["Content-Type"]=J}, '{"title":"x"}', 401},
  {"leanmcp-revoked",      1, "PATCH", L, {["Authorization"]="Bearer demo-leanmcp-revoked", ["Content-Type"]=J}, '{"title":"x"}', 401},
  {"leanmcp-no-scope",     1, "PATCH", L, {["Authorization"]="Bearer demo-leanmcp-noscope", ["Content-Type"]=J}, '{"title":"x"}', 403},
  {"leanmcp-bad-uuid",     1, "PATCH", "/api/chats/id/not-a-uuid", {["Authorization"]=LK, ["Content-Type"]=J}, '{"title":"x"}', 400},
  {"leanmcp-bad-json",     1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J}, '{title:1}', 400},
  {"leanmcp-schema",       1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J}, '{"title":null,"summary":1,"metadata":[],"zz":0}', 400},
  {"leanmcp-deleted",      1, "PATCH", "/api/chats/id/00000000-0000-4000-8000-00000000000d", {["Authorization"]=LK, ["Content-Type"]=J}, '{"title":"x"}', 404},
  {"leanmcp-other-user",   1, "PATCH", "/api/chats/id/00000000-0000-4000-8000-00000000000e", {["Authorization"]=LK, ["Content-Type"]=J}, '{"title":"x"}', 404},
  {"leanmcp-415",          1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]="application/xml"}, '{"title":"x"}', 415},
  {"leanmcp-413",          1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J}, '{"title":"' .. TOO_LARGE .. '"}', 413},
  {"leanmcp-get",          1, "GET",   L, {["Authorization"]=LK}, nil, 200},
  {"leanmcp-if-match-any", 1, "PATCH", L, {["Authorization"]=LK, ["Content-Type"]=J, ["If-Match"]="*"}, '{"title":"Any"}', 200},

  {"healthz",              2, "GET",   "/healthz", {}, nil, 200},
  {"unknown-path",         1, "GET",   "/api/nothing", {}, nil, 404},
}

-- ---- the setup and done phases (their own Lua state) ----
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local total, unexpected, overwritten = 0, 0, 0
  local sent, bad = {}, {}
  for _, t in ipairs(threads) do
    total = total + t:get("responses")
    unexpected = unexpected + t:get("unexpected")
    overwritten = overwritten + t:get("overwritten")
    for k, v in pairs(t:get("sent")) do sent[k] = (sent[k] or 0) + v end
    for k, v in pairs(t:get("bad")) do bad[k] = (bad[k] or 0) + v end
  end
  local lost = overwritten
  local e = summary.errors
  io.write(string.format("SOAK responses=%d wrk_requests=%d duration_us=%d unexpected=%d lost=%d " ..
    "connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d max_us=%d\n",
    total, summary.requests, summary.duration, unexpected, lost, e.connect, e.read, e.write,
    e.timeout, latency:percentile(50), latency:percentile(99), latency.max))
  local names = {}
  for k in pairs(sent) do table.insert(names, k) end
  table.sort(names)
  for _, k in ipairs(names) do io.write(string.format("SOAK_KIND %s %d\n", k, sent[k])) end
  for k, v in pairs(bad) do io.write(string.format("SOAK_BAD %s %d\n", k, v)) end
end

-- ---- the running phase (one Lua state per thread) ----
responses, unexpected, overwritten = 0, 0, 0
sent, bad = {}, {}
local order = {}
local idx = 0
local pending = nil

function init(args)
  for _, k in ipairs(kinds) do
    local h = {}
    for a, b in pairs(k[5]) do h[a] = b end
    k.req = wrk.format(k[3], k[4], h, k[6])
    for _ = 1, k[2] do table.insert(order, k) end
  end
  -- Each thread its own order, the same on every run.
  math.randomseed(7919 * ((tid or 0) + 1))
  for i = #order, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
end

local calls = 0
function request()
  calls = calls + 1
  -- A request whose answer never came (the connection broke) is replaced.
  -- Except on the first thread's second call: wrk calls request() once
  -- there before the run, to count the requests in its string, and never
  -- sends that one.
  if pending and not (tid == 0 and calls == 2) then overwritten = overwritten + 1 end
  idx = idx % #order + 1
  pending = order[idx]
  return pending.req
end

function response(status, headers, body)
  local k = pending
  pending = nil
  if not k then return end
  responses = responses + 1
  sent[k[1]] = (sent[k[1]] or 0) + 1
  if status ~= k[7] then
    unexpected = unexpected + 1
    local key = k[1] .. " expected " .. k[7] .. " got " .. status
    bad[key] = (bad[key] or 0) + 1
  end
end
EOF

pids_start=''
echo "soak: $SOAK_SECONDS s, $SOAK_CLIENTS clients, $WORKERS workers, $BASE_URL (warm-up $SOAK_WARMUP s)"
timeout --kill-after=10 $((SOAK_SECONDS + 60)) \
    wrk -t "$SOAK_CLIENTS" -c "$SOAK_CLIENTS" -d "${SOAK_SECONDS}s" --timeout 10s \
    -s "$WORK/soak.lua" "$BASE_URL" >"$WORK/wrk.out" 2>&1 &
wrk_pid=$!

started=$SECONDS
sleep "$SOAK_WARMUP"
pids_start=$(pool_children)
# shellcheck disable=SC2086
rss_start=$(rss_kb $pids_start)
echo "soak: t=${SOAK_WARMUP}s RSS ${rss_start} kB (workers: $pids_start)"
samples="$rss_start"
while kill -0 "$wrk_pid" 2>/dev/null; do
    for ((i = 0; i < SOAK_SAMPLE * 10; i++)); do
        kill -0 "$wrk_pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$wrk_pid" 2>/dev/null || break
    # shellcheck disable=SC2046
    s=$(rss_kb $(pool_children))
    samples+=" $s"
    echo "soak: t=$((SECONDS - started))s RSS ${s} kB"
done
wrk_rc=0
wait "$wrk_pid" || wrk_rc=$?
wrk_pid=''
pids_end=$(pool_children)
# shellcheck disable=SC2086
rss_end=$(rss_kb $pids_end)
samples+=" $rss_end"

# ---- the summary ---------------------------------------------------------------------

cat "$WORK/wrk.out"
line=$(grep '^SOAK ' "$WORK/wrk.out" || true)
if [ "$wrk_rc" != 0 ] || [ -z "$line" ]; then
    echo "soak: wrk failed (exit $wrk_rc)" >&2
    exit 1
fi
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $line"; }
responses=$(field responses) duration_us=$(field duration_us) unexpected=$(field unexpected)
lost=$(field lost)
socket_errors=$(($(field connect) + $(field read) + $(field write) + $(field timeout)))
rps=$(awk -v n="$responses" -v d="$duration_us" 'BEGIN { printf "%.1f", (d > 0 ? n * 1e6 / d : 0) }')
growth=$(awk -v a="$rss_start" -v b="$rss_end" 'BEGIN { printf "%.2f", (a > 0 ? (b - a) * 100 / a : 0) }')

failed=0
echo
echo "soak: RSS samples (kB): $samples"
echo "soak: workers at start: $pids_start; at end: $pids_end"
if [ "$pids_start" != "$pids_end" ]; then
    echo "soak: FAIL: the worker pool changed (a worker died and was respawned)"
    grep -i 'worker .* ended' "$STACK_DIR/log/chatpatch.log" 2>/dev/null | tail -n 5 || true
    failed=1
fi
if [ "$unexpected" -gt 0 ]; then
    echo "soak: FAIL: $unexpected unexpected statuses:"
    grep '^SOAK_BAD ' "$WORK/wrk.out" | sed 's/^SOAK_BAD /  /'
    failed=1
fi
if [ "$socket_errors" -gt 0 ] || [ "$lost" -gt 0 ]; then
    echo "soak: FAIL: $socket_errors socket errors/timeouts, $lost requests without an answer"
    failed=1
fi
if awk -v g="$growth" -v m="$SOAK_MAX_GROWTH" 'BEGIN { exit !(g >= m) }'; then
    echo "soak: FAIL: RSS grew by $growth % (limit: below $SOAK_MAX_GROWTH %)"
    failed=1
fi
echo "soak: $responses requests in $((duration_us / 1000000)) s, $rps requests/s, $unexpected unexpected statuses," \
    "$socket_errors socket errors, RSS start ${rss_start} kB end ${rss_end} kB growth ${growth} %" \
    "($WORKERS workers, $SOAK_CLIENTS clients)"
exit "$failed"
