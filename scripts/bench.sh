#!/usr/bin/env bash
# bench: the glue of `make bench` (issue 9). Starts a private stack
# (scripts/stack.sh up in a temp folder on free ports, through
# scripts/private-stack.sh) whose nginx also fronts the Node peer
# (bench/peer/: its server block goes into the stack's nginx/conf.d/) and
# a server of its own answering 204 (the floor of bench/run.py), starts
# the peer, and hands over to bench/run.py, which loads the data, checks,
# measures and writes var/bench/result.txt and result.png. Everything is
# stopped at the end however this script ends.
#
# Knobs (environment; make bench passes the first five):
#   BENCH_SECONDS      10          length of each run
#   BENCH_CHATS        100000      chats per API in the data set
#   BENCH_ROUNDS       1           rounds of the whole interleaved series
#   BENCH_CONCURRENCY  "1 8 32 128"
#   WORKERS            4           chatpatch workers
#   DB_CONNECTIONS     8           database connections of each worker; the
#                                  peer's pool is WORKERS x DB_CONNECTIONS
#   BENCH_THREADS      CPUs        wrk / pgbench threads
#   BENCH_WARMUP       3           seconds of unmeasured load on every target first
#   BENCH_HOSTILE      1           0: skip the hostile-body rows
#   BENCH_HOSTILE_CONCURRENCY 8
#   BENCH_APIS         "recoup neptun leanmcp"
#   BENCH_TIMEOUT      5           seconds after which wrk counts a timeout
#   BENCH_KEEP_STACK=1             leave the stack folder (logs) behind
#   NGINX_WORKERS      CPUs / 4, at least 1  nginx's worker_processes (stack.sh)
#   PG_EXTRA_CONF, CHATPATCH_ARGS, MAX_BODY: passed to scripts/stack.sh
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

# (make bench has done it already.)
[ -n "${BENCH_DEPS_DONE:-}" ] || bash scripts/deps.sh build run bench

WORKERS=${WORKERS:-4}
DB_CONNECTIONS=${DB_CONNECTIONS:-8}
MAX_BODY=${MAX_BODY:-65536}
BENCH_CONCURRENCY=${BENCH_CONCURRENCY:-1 8 32 128}
[[ $WORKERS =~ ^[1-9][0-9]*$ ]] || die "bad WORKERS: $WORKERS"
[[ $DB_CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "bad DB_CONNECTIONS: $DB_CONNECTIONS"
# As many database connections as chatpatch's workers may open.
POOL=$((WORKERS * DB_CONNECTIONS))
[[ $BENCH_CONCURRENCY =~ ^[0-9\ ]+$ ]] || die "bad BENCH_CONCURRENCY: $BENCH_CONCURRENCY"
max_conc=$(tr ' ' '\n' <<<"$BENCH_CONCURRENCY" | sort -n | tail -n 1)

PGBIN=/usr/lib/postgresql/15/bin
PYTHON=/usr/bin/python3 # Debian's: the first python3 on PATH may be another
OUT=$ROOT/var/bench
CHATPATCH_BIN=$ROOT/build/chatpatch
SQLTEXT=$ROOT/build/bench/sqltext
for f in "$CHATPATCH_BIN" "$SQLTEXT" "$PGBIN/pgbench" "$PGBIN/psql" "$PYTHON"; do
    [ -x "$f" ] || die "$f is missing (make bench builds and installs what it needs)"
done
for c in wrk node gnuplot curl; do
    command -v "$c" >/dev/null || die "$c is missing (scripts/deps.sh bench)"
done
[ -d bench/peer/node_modules/fastify ] || die "bench/peer/node_modules is missing (make bench runs npm ci)"

rm -rf "$OUT"
mkdir -p "$OUT/raw"

# ---- the private stack, with the peer's server in its nginx -------------------------

# shellcheck source=private-stack.sh source-path=SCRIPTDIR
. scripts/private-stack.sh
STACK_DIR=$(mktemp -d /tmp/chatpatch-bench.XXXXXX)
PEER_PORT=$(free_port)
PEER_SOCKET=$STACK_DIR/peer.sock
mkdir -p "$STACK_DIR/nginx/conf.d"
sed -e "s|@PEER_PORT@|$PEER_PORT|g" -e "s|@PEER_SOCKET@|$PEER_SOCKET|g" \
    -e "s|@MAX_BODY@|$MAX_BODY|g" -e "s|@KEEPALIVE@|$max_conc|g" \
    bench/peer/nginx.conf >"$STACK_DIR/nginx/conf.d/bench-peer.conf"
# The floor: the same nginx answering by itself (bench/run.py, floor runs).
FLOOR_PORT=$(free_port)
cat >"$STACK_DIR/nginx/conf.d/bench-floor.conf" <<CONF
server {
    listen 127.0.0.1:$FLOOR_PORT;
    server_name _;
    location / {
        return 204;
    }
}
CONF
# pgbouncer runs in the stack, the stack's pool connecting directly; a
# second pool of the same size goes through it (below), for the cost of
# the pooler against going direct.
export PGBOUNCER=1 WORKERS_VIA_PGBOUNCER=0 PGBOUNCER_PORT
PGBOUNCER_PORT=$(free_port)
BOUNCER_PORT=$(free_port)
BOUNCER_SOCKET=$STACK_DIR/run/bouncer.sock
# The ceiling opens as many connections as the highest concurrency, beside
# the stack's pool and the peer's (POOL each) and pgbouncer's (20).
PG_EXTRA_CONF="max_connections = $((max_conc + 2 * POOL + 60))
${PG_EXTRA_CONF:-}"

peer_pid=''
bouncer_pid=''
run_pid=''''
# (Called by the trap that private_stack_init sets.)
# shellcheck disable=SC2317
stop_bench() {
    local pid
    for pid in "$run_pid" "$peer_pid" "$bouncer_pid"; do
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
# One client address sends everything here: lift the stack's per-client
# limits (nginx/chatpatch.conf), which would answer most of it 429.
export LIMIT_CONN=65535 LIMIT_REQ_RATE=1000000 LIMIT_REQ_BURST=1000000
private_stack_init bench "$OUT/raw/stack-down.txt" stop_bench
private_stack_up "$OUT/raw/stack-up.txt"

# ---- the Node peer -------------------------------------------------------------------
# As the workers do, it connects as the stack's least-privilege worker role
# (scripts/stack.sh, sql/grants.sql), with as many connections as the
# workers may open.

log "starting the Node peer ($(node --version)) on $PEER_SOCKET"
PGHOST=$PGHOST PGPORT=$PGPORT PGDATABASE=$PGDATABASE PGUSER=$WORKER_ROLE \
    PEER_SOCKET=$PEER_SOCKET PEER_POOL=$POOL MAX_BODY=$MAX_BODY \
    setsid node bench/peer/server.js </dev/null >"$OUT/raw/peer.log" 2>&1 &
peer_pid=$!
PEER_URL=http://127.0.0.1:$PEER_PORT
# Ready when its JSON 404 comes back through nginx.
for ((i = 0; i < 100; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$PEER_URL/" || true)" = 404 ] && break
    kill -0 "$peer_pid" 2>/dev/null || { cat "$OUT/raw/peer.log" >&2; die "the peer exited"; }
    sleep 0.1
done
[ "$i" -lt 100 ] || { cat "$OUT/raw/peer.log" >&2; die "the peer did not answer through nginx in 10 s"; }

# ---- a second pool, through pgbouncer ---------------------------------------------------
# Its own socket, and a server of its own in the stack's nginx on
# BOUNCER_PORT: the stack's rendered snippet, pointed at that socket.

log "starting $WORKERS workers through pgbouncer on $BOUNCER_SOCKET"
DATABASE_URL="postgresql://$WORKER_ROLE@/$PGDATABASE?host=$PGHOST&port=$PGBOUNCER_PORT" \
    DATABASE_STATEMENTS=unnamed setsid "$CHATPATCH_BIN" --listen "$BOUNCER_SOCKET" \
    --workers "$WORKERS" --db-connections "$DB_CONNECTIONS" \
    --socket-mode 0660 --socket-group "$([ "$(id -u)" = 0 ] && echo nogroup || id -gn)" \
    --max-body "$MAX_BODY" \
    </dev/null >"$OUT/raw/bouncer-pool.log" 2>&1 &
bouncer_pid=$!
sed -e 's|^set \$chatpatch_upstream .*|set $chatpatch_upstream chatpatch_bench_bouncer;|' \
    "$STACK_DIR/nginx/chatpatch.conf" >"$STACK_DIR/nginx/bouncer-snippet.conf"
grep -q chatpatch_bench_bouncer "$STACK_DIR/nginx/bouncer-snippet.conf" ||
    die "the stack's nginx snippet has no \$chatpatch_upstream line to point at the second pool"
# The stack's own keepalive line (none with FASTCGI_KEEPALIVE=0).
keepalive=$(grep -E '^ *keepalive [0-9]+;' "$STACK_DIR/nginx/chatpatch-http.conf" || true)
cat >"$STACK_DIR/nginx/conf.d/bench-bouncer.conf" <<CONF
upstream chatpatch_bench_bouncer {
    server unix:$BOUNCER_SOCKET;
$keepalive
}
server {
    listen 127.0.0.1:$BOUNCER_PORT;
    server_name _;
    client_max_body_size $MAX_BODY;
    client_body_buffer_size $MAX_BODY;
    include $STACK_DIR/nginx/bouncer-snippet.conf;
}
CONF
nginx -p "$STACK_DIR/nginx" -c "$STACK_DIR/nginx/nginx.conf" -s reload ||
    die "nginx did not take the second pool's server"
BOUNCER_URL=http://127.0.0.1:$BOUNCER_PORT
for ((i = 0; i < 100; i++)); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BOUNCER_URL/healthz" || true)" = 200 ] && break
    kill -0 "$bouncer_pid" 2>/dev/null || { cat "$OUT/raw/bouncer-pool.log" >&2; die "the pool through pgbouncer exited"; }
    sleep 0.1
done
[ "$i" -lt 100 ] || { cat "$OUT/raw/bouncer-pool.log" >&2; die "the pool through pgbouncer did not answer in 10 s"; }

# ---- the measurements ----------------------------------------------------------------

ROOT=$ROOT BENCH_OUT=$OUT SQLTEXT=$SQLTEXT PGBIN=$PGBIN WORKERS=$WORKERS DB_CONNECTIONS=$DB_CONNECTIONS \
    NGINX_WORKERS=$NGINX_WORKERS \
    BENCH_CONCURRENCY=$BENCH_CONCURRENCY BASE_URL=$BASE_URL PEER_URL=$PEER_URL \
    WORKER_ROLE=$WORKER_ROLE BOUNCER_URL=$BOUNCER_URL FLOOR_URL=http://127.0.0.1:$FLOOR_PORT BOUNCER_POOL_PID=$bouncer_pid \
    PGBOUNCER_PID=$(head -n 1 "$STACK_DIR/run/pgbouncer.pid") \
    NGINX_PID=$(head -n 1 "$STACK_DIR/run/nginx.pid") POOL_PID=$(head -n 1 "$CHATPATCH_PIDFILE") \
    POSTMASTER_PID=$(head -n 1 "$STACK_DIR/pg/postmaster.pid") PEER_PID=$peer_pid \
    PGHOST=$PGHOST PGPORT=$PGPORT PGUSER=$PGUSER PGDATABASE=$PGDATABASE \
    "$PYTHON" bench/run.py &
run_pid=$!
rc=0
wait "$run_pid" || rc=$?
run_pid=''
[ "$rc" = 0 ] || log "FAILED (exit $rc): see above and $OUT/raw/"
exit "$rc"
