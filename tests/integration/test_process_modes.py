"""How the worker binary can be started, and its access log (README
"Configuration" and "CGI mode", SPEC section 7 "The worker").

Every test here starts its own chatpatch processes (never the shared pool's)
and talks to them directly over FastCGI with the tiny client of
fcgi_client.py: no nginx. The processes use the shared stack's PostgreSQL
(stack["DATABASE_URL"]) and rows the test makes itself (recoup_world), so
nothing other tests rely on changes. Each worker runs in its own session (process group); the `spawn`
fixture stops it with SIGTERM at the end and SIGKILLs its group if anything
is left, and fails the test when the worker's stderr holds a sanitizer
report. Every wait is bounded.

Cases:
  --listen PATH --workers 2 --socket-mode 0666   served; mode; SIGTERM exits 0
  --listen 127.0.0.1:PORT                        served over TCP
  socket inherited on fd 0 (spawn-fcgi style)    single process and --workers 3
  no socket, no GATEWAY_INTERFACE                exit 2 with the usage
  CGI: CONTENT_LENGTH over --max-body            413 without reading stdin
  the access line                                format, statuses, routes, no secrets
  --log-level, --help, unknown options           exit statuses
"""

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from conftest import (
    SANITIZER_RE,
    _free_port,
    child_pids,
    fetch_recoup_chat,
    parse_cgi_response,
    pool_parent_pid,
    recoup_new_chat,
    recoup_path,
    run_cgi,
)
from fcgi_client import ACCESS_RE, KeptConnection, fcgi_http
from helpers import lock_waiters, recoup_error
from hosts import alive, group_members
from workers import (
    STOP_TIMEOUT_S,
    access_lines,
    assert_common_headers,
    chatpatch_bin,
    check_access_line,
    check_recoup_200,
    listening_unix_socket,
    new_rid,
    reap,
    recoup_patch,
    wait_access_line,
    worker_env,
)

USAGE_START = "Usage: chatpatch"  # GNU
OPTIONS_IN_USAGE = ["--listen", "--workers", "--socket-mode", "--max-body", "--statement-timeout",
                    "--db-connections", "--log-level"]


# ---- 1. --listen PATH --workers 2 --socket-mode 0666 -----------------------------------


def test_listen_unix_pool_socket_mode_and_sigterm(spawn, short_dir, db, recoup_world):
    sock_path = short_dir / "w.sock"
    # umask 077: mode 0666 can only come from --socket-mode.
    w = spawn(["--listen", str(sock_path), "--workers", "2", "--socket-mode", "0666"],
              address=str(sock_path), umask=0o077)
    kids = w.wait_children(2)
    w.wait_serving()
    st = os.stat(sock_path)
    assert stat.S_ISSOCK(st.st_mode), oct(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o666, oct(stat.S_IMODE(st.st_mode))

    rid = new_rid()
    title = f"unix pool {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(str(sock_path), recoup_world, title, rid), db, recoup_world,
                     title, rid)
    # Several requests, one connection each, all answered.
    for i in range(4):
        t = f"{title} #{i}"
        check_recoup_200(recoup_patch(str(sock_path), recoup_world, t), db, recoup_world, t)
    # The children serve, not the parent.
    lines, text = wait_access_line(w, rid)
    assert len(lines) == 1, text
    assert int(ACCESS_RE.match(lines[0])["pid"]) in kids, (lines[0], kids, w.pid)

    assert w.terminate() == 0, w.describe()
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while any(alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(k) for k in kids), f"children left after the parent exited: {kids}"
    assert not group_members(w.pid), f"processes left in the group: {group_members(w.pid)}"


def test_socket_mode_default_follows_umask(spawn, short_dir):
    sock_path = short_dir / "u.sock"
    w = spawn(["--listen", str(sock_path), "--workers", "1"], address=str(sock_path),
              umask=0o027)
    w.wait_serving()
    mode = stat.S_IMODE(os.stat(sock_path).st_mode)
    assert mode & 0o027 == 0, f"umask 027 not respected without --socket-mode: {oct(mode)}"


# ---- 2. --listen HOST:PORT ---------------------------------------------------------------


def test_listen_tcp(spawn, db, recoup_world):
    port = _free_port()
    w = spawn(["--listen", f"127.0.0.1:{port}", "--workers", "2"], address=("127.0.0.1", port))
    w.wait_children(2)
    w.wait_serving()
    rid = new_rid()
    title = f"tcp {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(("127.0.0.1", port), recoup_world, title, rid), db,
                     recoup_world, title, rid)
    assert w.terminate() == 0, w.describe()


# ---- 3. a socket inherited on fd 0 (spawn-fcgi) ----------------------------------------


@pytest.mark.parametrize("workers", [None, 3], ids=["single-process", "workers-3"])
def test_inherited_socket_on_fd0(spawn, short_dir, db, recoup_world, workers):
    sock_path = short_dir / "inh.sock"
    listener = listening_unix_socket(sock_path)
    args = [] if workers is None else ["--workers", str(workers)]
    w = spawn(args, stdin=listener.fileno(), address=str(sock_path), keep=[listener])
    if workers is None:
        # No pool: the process itself serves the socket.
        w.wait_serving()
        assert child_pids(w.pid) == set(), child_pids(w.pid)
        servers = {w.pid}
    else:
        servers = w.wait_children(workers)
        w.wait_serving()
    rids = []
    for i in range(6):
        rid = new_rid()
        rids.append(rid)
        title = f"inherited {workers} {i} {uuid.uuid4().hex[:6]}"
        check_recoup_200(recoup_patch(str(sock_path), recoup_world, title, rid), db,
                         recoup_world, title, rid)
    for rid in rids:
        lines, text = wait_access_line(w, rid)
        assert len(lines) == 1, text
        m = check_access_line(lines[0], rid, "PATCH", "recoup", 200)
        assert int(m["pid"]) in servers, (lines[0], servers)
    if workers:
        assert child_pids(w.pid) == servers, "a worker was replaced while serving"
    assert w.terminate() == 0, w.describe()
    assert not group_members(w.pid), group_members(w.pid)


def test_inherited_tcp_socket_on_fd0(spawn, db, recoup_world):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    address = listener.getsockname()
    w = spawn(["--workers", "2"], stdin=listener.fileno(), address=address, keep=[listener])
    w.wait_children(2)
    w.wait_serving()
    title = f"inherited tcp {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(address, recoup_world, title), db, recoup_world, title)


# ---- 4. neither a socket nor a CGI host ----------------------------------------------------


@pytest.mark.parametrize("stdin_kind", ["devnull", "pipe"])
def test_no_socket_and_no_gateway_interface_exits_2(stack, stdin_kind):
    proc = subprocess.Popen(
        [chatpatch_bin(stack)],
        stdin=subprocess.DEVNULL if stdin_kind == "devnull" else subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=worker_env(stack),
        start_new_session=True,
    )
    try:
        # stdin stays open (pipe): the binary must not wait for it.
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("chatpatch without a socket or GATEWAY_INTERFACE did not exit")
        out = proc.stdout.read()
        err = proc.stderr.read().decode(errors="replace")
    finally:
        reap(proc)
    assert not SANITIZER_RE.search(err), err
    assert proc.returncode == 2, f"exit {proc.returncode}; stderr {err!r}"
    assert USAGE_START in err, err
    assert out == b"", f"served something: {out[:300]!r}"
    assert "access" not in err, err


# ---- 5. CGI: a body over --max-body is refused without being read -----------------------------

TOO_LARGE = recoup_error("Request body too large")


def test_cgi_70k_body_413(stack, db, recoup_world):
    w = recoup_world
    before = w.snapshot(db)
    body = json.dumps({"title": "x" * (70 * 1024)}).encode()
    assert len(body) > 70 * 1024
    status, headers, out = run_cgi(stack, "PATCH", w.path, {"x-api-key": w.key}, body,
                                   timeout=30)
    assert status == 413, out[:300]
    assert json.loads(out) == TOO_LARGE
    assert headers.get("content-type") == "application/json; charset=utf-8", headers
    assert w.snapshot(db) == before


def test_cgi_declared_length_over_limit_answers_without_reading(stack, db, recoup_world):
    """CONTENT_LENGTH=70000 and a short stdin that stays open: reading the
    body would block forever; the worker must answer 413 from the header."""
    w = recoup_world
    before = w.snapshot(db)
    rid = new_rid()
    env = worker_env(
        stack,
        GATEWAY_INTERFACE="CGI/1.1",
        SERVER_PROTOCOL="HTTP/1.1",
        REQUEST_METHOD="PATCH",
        PATH_INFO=w.path,
        REQUEST_URI=w.path,
        SCRIPT_NAME="",
        QUERY_STRING="",
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH="70000",
        HTTP_X_API_KEY=w.key,
        REQUEST_ID=rid,
    )
    proc = subprocess.Popen([chatpatch_bin(stack)], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        proc.stdin.write(b'{"title":"short"}')
        proc.stdin.flush()
        try:
            # Output is a few hundred bytes: no pipe can fill up while we wait.
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pytest.fail("CGI run waited for a body it should refuse unread (hung)")
        out, err = proc.stdout.read(), proc.stderr.read().decode(errors="replace")
    finally:
        reap(proc)
    assert not SANITIZER_RE.search(err), err
    assert proc.returncode == 0, f"exit {proc.returncode}: {err}"
    status, headers, body = parse_cgi_response(out)
    assert status == 413, out[:300]
    assert json.loads(body) == TOO_LARGE
    assert headers.get("x-request-id") == rid, headers
    assert w.snapshot(db) == before
    lines = access_lines(err, rid)
    assert len(lines) == 1, err
    check_access_line(lines[0], rid, "PATCH", "recoup", 413)


# ---- 6. the access line --------------------------------------------------------------------


@pytest.fixture
def unix_pool(spawn, short_dir):
    """A 2-worker pool on its own unix socket, ready."""
    sock_path = short_dir / "log.sock"
    w = spawn(["--listen", str(sock_path), "--workers", "2"], address=str(sock_path))
    w.wait_children(2)
    w.wait_serving()
    return w


def test_access_line_200_format(unix_pool, db, recoup_world):
    w = unix_pool
    kids = child_pids(w.pid)
    rid = new_rid()
    title = f"logged {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(w.address, recoup_world, title, rid), db, recoup_world, title,
                     rid)
    lines, text = wait_access_line(w, rid)
    assert len(lines) == 1, f"expected exactly one access line for {rid}:\n{text}"
    m = check_access_line(lines[0], rid, "PATCH", "recoup", 200)
    assert int(m["pid"]) in kids, (lines[0], kids)
    assert int(m["db"]) > 0, f"a 200 ran a statement, db_us should be > 0: {lines[0]}"
    # Exactly once in the whole log, not only as an access line.
    assert text.count(rid) == 1, text


def test_access_line_statuses_and_routes(unix_pool, db, recoup_world):
    w = unix_pool
    cases = []
    # 401: an unknown key.
    rid = new_rid()
    resp = recoup_patch(w.address, recoup_world, "nope", rid, key=f"unknown-{uuid.uuid4().hex}")
    assert resp.status == 401, resp
    assert resp.json() == recoup_error("Unauthorized")
    cases.append((rid, "PATCH", "recoup", 401))
    # 401 from the other route (Neptun, no cookie).
    rid = new_rid()
    resp = fcgi_http(w.address, "PATCH", "/api/users/1/chats/1", b'{"name":"x"}', {}, rid)
    assert resp.status == 401, resp
    cases.append((rid, "PATCH", "neptun", 401))
    # 404: an unknown path.
    rid = new_rid()
    resp = fcgi_http(w.address, "PATCH", f"/nowhere/{uuid.uuid4().hex}", b"{}", {}, rid)
    assert resp.status == 404, resp
    assert_common_headers(resp, rid)
    cases.append((rid, "PATCH", "unknown", 404))
    # 404 from the API: a session that does not exist.
    rid = new_rid()
    resp = fcgi_http(w.address, "PATCH", recoup_path(f"sess_{uuid.uuid4().hex}", "c"),
                     b'{"title":"x"}', {"x-api-key": recoup_world.key}, rid)
    assert resp.status == 404 and resp.json()["error"] == "Session not found", resp
    cases.append((rid, "PATCH", "recoup", 404))
    # 405 and a GET of /healthz.
    rid = new_rid()
    resp = fcgi_http(w.address, "PUT", recoup_world.path, b"", {"x-api-key": recoup_world.key},
                     rid)  # issue 11: GET is an operation now
    assert resp.status == 405, resp
    cases.append((rid, "PUT", "recoup", 405))
    rid = new_rid()
    resp = fcgi_http(w.address, "GET", "/healthz", request_id=rid)
    assert resp.status == 200, resp
    cases.append((rid, "GET", "health", 200))

    for rid, method, route, status in cases:
        lines, text = wait_access_line(w, rid)
        assert len(lines) == 1, f"{rid}: {lines}\n{text}"
        check_access_line(lines[0], rid, method, route, status)


def test_access_log_never_holds_keys_cookies_or_bodies(unix_pool, db, recoup_world):
    w = unix_pool
    marks = {name: f"{name}{uuid.uuid4().hex}" for name in
             ("badkey", "cookie", "body", "bearer", "neptunbody", "unknownbody")}
    rids = []

    # 200 with the real key, a cookie riding along and a distinctive body.
    rid = new_rid()
    rids.append(rid)
    title = marks["body"]
    resp = recoup_patch(w.address, recoup_world, title, rid,
                        extra_headers={"cookie": f"neptun-session={marks['cookie']}; a=b"})
    check_recoup_200(resp, db, recoup_world, title, rid)
    # 401 with an unknown key and an unknown bearer token.
    for headers in ({"x-api-key": marks["badkey"]}, {"authorization": f"Bearer {marks['bearer']}"}):
        rid = new_rid()
        rids.append(rid)
        resp = fcgi_http(w.address, "PATCH", recoup_world.path,
                         json.dumps({"title": marks["body"]}).encode(), headers, rid)
        assert resp.status == 401, resp
    # Neptun with an unknown session cookie.
    rid = new_rid()
    rids.append(rid)
    resp = fcgi_http(w.address, "PATCH", "/api/users/1/chats/1",
                     json.dumps({"name": marks["neptunbody"]}).encode(),
                     {"cookie": f"neptun-session={marks['cookie']}"}, rid)
    assert resp.status == 401, resp
    # An unknown path with a body.
    rid = new_rid()
    rids.append(rid)
    resp = fcgi_http(w.address, "PATCH", "/api/nothing-here",
                     json.dumps({"x": marks["unknownbody"]}).encode(),
                     {"x-api-key": recoup_world.key}, rid)
    assert resp.status == 404, resp

    for rid in rids:
        lines, text = wait_access_line(w, rid)
        assert len(lines) == 1, text
    text = w.log()
    secrets = [recoup_world.key, *marks.values()]
    for secret in secrets:
        # The whole value, and any 12-character piece of it.
        pieces = {secret} | {secret[i : i + 12] for i in range(0, len(secret) - 11, 4)}
        leaked = [p for p in pieces if p in text]
        assert not leaked, f"log holds part of a secret ({leaked[:3]}):\n{text}"


@pytest.mark.parametrize("level", ["warn", "error"])
def test_log_level_above_info_writes_no_access_line(spawn, short_dir, db, recoup_world, level):
    sock_path = short_dir / "quiet.sock"
    w = spawn(["--listen", str(sock_path), "--workers", "2", "--log-level", level],
              address=str(sock_path))
    w.wait_children(2)
    w.wait_serving()
    rid = new_rid()
    title = f"quiet {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(w.address, recoup_world, title, rid), db, recoup_world, title,
                     rid)
    time.sleep(0.3)  # the line, were it written, follows the response at once
    assert w.terminate() == 0, w.describe()
    text = w.log()
    assert "access" not in text and rid not in text, text
    assert " info: " not in text, text


def test_log_level_debug_keeps_access_line(spawn, short_dir, db, recoup_world):
    sock_path = short_dir / "dbg.sock"
    w = spawn(["--listen", str(sock_path), "--workers", "1", "--log-level", "debug"],
              address=str(sock_path))
    w.wait_serving()
    rid = new_rid()
    title = f"debug {uuid.uuid4().hex[:8]}"
    check_recoup_200(recoup_patch(w.address, recoup_world, title, rid), db, recoup_world, title,
                     rid)
    lines, text = wait_access_line(w, rid)
    assert len(lines) == 1, text
    check_access_line(lines[0], rid, "PATCH", "recoup", 200)


def test_log_level_bogus_exits_2(stack, short_dir):
    sock_path = short_dir / "never.sock"
    proc = subprocess.run(
        [chatpatch_bin(stack), "--listen", str(sock_path), "--log-level", "bogus"],
        env=worker_env(stack), stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
        start_new_session=True,
    )
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, f"exit {proc.returncode}: {err}"
    assert "log-level" in err, err
    assert not sock_path.exists(), "started listening despite a bad option"


def test_pool_access_line_through_nginx(stack, http, db, recoup_world):
    """The shared stack's pool (behind nginx) logs the same line to
    $STACK_DIR/log/chatpatch.log, with nginx's $request_id as rid."""
    title = f"via nginx {uuid.uuid4().hex[:8]}"
    resp = http.patch(recoup_world.path, json={"title": title},
                      headers={"x-api-key": recoup_world.key})
    assert resp.status_code == 200, resp.text
    rid = resp.headers["x-request-id"]
    lines, text = wait_access_line(Path(stack["STACK_DIR"]) / "log" / "chatpatch.log", rid)
    assert len(lines) == 1, f"{rid}: {lines}"
    m = check_access_line(lines[0], rid, "PATCH", "recoup", 200)
    assert int(m["pid"]) != pool_parent_pid(stack), lines[0]
    assert recoup_world.key not in text and title not in text


# ---- 7. --help and bad options -----------------------------------------------------------------


def test_help_exits_0_with_usage(stack):
    proc = subprocess.run([chatpatch_bin(stack), "--help"], env=worker_env(stack),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert out.startswith(USAGE_START), out
    for opt in OPTIONS_IN_USAGE:
        assert opt in out, f"{opt} missing from the usage:\n{out}"
    assert "DATABASE_URL" in out, out
    assert not SANITIZER_RE.search(proc.stderr.decode(errors="replace"))


@pytest.mark.parametrize("args", [
    ["--bogus"],
    ["-x"],
    ["--listen"],  # its argument missing
    ["stray-argument"],
    ["--workers", "0"],
    ["--workers", "many"],
    ["--workers", "100000"],
    ["--socket-mode", "0999"],
    ["--max-body", "0"],
    ["--statement-timeout", "-5"],
    ["--db-connections", "0"],
    ["--db-connections", "33"],
], ids=lambda a: " ".join(a))
def test_bad_usage_exits_2(stack, short_dir, args):
    proc = subprocess.run([chatpatch_bin(stack), *args], env=worker_env(stack),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=15,
                          cwd=short_dir, start_new_session=True)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 2, f"{args}: exit {proc.returncode}; stderr {err!r}"
    assert proc.stdout == b"", proc.stdout[:300]
    assert err.strip(), "no word on stderr"
    assert not SANITIZER_RE.search(err), err


# ---- the database role of the pool -------------------------------------------------


def test_pool_connects_as_the_least_privilege_role(http, db):
    """scripts/stack.sh runs the workers as a role with only sql/grants.sql's
    privileges, as production should: a missing grant would fail here."""
    assert http.get("/healthz").status_code == 200  # every worker asked may connect
    with db.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT a.usename, r.rolsuper FROM pg_stat_activity a"
            " JOIN pg_roles r ON r.rolname = a.usename"
            " WHERE a.application_name = 'chatpatch'"
        )
        rows = cur.fetchall()
    assert [tuple(r.values()) if isinstance(r, dict) else tuple(r) for r in rows] == [
        ("chatpatch_worker", False)
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE recoup.chats SET created_at = now() WHERE false",
        "UPDATE recoup.api_keys SET revoked_at = NULL WHERE false",
        "UPDATE neptun.sessions SET expires_at = now() WHERE false",
        "UPDATE leanmcp.chats SET status = 'deleted' WHERE false",
        "DELETE FROM leanmcp.chats WHERE false",
        "INSERT INTO recoup.accounts VALUES ('x')",
    ],
)
def test_worker_role_cannot_change_what_the_apis_do_not(db, statement):
    with db.cursor() as cur:
        cur.execute("SET ROLE chatpatch_worker")
        try:
            with pytest.raises(Exception, match="permission denied"):
                cur.execute(statement)
        finally:
            cur.execute("RESET ROLE")


# ---- a row lock and the requests behind it ------------------------------------------


def database_errors(stack, lines=400):
    """PostgreSQL's errors and fatal lines among the last lines of its log."""
    log = Path(stack["STACK_DIR"]) / "log" / "postgres.log"
    tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
    return "postgres.log:\n" + "\n".join(l for l in tail if "ERROR" in l or "FATAL" in l)


@contextlib.contextmanager
def described(pool, stack):
    """A failed check inside also shows the pool's log and PostgreSQL's
    errors: a warm-up PATCH that got 503 says why."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(f"{e}\n{pool.describe()}\n{database_errors(stack)}") from None


def behind_locks(spawn, short_dir, stack, db, w, release_after_s, locked=1, args=(),
                 database_url=None, after_warm_up=lambda: None):
    """One worker (with args) and locked + 1 connections to it, kept as
    nginx keeps them, each first warmed with a PATCH of a chat of its own
    (the first connection's is w's chat); after_warm_up() runs then. Row
    locks on the first `locked` chats; a PATCH of each on its connection,
    one after the other waiting on its lock; then a PATCH on the last
    connection, timed. The locks go when it is answered or after
    release_after_s, whichever comes first. Checks every answer is 200
    with its row; returns the timed PATCH's seconds, whether the locked
    ones were all still waiting (their rows unchanged) when it was
    answered, and the pool."""
    sock_path = short_dir / "lock.sock"
    env = worker_env(stack, **({"DATABASE_URL": database_url} if database_url else {}))
    pool = spawn(["--listen", str(sock_path), "--workers", "1", *args], address=str(sock_path),
                 env=env)
    pool.wait_children(1)
    pool.wait_serving()
    chats = [w.chat_id] + [recoup_new_chat(db, w.session_id) for _ in range(locked)]
    kept = [KeptConnection(str(sock_path)) for _ in chats]
    pool.keep += kept  # closed at the end, should a check fail
    with described(pool, stack):
        for conn, chat in zip(kept, chats):
            check_recoup_200(recoup_patch(conn, w, "unlocked", chat_id=chat), db, w, "unlocked",
                             chat_id=chat)
    after_warm_up()

    locker = psycopg.connect(stack["DATABASE_URL"], autocommit=False, row_factory=dict_row)
    released = threading.Event()

    def release():
        locker.commit()
        released.set()

    answers = {}
    waiters = []
    timer = threading.Timer(release_after_s, release)
    try:
        locker.execute("SELECT 1 FROM recoup.chats WHERE id = ANY(%s) FOR UPDATE",
                       (chats[:locked],))
        for i in range(locked):
            waiters.append(threading.Thread(target=lambda i=i: answers.update(
                {i: recoup_patch(kept[i], w, f"locked {i}", chat_id=chats[i])})))
            waiters[-1].start()
            deadline = time.monotonic() + 5
            while lock_waiters(db) < i + 1:
                assert time.monotonic() < deadline, f"locked PATCH {i} never waited on its lock"
                time.sleep(0.02)
        timer.start()
        # Each locked statement went on a database connection of its own
        # (db.c, next_lane(): one with nothing in flight first); the timed
        # one goes on another if the worker has one, else behind a lock.
        t0 = time.monotonic()
        resp = recoup_patch(kept[-1], w, "not held up", chat_id=chats[-1])
        elapsed = time.monotonic() - t0
        held = (lock_waiters(db) == locked and all(th.is_alive() for th in waiters)
                and all(fetch_recoup_chat(db, chat)["title"] == "unlocked"
                        for chat in chats[:locked]))
        timer.cancel()
        timer.join()
        if not released.is_set():
            release()
        for th in waiters:
            th.join(10)
    finally:
        timer.cancel()
        locker.close()
    with described(pool, stack):
        check_recoup_200(resp, db, w, "not held up", chat_id=chats[-1])
        assert not any(th.is_alive() for th in waiters), "a locked PATCH was not answered"
        for i in range(locked):
            check_recoup_200(answers[i], db, w, f"locked {i}", chat_id=chats[i])
    for conn in kept:  # the stopping worker waits for them (SIGTERM)
        conn.close()
    return elapsed, held, pool


def test_a_row_lock_holds_up_no_request_of_another_connection(spawn, short_dir, stack, db,
                                                                recoup_world):
    """While a PATCH waits on a row lock, a PATCH of another chat on the
    worker's other kept connection is answered at once (the worker sends
    it on a second database connection); the first lands when the lock
    goes."""
    elapsed, held, pool = behind_locks(spawn, short_dir, stack, db, recoup_world, 3.0)
    assert elapsed < 1.0, f"held up {elapsed:.2f} s behind the locked row"
    assert held, "the lock did not hold the first"
    assert "connection 2 connected" in pool.log_path.read_text()


def test_no_second_database_connection_waits_instead(spawn, short_dir, stack, db, recoup_world):
    """When the second database connection cannot be opened (here the
    role's CONNECTION LIMIT 1), the PATCH behind the lock waits for it and
    lands (no 503)."""
    role = f"cp_one_conn_{uuid.uuid4().hex[:8]}"
    db.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE chatpatch_worker')
    try:
        url = re.sub(r"//[^@/]*@", f"//{role}@", stack["DATABASE_URL"], count=1)
        assert role in url, stack["DATABASE_URL"]
        # The limit once the worker has its connection: a worker that
        # reconnects (its first closed backend may still count for a
        # moment) is not what this test is about.
        elapsed, _, pool = behind_locks(
            spawn, short_dir, stack, db, recoup_world, 1.0, database_url=url,
            after_warm_up=lambda: db.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT 1'))
        assert elapsed >= 0.5, f"answered after {elapsed:.2f} s, before the lock went"
        assert "cannot connect" in pool.log_path.read_text()
    finally:
        db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                   (role,))
        db.execute(f'DROP ROLE "{role}"')


def test_db_connections_sets_how_many_a_worker_opens(spawn, short_dir, stack, db, recoup_world):
    """--db-connections 3: while two PATCHes wait on row locks, each on a
    database connection of its own, a third PATCH of the same worker goes
    on a third connection and is answered at once; no fourth is opened.
    With two connections it would wait for a lock."""
    elapsed, held, pool = behind_locks(spawn, short_dir, stack, db, recoup_world, 3.0,
                                       locked=2, args=["--db-connections", "3"])
    assert elapsed < 1.0, f"held up {elapsed:.2f} s behind the locked rows"
    assert held, "the locks did not hold the first two"
    log = pool.log_path.read_text()
    assert "connection 3 connected" in log and "connection 4 connected" not in log, log[-2000:]
