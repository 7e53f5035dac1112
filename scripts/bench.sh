#!/usr/bin/env bash
# bench: how much of the database's own throughput for each API's statement
# survives the HTTP + FastCGI path.
#
# On a private stack (scripts/stack.sh up in a temp folder on free ports,
# stopped at the end however this script ends) with the data set of
# bench/data.sql (BENCH_CHATS chats per API), for each API in turn:
#   1. wrk (bench/bench.lua) PATCHes the API's route through nginx,
#      rotating over the chats, at BENCH_CONNECTIONS connections;
#   2. pgbench -M prepared runs the worker's own statement (its text taken
#      from the profiles the worker is built from: build/bench/sqltext) with
#      the values the worker sends for those requests, at BENCH_CONNECTIONS
#      clients, for the same time;
#   3. the same at WORKERS clients (the pool holds one database connection
#      per worker), unless BENCH_AT_WORKERS=0.
# Then GET /healthz against pgbench running the worker's health statement.
# Each measurement is BENCH_SECONDS long; the CPU each side used (client,
# nginx, workers, PostgreSQL) is read from /proc around it.
#
# Only ratios of measurements taken in the same run mean anything (the
# machine is small and shared), so nothing here fails on a number: the run
# fails only on real errors (a non-2xx status, a socket error or timeout,
# a pgbench error, updates that did not happen).
#
# Knobs (environment):
#   BENCH_SECONDS      10    length of each measurement
#   BENCH_CONNECTIONS  16    wrk connections = pgbench clients
#   WORKERS            4     worker processes
#   BENCH_CHATS        1000  chats per API in the data set
#   BENCH_THREADS      CPUs  wrk / pgbench threads (at most the connections)
#   BENCH_AT_WORKERS   1     also run pgbench at WORKERS clients
#   BENCH_KEEP_STACK=1       leave the stack folder (logs) behind
#   PG_EXTRA_CONF, CHATPATCH_ARGS, MAX_BODY: passed to scripts/stack.sh
# Raw outputs (wrk's, pgbench's, the pgbench scripts, the summary) land in
# build/bench/.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# (make bench has done it already.)
[ -n "${BENCH_DEPS_DONE:-}" ] || bash scripts/deps.sh build run bench

BENCH_SECONDS=${BENCH_SECONDS:-10}
BENCH_CONNECTIONS=${BENCH_CONNECTIONS:-16}
WORKERS=${WORKERS:-4}
BENCH_CHATS=${BENCH_CHATS:-1000}
BENCH_THREADS=${BENCH_THREADS:-$(nproc)}
BENCH_AT_WORKERS=${BENCH_AT_WORKERS:-1}
for v in BENCH_SECONDS BENCH_CONNECTIONS WORKERS BENCH_CHATS BENCH_THREADS; do
    if ! { [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ]; }; then
        log "bad $v: ${!v}"
        exit 2
    fi
done
[ "$BENCH_THREADS" -le "$BENCH_CONNECTIONS" ] || BENCH_THREADS=$BENCH_CONNECTIONS

PGBIN=/usr/lib/postgresql/15/bin
OUT=$ROOT/build/bench
CHATPATCH_BIN=$ROOT/build/chatpatch
SQLTEXT=$OUT/sqltext
for f in "$CHATPATCH_BIN" "$SQLTEXT" "$PGBIN/pgbench" "$PGBIN/psql"; do
    [ -x "$f" ] || { log "$f is missing (make bench builds and installs what it needs)"; exit 2; }
done
command -v wrk >/dev/null || { log "wrk is missing (scripts/deps.sh bench)"; exit 2; }
CLK_TCK=$(getconf CLK_TCK)

# Old results go, the helper binary stays.
mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.sql

# ---- what both sides send ------------------------------------------------------
# The plaintext credentials go over HTTP; the worker passes their sha256 as
# bytea text, and so does pgbench. Every body sets every field of its API,
# so that each statement parameter has a value (pgbench cannot pass NULL)
# and pgbench's values are exactly the worker's.

RECOUP_KEY=bench-recoup-key
NEPTUN_COOKIE=bench-neptun-session
LEANMCP_KEY=bench-leanmcp-key
TITLE='Bench title'
MODEL='bench/model-1'
SUMMARY='Bench summary'
SYSTEM_MESSAGE='msg_bench_system'
METADATA='{"source":"bench","run":1}'

hash_text() { printf '\\x%s' "$(printf '%s' "$1" | sha256sum | cut -d ' ' -f 1)"; }

declare -A credential=([recoup]=$RECOUP_KEY [neptun]=$NEPTUN_COOKIE [leanmcp]=$LEANMCP_KEY)
declare -A body=(
    [recoup]="{\"title\":\"$TITLE\",\"modelId\":\"$MODEL\"}"
    [neptun]="{\"name\":\"$TITLE\"}"
    [leanmcp]="{\"title\":\"$TITLE\",\"summary\":\"$SUMMARY\",\"modelUsed\":\"$MODEL\",\"systemMessageId\":\"$SYSTEM_MESSAGE\",\"metadata\":$METADATA}"
)
declare -A table=([recoup]=recoup.chats [neptun]=neptun.chat_conversations [leanmcp]=leanmcp.chats)
# Statement parameters (cgi/api.h): $1 credential, the path parameters,
# apply, then given/value per field. Those not set here are ids, set by the
# pgbench script from the chat number.
declare -A nparams=([recoup]=8 [neptun]=6 [leanmcp]=13)
recoup_values=("p1=$(hash_text "$RECOUP_KEY")" p4=true
    p5=true "p6=$TITLE" p7=true "p8=$MODEL")
neptun_values=("p1=$(hash_text "$NEPTUN_COOKIE")" p2=1000000 p4=true
    p5=true "p6=$TITLE")
leanmcp_values=("p1=$(hash_text "$LEANMCP_KEY")" p3=true
    p4=true "p5=$TITLE" p6=true "p7=$SUMMARY" p8=true "p9=$MODEL"
    p10=true "p11=$SYSTEM_MESSAGE" p12=true "p13=$METADATA")

# ---- the pgbench scripts ---------------------------------------------------------
# The worker's statement with each $N written :pN, pgbench's variable
# syntax; pgbench -M prepared turns every :pN back into a placeholder (one
# per occurrence, so a repeated $N is bound once per use, to the same value).
# The statement is the script's last line, without a ';' (pgbench would
# keep it in the text it prepares). pgbench keeps a client's variables across
# its transactions: k counts them.

[ "$("$SQLTEXT" | awk '{ print $1 }' | sort | tr '\n' ' ')" = "leanmcp neptun recoup " ] ||
    die "the worker serves other APIs than recoup, neptun, leanmcp: update scripts/bench.sh"
while read -r name count; do
    [ "$count" = "${nparams[$name]}" ] ||
        die "$name's statement has $count parameters, bench.sh knows $((nparams[$name])): update scripts/bench.sh"
done < <("$SQLTEXT")

pgbench_statement() {
    local sql pg
    sql=$("$SQLTEXT" "$1")
    # shellcheck disable=SC2016
    pg=$(printf '%s' "$sql" | sed -E 's/\$([0-9]+)/:p\1/g')
    # Nothing else in the text may read as :pN.
    [ "$(printf '%s' "$pg" | sed -E 's/:p([0-9]+)/$\1/g')" = "$sql" ] ||
        die "$1's statement contains ':p<digits>': cannot be written as a pgbench script"
    printf '%s\n' "$pg"
}

{
    echo '-- Recoup: chat i of 1..n in turn, from offset client_id * stride.'
    echo '\set k :k + 1'
    echo '\set i 1 + (:client_id * :stride + :k) % :n'
    echo '\set p2 1000000 + :i'
    echo '\set p3 2000000 + :i'
    pgbench_statement recoup
} >"$OUT/pgbench-recoup.sql"
{
    echo '-- Neptun: chat i of 1..n in turn, from offset client_id * stride.'
    echo '\set k :k + 1'
    echo '\set i 1 + (:client_id * :stride + :k) % :n'
    echo '\set p3 1000000 + :i'
    pgbench_statement neptun
} >"$OUT/pgbench-neptun.sql"
{
    echo '-- LeanMCP: the chat id is a UUID, a string, which pgbench cannot build'
    echo '-- from a number: each client reads its own chat (number'
    echo '-- 1 + client_id * stride) once, in its first transaction, and updates it.'
    echo '\if :ready = 0'
    echo '\set i 1 + (:client_id * :stride) % :n'
    echo "SELECT '00000000-0000-4000-8000-' || lpad(:i::text, 12, '0') AS p2 \\gset"
    echo '\set ready 1'
    printf '%s\n' '\endif'
    pgbench_statement leanmcp
} >"$OUT/pgbench-leanmcp.sql"
# The worker's health statement (cgi/engine.c).
health_sql=$(sed -n 's/.*(struct db_statement){"health", "\([^"]*\)", 0[^}]*}.*/\1/p' cgi/engine.c)
[ -n "$health_sql" ] || die "cannot find the health statement in cgi/engine.c: update scripts/bench.sh"
printf '%s\n' "$health_sql" >"$OUT/pgbench-healthz.sql"

# ---- the private stack -------------------------------------------------------------

# shellcheck source=private-stack.sh source-path=SCRIPTDIR
. scripts/private-stack.sh
STACK_DIR=$(mktemp -d /tmp/chatpatch-bench.XXXXXX)
client_pid=''

stop_client() {
    if [ -n "$client_pid" ]; then
        kill -TERM -- "-$client_pid" 2>/dev/null || kill -TERM "$client_pid" 2>/dev/null || true
        wait "$client_pid" 2>/dev/null || true
    fi
}
private_stack_init bench "$OUT/stack-down.txt" stop_client
private_stack_up "$OUT/stack-up.txt"

export PGHOST PGPORT PGUSER PGDATABASE
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

log "loading $BENCH_CHATS chats per API"
psql -v n="$BENCH_CHATS" -v recoup_key="$RECOUP_KEY" -v neptun_cookie="$NEPTUN_COOKIE" \
    -v leanmcp_key="$LEANMCP_KEY" -f bench/data.sql >"$OUT/data.txt" 2>&1 ||
    { cat "$OUT/data.txt" >&2; die "loading bench/data.sql failed"; }

# ---- CPU accounting ----------------------------------------------------------------
# Clock ticks of a process and its children, alive or reaped: a parent's
# cutime/cstime hold the children it has waited for (PostgreSQL's backends
# that ended, a worker that was respawned).

proc_ticks() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13} + ${14} + ${15}))
}

tree_ticks() {
    local pid=$1 sum c
    [ -n "$pid" ] || { echo 0; return; }
    sum=$(proc_ticks "$pid")
    for c in $(ps -o pid= --ppid "$pid"); do
        sum=$((sum + $(proc_ticks "$c")))
    done
    echo "$sum"
}

NGINX_PID=$(head -n 1 "$STACK_DIR/run/nginx.pid")
POOL_PID=$(head -n 1 "$CHATPATCH_PIDFILE")
POSTMASTER_PID=$(head -n 1 "$STACK_DIR/pg/postmaster.pid")

# The time, the ticks of nginx, the workers and PostgreSQL (every process
# of the cluster), and the whole machine's busy ticks (/proc/stat: user nice
# system irq softirq steal): the machine is shared, so what the stack did
# not use went to others.
cpu_snapshot() {
    echo "$EPOCHREALTIME $(tree_ticks "$NGINX_PID") $(tree_ticks "$POOL_PID")" \
        "$(tree_ticks "$POSTMASTER_PID")" \
        "$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat)"
}

# The backends of a pgbench run end after it; wait until the postmaster has
# as few children as before, so that their time is in its cutime.
pg_children() { ps -o pid= --ppid "$POSTMASTER_PID" | wc -l; }
wait_pg_children() {
    local i
    for ((i = 0; i < 50; i++)); do
        [ "$(pg_children)" -le "$1" ] && return
        sleep 0.1
    done
}

# cpu_fields BEFORE AFTER CLIENT_SECONDS COUNT: each side's CPU over a run
# in % of one core (client, nginx, workers, postgres, the machine), then in
# CPU microseconds per request or transaction (client, nginx, workers,
# postgres, their sum). The client's seconds come from `time`.
cpu_fields() {
    awk -v b="$1" -v a="$2" -v c="$3" -v n="$4" -v hz="$CLK_TCK" 'BEGIN {
        split(b, B, " "); split(a, A, " ")
        w = A[1] - B[1]
        ng = (A[2] - B[2]) / hz; wk = (A[3] - B[3]) / hz; pg = (A[4] - B[4]) / hz
        m = (A[5] - B[5]) / hz
        if (n < 1) n = 1
        printf "%.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f %.0f",
            100 * c / w, 100 * ng / w, 100 * wk / w, 100 * pg / w, 100 * m / w,
            1e6 * c / n, 1e6 * ng / n, 1e6 * wk / n, 1e6 * pg / n, 1e6 * (c + ng + wk + pg) / n }'
}

# The log line of cpu_fields' output.
cpu_text() {
    # shellcheck disable=SC2086
    set -- $1
    printf 'CPU %% of a core: client %s, nginx %s, workers %s, postgres %s (machine %s); per request %s us' \
        "$1" "$2" "$3" "$4" "$5" "${10}"
}

db_now() { psql -tAc 'SELECT now()'; }
updated_since() { psql -tAc "SELECT count(*) FROM $1 WHERE updated_at >= '$2'"; }

# ---- the runs ------------------------------------------------------------------------

declare -A result
failed=0
LIMIT=$((BENCH_SECONDS + 60))

# run_client OUTPUT COMMAND...: runs the client (wrk, pgbench) under timeout
# in its own session, so that Ctrl-C reaches only this script, whose trap
# then ends the run (a client that catches SIGINT itself, as wrk does, would
# leave the script going on). Sets CLIENT_RC and CLIENT_CPU, the client's
# user + system seconds.
run_client() {
    local out=$1
    shift
    # shellcheck disable=SC2016
    setsid bash -c 'timeout --foreground --kill-after=10 "$@"; rc=$?; times >&3; exit $rc' \
        _ "$LIMIT" "$@" >"$out" 2>&1 3>"$STACK_DIR/times.txt" &
    client_pid=$!
    CLIENT_RC=0
    wait "$client_pid" || CLIENT_RC=$?
    client_pid=''
    # times: the shell's, then its children's "XmY.YYYs XmY.YYYs".
    CLIENT_CPU=$(awk 'NR == 2 {
        s = 0
        for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] }
        print s }' "$STACK_DIR/times.txt")
}

# run_wrk NAME: wrk against the API (or healthz); fills result[NAME.*].
run_wrk() {
    local api=$1 out=$OUT/wrk-$1.txt rc=0 before after cpu line t0='' n
    log "wrk $api: ${BENCH_SECONDS} s, $BENCH_CONNECTIONS connections, $BENCH_THREADS threads"
    [ "$api" = healthz ] || t0=$(db_now)
    before=$(cpu_snapshot)
    run_client "$out" wrk -t "$BENCH_THREADS" -c "$BENCH_CONNECTIONS" -d "${BENCH_SECONDS}s" \
        --timeout 10s --latency -s bench/bench.lua "$BASE_URL" \
        -- "$api" "$BENCH_CHATS" "$BENCH_THREADS" "${credential[$api]:-}" "${body[$api]:-}"
    after=$(cpu_snapshot)
    rc=$CLIENT_RC cpu=$CLIENT_CPU
    line=$(grep '^BENCH ' "$out" || true)
    if [ "$rc" != 0 ] || [ -z "$line" ]; then
        log "FAIL: wrk $api exited $rc:"
        tail -n 20 "$out" >&2
        failed=1
        return
    fi
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $line"; }
    result[$api.rps]=$(awk -v n="$(field requests)" -v d="$(field duration_us)" \
        'BEGIN { printf "%.1f", (d > 0 ? n * 1e6 / d : 0) }')
    result[$api.p50]=$(awk -v u="$(field p50_us)" 'BEGIN { printf "%.2f", u / 1000 }')
    result[$api.p99]=$(awk -v u="$(field p99_us)" 'BEGIN { printf "%.2f", u / 1000 }')
    result[$api.non2xx]=$(field non2xx)
    result[$api.errors]=$(($(field connect) + $(field read) + $(field write) + $(field timeout)))
    result[$api.requests]=$(field requests)
    result[$api.cpu]=$(cpu_fields "$before" "$after" "$cpu" "$(field requests)")
    log "  ${result[$api.rps]} req/s, p50 ${result[$api.p50]} ms, p99 ${result[$api.p99]} ms," \
        "non-2xx ${result[$api.non2xx]}, socket errors ${result[$api.errors]}"
    log "  $(cpu_text "${result[$api.cpu]}")"
    if [ "${result[$api.non2xx]}" != 0 ] || [ "${result[$api.errors]}" != 0 ]; then
        log "FAIL: wrk $api: ${result[$api.non2xx]} non-2xx answers, ${result[$api.errors]} socket errors/timeouts"
        failed=1
    fi
    if [ -n "$t0" ]; then
        n=$(updated_since "${table[$api]}" "$t0")
        if [ "$n" -eq 0 ]; then
            log "FAIL: wrk $api: no chat was updated"
            failed=1
        fi
    fi
}

# pgbench_args API CLIENTS: sets PGBENCH_ARGS, pgbench on the API's script
# with its values (the run's length is for the caller to add).
pgbench_args() {
    local api=$1 clients=$2 threads stride values=() v
    threads=$BENCH_THREADS
    [ "$threads" -le "$clients" ] || threads=$clients
    stride=$((BENCH_CHATS / clients))
    [ "$stride" -ge 1 ] || stride=1
    case $api in
        recoup) values=("${recoup_values[@]}") ;;
        neptun) values=("${neptun_values[@]}") ;;
        leanmcp) values=("${leanmcp_values[@]}") ;;
    esac
    PGBENCH_ARGS=(-n -M prepared -c "$clients" -j "$threads"
        -D k=0 -D ready=0 -D "n=$BENCH_CHATS" -D "stride=$stride")
    for v in "${values[@]}"; do PGBENCH_ARGS+=(-D "$v"); done
    PGBENCH_ARGS+=(-f "$OUT/pgbench-$api.sql")
}

# Before measuring: the script's values must make the statement update. A
# rotating script run by one client for n transactions updates every chat;
# LeanMCP's, by every client once, one chat each.
check_pgbench() {
    local api=$1 t0 n want out=$OUT/pgbench-$1-check.txt
    t0=$(db_now)
    if [ "$api" = leanmcp ]; then
        pgbench_args "$api" "$BENCH_CONNECTIONS"
        "$PGBIN/pgbench" "${PGBENCH_ARGS[@]}" -t 1 >"$out" 2>&1 ||
            { cat "$out" >&2; die "pgbench $api check run failed"; }
        want=$((BENCH_CONNECTIONS < BENCH_CHATS ? BENCH_CONNECTIONS : BENCH_CHATS))
    else
        pgbench_args "$api" 1
        "$PGBIN/pgbench" "${PGBENCH_ARGS[@]}" -t "$BENCH_CHATS" >"$out" 2>&1 ||
            { cat "$out" >&2; die "pgbench $api check run failed"; }
        want=$BENCH_CHATS
    fi
    n=$(updated_since "${table[$api]}" "$t0")
    [ "$n" = "$want" ] ||
        die "pgbench $api check: $n chats updated, $want expected (its values do not make the statement update)"
}

# run_pgbench NAME CLIENTS: fills result[NAME.tpsCLIENTS].
run_pgbench() {
    local api=$1 clients=$2 out=$OUT/pgbench-$1-c$2.txt rc=0 before after cpu kids t0='' n
    local tps failed_tx processed
    log "pgbench $api: ${BENCH_SECONDS} s, $clients clients"
    [ "$api" = healthz ] || t0=$(db_now)
    pgbench_args "$api" "$clients"
    kids=$(pg_children)
    before=$(cpu_snapshot)
    run_client "$out" "$PGBIN/pgbench" "${PGBENCH_ARGS[@]}" -T "$BENCH_SECONDS"
    wait_pg_children "$kids"
    after=$(cpu_snapshot)
    rc=$CLIENT_RC cpu=$CLIENT_CPU
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out")
    failed_tx=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")
    if [ "$rc" != 0 ] || [ -z "$tps" ] || [ "${failed_tx:-0}" != 0 ]; then
        log "FAIL: pgbench $api exited $rc (failed transactions: ${failed_tx:-?}):"
        tail -n 20 "$out" >&2
        failed=1
        return
    fi
    result[$api.tps$clients]=$(awk -v t="$tps" 'BEGIN { printf "%.1f", t }')
    result[$api.lat$clients]=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$out")
    processed=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
    result[$api.cpu$clients]=$(cpu_fields "$before" "$after" "$cpu" "$processed")
    log "  ${result[$api.tps$clients]} TPS, latency average ${result[$api.lat$clients]} ms"
    log "  $(cpu_text "${result[$api.cpu$clients]}")"
    if [ -n "$t0" ]; then
        n=$(updated_since "${table[$api]}" "$t0")
        if [ "$n" -eq 0 ]; then
            log "FAIL: pgbench $api: no chat was updated"
            failed=1
        fi
    fi
}

client_counts=("$BENCH_CONNECTIONS")
if [ "$BENCH_AT_WORKERS" = 1 ] && [ "$WORKERS" != "$BENCH_CONNECTIONS" ]; then
    client_counts+=("$WORKERS")
fi

for api in recoup neptun leanmcp; do
    check_pgbench "$api"
done
for api in recoup neptun leanmcp healthz; do
    run_wrk "$api"
    for c in "${client_counts[@]}"; do
        run_pgbench "$api" "$c"
    done
done

# ---- the summary ---------------------------------------------------------------------

ratio() {
    if [ -z "${1:-}" ] || [ -z "${2:-}" ]; then echo '-'; return; fi
    awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
}

C=$BENCH_CONNECTIONS
{
    echo "make bench: $BENCH_SECONDS s per measurement, $C connections (wrk) = $C clients (pgbench -M prepared)," \
        "$WORKERS workers, $BENCH_CHATS chats per API, $BENCH_THREADS client threads, $(nproc) CPUs"
    echo
    hdr=$(printf '%-8s %15s %8s %8s %7s %14s %7s' API 'chatpatch req/s' 'p50 ms' 'p99 ms' non2xx \
        "pgbench@$C TPS" ratio)
    [ "${#client_counts[@]}" -lt 2 ] ||
        hdr+=$(printf ' %14s %7s' "pgbench@$WORKERS TPS" ratio)
    echo "$hdr"
    for api in recoup neptun leanmcp healthz; do
        row=$(printf '%-8s %15s %8s %8s %7s %14s %7s' "$api" "${result[$api.rps]:--}" \
            "${result[$api.p50]:--}" "${result[$api.p99]:--}" "${result[$api.non2xx]:--}" \
            "${result[$api.tps$C]:--}" "$(ratio "${result[$api.rps]:-}" "${result[$api.tps$C]:-}")")
        [ "${#client_counts[@]}" -lt 2 ] ||
            row+=$(printf ' %14s %7s' "${result[$api.tps$WORKERS]:--}" \
                "$(ratio "${result[$api.rps]:-}" "${result[$api.tps$WORKERS]:-}")")
        echo "$row"
    done
    echo
    echo "ratio = chatpatch req/s through nginx / pgbench TPS of the same statement (healthz: $health_sql)."
    echo
    echo "CPU per run: % of one core ($(nproc) CPUs: $((100 * $(nproc)))% in all; 'machine' counts every process,"
    echo "the stack's and others'), and CPU microseconds per request (wrk) or transaction (pgbench):"
    printf '%-19s %6s %6s %7s %8s %7s | %6s %6s %7s %8s %6s\n' run client nginx workers postgres machine \
        'us/req' nginx workers postgres total
    cpu_row() {
        [ -n "${2:-}" ] || return 0
        # shellcheck disable=SC2086
        set -- "$1" $2
        printf '%-19s %5s%% %5s%% %6s%% %7s%% %6s%% | %6s %6s %7s %8s %6s\n' "$@"
    }
    for api in recoup neptun leanmcp healthz; do
        cpu_row "$api wrk" "${result[$api.cpu]:-}"
        for c in "${client_counts[@]}"; do
            cpu_row "$api pgbench@$c" "${result[$api.cpu$c]:-}"
        done
    done
    echo
    echo "Raw outputs: $OUT/"
} | tee "$OUT/summary.txt"

[ "$failed" = 0 ] || { log "FAILED: see above"; exit 1; }
