"""bench/ceiling.py: the ceiling of `make bench`: pgbench -M prepared
running the worker's own statement (its text from build/bench/sqltext) with
the values of params.statement_values(), on the same data, at the same
concurrency as the HTTP targets.

pgbench's sessions get the workers' settings (isolation level, planner
costs: sqltext --settings) through PGOPTIONS, as do the plans' psql, and
connect as the workers' role (-U; scripts/stack.sh's WORKER_ROLE, with
sql/grants.sql's privileges), so that PostgreSQL checks the same column
privileges on every execution as for the workers (a superuser skips
them: 3.6% of the statement's instructions for Recoup).

The statement is written with each $N as :pN, pgbench's variable syntax;
pgbench -M prepared turns every :pN back into a placeholder (one per
occurrence, so a repeated $N is bound once per use, to the same value).
Constants go in as -D pN=VALUE; ids that vary per chat are computed in the
script from the chat number i, which each client advances by one per
transaction from its own offset (client_id * stride). pgbench has no
strings, so when an id is not an integer (LeanMCP's UUID) each client reads
its ids once with \\gset, in its first transaction, and updates that chat.
pgbench cannot bind NULL either (-D sets a string): a parameter the engine
binds as NULL (params.Null, e.g. a PATCH without If-Match) is written into
the statement as a NULL literal of the type the statement casts it to, so
that pgbench's statement does the same work as the worker's.
"""

import glob
import math
import os
import re

import params


def cast_of(sql, n):
    """The type the statement casts $n to ($n::bigint[] -> "bigint[]"), or None
    when it casts it nowhere; ValueError when it casts it to several."""
    types = set(re.findall(r"\$%d(?![0-9])::([A-Za-z_][A-Za-z0-9_]*(?:\[\])?)" % n, sql))
    if len(types) > 1:
        raise ValueError(f"${n} is cast to {sorted(types)}: cannot type its NULL")
    return types.pop() if types else None


def pgbench_statement(sql, nulls=()):
    """The statement with $N written :pN, and each $N of nulls written as a
    NULL literal: where the statement casts it ($N::type) the cast follows
    as it is; elsewhere it gets the type of the statement's cast of $N (a
    bare NULL when there is none). The last line of a script, so no ';'."""
    if re.search(r":p[0-9]", sql):
        raise ValueError("the statement contains ':p<digits>': it cannot be a pgbench script")
    nulls = set(nulls)

    def param(m):
        n = int(m.group(1))
        if n not in nulls:
            return f":p{n}"
        if sql.startswith("::", m.end()):
            return "NULL"
        cast = cast_of(sql, n)
        return f"NULL::{cast}" if cast else "NULL"

    return re.sub(r"\$([0-9]+)", param, sql).rstrip().rstrip(";")


def session_settings(text):
    """[(name, value)] of `sqltext --settings` (NAME=VALUE a line): what every
    worker session runs with, so the ceiling runs with it too."""
    out = []
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if not sep or not name:
            raise ValueError(f"not NAME=VALUE: {line!r}")
        out.append((name, value))
    return out


def pgoptions(settings):
    """PGOPTIONS for those settings; libpq splits at spaces unless escaped."""
    return " ".join(f"-c {name}={value.replace(' ', chr(92) + ' ')}" for name, value in settings)


def param_count(sql):
    return max((int(n) for n in re.findall(r"\$([0-9]+)", sql)), default=0)


def nulls_of(values):
    """The parameters the engine binds as NULL."""
    return sorted(n for n, v in values.items() if isinstance(v, params.Null))


def split_values(values, path):
    """(constants {N: text}, per-chat ids {N: Seq or Const}) of statement_values(),
    without its NULLs."""
    consts, ids = {}, {}
    for n, v in sorted(values.items()):
        if isinstance(v, params.Null):
            continue
        if isinstance(v, params.PathParam):
            seq = path[v.k]
            if isinstance(seq, params.Const):
                consts[n] = seq.value
            else:
                ids[n] = seq
        else:
            consts[n] = v.value
    return consts, ids


def fixed_per_client(values, path):
    """Whether pgbench clients each keep one chat (an id pgbench cannot compute)."""
    _, ids = split_values(values, path)
    return any(not seq.is_integer() for seq in ids.values())


def script(sql, values, path):
    """The pgbench script for one API."""
    _, ids = split_values(values, path)
    lines = []
    if any(not seq.is_integer() for seq in ids.values()):
        lines += [
            "-- each client reads the ids of its own chat once and updates that chat",
            "\\if :ready = 0",
            "\\set i 1 + (:client_id * :stride) % :n",
            "SELECT " + ", ".join(f"{seq.sql_expr()} AS p{n}" for n, seq in ids.items()) + " \\gset",
            "\\set ready 1",
            "\\endif",
        ]
    else:
        lines += [
            "-- chat i of 1..n in turn, from offset client_id * stride",
            "\\set k :k + 1",
            "\\set i 1 + (:client_id * :stride + :k) % :n",
        ]
        lines += [f"\\set p{n} {seq.pgbench_expr()}" for n, seq in ids.items()]
    lines.append(pgbench_statement(sql, nulls_of(values)))
    return "\n".join(lines) + "\n"


def args(values, path, script_path, clients, threads, chats, role=None):
    """pgbench's options but the run's length (-T or -t); role: the user it
    connects as (-U), else libpq's default."""
    consts, _ = split_values(values, path)
    stride = max(chats // clients, 1)
    out = ["-U", role] if role else []
    out += ["-n", "-M", "prepared", "-c", str(clients), "-j", str(min(threads, clients)),
           "-D", "k=0", "-D", "ready=0", "-D", f"n={chats}", "-D", f"stride={stride}"]
    for n, value in consts.items():
        out += ["-D", f"p{n}={value}"]
    return out + ["-f", script_path]


def parse_output(text):
    """tps, transactions processed and failed, from pgbench's report."""

    def number(pattern):
        m = re.search(pattern, text, re.M)
        return float(m.group(1)) if m else None

    # The run's length includes connecting its clients (about 25 ms each on
    # a loaded 2-core machine); tps does not.
    return {
        "tps": number(r"^tps = ([0-9.]+)"),
        "processed": number(r"^number of transactions actually processed: ([0-9]+)"),
        "failed": number(r"^number of failed transactions: ([0-9]+)") or 0,
        "connect_ms": number(r"^initial connection time = ([0-9.]+) ms"),
    }


def read_latencies(prefix):
    """Latencies (µs) from pgbench -l files PREFIX.PID[.THREAD], which are removed."""
    out = []
    for path in glob.glob(glob.escape(prefix) + ".*"):
        with open(path) as f:
            for line in f:
                fields = line.split()
                # client transaction latency script epoch us [lag]; a failed
                # transaction has "failed" (or "skipped") as its latency
                if len(fields) >= 3 and fields[2].isdigit():
                    out.append(int(fields[2]))
        os.remove(path)
    return out


def percentile(ordered, p):
    """Nearest-rank percentile of a sorted list, or None when empty."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(len(ordered) * p / 100)) - 1]
