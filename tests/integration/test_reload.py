"""Reloads and a stop under steady load, through nginx (issue 10; README
"Reload and stop").

A stack of its own (scripts/stack.sh up in a temp STACK_DIR, 2 workers)
whose worker binary is a copy in that folder, so that the test can install
a new file at its path before each reload. Four clients send requests in a
loop, each on its own chats of the three APIs and /healthz, every answer
checked in full (test_faults.py's Load). Then:

  1. five times: a new binary at the path, SIGHUP to the pool. The pool
     keeps its pid (and pid file), runs the new file, and so do its new
     workers; the old ones exit. No request fails.
  2. both workers held on row locks, QUEUED requests (each on a chat of its
     own) queued in the socket's backlog (ss), SIGTERM, the locks released:
     every request queued at the SIGTERM gets its 200 and its row. Requests
     sent after the SIGTERM get a 200 or nginx's JSON 503 with
     Retry-After: 1 (the socket is gone), counted apart.
  3. stack.sh up starts the pool again: 200s again.
"""

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from conftest import (
    DEFAULT_BIN,
    _stack_logs,
    child_pids,
    make_stack_dir,
    pool_parent_pid,
    run_stack,
    stack_env,
    start_stack,
    stop_stack,
)
from helpers import lock_waiters
from hosts import alive
from test_faults import (
    ANSWER_BOUND_S,
    Load,
    Result,
    assert_rows_match_last_ok,
    connect,
    fmt_problems,
    healthz_status,
    new_target,
    new_targets,
    problem,
    wait_for,
)
from test_lifecycle import backlog, exe_inode

RELOAD_WORKERS = 2
RELOADS = 5
CLIENTS = 4
QUEUED = 10
GENERATION_TIMEOUT_S = 30.0  # ASan workers on 2 busy cores


@pytest.fixture(scope="module", params=[32, 0], ids=["kept", "per-request"])
def stack(request):
    """This module's stack, with its worker binary copied into STACK_DIR/bin:
    nginx keeping its connections to the workers (the default), or one
    connection per request, which queue in the listen backlog."""
    stack_dir = make_stack_dir("chatpatch-reload-")
    binary = Path(stack_dir) / "bin" / "chatpatch"
    binary.parent.mkdir()
    shutil.copy2(os.environ.get("CHATPATCH_BIN", str(DEFAULT_BIN)), binary)
    env = stack_env(stack_dir, RELOAD_WORKERS, CHATPATCH_BIN=str(binary),
                    CHATPATCH_ARGS="--statement-timeout 10000",
                    FASTCGI_KEEPALIVE=str(request.param))
    env.pop("MAX_BODY", None)
    started = False
    try:
        values = start_stack(stack_dir, env)
        started = True
        yield values
    finally:
        stop_stack(stack_dir, env, started)


@pytest.fixture
def db(stack):
    conn = connect(stack)
    yield conn
    conn.close()


def install_new_binary(stack):
    """A new file at the pool's binary path, as an install does (write
    beside, rename over); returns its inode."""
    binary = Path(stack["CHATPATCH_BIN"])
    fresh = binary.with_name("chatpatch.new")
    shutil.copy2(os.environ.get("CHATPATCH_BIN", str(DEFAULT_BIN)), fresh)
    os.replace(fresh, binary)
    return os.stat(binary).st_ino


def new_generation(parent, old, ino):
    """The pool's children once they are RELOAD_WORKERS new ones running
    the file `ino` and none of `old` is alive; else None."""
    kids = child_pids(parent)
    if len(kids) != RELOAD_WORKERS or kids & old or any(alive(p) for p in old):
        return None
    try:
        return kids if all(exe_inode(p) == ino for p in kids) else None
    except OSError:
        return None


def test_five_reloads_and_a_stop_under_load(stack, db):
    port = stack["PORT"]
    pidfile = Path(stack["CHATPATCH_PIDFILE"])
    parent = pool_parent_pid(stack)
    loads = [Load(port, new_targets(db), f"reload-{n}", max_seconds=240)
             for n in range(CLIENTS)]
    origin = time.monotonic()
    for load in loads:
        load.start()
    reloads = []
    try:
        assert wait_for(lambda: all(l.ok_count() >= 10 for l in loads), 30), \
            "load never got going"

        # 1. five reloads, each with a new binary at the path.
        kids = child_pids(parent)
        for n in range(RELOADS):
            ino = install_new_binary(stack)
            t0 = time.monotonic()
            os.kill(parent, signal.SIGHUP)
            new = wait_for(lambda: new_generation(parent, kids, ino), GENERATION_TIMEOUT_S)
            assert new, (f"reload {n + 1}: no new generation within {GENERATION_TIMEOUT_S} s: "
                         f"children {child_pids(parent)}, old {kids}\n"
                         f"{_stack_logs(stack['STACK_DIR'])}")
            assert alive(parent) and exe_inode(parent) == ino, "the pool did not re-execute"
            assert int(pidfile.read_text().split()[0]) == parent
            reloads.append((n + 1, round(t0 - origin, 3), round(time.monotonic() - t0, 3),
                            sorted(new)))
            kids = new
            oks = [l.ok_count() for l in loads]
            assert wait_for(lambda: all(l.ok_count() >= k + 5 for l, k in zip(loads, oks)),
                            20), "clients stalled after a reload"

        # 2. SIGTERM with requests queued behind two busy workers.
        slow = [new_target(db, "recoup"), new_target(db, "leanmcp")]
        queued = [new_target(db, ("recoup", "neptun", "leanmcp")[n % 3]) for n in range(QUEUED)]
        held, waiting = [None] * len(slow), [None] * len(queued)

        def send(targets, out, n, value):
            t0 = time.monotonic()
            a = targets[n].send(port, value, timeout=60)
            out[n] = Result(targets[n], value, t0, time.monotonic(), a)

        locker = connect(stack, autocommit=False)
        try:
            for t in slow:
                locker.execute(f"SELECT 1 FROM {t.table} WHERE id = %s FOR UPDATE", (t.row_id,))
            threads = [threading.Thread(target=send, args=(slow, held, n, f"held-{n}"),
                                        daemon=True) for n in range(len(slow))]
            kept = stack["_ENV"]["FASTCGI_KEEPALIVE"] != "0"
            # The clients wait while the two are sent: a request a worker
            # took within 20 ms of its held one could reach its second
            # database connection, be answered, and set the worker taking
            # new connections again (serve.c, STUCK_US), which empties the
            # backlog this part is about.
            for load in loads:
                load.pause()
            # One after the other: a worker stuck for 20 ms takes no new
            # connection (serve.c, STUCK_US), so the second goes to the other
            # worker, not to the first one's second database connection.
            # Over kept connections both may still reach one worker.
            threads[0].start()
            assert wait_for(lambda: lock_waiters(db) == 1, 10), "the first did not reach its lock"
            time.sleep(0.1)
            threads[1].start()
            assert wait_for(lambda: lock_waiters(db) in ((1, 2) if kept else (2,)), 10), \
                "the two workers did not reach the locks"
            # A worker with no answer from the database for 20 ms takes no
            # new connection (serve.c, STUCK_US): from then on the queued
            # ones stay in the backlog.
            time.sleep(0.1)
            for load in loads:
                load.resume()
            more = [threading.Thread(target=send, args=(queued, waiting, n, f"queued-{n}"),
                                     daemon=True) for n in range(len(queued))]
            for th in more:
                th.start()
            threads += more
            sock = Path(stack["STACK_DIR"]) / "run" / "chatpatch.sock"
            # The queued requests and the clients' own, all in the backlog.
            # Kept connections carry some to the busy workers instead, where
            # nothing shows them: give nginx time to pass them all on, or
            # one could come after the SIGTERM and meet the removed socket.
            if kept:
                time.sleep(1.0)
                # Their clients send on, one request right after another: one
                # sent just before the SIGTERM could reach nginx after the
                # socket path is gone and need a new connection (nginx's 503;
                # the clean-clone CI run at 781bd9b had one, 2 ms after it was
                # sent). They rest over the signal, so that every request sent
                # before it is one the workers have; they resume right after.
                for load in loads:
                    load.pause()
            else:
                assert wait_for(lambda: (backlog(sock) or 0) >= QUEUED + CLIENTS, 10), \
                    f"backlog {backlog(sock)}\n{_stack_logs(stack['STACK_DIR'])}"
            in_backlog = backlog(sock)
            t_term = time.monotonic()
            os.kill(parent, signal.SIGTERM)
            for load in loads:
                load.resume()
            assert wait_for(lambda: not sock.exists(), 2), "socket path still there"
            time.sleep(0.3)
            locker.commit()
        finally:
            locker.close()
        for th in threads:
            th.join(60)
        assert wait_for(lambda: not alive(parent), 20), "the pool did not exit"
        t_gone = time.monotonic()
        n_gone = [len(l.results) for l in loads]
        wait_for(lambda: all(len(l.results) >= n + 5 for l, n in zip(loads, n_gone)), 10)

        # 3. started again.
        t_up0 = time.monotonic()
        up = run_stack("up", stack["_ENV"], 300)
        assert up.returncode == 0, up.stderr[-4000:]
        assert wait_for(lambda: healthz_status(stack) == 200, 20)
        t_up = time.monotonic()
        n_up = [l.ok_count() for l in loads]
        assert wait_for(lambda: all(l.ok_count() >= n + 10 for l, n in zip(loads, n_up)), 30), \
            "no 200s after the restart"
    finally:
        results = [l.finish(60) for l in loads]

    problems = []
    for r in held + waiting:
        assert r is not None, "a held or queued request never returned"
        why = problem(r.target, r.answer, ["ok"], r.value)
        if why:
            problems.append(f"queued at SIGTERM: {r.describe(origin)}: {why}")
    for t, r in zip(slow + queued, held + waiting):
        if r.answer.resp is not None and r.answer.resp.status_code == 200:
            got = json.loads(r.answer.resp.content)
            if t.row_body(db, got) != got:
                problems.append(f"{t.kind}: row differs from the queued request's answer")

    flat = sorted((r for rs in results for r in rs), key=lambda r: r.t0)
    # A client's request sent before the SIGTERM was in flight or queued.
    late_503 = late_ok = 0
    for r in flat:
        if r.t0 < t_term or r.t0 >= t_up:
            forms = ["ok"]
        else:
            forms = ["ok", "nginx503"]
        why = problem(r.target, r.answer, forms, r.value)
        if why is None and r.elapsed > ANSWER_BOUND_S + 8:
            why = f"answered after {r.elapsed:.2f}s"
        if why:
            problems.append(f"{r.describe(origin)}: {why}")
        elif "nginx503" in forms:
            if r.answer.resp.status_code == 503:
                late_503 += 1
            else:
                late_ok += 1
    timeline = (f"reloads (n, at, seconds to a new generation, its workers): {reloads}; "
                f"SIGTERM at +{t_term - origin:.3f}s")
    assert not problems, f"{fmt_problems(problems)}\n{timeline}\n{_stack_logs(stack['STACK_DIR'])}"
    before_term = [r for r in flat if r.t0 < t_term]
    after_up = [r for r in flat if r.t0 >= t_up]
    assert len(before_term) >= 100 and len(after_up) >= 10, (len(before_term), len(after_up))
    for rs, load in zip(results, loads):
        assert_rows_match_last_ok(db, rs, load.targets)
    print(f"\n{timeline}")
    print(f"{len(before_term)} requests through the reloads and up to SIGTERM, all 200; "
          f"{len(held) + len(waiting)} held or queued at SIGTERM ({in_backlog} in the backlog), "
          f"all 200; pool gone {t_gone - t_term:.2f}s after SIGTERM; after it and before the "
          f"restart ({t_up - t_up0:.1f}s): {late_ok} 200 and {late_503} nginx 503 "
          f"with Retry-After: 1; {len(after_up)} after the restart, all 200")
