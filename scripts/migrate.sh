#!/usr/bin/env bash
# Applies the NNN_*.sql migrations of SQL_DIR (default: this repo's sql/) to a database,
# in numeric order, each once, each in one transaction with the row that records it in
# public.schema_migrations(version, checksum, applied_at). demo.sql is not a migration.
#
# Usage: scripts/migrate.sh DATABASE_URL [SQL_DIR]
#   DATABASE_URL: a libpq URI or conninfo string (libpq's PG* variables fill in the rest).
# Exit status: 0 when every migration is applied or already was; 1 when a migration fails,
# or when an applied migration's file has changed since (nothing further is applied then);
# 2 on a usage error.
set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    echo "usage: $prog DATABASE_URL [SQL_DIR]" >&2
    exit 2
fi
db_url=$1
sql_dir=${2:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/sql"}
[ -d "$sql_dir" ] || die "no such directory: $sql_dir"
command -v psql >/dev/null || die "psql not found (install postgresql-client)"

# One advisory lock key for every runner of every copy of this script ("chatpatch migrations").
lock_key=4242424201

psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$db_url" "$@"; }

# --- the migrations on disk, in numeric order --------------------------------------------
declare -A by_num=()
shopt -s nullglob
for f in "$sql_dir"/[0-9]*_*.sql; do
    name=${f##*/}
    [[ $name =~ ^([0-9]+)_.+\.sql$ ]] || continue
    num=$((10#${BASH_REMATCH[1]}))
    if [ -n "${by_num[$num]:-}" ]; then
        die "two migrations with number $num: ${by_num[$num]##*/} and $name"
    fi
    by_num[$num]=$f
done
shopt -u nullglob
files=()
if [ ${#by_num[@]} -gt 0 ]; then
    while read -r num; do files+=("${by_num[$num]}"); done < <(printf '%s\n' "${!by_num[@]}" | sort -n)
fi

# --- the ledger ----------------------------------------------------------------------
psql_ >/dev/null <<SQL || die "cannot create public.schema_migrations"
BEGIN;
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock($lock_key);
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMIT;
SQL

declare -A applied=()
ledger=$(psql_ -A -t -F $'\t' -c 'SELECT version, checksum FROM public.schema_migrations') \
    || die "cannot read public.schema_migrations"
while IFS=$'\t' read -r v c; do
    [ -n "$v" ] && applied[$v]=$c
done <<<"$ledger"

# --- refuse to go on if an applied migration was edited --------------------------------
declare -A sums=()
for f in "${files[@]}"; do
    name=${f##*/}; v=${name%.sql}
    sum=$(sha256sum <"$f") || die "cannot read $f"
    sums[$v]=${sum%% *}
    if [ -n "${applied[$v]:-}" ] && [ "${applied[$v]}" != "${sums[$v]}" ]; then
        die "migration $f was changed after it was applied (recorded checksum ${applied[$v]}, file now ${sums[$v]}); write a new migration instead of editing an applied one. Nothing applied."
    fi
done

# --- apply the rest -------------------------------------------------------------------
n_applied=0
n_current=0
for f in "${files[@]}"; do
    name=${f##*/}; v=${name%.sql}
    if [ -n "${applied[$v]:-}" ]; then
        n_current=$((n_current + 1))
        continue
    fi
    # The file is read with \i (its own lexer state: an unterminated statement cannot swallow
    # what follows). psql -1 makes the whole input one transaction; the lock serialises
    # concurrent runners, and the ledger is read again under it.
    quoted=${f//\\/\\\\}; quoted=${quoted//\'/\'\'}   # psql quoting: \ -> \\, ' -> ''
    if ! out=$(psql_ -1 -v "cp_version=$v" -v "cp_checksum=${sums[$v]}" -f - <<SQL
SET LOCAL client_min_messages = warning;
SELECT pg_advisory_xact_lock($lock_key);
SELECT NOT EXISTS (SELECT 1 FROM public.schema_migrations WHERE version = :'cp_version') AS cp_new,
       EXISTS (SELECT 1 FROM public.schema_migrations
                WHERE version = :'cp_version' AND checksum = :'cp_checksum') AS cp_same \gset
\if :cp_new
\o /dev/null
\i '$quoted'
\o
INSERT INTO public.schema_migrations (version, checksum) VALUES (:'cp_version', :'cp_checksum');
\echo cp-status:applied
\elif :cp_same
\echo cp-status:current
\else
\echo cp-status:changed
\endif
SQL
    ); then
        die "migration $f failed; it was rolled back (${n_applied} applied before it)"
    fi
    case $out in
        *cp-status:applied*) echo "applied $v"; n_applied=$((n_applied + 1)) ;;
        *cp-status:current*) n_current=$((n_current + 1)) ;;
        *cp-status:changed*) die "migration $f was applied by another runner with a different checksum; nothing further applied" ;;
        *) die "migration $f: unexpected output from psql: $out" ;;
    esac
done

# Versions in the ledger with no file here: probably an older checkout. Say so, go on.
for v in "${!applied[@]}"; do
    [ -n "${sums[$v]:-}" ] || echo "$prog: warning: $v is recorded as applied but $sql_dir has no $v.sql" >&2
done

echo "migrations: $n_applied applied, $n_current already up to date"
