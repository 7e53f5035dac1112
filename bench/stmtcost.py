"""bench/stmtcost.py: what each statement costs PostgreSQL, in instructions,
repeatable to a fraction of a percent on any machine however loaded (issue 9:
"each API's statement costs PostgreSQL no more CPU than the Node peer's
statement for Recoup does"). `make bench` measures CPU per request too, but
those microseconds move by a tenth from run to run.

For each API's PATCH statement (its text and values from build/bench/sqltext,
as the ceiling binds them) and for the peer's Recoup statement (its text from
bench/peer/server.js): a fresh copy of a cluster holding bench/data.sql runs
the statement under `valgrind --tool=callgrind` in single-user mode, PREPAREd,
then EXECUTEd on chat 1, 2, ... N, with the workers' session settings
(sqltext --settings: REPEATABLE READ, the planner's page cost);
once with N = FEW and once with N = MANY. The difference divided by MANY - FEW
is one execution: start-up, planning and the first executions cancel out.
Single-user mode prints each row, the same few thousand instructions for
every statement.

  /usr/bin/python3 bench/stmtcost.py [--chats 100000] [--few 100] [--many 600]

Run as root (the cluster runs as postgres) or as a user that may run
PostgreSQL. Needs build/bench/sqltext, valgrind and PostgreSQL 15.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import ceiling
import explain
import params

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
SQLTEXT = os.path.join(ROOT, "build", "bench", "sqltext")
PEER_SOURCE = os.path.join(ROOT, "bench", "peer", "server.js")
DB = "app"


# ---- the statements and their values ------------------------------------------


def peer_statement(js):
    """The text of the peer's PATCH statement (UPDATE_CHAT in server.js)."""
    m = re.search(r"const UPDATE_CHAT = \{.*?text: `(.*?)`", js, re.S)
    if not m:
        raise ValueError("no UPDATE_CHAT text in the peer's server.js")
    return m.group(1)


def peer_values(i):
    """The peer's parameters for chat i, as its handler binds them for the
    bench's Recoup body (both fields set, no If-Match): $1 key hash, $2
    session, $3 chat, $4 valid body, $5 title, $6 modelId, $7 the If-Match
    versions, $8 request id (32 hex digits, as nginx's $request_id)."""
    a = params.APIS["recoup"]
    return [params.hash_text(a.credential), a.path[0].text(i), a.path[1].text(i), "true",
            params.TITLE, params.MODEL, None, "0" * 32]


def api_values(api, values, i):
    """The worker's parameters for chat i: params.statement_values() resolved."""
    return explain.bound_texts(values, [seq.text(i) for seq in params.APIS[api].path])


def single_user_input(sql, values_of, n):
    """Single-user-mode input (-j: a statement ends with a blank line):
    PREPARE, then EXECUTE on chats 1..n."""
    parts = ["PREPARE s AS " + sql.strip().rstrip(";") + ";"]
    parts += ["EXECUTE s(" + ", ".join(explain.sql_arg(v) for v in values_of(i)) + ");"
              for i in range(1, n + 1)]
    return "\n\n".join(parts) + "\n\n"


def per_execution(few_count, few_ir, many_count, many_ir):
    return (many_ir - few_ir) / (many_count - few_count)


CALLGRIND_TOTAL = re.compile(r"^(?:summary|totals): ([0-9]+)", re.M)


def callgrind_total(text):
    m = CALLGRIND_TOTAL.search(text)
    if not m:
        raise ValueError("no instruction total in callgrind's output")
    return int(m.group(1))


# ---- the cluster ---------------------------------------------------------------


def as_postgres(cmd, **kw):
    """cmd as the postgres user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, check=True, **kw)


def make_cluster(work, chats):
    """A stopped cluster in work/data with the migrations and bench/data.sql."""
    data, sock = os.path.join(work, "data"), os.path.join(work, "sock")
    os.mkdir(sock)
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(sock, "postgres")
    as_postgres([f"{PGBIN}/initdb", "-D", data, "-A", "trust", "-U", "postgres"],
                stdout=subprocess.DEVNULL)
    port = "55431"
    as_postgres([f"{PGBIN}/pg_ctl", "-s", "-w", "-D", data, "-l", os.path.join(work, "log"),
                 "-o", f"-k {sock} -p {port} -c listen_addresses=", "start"])
    try:
        url = f"postgresql://postgres@/{DB}?host={sock}&port={port}"
        subprocess.run([f"{PGBIN}/psql", "-X", "-q", "-h", sock, "-p", port, "-U", "postgres",
                        "-c", f"CREATE DATABASE {DB}"], check=True)
        subprocess.run(["bash", os.path.join(ROOT, "scripts", "migrate.sh"), url], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run([f"{PGBIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url,
                        *params.data_sql_args(chats)], check=True)
    finally:
        as_postgres([f"{PGBIN}/pg_ctl", "-s", "-w", "-D", data, "stop", "-m", "fast"])
    return data


def updated_every_chat(output, n):
    """Whether single-user output shows n updated chats: each row prints the
    bench's title, quoted inside the representation's record as record_out
    writes a value with a space (a refused check prints its failure and no
    chat)."""
    return output.count(f'"{params.TITLE}"') >= n and 'failure = "' not in output


def settings_args(settings):
    """postgres -c options for the workers' session settings."""
    return [arg for name, value in settings for arg in ("-c", f"{name}={value}")]


def instructions(work, data, name, text, n, settings):
    """Instructions of a single-user backend reading text (n executions), on a
    fresh copy of data."""
    copy = os.path.join(work, "copy-" + name)
    shutil.copytree(data, copy, symlinks=True)
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres", copy], check=True)
    out = os.path.join(work, "callgrind-" + name)
    try:
        run = as_postgres(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                           f"{PGBIN}/postgres", "--single", "-j", *settings_args(settings), "-D", copy, DB],
                          input=text, capture_output=True, text=True)
        if re.search(r"\b(ERROR|FATAL):", run.stdout + run.stderr):
            raise SystemExit(f"stmtcost: {name}: the statement failed:\n{run.stderr[-2000:]}")
        if not updated_every_chat(run.stdout, n):
            raise SystemExit(f"stmtcost: {name}: not every execution updated its chat")
        with open(out) as f:
            return callgrind_total(f.read())
    finally:
        shutil.rmtree(copy)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chats", type=int, default=100000)
    ap.add_argument("--few", type=int, default=100)
    ap.add_argument("--many", type=int, default=600)
    args = ap.parse_args()
    if not 0 < args.few < args.many <= args.chats:
        raise SystemExit("stmtcost: need 0 < few < many <= chats")

    settings = ceiling.session_settings(
        subprocess.run([SQLTEXT, "--settings"], check=True, capture_output=True, text=True).stdout)
    targets = []
    for api in params.APIS:
        sql = subprocess.run([SQLTEXT, api], check=True, capture_output=True, text=True).stdout
        values = params.statement_values(api, SQLTEXT)
        targets.append((api, sql, lambda i, a=api, v=values: api_values(a, v, i)))
    with open(PEER_SOURCE) as f:
        targets.append(("peer (Recoup)", peer_statement(f.read()), peer_values))

    work = tempfile.mkdtemp(prefix="chatpatch-stmtcost.")
    os.chmod(work, 0o755)
    try:
        data = make_cluster(work, args.chats)
        print(f"PostgreSQL instructions per PATCH statement, {args.chats} chats per API "
              f"(callgrind, single-user, executions {args.many} minus {args.few}):")
        for name, sql, values_of in targets:
            tag = re.sub(r"\W+", "-", name)
            few = instructions(work, data, f"{tag}-{args.few}",
                               single_user_input(sql, values_of, args.few), args.few, settings)
            many = instructions(work, data, f"{tag}-{args.many}",
                                single_user_input(sql, values_of, args.many), args.many, settings)
            print(f"  {name:<14} {per_execution(args.few, few, args.many, many):>10,.0f}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
