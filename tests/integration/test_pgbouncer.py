"""pgbouncer in transaction mode between the workers and PostgreSQL (issue 12).

This module starts its own stack with PGBOUNCER=1 (scripts/stack.sh: the
workers connect to pgbouncer with DATABASE_STATEMENTS=unnamed; stack.env
still names PostgreSQL itself) and checks what an ops person would:

  - requests really go through pgbouncer (its own statistics count them),
    and the answers and rows are the usual ones;
  - a worker refuses to serve through a pooler when its role does not run
    at REPEATABLE READ (sql/grants.sql sets it): 503 with Retry-After, not
    a write that could go through a concurrent change;
  - pgbouncer restarted under load: every answer is a 200 or a 503 with
    Retry-After: 1 (never a hang or a wrong answer), the rows hold what the
    last 200 said, and the service recovers without any worker restarted.

The three APIs' whole suites also run through pgbouncer: `make
test-pgbouncer` runs test_recoup.py, test_neptun.py and test_leanmcp.py
with PGBOUNCER=1 in the environment.
"""

import os
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import (
    make_stack_dir,
    run_stack,
    stack_env,
    start_stack,
    stop_stack,
)
from test_faults import (
    Load,
    assert_rows_match_last_ok,
    fmt_problems,
    form_of,
    healthz_status,
    new_targets,
    pool_children,
    problem,
    wait_for,
)

WORKERS = 2
BOUND_S = 5.0  # statement timeout (2 s) + 1 s, with room for a slow machine


@pytest.fixture(scope="module")
def stack():
    """This module's stack, through pgbouncer: stack.env as a dict, plus _ENV."""
    stack_dir = make_stack_dir("chatpatch-pgbouncer-")
    env = stack_env(stack_dir, WORKERS, PGBOUNCER="1",
                    CHATPATCH_ARGS="--statement-timeout 2000")
    started = False
    try:
        values = start_stack(stack_dir, env)
        values["PGBOUNCER_PORT"] = int(env["PGBOUNCER_PORT"])
        started = True
        yield values
    finally:
        stop_stack(stack_dir, env, started)


@pytest.fixture
def db(stack):
    conn = psycopg.connect(stack["DATABASE_URL"], autocommit=True, row_factory=dict_row,
                           application_name="chatpatch-pgbouncer-tests")
    yield conn
    conn.close()


def bouncer_admin(stack):
    """pgbouncer's admin console (the `pgbouncer` database), as PGUSER."""
    # The console speaks the simple query protocol only (ClientCursor).
    return psycopg.connect(host=stack["PGHOST"], port=stack["PGBOUNCER_PORT"],
                           dbname="pgbouncer", user=stack["PGUSER"], autocommit=True,
                           cursor_factory=psycopg.ClientCursor, row_factory=dict_row)



def bouncer_xacts(stack):
    """Transactions pgbouncer has passed to the stack's database so far."""
    with bouncer_admin(stack) as admin:
        rows = admin.execute("SHOW STATS").fetchall()
    return sum(r["total_xact_count"] for r in rows if r["database"] == stack["PGDATABASE"])


def bouncer_pid(stack):
    pid = Path(stack["STACK_DIR"], "run", "pgbouncer.pid").read_text().split()[0]
    return int(pid)


def test_requests_go_through_pgbouncer(stack, db):
    """Each PATCH is a transaction pgbouncer passed on, answered and stored as
    usual; the workers said they send unnamed statements."""
    port = stack["PORT"]
    targets = new_targets(db, with_healthz=False)
    before = bouncer_xacts(stack)
    for i in range(5):
        for t in targets:
            value = f"bouncer-{i}-{uuid.uuid4().hex[:6]}"
            answer = t.send(port, value)
            assert problem(t, answer, ["ok"], value) is None
            assert t.stored_value(db) == value
    assert bouncer_xacts(stack) - before >= 5 * len(targets)
    log = Path(stack["STACK_DIR"], "log", "chatpatch.log").read_text(errors="replace")
    assert "statements sent unnamed" in log


def test_role_carries_the_workers_settings(stack, db):
    """Behind a pooler the workers cannot send startup options, so the role
    carries their settings (sql/grants.sql): the isolation level, the
    statement timeout, and the page cost that keeps a small credential
    table read through its index (cgi/db.c's db_session_settings)."""
    rows = db.execute(
        "SELECT unnest(s.setconfig) AS setting FROM pg_db_role_setting s "
        "JOIN pg_roles r ON r.oid = s.setrole JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE r.rolname = 'chatpatch_worker' AND d.datname = %s",
        (stack["PGDATABASE"],)).fetchall()
    settings = {row["setting"] for row in rows}
    assert {"default_transaction_isolation=repeatable read", "statement_timeout=5s",
            "random_page_cost=1.1"} <= settings, settings


def test_refuses_without_repeatable_read(stack, db):
    """Without the role's REPEATABLE READ (grants.sql), a worker behind a
    pooler answers 503 + Retry-After rather than risk a write through a
    concurrent change; with it back, it serves again. No row changes."""
    port = stack["PORT"]
    (target,) = [t for t in new_targets(db, with_healthz=False) if t.kind == "recoup"]
    before = target.stored_value(db)
    role, dbname = "chatpatch_worker", stack["PGDATABASE"]
    db.execute(f'ALTER ROLE {role} IN DATABASE "{dbname}" '
               "SET default_transaction_isolation = 'read committed'")
    try:
        # New server connections get the setting; drop the pooled ones, and
        # the workers' connections to pgbouncer, so that they connect anew.
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE usename = '{role}'")
        with bouncer_admin(stack) as admin:
            admin.execute(f"KILL {dbname}")
            admin.execute(f"RESUME {dbname}")
        answer = target.send(port, "must-not-be-written")

        assert problem(target, answer, ["worker503"]) is None, answer
        assert target.stored_value(db) == before
    finally:
        db.execute(f'ALTER ROLE {role} IN DATABASE "{dbname}" '
                   "SET default_transaction_isolation = 'repeatable read'")
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   f"WHERE usename = '{role}'")
    assert wait_for(lambda: problem(target, target.send(port, "back"), ["ok"], "back") is None,
                    10, interval=0.2)
    log = Path(stack["STACK_DIR"], "log", "chatpatch.log").read_text(errors="replace")
    assert "not 'repeatable read'" in log


def test_pgbouncer_restarted_under_load(stack, db):
    """pgbouncer stopped and started again under load from two clients:
    every answer is a 200 or a 503 with Retry-After (the worker's or
    nginx's), none hangs past the statement timeout, each row holds what
    its last 200 said, and 200s come back with the same workers."""
    port = stack["PORT"]
    workers = pool_children(stack)
    loads = [Load(port, new_targets(db), f"bouncer-restart-{n}", max_seconds=60)
             for n in range(2)]
    try:
        for load in loads:
            load.start()
        assert wait_for(lambda: all(l.ok_count() >= 5 for l in loads), 20)
        pid = bouncer_pid(stack)
        os.kill(pid, 2)  # SIGINT: pgbouncer's safe shutdown
        assert wait_for(lambda: not Path(f"/proc/{pid}").exists(), 15), "pgbouncer did not stop"
        time.sleep(1.0)  # requests meet no pgbouncer at all
        up = run_stack("up", stack["_ENV"], 120)  # starts only what is not running
        assert up.returncode == 0, up.stderr[-2000:]
        restarted_ok = [l.ok_count() for l in loads]
        assert wait_for(lambda: all(l.ok_count() >= n + 10 for l, n in zip(loads, restarted_ok)),
                        20), "no 200s after pgbouncer came back"
    finally:
        results = [r for l in loads for r in l.finish()]
    problems = []
    for r in results:
        why = problem(r.target, r.answer, ["ok", "worker503", "nginx503"], r.value)
        if why:
            problems.append(r.describe(results[0].t0) + ": " + why)
        elif r.elapsed > BOUND_S:
            problems.append(r.describe(results[0].t0) + f": took {r.elapsed:.1f} s")
    assert not problems, fmt_problems(problems)
    assert any(form_of(r.target, r.answer, r.value) == "worker503" for r in results), \
        "no 503 at all: pgbouncer's restart was not seen"
    assert_rows_match_last_ok(db, results, [t for l in loads for t in l.targets])
    assert pool_children(stack) == workers, "a worker was restarted"
    assert healthz_status(stack) == 200
