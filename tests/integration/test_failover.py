"""A primary and a synchronous standby; the primary fails (issue 12).

This module runs a stack of its own: scripts/stack.sh up makes the primary
(the stack's PostgreSQL, migrated, with the workers' least-privilege role
and sql/grants.sql), the worker pool and nginx, with the workers'
DATABASE_URL naming two hosts (WORKERS_DATABASE_URL):

    postgresql://chatpatch_worker@/chatpatch?host=RUN,RUN2&port=P1,P2
        &target_session_attrs=read-write

so libpq itself connects to whichever of the two accepts writes. Then the
fixture clones the primary with pg_basebackup into a streaming standby (its
own port and socket folder, RUN2) and makes replication synchronous on the
primary (synchronous_standby_names = 'standby1'): a commit returns only
once the standby has the commit record on disk. The standby's own
synchronous_standby_names is empty, so once promoted it does not wait for
a standby it does not have (README, "A primary and a standby").

  - test_standby_down_commits_wait: with the standby stopped a PATCH waits
    for it; the worker gives up at its deadline (statement timeout + 1 s)
    with 503 + Retry-After, never a hang; what ops do (empty
    synchronous_standby_names and reload) makes PATCHes answer 200 again.
  - test_primary_failover_under_load (last: the primary stays down): under
    steady PATCH load through nginx, `pg_ctl stop -m immediate` on the
    primary, then `pg_ctl promote` on the standby. Every request gets 200
    or the worker's 503 with Retry-After; every title acknowledged with a
    200 is on the new primary (each request writes a chat of its own, so
    every one is counted); 200s come back within 2 s of the promotion; no
    worker was restarted.
"""

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import (
    _free_port,
    _tail,
    make_stack_dir,
    pool_parent_pid,
    recoup_new_account,
    recoup_new_session,
    recoup_path,
    stack_env,
    start_stack,
    stop_stack,
)
from test_faults import (
    Result,
    Target,
    fmt_problems,
    form_of,
    healthz_status,
    pool_children,
    problem,
    wait_for,
)

WORKERS = 2
STATEMENT_TIMEOUT_S = 2.0
# The worker's deadline is the statement timeout + 1 s; the rest is room for
# a slow machine (the fault tests' bound).
ANSWER_BOUND_S = STATEMENT_TIMEOUT_S + 1.0 + 2.0
RECOVERY_BOUND_S = 2.0  # issue 12: 200s again within 2 s of the promotion
PGBIN = "/usr/lib/postgresql/15/bin"
STANDBY_NAME = "standby1"
APP_NAME = "chatpatch-failover-tests"
API_KINDS = ("recoup", "neptun", "leanmcp")


# ---- PostgreSQL as the postgres user ------------------------------------------------------


def as_postgres(cmd, timeout=120):
    """Runs `cmd` as the postgres user when we are root (PostgreSQL refuses root)."""
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return subprocess.run(cmd, cwd="/", capture_output=True, text=True, timeout=timeout)


def pg_ctl(data, *args, timeout=60):
    return as_postgres([f"{PGBIN}/pg_ctl", "-D", str(data), *args], timeout=timeout)


def pg_running(data):
    return pg_ctl(data, "status").returncode == 0


def chown_postgres(path):
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "postgres:", str(path)], check=True)


def uri_path(path):
    """A socket folder as the host part of a libpq URI (percent-encoded)."""
    return quote(str(path), safe="/._~-")


def connect(host, port, dbname="chatpatch", autocommit=True):
    return psycopg.connect(host=str(host), port=port, dbname=dbname, user="postgres",
                           autocommit=autocommit, application_name=APP_NAME,
                           row_factory=dict_row, connect_timeout=5)


# ---- the module's stack: primary, workers, nginx, then the standby -----------------------


def make_standby(s):
    """pg_basebackup of the primary into s['STANDBY_DATA'], configured as a
    streaming standby on its own port and socket folder."""
    data, run2 = s["STANDBY_DATA"], s["STANDBY_HOST"]
    subprocess.run(["rm", "-rf", str(data)], check=True)
    data.mkdir(mode=0o700)
    chown_postgres(data)
    with connect(s["PGHOST"], s["PGPORT"], "postgres") as db:
        # A slot keeps the primary's WAL until the standby has it.
        db.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                   "WHERE slot_name = %s", (STANDBY_NAME,))
    r = as_postgres([f"{PGBIN}/pg_basebackup", "-D", str(data), "-h", s["PGHOST"],
                     "-p", str(s["PGPORT"]), "-U", "postgres", "-X", "stream",
                     "-C", "-S", STANDBY_NAME, "--checkpoint=fast"])
    assert r.returncode == 0, f"pg_basebackup failed: {r.stdout}{r.stderr}"
    # The copy holds the primary's stack.conf (stack.sh's settings file):
    # the standby's own replace it.
    primary_conninfo = (f"host={s['PGHOST']} port={s['PGPORT']} user=postgres "
                        f"application_name={STANDBY_NAME}")
    (data / "stack.conf").write_text("\n".join([
        f"port = {s['STANDBY_PORT']}",
        "listen_addresses = ''",
        f"unix_socket_directories = '{run2}'",
        f"primary_conninfo = '{primary_conninfo}'",
        f"primary_slot_name = '{STANDBY_NAME}'",
        "hot_standby = on",
        # Promoted, it must not wait for a standby of its own (it has none).
        "synchronous_standby_names = ''",
        "log_line_prefix = '%m [%p] app=%a '",
    ]) + "\n")
    # ALTER SYSTEM settings of the primary (synchronous_standby_names) are
    # not the standby's.
    (data / "postgresql.auto.conf").write_text(
        "# Do not edit this file manually!\n"
        "# It will be overwritten by the ALTER SYSTEM command.\n")
    (data / "standby.signal").touch()
    chown_postgres(data)


def start_standby(s):
    """Starts the standby and makes the primary wait for it
    (synchronous_standby_names), until pg_stat_replication says 'sync'."""
    data, log = s["STANDBY_DATA"], s["STANDBY_LOG"]
    r = pg_ctl(data, "-l", str(log), "-w", "-t", "60", "-s", "start")
    assert r.returncode == 0, f"standby did not start: {r.stdout}{r.stderr}\n{_tail(log)}"
    with connect(s["PGHOST"], s["PGPORT"], "postgres") as db:
        db.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        db.execute("SELECT pg_reload_conf()")

        def sync_state():
            row = db.execute("SELECT sync_state FROM pg_stat_replication "
                             "WHERE application_name = %s", (STANDBY_NAME,)).fetchone()
            return row and row["sync_state"] == "sync"

        assert wait_for(sync_state, 30, interval=0.1), \
            f"the standby never became synchronous\n{_tail(log)}"


@pytest.fixture(scope="module")
def stack():
    """This module's stack: stack.env as a dict, plus the standby's folder,
    socket folder and port, and _ENV (stack.sh's knobs)."""
    stack_dir = make_stack_dir("chatpatch-failover-")
    run, run2 = Path(stack_dir) / "run", Path(stack_dir) / "run2"
    run2.mkdir(mode=0o755)
    chown_postgres(run2)
    pgport, standby_port = _free_port(), _free_port()
    workers_url = (f"postgresql://chatpatch_worker@/chatpatch?host={uri_path(run)},"
                   f"{uri_path(run2)}&port={pgport},{standby_port}"
                   "&target_session_attrs=read-write")
    env = stack_env(stack_dir, WORKERS, PGPORT=str(pgport),
                    CHATPATCH_ARGS=f"--statement-timeout {int(STATEMENT_TIMEOUT_S * 1000)}",
                    WORKERS_DATABASE_URL=workers_url)
    standby_data = Path(stack_dir) / "pg-standby"
    started = False
    try:
        values = start_stack(stack_dir, env)
        values.update(PGPORT=pgport, PRIMARY_DATA=Path(stack_dir) / "pg",
                      STANDBY_DATA=standby_data, STANDBY_HOST=str(run2),
                      STANDBY_PORT=standby_port,
                      STANDBY_LOG=Path(stack_dir) / "log" / "postgres-standby.log",
                      WORKERS_DATABASE_URL=workers_url)
        (Path(stack_dir) / "log" / "postgres-standby.log").touch()
        chown_postgres(values["STANDBY_LOG"])
        make_standby(values)
        start_standby(values)
        started = True
        yield values
    finally:
        standby_pid = _postmaster_pid(standby_data)
        if standby_data.exists() and pg_running(standby_data):
            pg_ctl(standby_data, "stop", "-m", "fast", "-w", "-t", "30")
        stop_stack(stack_dir, env, started, also=[standby_pid] if standby_pid else [])


def _postmaster_pid(data):
    try:
        return int((Path(data) / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@pytest.fixture
def db(stack):
    """The primary, as the cluster's superuser."""
    conn = connect(stack["PGHOST"], stack["PGPORT"])
    yield conn
    conn.close()


# ---- chats: one per request, so that every acknowledged title is counted -----------------


class _Row:
    """Stands in for a connection in Target.row(): answers with one row we
    already have (Target.row_body builds the 200 body from it)."""

    def __init__(self, row):
        self.row = row

    def execute(self, *args):
        return self

    def fetchone(self):
        return self.row


def bulk_targets(db, kind, n):
    """`n` new chats of API `kind`, all of one new owner (one credential)."""
    tag = uuid.uuid4().hex[:12]
    if kind == "recoup":
        account, key = recoup_new_account(db)
        session = recoup_new_session(db, account)
        rows = db.execute(
            "INSERT INTO recoup.chats (id, session_id, title, model_id) "
            "SELECT 'chat_' || %s || '_' || g, %s, 'failover ' || g, 'openai/gpt-5.4' "
            "FROM generate_series(1, %s) g RETURNING *", (tag, session, n)).fetchall()
        targets = [Target(kind, recoup_path(session, r["id"]), [("x-api-key", key)], r["id"])
                   for r in rows]
    elif kind == "neptun":
        user = int(uuid.uuid4().int % (2**62 - 10**12)) + 10**12
        db.execute("INSERT INTO neptun.users (id) VALUES (%s)", (user,))
        token = db.execute("SELECT neptun.issue_session(%s) AS t", (user,)).fetchone()["t"]
        rows = db.execute(
            "INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
            "SELECT %s, 'failover ' || g, 'google/gemma-2-27b-it' "
            "FROM generate_series(1, %s) g RETURNING *", (user, n)).fetchall()
        targets = [Target(kind, f"/api/users/{user}/chats/{r['id']}",
                          [("cookie", f"neptun-session={token}")], r["id"]) for r in rows]
    else:
        user = f"user_{tag}"
        db.execute("INSERT INTO leanmcp.users (id) VALUES (%s)", (user,))
        key = db.execute("SELECT leanmcp.issue_api_key(%s) AS k", (user,)).fetchone()["k"]
        rows = db.execute(
            "INSERT INTO leanmcp.chats (user_id, title) "
            "SELECT %s, 'failover ' || g FROM generate_series(1, %s) g RETURNING *",
            (user, n)).fetchall()
        targets = [Target(kind, f"/api/chats/id/{r['id']}",
                          [("authorization", f"Bearer {key}")], r["id"]) for r in rows]
    for t, r in zip(targets, rows):
        t.headers.append(("content-type", "application/json"))
        t.static = t.row_body(_Row(r))
        t.initial = r[t.field_name]
    return targets


class OneEach(threading.Thread):
    """Sends one PATCH to each target it takes from a shared queue, each
    with a value of its own, until stopped, the queue is empty or
    `max_seconds` pass; records every Result."""

    def __init__(self, port, queue, lock, label, max_seconds=60.0):
        super().__init__(daemon=True)
        self.port, self.queue, self.lock, self.label = port, queue, lock, label
        self.max_seconds = max_seconds
        self.results = []
        self.stopping = threading.Event()

    def run(self):
        deadline = time.monotonic() + self.max_seconds
        i = 0
        while not self.stopping.is_set() and time.monotonic() < deadline:
            with self.lock:
                if not self.queue:
                    return
                target = self.queue.pop()
            value = f"{self.label}-{i}-{uuid.uuid4().hex[:8]}"
            i += 1
            t0 = time.monotonic()
            answer = target.send(self.port, value, timeout=20.0)
            self.results.append(Result(target, value, t0, time.monotonic(), answer))

    def finish(self, timeout=30.0):
        self.stopping.set()
        self.join(timeout)
        assert not self.is_alive(), f"load thread {self.label} did not stop within {timeout} s"
        return self.results


def ok_count(loads, since=0.0):
    return sum(1 for l in loads for r in list(l.results)
               if r.t0 >= since and r.answer.resp is not None and r.answer.resp.status_code == 200)


def titles(conn, targets):
    """{(kind, row id): stored title or name} for the targets' rows."""
    out = {}
    for kind in API_KINDS:
        ids = [t.row_id for t in targets if t.kind == kind]
        if not ids:
            continue
        sample = next(t for t in targets if t.kind == kind)
        for r in conn.execute(f"SELECT id, {sample.field_name} AS v FROM {sample.table} "
                              "WHERE id = ANY(%s)", (ids,)).fetchall():
            out[(kind, r["id"])] = r["v"]
    return out


# ---- 1. the standby is down: commits wait ------------------------------------------------


def test_standby_down_commits_wait(stack, db):
    """Synchronous replication's price: with the standby stopped, a PATCH
    waits for it. The worker answers 503 + Retry-After at its deadline
    (statement timeout + 1 s; PostgreSQL's statement timeout does not cover
    the wait at commit), never later; no worker exits. Emptying
    synchronous_standby_names (what ops do to go on without the standby)
    makes the next PATCH a 200 at once. The standby then comes back."""
    port = stack["PORT"]
    workers = pool_children(stack)
    (target,) = bulk_targets(db, "recoup", 1)
    value = "before the standby stops"
    a = target.send(port, value)
    assert problem(target, a, ["ok"], value) is None, problem(target, a, ["ok"], value)

    r = pg_ctl(stack["STANDBY_DATA"], "stop", "-m", "fast", "-w", "-t", "30")
    assert r.returncode == 0, r.stderr
    try:
        t0 = time.monotonic()
        a = target.send(port, "while the standby is down")
        elapsed = time.monotonic() - t0
        why = problem(target, a, ["worker503"])
        assert why is None, f"PATCH with the standby down, after {elapsed:.2f}s: {why}"
        assert STATEMENT_TIMEOUT_S <= elapsed <= ANSWER_BOUND_S, \
            f"503 after {elapsed:.2f}s, not at the worker's deadline"
        # The worker's cancel ends the wait, and PostgreSQL then keeps the
        # commit it had made locally (with a WARNING): the 503's title may be
        # on the primary, never on the standby.
        stored_503 = target.stored_value(db)
        assert stored_503 in (value, "while the standby is down"), stored_503
        waiting = db.execute("SELECT count(*) AS n FROM pg_stat_activity "
                             "WHERE wait_event = 'SyncRep'").fetchone()["n"]
        # What ops do: go on without the standby (one copy until it is back).
        db.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
        db.execute("SELECT pg_reload_conf()")
        t1 = time.monotonic()
        ok = wait_for(lambda: form_of(target, target.send(port, "standby optional"),
                                      "standby optional") == "ok", 5, interval=0.1)
        t_ok = time.monotonic() - t1
        assert ok, "no 200 after synchronous_standby_names was emptied"
        assert target.stored_value(db) == "standby optional"
        assert pool_children(stack) == workers, "a worker exited"
        print(f"\nstandby down: 503 after {elapsed:.2f}s (the primary holds "
              f"{stored_503!r}; backends still waiting on SyncRep: {waiting}); 200 "
              f"{t_ok:.2f}s after synchronous_standby_names = ''")
    finally:
        # Back to the module's set-up: the standby catches up (its slot kept
        # the WAL) and the primary waits for it again.
        start_standby(stack)
    value = "standby back"
    a = target.send(port, value)
    assert problem(target, a, ["ok"], value) is None, problem(target, a, ["ok"], value)


# ---- 2. the primary fails; the standby is promoted (last: the primary stays down) ---------


def test_primary_failover_under_load(stack, db):
    """Steady PATCH load through nginx (three clients, a chat of its own for
    every request); the primary stopped hard, the standby promoted 0.5 s
    later. Every request: 200, or the worker's 503 + Retry-After in its API's
    shape, within the worker's deadline. Every 200's title is on the new
    primary (lost = 0). 200s again within 2 s of `pg_ctl promote`; the same
    worker processes throughout."""
    port = stack["PORT"]
    parent = pool_parent_pid(stack)
    workers = pool_children(stack)
    assert len(workers) == WORKERS
    per_kind = 1500
    targets = [t for kind in API_KINDS for t in bulk_targets(db, kind, per_kind)]
    # Interleave the APIs: each client meets all three.
    queue = [targets[k * per_kind + i] for i in range(per_kind) for k in range(3)][::-1]
    lock = threading.Lock()
    loads = [OneEach(port, queue, lock, f"failover-{n}") for n in range(3)]
    db.close()

    origin = time.monotonic()
    for load in loads:
        load.start()
    try:
        assert wait_for(lambda: ok_count(loads) >= 60, 30), "load never got going"
        t_stop0 = time.monotonic()
        r = pg_ctl(stack["PRIMARY_DATA"], "stop", "-m", "immediate", "-w", "-t", "30")
        t_stop1 = time.monotonic()
        assert r.returncode == 0, f"pg_ctl stop failed: {r.stdout}{r.stderr}"
        # What a failover manager takes to decide, shortened: requests meet
        # no primary at all.
        time.sleep(0.5)
        t_promote0 = time.monotonic()
        r = pg_ctl(stack["STANDBY_DATA"], "promote", "-w", "-t", "30")
        t_promote1 = time.monotonic()
        assert r.returncode == 0, f"pg_ctl promote failed: {r.stdout}{r.stderr}"
        wait_for(lambda: time.monotonic() - t_promote1 >= 3.0
                 and ok_count(loads, t_promote0 + RECOVERY_BOUND_S) >= 60, 20)
    finally:
        results = sorted((r for l in loads for r in l.finish()), key=lambda r: r.t0)

    problems = []
    for r in results:
        # 503 only once the stop began; 200 only, for whatever was sent 2 s
        # after the promotion began.
        if r.t1 < t_stop0 or r.t0 >= t_promote0 + RECOVERY_BOUND_S:
            forms = ["ok"]
        else:
            forms = ["ok", "worker503"]
        why = problem(r.target, r.answer, forms, r.value)
        if why is None and r.elapsed > ANSWER_BOUND_S:
            why = f"answered after {r.elapsed:.2f}s > {ANSWER_BOUND_S}s"
        if why:
            problems.append(f"{r.describe(origin)}: {why}")
    assert not problems, (f"stop at +{t_stop0 - origin:.3f}s, promote at "
                          f"+{t_promote0 - origin:.3f}s..+{t_promote1 - origin:.3f}s; "
                          + fmt_problems(problems))

    oks = [r for r in results if r.answer.resp.status_code == 200]
    n503 = [r for r in results if r.answer.resp.status_code == 503]
    assert n503, "no 503 at all: the outage was not seen"
    after_stop = [r for r in oks if r.t0 >= t_stop1]
    assert after_stop, "no 200 after the stop"
    recovery = min(r.t1 for r in after_stop) - t_promote0
    assert recovery <= RECOVERY_BOUND_S, f"first 200 {recovery:.2f}s after pg_ctl promote began"
    late = [r for r in oks if r.t0 >= t_promote0 + RECOVERY_BOUND_S]
    assert len(late) >= 30, f"only {len(late)} 200s sent 2 s after the promotion or later"
    assert {r.target.kind for r in late} == set(API_KINDS)
    assert {r.target.kind for r in n503} == set(API_KINDS), \
        f"the outage met only {set(r.target.kind for r in n503)}"

    # The old primary is gone; the standby is the primary now.
    assert not pg_running(stack["PRIMARY_DATA"])
    with connect(stack["STANDBY_HOST"], stack["STANDBY_PORT"]) as new_primary:
        assert new_primary.execute("SELECT pg_is_in_recovery() AS r").fetchone()["r"] is False
        stored = titles(new_primary, [r.target for r in results])
    lost = [r for r in oks if stored.get((r.target.kind, r.target.row_id)) != r.value]
    # A 503's write may have landed (its commit reached the standby, the
    # answer did not reach the worker), or not: the chat holds one of the two.
    half = [r for r in n503 if stored.get((r.target.kind, r.target.row_id))
            not in (r.value, r.target.initial)]
    landed_503 = sum(1 for r in n503 if stored.get((r.target.kind, r.target.row_id)) == r.value)
    assert pool_parent_pid(stack) == parent and pool_children(stack) == workers, \
        "a worker or the pool was restarted"
    print(f"\nfailover: {len(results)} requests, {len(oks)} 200, {len(n503)} 503 "
          f"({landed_503} of them written all the same); acknowledged {len(oks)}, "
          f"on the new primary {len(oks) - len(lost)}, lost {len(lost)}; "
          f"stop took {t_stop1 - t_stop0:.3f}s, promote {t_promote1 - t_promote0:.3f}s; "
          f"first 200 {recovery:.3f}s after promote began "
          f"({min(r.t1 for r in after_stop) - t_promote1:.3f}s after it returned)")
    assert not lost, f"{len(lost)} acknowledged titles are not on the new primary:\n" + \
        "\n".join(r.describe(origin) for r in lost[:10])
    assert not half, "\n".join(r.describe(origin) for r in half[:10])
    assert healthz_status(stack) == 200
