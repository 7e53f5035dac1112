#!/usr/bin/env bash
# The local chatpatch stack: PostgreSQL 15, the worker pool and nginx, all
# living under one folder (STACK_DIR) on their own ports, so a test stack
# can run beside `make up`.
#
# Usage: scripts/stack.sh up|down|run
#   up    start what is not running, wait for /healthz, write stack.env
#   down  stop nginx, the workers and PostgreSQL; safe when nothing runs
#   run   up, print demo curl commands, wait for Ctrl-C/SIGTERM, then down
#
# Knobs (environment, with defaults):
#   STACK_DIR      <repo>/var      everything the stack writes
#   PORT           8080            nginx on 127.0.0.1:PORT
#   PGPORT         55432           PostgreSQL port (unix socket only)
#   WORKERS        4               worker processes
#   DB_CONNECTIONS 8               PostgreSQL connections of each worker
#                                  (--db-connections; README, How many
#                                  workers)
#   CHATPATCH_BIN  build/chatpatch
#   CHATPATCH_ARGS ""              extra worker arguments
#   MAX_BODY       65536           body limit, nginx and workers alike
#   PG_EXTRA_CONF  ""              extra postgresql.conf lines
#   PGBIN          /usr/lib/postgresql/15/bin
#   PGBOUNCER      0               1: the workers reach PostgreSQL through
#                                  pgbouncer in transaction mode (unnamed
#                                  statements); stack.env still names
#                                  PostgreSQL itself
#   PGBOUNCER_PORT PGPORT + 1      pgbouncer's port (unix socket only)
#   WORKERS_VIA_PGBOUNCER PGBOUNCER  0 with PGBOUNCER=1: pgbouncer runs, but
#                                  the workers connect directly (make bench
#                                  starts a second pool through it)
#   WORKERS_DATABASE_URL ""        the workers' DATABASE_URL instead of the
#                                  stack's own PostgreSQL (or pgbouncer),
#                                  e.g. a primary and a standby with
#                                  target_session_attrs=read-write (README,
#                                  "A primary and a standby")
#   NGINX_WORKERS  CPUs / 4, at least 1  nginx's worker_processes (a number or
#                                  auto; README, Tuning)
#   FASTCGI_KEEPALIVE 32           idle connections to the workers nginx keeps
#                                  per worker process (the upstream's
#                                  keepalive); 0: a connection per request
#                                  (fastcgi_keep_conn off)
# nginx's connections and per-client limits (README, "Connections, limits
# and timeouts"); the defaults are the advice for production. A benchmark
# or a test that sends from one address as many clients would sets them
# far higher (make bench, make soak: LIMIT_CONN=65535 LIMIT_REQ_RATE=1000000
# LIMIT_REQ_BURST=1000000):
#   NGINX_WORKER_CONNECTIONS 4096  connections per nginx worker process
#                                  (one process per core); the workers'
#                                  file limit is twice that
#   LIMIT_CONN       32            requests in progress at once per client
#                                  address (at most 65535); more: 429
#   LIMIT_REQ_RATE   100           requests per second per client address
#   LIMIT_REQ_BURST  200           requests above that rate answered at once
#                                  before the rest get 429
#   NGINX_USER       nobody        as root: nginx's worker processes' user
#   NGINX_GROUP      nogroup       and group, which owns the workers' socket
#                                  (mode 0660); not root: the caller's own
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

STACK_DIR=${STACK_DIR:-$ROOT/var}
PORT=${PORT:-8080}
PGPORT=${PGPORT:-55432}
PGBOUNCER=${PGBOUNCER:-0}
PGBOUNCER_PORT=${PGBOUNCER_PORT:-$((PGPORT + 1))}
WORKERS_VIA_PGBOUNCER=${WORKERS_VIA_PGBOUNCER:-$PGBOUNCER}
WORKERS=${WORKERS:-4}
DB_CONNECTIONS=${DB_CONNECTIONS:-8}
CHATPATCH_BIN=${CHATPATCH_BIN:-$ROOT/build/chatpatch}
CHATPATCH_ARGS=${CHATPATCH_ARGS:-}
MAX_BODY=${MAX_BODY:-65536}
PG_EXTRA_CONF=${PG_EXTRA_CONF:-}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
NGINX_WORKERS=${NGINX_WORKERS:-$((($(nproc) + 3) / 4))}
NGINX_WORKER_CONNECTIONS=${NGINX_WORKER_CONNECTIONS:-4096}
FASTCGI_KEEPALIVE=${FASTCGI_KEEPALIVE:-32}
LIMIT_CONN=${LIMIT_CONN:-32}
LIMIT_REQ_RATE=${LIMIT_REQ_RATE:-100}
LIMIT_REQ_BURST=${LIMIT_REQ_BURST:-200}
if [ "$(id -u)" -eq 0 ]; then
    NGINX_USER=${NGINX_USER:-nobody}
    NGINX_GROUP=${NGINX_GROUP:-nogroup}
else
    # nginx cannot change user: its workers run as we do.
    NGINX_USER=$(id -un)
    NGINX_GROUP=$(id -gn)
fi

# Absolute paths: nginx, pg_ctl and the worker all run from other folders.
# (realpath -m: `down` must not create a missing STACK_DIR.)
STACK_DIR=$(realpath -m "$STACK_DIR")
case $CHATPATCH_BIN in /*) ;; *) CHATPATCH_BIN=$ROOT/$CHATPATCH_BIN ;; esac

PGDATA=$STACK_DIR/pg
WORKER_ROLE=chatpatch_worker # the workers' role: sql/grants.sql only
RUN_DIR=$STACK_DIR/run
LOG_DIR=$STACK_DIR/log
NGINX_DIR=$STACK_DIR/nginx
SOCKET=$RUN_DIR/chatpatch.sock
WORKER_PIDFILE=$RUN_DIR/chatpatch.pid
NGINX_PIDFILE=$RUN_DIR/nginx.pid
NGINX_CONF=$NGINX_DIR/nginx.conf
BASE_URL=http://127.0.0.1:$PORT
PGDATABASE=chatpatch
PGUSER=postgres

# Never fails: `run`'s cleanup must go on when the terminal or a pipe
# reading our output is gone.
log() { printf 'stack: %s\n' "$*" >&2 2>/dev/null || true; }
die() { log "$*"; exit 1; }

# PostgreSQL refuses to run as root, so as root its commands run as the
# `postgres` user; as anyone else they run as that user (the cluster's
# superuser is still named postgres, see initdb -U).
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && "$@")
    fi
}

# Whether a process runs. A zombie does not count: daemons here are
# reparented to PID 1, which may reap them late, and kill -0 succeeds on a
# zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# Whether any live process is in process group $1.
group_alive() {
    ps -e -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# A pid file's process, if it is alive; else nothing.
live_pid() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(head -n 1 "$1")
    [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && echo "$pid"
}

pg_running() { as_pg "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; }

# libpq URI with the socket folder as host; percent-encode it since a path
# may hold characters a URI cannot.
# The URL of the stack's database for a role: $1, or PGUSER (the superuser),
# on port $2, or PostgreSQL's.
database_url() {
    local LC_ALL=C s=$RUN_DIR out='' c i user=${1:-$PGUSER} port=${2:-$PGPORT}
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
            [A-Za-z0-9/._~-]) out+=$c ;;
            *) out+=$(printf '%%%02X' "'$c") ;;
        esac
    done
    echo "postgresql://$user@/$PGDATABASE?host=$out&port=$port"
}

# Escape a string for the replacement side of a sed s|||.
sed_repl() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# The postgres user must reach STACK_DIR, and nginx's worker user (nobody)
# the socket in it (which only its group may use), even under /tmp/pytest-of-root (mode 700): add only the
# search bit to the parents that lack it.
open_path() {
    local d=$STACK_DIR
    chmod 755 "$STACK_DIR"
    while d=$(dirname "$d"); [ "$d" != / ]; do
        [ "$(( $(stat -c '0%a' "$d") & 01 ))" -eq 1 ] || chmod o+x "$d"
    done
}

make_dirs() {
    mkdir -p "$RUN_DIR" "$LOG_DIR" "$NGINX_DIR/tmp"
    chmod 755 "$RUN_DIR" "$LOG_DIR" "$NGINX_DIR"
    touch "$LOG_DIR/postgres.log"
    if [ "$(id -u)" -eq 0 ]; then
        open_path
        # PostgreSQL creates its socket in run/ and writes its log.
        chown postgres: "$RUN_DIR" "$LOG_DIR/postgres.log"
    fi
}

# ---- PostgreSQL -------------------------------------------------------------

start_postgres() {
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        log "initdb $PGDATA"
        mkdir -p "$PGDATA"
        chmod 700 "$PGDATA"
        [ "$(id -u)" -ne 0 ] || chown postgres: "$PGDATA"
        as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1 ||
            { tail -n 20 "$LOG_DIR/initdb.log" >&2; die "initdb failed"; }
        # Our settings live in one file rewritten by every `up`, so a new
        # PGPORT or PG_EXTRA_CONF takes effect without editing by hand.
        echo "include_if_exists = 'stack.conf'" >>"$PGDATA/postgresql.conf"
    fi
    if pg_running; then
        log "PostgreSQL already running ($PGDATA)"
        return
    fi
    # Unix socket only: nothing else on the machine can reach this
    # trust-authenticated cluster over TCP.
    {
        echo "port = $PGPORT"
        echo "listen_addresses = ''"
        echo "unix_socket_directories = '$RUN_DIR'"
        [ -z "$PG_EXTRA_CONF" ] || printf '%s\n' "$PG_EXTRA_CONF"
    } >"$PGDATA/stack.conf"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$PGDATA/stack.conf"
    log "starting PostgreSQL on port $PGPORT"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -l "$LOG_DIR/postgres.log" -w -t 30 -s start ||
        { tail -n 20 "$LOG_DIR/postgres.log" >&2; die "PostgreSQL did not start"; }
}

psql_admin() {
    "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN_DIR" -p "$PGPORT" -U "$PGUSER" "$@"
}

prepare_database() {
    local url
    url=$(database_url)
    if [ -z "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE'")" ]; then
        log "creating database $PGDATABASE"
        psql_admin -d postgres -c "CREATE DATABASE $PGDATABASE"
    fi
    [ -f "$ROOT/scripts/migrate.sh" ] || die "scripts/migrate.sh is missing"
    [ -f "$ROOT/sql/demo.sql" ] || die "sql/demo.sql is missing"
    bash "$ROOT/scripts/migrate.sh" "$url"
    psql_admin -1 -d "$PGDATABASE" -f "$ROOT/sql/demo.sql" >/dev/null
    # The workers run as a role with only sql/grants.sql's privileges, as in
    # production, so that a missing grant fails here and not there.
    if [ -z "$(psql_admin -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$WORKER_ROLE'")" ]; then
        psql_admin -d postgres -c "CREATE ROLE $WORKER_ROLE LOGIN"
    fi
    psql_admin -1 -d "$PGDATABASE" -v worker="$WORKER_ROLE" -f "$ROOT/sql/grants.sql" >/dev/null
}

stop_postgres() {
    [ -s "$PGDATA/PG_VERSION" ] && pg_running || return 0
    log "stopping PostgreSQL"
    as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 30 -s stop
}

# ---- pgbouncer (PGBOUNCER=1) ---------------------------------------------------
# Transaction pooling on a unix socket beside PostgreSQL's, trusting local
# users as the cluster does. It refuses to run as root, like PostgreSQL.

PGBOUNCER_DIR=$STACK_DIR/pgbouncer
PGBOUNCER_PIDFILE=$RUN_DIR/pgbouncer.pid

start_pgbouncer() {
    [ "$PGBOUNCER" = 1 ] || return 0
    if live_pid "$PGBOUNCER_PIDFILE" >/dev/null; then
        log "pgbouncer already running"
        return
    fi
    command -v pgbouncer >/dev/null || die "pgbouncer is missing (scripts/deps.sh run)"
    mkdir -p "$PGBOUNCER_DIR"
    printf '"%s" ""\n' "$PGUSER" "$WORKER_ROLE" >"$PGBOUNCER_DIR/userlist.txt"
    cat >"$PGBOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
$PGDATABASE = host=$RUN_DIR port=$PGPORT dbname=$PGDATABASE

[pgbouncer]
listen_addr =
listen_port = $PGBOUNCER_PORT
unix_socket_dir = $RUN_DIR
auth_type = trust
auth_file = $PGBOUNCER_DIR/userlist.txt
pool_mode = transaction
admin_users = $PGUSER

max_client_conn = 2000
default_pool_size = 20
logfile = $LOG_DIR/pgbouncer.log
pidfile = $PGBOUNCER_PIDFILE
INI
    [ "$(id -u)" -ne 0 ] || chown -R postgres: "$PGBOUNCER_DIR"
    touch "$LOG_DIR/pgbouncer.log"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$LOG_DIR/pgbouncer.log"
    log "starting pgbouncer on port $PGBOUNCER_PORT"
    as_pg pgbouncer -d -q "$PGBOUNCER_DIR/pgbouncer.ini" ||
        { tail -n 20 "$LOG_DIR/pgbouncer.log" >&2; die "pgbouncer did not start"; }
}

stop_pgbouncer() {
    local pid i
    pid=$(live_pid "$PGBOUNCER_PIDFILE") || return 0
    log "stopping pgbouncer (pid $pid)"
    kill -INT "$pid" 2>/dev/null || true # INT: finish the transactions in flight
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    ! alive "$pid" || kill -KILL "$pid" 2>/dev/null || true
}

# The workers' database: WORKERS_DATABASE_URL when set, else PostgreSQL
# itself, or pgbouncer in front of it.
workers_database_url() {
    if [ -n "${WORKERS_DATABASE_URL:-}" ]; then
        echo "$WORKERS_DATABASE_URL"
    elif [ "$WORKERS_VIA_PGBOUNCER" = 1 ]; then
        database_url "$WORKER_ROLE" "$PGBOUNCER_PORT"
    else
        database_url "$WORKER_ROLE"
    fi
}

# ---- workers ----------------------------------------------------------------

start_workers() {
    local pid args=()
    if pid=$(live_pid "$WORKER_PIDFILE"); then
        log "workers already running (pid $pid)"
        return
    fi
    [ -x "$CHATPATCH_BIN" ] || die "$CHATPATCH_BIN is missing: run make build"
    rm -f "$SOCKET"
    # Word splitting of CHATPATCH_ARGS is wanted: it holds several options.
    read -r -a args <<<"$CHATPATCH_ARGS"
    log "starting $WORKERS workers on $SOCKET"
    # setsid: the pool gets its own session and process group, so Ctrl-C in
    # `make run` reaches only this script (which stops the pool in order),
    # and `down` can kill the whole group if the parent does not exit.
    # Only nginx's workers (their group) may connect to the socket.
    DATABASE_URL=$(workers_database_url) DATABASE_STATEMENTS=$([ "$WORKERS_VIA_PGBOUNCER" = 1 ] &&
        echo unnamed || echo prepared) setsid "$CHATPATCH_BIN" \
        --listen "$SOCKET" --workers "$WORKERS" --db-connections "$DB_CONNECTIONS" \
        --socket-mode 0660 --socket-group "$NGINX_GROUP" \
        --max-body "$MAX_BODY" "${args[@]}" \
        </dev/null >>"$LOG_DIR/chatpatch.log" 2>&1 &
    echo $! >"$WORKER_PIDFILE"
}

stop_workers() {
    local pid i
    if pid=$(live_pid "$WORKER_PIDFILE"); then
        log "stopping workers (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        # The parent waits for its children, so its exit means all are gone.
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        # Whatever is left of the group after 10 s (the parent or a stuck
        # child) is killed.
        if group_alive "$pid"; then
            log "workers did not stop in 10 s: SIGKILL to group $pid"
            kill -KILL -- "-$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do
                group_alive "$pid" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$WORKER_PIDFILE" "$SOCKET"
}

# ---- nginx ------------------------------------------------------------------

# The knobs that must be positive integers, checked before anything starts.
check_knobs() {
    local knob
    for knob in WORKERS DB_CONNECTIONS NGINX_WORKER_CONNECTIONS LIMIT_CONN LIMIT_REQ_RATE LIMIT_REQ_BURST; do
        [[ ${!knob} =~ ^[1-9][0-9]{0,8}$ ]] ||
            die "$knob must be a positive integer, not '${!knob}'"
    done
    [[ $NGINX_WORKERS =~ ^(auto|[1-9][0-9]{0,3})$ ]] ||
        die "NGINX_WORKERS must be auto or a positive integer, not '$NGINX_WORKERS'"
    [[ $FASTCGI_KEEPALIVE =~ ^(0|[1-9][0-9]{0,5})$ ]] ||
        die "FASTCGI_KEEPALIVE must be 0 or a positive integer, not '$FASTCGI_KEEPALIVE'"
    # nginx's own bound for limit_conn.
    [ "$LIMIT_CONN" -le 65535 ] || die "LIMIT_CONN must be at most 65535, not '$LIMIT_CONN'"
    [[ $PGBOUNCER =~ ^[01]$ ]] || die "PGBOUNCER must be 0 or 1, not '$PGBOUNCER'"
    [[ $WORKERS_VIA_PGBOUNCER =~ ^[01]$ ]] && [ "$WORKERS_VIA_PGBOUNCER" -le "$PGBOUNCER" ] ||
        die "WORKERS_VIA_PGBOUNCER must be 0, or 1 with PGBOUNCER=1"
}


# The limit lines (marked "# LIMIT" in nginx/) with the stack's numbers.
sed_limits() {
    sed -e "s|limit_conn chatpatch_conn [0-9]*;|limit_conn chatpatch_conn $LIMIT_CONN;|" \
        -e "s|limit_req zone=chatpatch_req burst=[0-9]* |limit_req zone=chatpatch_req burst=$LIMIT_REQ_BURST |" \
        -e "s|rate=[0-9]*r/s;|rate=${LIMIT_REQ_RATE}r/s;|" "$@"
}

render_nginx() {
    local src=$ROOT/nginx nofile user_line hard
    # Each connection passed to a worker holds two descriptors. Only root
    # may raise its limit above the hard limit.
    nofile=$((2 * NGINX_WORKER_CONNECTIONS))
    if [ "$(id -u)" -eq 0 ]; then
        user_line="user $NGINX_USER $NGINX_GROUP;"
    else
        user_line="# not root: nginx's workers run as $NGINX_USER"
        hard=$(ulimit -Hn)
        [ "$hard" = unlimited ] || [ "$nofile" -le "$hard" ] || nofile=$hard
    fi
    mkdir -p "$NGINX_DIR/tmp"
    # fastcgi_params is included relative to the config's own folder.
    cp /etc/nginx/fastcgi_params "$NGINX_DIR/fastcgi_params"
    sed -e "s|client_max_body_size 64k;|client_max_body_size $MAX_BODY;|" \
        -e "s|client_body_buffer_size 64k;|client_body_buffer_size $MAX_BODY;|" \
        "$src/chatpatch.conf" | sed_limits >"$NGINX_DIR/chatpatch.conf"
    # The upstream's EDIT line names the stack's socket; FASTCGI_KEEPALIVE
    # sets its keepalive, or with 0 nginx opens a connection per request.
    sed -e "s|^\( *server \)unix:[^;]*;\(.*# EDIT.*\)$|\1unix:$(sed_repl "$SOCKET");\2|" \
        -e "s|^\( *keepalive \)[0-9]*;|\1$FASTCGI_KEEPALIVE;|" \
        -e "/^ *keepalive 0;/d" \
        "$src/chatpatch-http.conf" | sed_limits >"$NGINX_DIR/chatpatch-http.conf"
    grep -qF "server unix:$SOCKET;" "$NGINX_DIR/chatpatch-http.conf" ||
        die "nginx/chatpatch-http.conf: no EDIT line naming the workers' socket"
    sed -e "s|@STACK_DIR@|$(sed_repl "$STACK_DIR")|g" \
        -e "s|@SOCKET@|$(sed_repl "$SOCKET")|g" \
        -e "s|@PORT@|$PORT|g" \
        -e "s|@MAX_BODY@|$MAX_BODY|g" \
        -e "s|@NGINX_USER@|$(sed_repl "$user_line")|g" \
        -e "s|@NGINX_RLIMIT_NOFILE@|$nofile|g" \
        -e "s|@NGINX_WORKERS@|$NGINX_WORKERS|g" \
        -e "s|@NGINX_WORKER_CONNECTIONS@|$NGINX_WORKER_CONNECTIONS|g" \
        "$src/nginx.conf.in" | sed_limits >"$NGINX_CONF"
    if [ "$FASTCGI_KEEPALIVE" = 0 ]; then
        sed -i -e "s|fastcgi_keep_conn on;|fastcgi_keep_conn off;|" "$NGINX_DIR/chatpatch.conf" \
            "$NGINX_CONF"
    fi
    # A limit line that sed_limits missed would keep its number silently.
    if grep -h -e 'limit_conn chatpatch_conn' -e 'zone=chatpatch_req' \
        "$NGINX_DIR/chatpatch.conf" "$NGINX_DIR/chatpatch-http.conf" "$NGINX_CONF" |
        grep -v -e "limit_conn chatpatch_conn $LIMIT_CONN;" \
            -e "limit_req zone=chatpatch_req burst=$LIMIT_REQ_BURST nodelay;" \
            -e "zone=chatpatch_req:10m rate=${LIMIT_REQ_RATE}r/s;" | grep -q .; then
        die "nginx/: a limit line does not have the form render_nginx replaces"
    fi
}

start_nginx() {
    local pid i
    if pid=$(live_pid "$NGINX_PIDFILE"); then
        log "nginx already running (pid $pid)"
        return
    fi
    render_nginx
    log "starting nginx on $BASE_URL"
    # nginx's startup errors (port taken, bad config) go to the terminal;
    # once running it logs to log/nginx-error.log.
    nginx -p "$NGINX_DIR" -c "$NGINX_CONF" </dev/null >/dev/null 2>"$LOG_DIR/nginx-start.log" ||
        { cat "$LOG_DIR/nginx-start.log" >&2; die "nginx did not start"; }
    # The daemon writes its pid file after the launching process returns.
    for ((i = 0; i < 50; i++)); do
        live_pid "$NGINX_PIDFILE" >/dev/null && return
        sleep 0.1
    done
    die "nginx wrote no pid file"
}

stop_nginx() {
    local pid i
    if pid=$(live_pid "$NGINX_PIDFILE"); then
        log "stopping nginx (pid $pid)"
        # QUIT: finish the requests in flight, then exit.
        kill -QUIT "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
        for ((i = 0; i < 50; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$NGINX_PIDFILE"
}

# ---- the stack ----------------------------------------------------------------

show_logs() {
    local f
    for f in chatpatch.log nginx-error.log postgres.log; do
        [ -s "$LOG_DIR/$f" ] || continue
        printf '\n==> %s <==\n' "$LOG_DIR/$f" >&2
        tail -n 20 "$LOG_DIR/$f" | cut -c 1-400 >&2
    done
}

healthz_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE_URL/healthz" || true
}

wait_healthy() {
    local i pid
    for ((i = 0; i < 60; i++)); do
        [ "$(healthz_code)" = 200 ] && return 0
        pid=$(live_pid "$WORKER_PIDFILE") || { log "the workers exited"; return 1; }
        sleep 0.5
    done
    log "$BASE_URL/healthz did not answer 200 within 30 s"
    return 1
}

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

write_env() {
    {
        echo "BASE_URL=$(q "$BASE_URL")"
        echo "PGHOST=$(q "$RUN_DIR")"
        echo "PGPORT=$(q "$PGPORT")"
        echo "PGDATABASE=$(q "$PGDATABASE")"
        echo "PGUSER=$(q "$PGUSER")"
        echo "DATABASE_URL=$(q "$(database_url)")"
        echo "STACK_DIR=$(q "$STACK_DIR")"
        echo "CHATPATCH_PIDFILE=$(q "$WORKER_PIDFILE")"
        # For another web server in front of the same pool, or one that
        # spawns the binary itself (tests/integration/hosts.py).
        echo "CHATPATCH_SOCKET=$(q "$SOCKET")"
        echo "WORKER_DATABASE_URL=$(q "$(workers_database_url)")"
        echo "WORKER_ROLE=$(q "$WORKER_ROLE")"
        echo "NGINX_WORKERS=$(q "$NGINX_WORKERS")"
    } >"$STACK_DIR/stack.env"
}

all_running() {
    [ -s "$PGDATA/PG_VERSION" ] && pg_running &&
        live_pid "$WORKER_PIDFILE" >/dev/null && live_pid "$NGINX_PIDFILE" >/dev/null &&
        { [ "$PGBOUNCER" != 1 ] || live_pid "$PGBOUNCER_PIDFILE" >/dev/null; }
}

# A failed `up` shows why and leaves nothing running, so the next `up`
# starts clean and no half stack holds the ports.
on_up_exit() {
    [ "$1" -ne 0 ] || return 0
    show_logs
    log "up failed; stopping what was started"
    cmd_down || true
    exit "$1"
}

cmd_up() {
    if all_running && [ "$(healthz_code)" = 200 ]; then
        write_env
        log "already up at $BASE_URL (STACK_DIR=$STACK_DIR)"
        return
    fi
    check_knobs
    trap 'on_up_exit $?' EXIT
    make_dirs
    start_postgres
    prepare_database
    start_pgbouncer
    start_workers
    start_nginx
    wait_healthy
    write_env
    trap - EXIT
    log "up at $BASE_URL (STACK_DIR=$STACK_DIR; . $STACK_DIR/stack.env)"
}

cmd_down() {
    stop_nginx
    stop_workers
    stop_pgbouncer
    stop_postgres
    rm -f "$RUN_DIR"/.s.PGSQL.*
}

print_demo() {
    cat <<EOF

chatpatch is up at $BASE_URL. Try the three APIs with the demo data:

# Recoup
curl -i --request PATCH $BASE_URL/api/sessions/sess_demo/chats/chat_demo \\
  -H 'x-api-key: demo-recoup-key' -H 'Content-Type: application/json' \\
  --data '{"title":"Renamed from curl"}'

# Neptun
curl -i --request PATCH $BASE_URL/api/users/1/chats/1 \\
  -H 'Cookie: neptun-session=demo-neptun-session' -H 'Content-Type: application/json' \\
  --data '{"name":"New Chat Name"}'

# LeanMCP
curl -i --request PATCH \\
  --url $BASE_URL/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f \\
  --header 'Authorization: Bearer demo-leanmcp-key' \\
  --header 'Content-Type: application/json' \\
  --data '{"title":"My Updated Chat Title","summary":"Discussion about TypeScript best practices","modelUsed":"claude-3-sonnet","systemMessageId":"msg_uuid_system_001","metadata":{"category":"development","priority":"high"}}'

Logs: $LOG_DIR/   Press Ctrl-C to stop everything.
EOF
}

sleeper=''
cmd_run() {
    cmd_up
    # Stop everything however this script ends. Neither a second Ctrl-C nor
    # a closed output pipe (`make run | tee`, Ctrl-C kills tee too) may cut
    # the shutdown short.
    trap 'trap "" INT TERM PIPE; [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null; cmd_down' EXIT
    trap 'exit 0' INT TERM
    print_demo
    # `wait` on a background sleep returns as soon as a signal arrives,
    # where a foreground sleep would delay the trap until it ends.
    sleep infinity &
    sleeper=$!
    wait "$sleeper"
}

case ${1:-} in
    up) cmd_up ;;
    down) cmd_down ;;
    run) cmd_run ;;
    *) echo "usage: $0 up|down|run" >&2; exit 2 ;;
esac
