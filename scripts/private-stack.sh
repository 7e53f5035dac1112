# shellcheck shell=bash
# A private stack for one run of an ops script (memcheck.sh, soak.sh,
# bench.sh): scripts/stack.sh up in the caller's temp folder on free ports,
# retried when a port was taken in the meantime, and stopped and removed
# however the script ends. Sourced, not run:
#
#   . scripts/private-stack.sh
#   STACK_DIR=$(mktemp -d /tmp/chatpatch-NAME.XXXXXX)
#   private_stack_init NAME DOWN_LOG [STOP_FUNCTION]
#   private_stack_up UP_LOG
#
# The caller sets STACK_DIR, CHATPATCH_BIN and WORKERS; DB_CONNECTIONS,
# CHATPATCH_ARGS, MAX_BODY, PG_EXTRA_CONF and PGBIN reach stack.sh when set
# (its defaults otherwise). Messages go to stderr as "NAME: ...";
# NAME_KEEP_STACK=1 (NAME in capitals) leaves the stack folder behind.

_private_stack_script=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/stack.sh
_private_stack_name=''
_private_stack_down_log=''
_private_stack_stop=''

# private_stack_init NAME DOWN_LOG [STOP_FUNCTION]: the name for messages
# and NAME_KEEP_STACK, where stack.sh down writes, and the traps: however
# the script ends (exit, error, Ctrl-C, SIGTERM), STOP_FUNCTION (the
# caller's own processes) runs, then private_stack_down, and the script
# exits with its status, or 1 when private_stack_down failed.
private_stack_init() {
    _private_stack_name=$1
    _private_stack_down_log=$2
    _private_stack_stop=${3:-}
    trap _private_stack_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

_private_stack_exit() {
    local rc=$?
    trap - EXIT INT TERM
    [ -z "$_private_stack_stop" ] || "$_private_stack_stop"
    private_stack_down || rc=1
    exit "$rc"
}

# stack.sh with the caller's knobs. (down does not use the ports, which are
# unset when the trap fires before up chose them.)
_private_stack_sh() {
    env STACK_DIR="$STACK_DIR" CHATPATCH_BIN="$CHATPATCH_BIN" WORKERS="$WORKERS" \
        DB_CONNECTIONS="${DB_CONNECTIONS:-}" \
        PORT="${PORT:-1}" PGPORT="${PGPORT:-1}" CHATPATCH_ARGS="${CHATPATCH_ARGS:-}" \
        MAX_BODY="${MAX_BODY:-}" PG_EXTRA_CONF="${PG_EXTRA_CONF:-}" PGBIN="${PGBIN:-}" \
        bash "$_private_stack_script" "$@"
}

# A TCP port nothing listens on now (nginx's; PostgreSQL listens on a unix
# socket in our own folder, so its number only has to be plausible).
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "$_private_stack_name: no free port found" >&2
    return 1
}

# private_stack_up UP_LOG: stack.sh up on free ports (PORT, PGPORT), its
# output in UP_LOG, then stack.env's variables (BASE_URL, PGHOST, PGPORT,
# PGUSER, PGDATABASE, DATABASE_URL, CHATPATCH_PIDFILE, WORKER_ROLE,
# NGINX_WORKERS) set in the caller.
# Exits 1 (the trap stops what was started) when the stack did not come up.
private_stack_up() {
    local log=$1 attempt up_ok=0
    for attempt in 1 2 3; do
        PORT=$(free_port)
        PGPORT=$(free_port)
        if _private_stack_sh up >"$log" 2>&1; then
            up_ok=1
            break
        fi
        echo "$_private_stack_name: stack.sh up failed (attempt $attempt):" >&2
        tail -n 30 "$log" >&2
        # Only a port taken in the meantime is worth another try.
        grep -q 'nginx did not start' "$log" || break
    done
    [ "$up_ok" = 1 ] || exit 1
    # shellcheck disable=SC1091
    . "$STACK_DIR/stack.env"
}

# private_stack_down: stack.sh down (its output in DOWN_LOG, shown when it
# fails), then the stack folder removed unless NAME_KEEP_STACK=1. Returns 1
# when stack.sh down (or the removal) failed.
private_stack_down() {
    local rc=0 keep
    keep=${_private_stack_name^^}_KEEP_STACK
    if ! _private_stack_sh down >"$_private_stack_down_log" 2>&1; then
        echo "$_private_stack_name: stack.sh down failed:" >&2
        cat "$_private_stack_down_log" >&2
        rc=1
    fi
    if [ "${!keep:-}" = 1 ]; then
        echo "$_private_stack_name: stack folder kept: $STACK_DIR" >&2
    else
        rm -rf "$STACK_DIR" || rc=1
    fi
    return "$rc"
}
