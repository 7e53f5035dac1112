#!/usr/bin/env bash
# memcheck: every request of the committed corpus (tests/memcheck/requests/)
# through the normal build (build/chatpatch) in CGI mode under valgrind's
# memcheck, against a private stack (scripts/stack.sh up in a temp folder on
# free ports, with sql/demo.sql and tests/memcheck/fixtures.sql loaded),
# which is stopped at the end however the script ends.
#
# Usage: scripts/memcheck.sh [REQUEST_FILE...]    (default: the whole corpus)
#
# A request file is a header block of NAME=value lines (the CGI environment:
# REQUEST_METHOD, PATH_INFO, CONTENT_TYPE, HTTP_X_API_KEY, ...), a blank
# line, then the body, byte for byte (given to the worker on stdin).
#   # expect: NNN         the status the worker must answer
#   # anything else       a comment
#   CONTENT_LENGTH        set to the body's size unless the block sets it
#   DATABASE_URL          the stack's unless the block sets it; the values
#                         @UNREACHABLE_SOCKET@ (a socket folder with no
#                         server) and @UNREACHABLE_TCP@ (a closed TCP port)
#                         check the 503 path.
# GATEWAY_INTERFACE=CGI/1.1 and PATH are always set; nothing else of this
# script's environment reaches the worker.
#
# Knobs: MEMCHECK_BIN (the binary run under valgrind, build/chatpatch; the
# stack's own workers are always build/chatpatch), MEMCHECK_LOG_DIR
# (build/memcheck/logs: valgrind's log and the worker's output per request),
# MEMCHECK_KEEP_STACK=1 (leave the stack folder's logs behind), VALGRIND_ARGS
# (extra valgrind options), MEMCHECK_JOBS (parallel valgrind runs, default:
# the number of CPUs).
#
# Prints one line per request and then
#   memcheck: N requests, E errors, D bytes definitely lost, I bytes indirectly lost
# and exits 1 when any valgrind error, definite or indirect leak, wrong
# status or worker failure was seen. "Still reachable" blocks (libpq, json-c,
# libfcgi keep some until exit) do not count.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# (make memcheck has done it already.)
[ -n "${MEMCHECK_DEPS_DONE:-}" ] || bash scripts/deps.sh build run memcheck

CHATPATCH_BIN=$ROOT/build/chatpatch
MEMCHECK_BIN=${MEMCHECK_BIN:-$CHATPATCH_BIN}
LOG_DIR=${MEMCHECK_LOG_DIR:-$ROOT/build/memcheck/logs}
JOBS=${MEMCHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}
for bin in "$CHATPATCH_BIN" "$MEMCHECK_BIN"; do
    [ -x "$bin" ] || { echo "memcheck: $bin is missing (make build/chatpatch)" >&2; exit 2; }
done

if [ $# -gt 0 ]; then
    files=("$@")
else
    shopt -s nullglob
    files=("$ROOT"/tests/memcheck/requests/*.req)
    shopt -u nullglob
fi
[ ${#files[@]} -gt 0 ] || { echo "memcheck: no request files" >&2; exit 2; }

# ---- the private stack ---------------------------------------------------------

# shellcheck source=private-stack.sh source-path=SCRIPTDIR
. scripts/private-stack.sh
# The stack's own pool serves none of the requests (they run under valgrind
# in CGI mode): one worker.
WORKERS=1
STACK_DIR=$(mktemp -d /tmp/chatpatch-memcheck.XXXXXX)
WORK=$STACK_DIR/memcheck
mkdir -p "$WORK"

# Valgrind runs still going (interrupted): ours, by pid.
stop_valgrind_runs() {
    local pid
    for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
private_stack_init memcheck "$WORK/down.log" stop_valgrind_runs
private_stack_up "$WORK/up.log"

/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" \
    -U postgres -d chatpatch -f tests/memcheck/fixtures.sql >/dev/null

# Unreachable databases: a socket folder where no server runs, and a
# loopback port nothing listens on.
mkdir -p "$WORK/no-server"
UNREACHABLE_SOCKET="postgresql://postgres@/chatpatch?host=$WORK/no-server&port=$PGPORT&connect_timeout=2"
UNREACHABLE_TCP="postgresql://postgres@127.0.0.1:$(free_port)/chatpatch?connect_timeout=2"

# ---- one request -----------------------------------------------------------------

rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

# run_one FILE: writes $LOG_DIR/<name>.{vg,out,err,result}; the .result file
# holds: name expected got exit errors definite indirect
run_one() {
    local file=$1 name line offset=0 expect='' have_len=0 have_db=0 body out rc
    local vars=()
    name=$(basename "$file" .req)
    body=$LOG_DIR/$name.body
    out=$LOG_DIR/$name.out

    while IFS= read -r line; do
        offset=$((offset + ${#line} + 1))
        [ -n "$line" ] || break
        case $line in
            '# expect:'*) expect=${line#'# expect:'}; expect=${expect// /} ;;
            '#'*) ;;
            *=*)
                case $line in
                    CONTENT_LENGTH=*) have_len=1 ;;
                    DATABASE_URL=*)
                        have_db=1
                        line=${line//@UNREACHABLE_SOCKET@/"$UNREACHABLE_SOCKET"}
                        line=${line//@UNREACHABLE_TCP@/"$UNREACHABLE_TCP"}
                        line=${line//@DATABASE_URL@/"$DATABASE_URL"}
                        ;;
                esac
                vars+=("$line")
                ;;
            *) echo "$name: bad header line: $line" >"$LOG_DIR/$name.result.bad"; return ;;
        esac
    done <"$file"
    tail -c "+$((offset + 1))" "$file" >"$body"
    [ "$have_len" = 1 ] || vars+=("CONTENT_LENGTH=$(stat -c %s "$body")")
    [ "$have_db" = 1 ] || vars+=("DATABASE_URL=$DATABASE_URL")

    rc=0
    # shellcheck disable=SC2086
    env -i PATH=/usr/bin:/bin GATEWAY_INTERFACE=CGI/1.1 "${vars[@]}" \
        timeout 120 valgrind --tool=memcheck --leak-check=full \
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=99 --track-origins=yes --log-file="$LOG_DIR/$name.vg" \
        ${VALGRIND_ARGS:-} "$MEMCHECK_BIN" <"$body" >"$out" 2>"$LOG_DIR/$name.err" || rc=$?

    local got errors definite indirect
    got=$(sed -n '1,/^\r\?$/{s/^Status: \([0-9]*\).*/\1/p}' "$out" | head -n 1)
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9,]*\) errors.*/\1/p' "$LOG_DIR/$name.vg" | tail -n 1 | tr -d ,)
    definite=$(sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' "$LOG_DIR/$name.vg" | tail -n 1 | tr -d ,)
    indirect=$(sed -n 's/.*indirectly lost: \([0-9,]*\) bytes.*/\1/p' "$LOG_DIR/$name.vg" | tail -n 1 | tr -d ,)
    echo "$name ${expect:-?} ${got:--} $rc ${errors:--} ${definite:-0} ${indirect:-0}" \
        >"$LOG_DIR/$name.result"
}

# Runs in parallel (valgrind is slow and single-threaded), reports in order.
running=0
for file in "${files[@]}"; do
    run_one "$file" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

# ---- report ------------------------------------------------------------------------

total=0 failed=0 sum_errors=0 sum_definite=0 sum_indirect=0
for file in "${files[@]}"; do
    name=$(basename "$file" .req)
    total=$((total + 1))
    if [ -e "$LOG_DIR/$name.result.bad" ]; then
        cat "$LOG_DIR/$name.result.bad"
        failed=$((failed + 1))
        continue
    fi
    if [ ! -s "$LOG_DIR/$name.result" ]; then
        echo "FAIL $name (the runner failed; see $LOG_DIR/$name.*)"
        failed=$((failed + 1))
        continue
    fi
    read -r _ expect got rc errors definite indirect <"$LOG_DIR/$name.result"
    problems=()
    [ "$errors" != - ] || { problems+=("no valgrind summary"); errors=0; }
    [ "$got" = "$expect" ] || problems+=("expected status $expect")
    [ "$rc" = 0 ] || problems+=("exit $rc")
    [ "$errors" = 0 ] || problems+=("valgrind errors")
    [ "$definite" = 0 ] && [ "$indirect" = 0 ] || problems+=("leak")
    sum_errors=$((sum_errors + errors))
    sum_definite=$((sum_definite + definite))
    sum_indirect=$((sum_indirect + indirect))
    if [ ${#problems[@]} -eq 0 ]; then
        verdict=ok
    else
        verdict="FAIL ($(IFS=,; echo "${problems[*]}"); see $LOG_DIR/$name.vg)"
        failed=$((failed + 1))
    fi
    printf '%-4s %-36s status=%-3s errors=%s definite=%s indirect=%s %s\n' \
        "$([ "$verdict" = ok ] && echo ok || echo FAIL)" "$name" "$got" "$errors" \
        "$definite" "$indirect" "${verdict#ok}"
    # valgrind's own words for the failure: its errors and leak records
    # with their stacks (the banner and the summaries left out).
    if [ "$errors" != 0 ] || [ "$definite" != 0 ] || [ "$indirect" != 0 ]; then
        sed -e 's/^==[0-9]*== \{0,1\}//' "$LOG_DIR/$name.vg" |
            awk '/^HEAP SUMMARY:/ { skip = 1 } /^(Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument|.* are (definitely|indirectly) lost)/ { skip = 0 }
                 /^LEAK SUMMARY:/ { skip = 1 } NR > 6 && !skip' |
            head -n 80 | sed 's/^/    | /'
    fi
done

echo "memcheck: $total requests, $sum_errors errors, $sum_definite bytes definitely lost, $sum_indirect bytes indirectly lost"
if [ "$failed" -gt 0 ]; then
    echo "memcheck: $failed of $total requests FAILED (valgrind logs: $LOG_DIR)" >&2
    exit 1
fi
