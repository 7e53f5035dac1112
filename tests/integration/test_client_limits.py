"""One client cannot lock out the rest (issue 8): nginx's connections,
per-client limits and timeouts, with scripts/stack.sh's defaults.

This module starts its own stack (scripts/stack.sh up in a fresh temp
STACK_DIR, its own ports, WORKERS=2) WITHOUT the raised request rate that
conftest gives the other test stacks, so it runs the defaults that README
advises for production: 4096 connections per nginx worker process, per
client address 32 requests in progress and 100 requests/s with a burst of
200, 10 s header and body timeouts. The module fixture is named `stack` on
purpose: it overrides the session one for this file, so the autouse
sanitizer check reads this stack's worker log.

nginx listens on 127.0.0.1; the "other client" binds its socket to
127.0.0.2, another address of the loopback network, so nginx counts it
apart.

Every check is what a client sees: statuses, exact JSON bodies, headers,
when nginx closes a connection, and the rows in PostgreSQL; plus the logs:
no request nginx refused reached the workers.
"""

import json
import resource
import selectors
import threading
import time
from pathlib import Path

import httpx
import pytest

import openapi_check
from conftest import (
    TEST_STACK_LIMITS,
    fetch_recoup_chat,
    make_stack_dir,
    recoup_new_account,
    recoup_new_chat,
    recoup_new_session,
    recoup_path,
    remove_stack_dir,
    run_stack,
    stack_env,
    start_stack,
    stop_stack,
)
from helpers import api_ts, assert_raw_json, parse_http_answer, raw_connect, raw_exchange

WORKERS = 2
# scripts/stack.sh's defaults (README, "Connections, limits and timeouts").
LIMIT_CONN = 32
LIMIT_REQ_RATE = 100
LIMIT_REQ_BURST = 200
HEADER_TIMEOUT_S = 10
BODY_TIMEOUT_S = 10
LINGERING_TIMEOUT_S = 5  # nginx's default: how long it waits to discard an unread body
# The machine is shared: bounds are generous, and only upper bounds on waits.
MARGIN_S = 15

HALF = 650  # idle connections of each kind: 1,300 in all, more than the old 1,024
TOO_MANY = {"statusCode": 429, "error": "Too Many Requests"}
OTHER_CLIENT = "127.0.0.2"
STACK_KNOBS = ("NGINX_WORKER_CONNECTIONS", "LIMIT_CONN", "LIMIT_REQ_RATE", "LIMIT_REQ_BURST",
               "NGINX_USER", "NGINX_GROUP")


@pytest.fixture(scope="module")
def stack():
    """This module's own stack with stack.sh's default limits; stack.env as a dict."""
    stack_dir = make_stack_dir("chatpatch-limits-")
    env = stack_env(stack_dir, WORKERS)
    for knob in set(TEST_STACK_LIMITS) | set(STACK_KNOBS):
        env.pop(knob, None)
    started = False
    try:
        values = start_stack(stack_dir, env)
        started = True
        yield values
    finally:
        stop_stack(stack_dir, env, started)


@pytest.fixture
def db(stack):
    import psycopg
    from psycopg.rows import dict_row

    conn = psycopg.connect(stack["DATABASE_URL"], autocommit=True,
                           application_name="chatpatch-limit-tests", row_factory=dict_row)
    yield conn
    conn.close()


@pytest.fixture
def recoup_chat(db):
    """A Recoup key and two chats of one session: (key, session, chat, chat2)."""
    account, key = recoup_new_account(db)
    session = recoup_new_session(db, account)
    return key, session, recoup_new_chat(db, session), recoup_new_chat(db, session)


def log_text(stack, name, offset=0):
    with open(Path(stack["STACK_DIR"]) / "log" / name, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def log_size(stack, name):
    return (Path(stack["STACK_DIR"]) / "log" / name).stat().st_size


def wait_logged(stack, request_ids, offset, timeout=10.0):
    """The workers' log from `offset` once every id in `request_ids` is in it
    (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        text = log_text(stack, "chatpatch.log", offset)
        if all(f"rid={r}" in text for r in request_ids) or time.monotonic() >= deadline:
            return text
        time.sleep(0.05)


def patch(base_url, key, session, chat, title, source=None, timeout=30):
    """A whole Recoup PATCH on its own connection; (RawAnswer, seconds taken)."""
    body = ('{"title":"%s"}' % title).encode()
    started = time.monotonic()
    answer = raw_exchange(base_url, "PATCH", recoup_path(session, chat),
                          [("Content-Type", "application/json"), ("x-api-key", key)], body,
                          source=source, timeout=timeout)
    return answer, time.monotonic() - started


def assert_too_many(answer):
    """nginx's 429 on a Recoup path: generic body, Retry-After, Recoup's CORS."""
    request_id = assert_raw_json(answer, 429, TOO_MANY)
    assert answer.get_list("retry-after") == ["1"], answer
    assert answer.get_list("access-control-allow-origin") == ["*"], answer
    return request_id


def raise_nofile(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(hard, needed)))
    except (ValueError, OSError) as e:
        pytest.fail(f"cannot raise RLIMIT_NOFILE to {needed} (soft {soft}, hard {hard}): {e}")


class Held:
    """One idle connection we opened and what came back on it."""

    def __init__(self, kind, sock, opened):
        self.kind = kind
        self.sock = sock
        self.opened = opened
        self.data = b""
        self.closed_at = None  # monotonic time of EOF or reset, seen by us

    def open(self):
        return self.closed_at is None


def read_held(held, until, stop=lambda: False):
    """Reads every open connection in `held` until all are closed, `stop()` is
    true, or monotonic time `until`."""
    sel = selectors.DefaultSelector()
    for h in held:
        if h.open():
            sel.register(h.sock, selectors.EVENT_READ, h)
    try:
        while sel.get_map() and not stop() and time.monotonic() < until:
            for key, _ in sel.select(timeout=0.2):
                h = key.data
                try:
                    chunk = h.sock.recv(65536)
                except (ConnectionResetError, BrokenPipeError):
                    chunk = b""
                if chunk:
                    h.data += chunk
                else:
                    h.closed_at = time.monotonic()
                    sel.unregister(h.sock)
    finally:
        sel.close()


def test_idle_half_sent_requests_do_not_lock_out_others(stack, db, recoup_chat):
    """1,300 idle half-sent requests from 127.0.0.1 (650 whose headers never
    end, 650 whose announced body never comes): a client from 127.0.0.2 still
    gets its 200 at once; 127.0.0.1 gets 429 past its 32 requests in
    progress; nginx closes every idle connection after its timeout; then
    127.0.0.1 is served again."""
    base_url = stack["BASE_URL"]
    key, session, chat, chat2 = recoup_chat
    raise_nofile(2 * HALF + 1024)
    error_log_start = log_size(stack, "nginx-error.log")
    worker_log_start = log_size(stack, "chatpatch.log")
    before2 = fetch_recoup_chat(db, chat2)
    host = base_url.split("//", 1)[1]
    target = recoup_path(session, chat2)
    # Headers that never end; and headers whose announced body never comes.
    no_end = (f"PATCH {target} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {key}\r\n"
              "Content-Type: application/json\r\nX-Unfinished: ").encode()
    no_body = (f"PATCH {target} HTTP/1.1\r\nHost: {host}\r\nx-api-key: {key}\r\n"
               "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n").encode()
    held = []
    try:
        for i in range(2 * HALF):
            kind = "header" if i % 2 == 0 else "body"
            sock = raw_connect(base_url, timeout=10)
            sock.sendall(no_end if kind == "header" else no_body)
            sock.setblocking(False)
            held.append(Held(kind, sock, time.monotonic()))
        all_open_at = time.monotonic()
        headers = [h for h in held if h.kind == "header"]
        bodies = [h for h in held if h.kind == "body"]
        read_held(held, all_open_at + 1)

        # Another client: served at once, and the row is changed.
        try:
            answer, took = patch(base_url, key, session, chat, "other client",
                                 source=OTHER_CLIENT, timeout=10)
        except (OSError, AssertionError) as e:  # no answer, or not a whole one
            pytest.fail(f"the other client got no answer: {e!r}")
        assert answer.status == 200, answer
        assert took < 5, f"the other client waited {took:.1f} s"
        row = fetch_recoup_chat(db, chat)
        assert row["title"] == "other client"
        sent = json.loads(answer.body)["chat"]
        assert_raw_json(answer, 200, {"chat": {
            "id": chat, "sessionId": session, "title": "other client", "modelId": row["model_id"],
            "activeStreamId": None, "lastAssistantMessageAt": None,
            "createdAt": api_ts(sent["createdAt"], row["created_at"]),
            "updatedAt": api_ts(sent["updatedAt"], row["updated_at"])}})
        assert answer.get_list("access-control-allow-origin") == ["*"], answer

        # The body-kind requests past the per-client count got nginx's 429 at
        # once; LIMIT_CONN of them wait for their body.
        def answered():
            return sum(1 for h in bodies if b"\r\n\r\n" in h.data) >= HALF - LIMIT_CONN

        read_held(held, all_open_at + 5, stop=answered)
        assert answered(), (f"{sum(1 for h in bodies if h.data)} of {HALF - LIMIT_CONN} "
                            "expected 429s within 5 s")

        # The same address as the idle ones, a whole request: its 429, and
        # the row it names is unchanged.
        probe, _ = patch(base_url, key, session, chat2, "must not be stored")
        probe_id = assert_too_many(probe)
        assert fetch_recoup_chat(db, chat2) == before2

        # All of it happened while every idle connection was still held.
        read_held(held, time.monotonic() + 0.2)
        checked_at = time.monotonic()
        assert checked_at - all_open_at < HEADER_TIMEOUT_S - 1, \
            f"too slow to check while held ({checked_at - all_open_at:.1f} s)"
        assert all(h.open() and h.data == b"" for h in headers), \
            [(h.data[:100], h.closed_at) for h in headers if not h.open() or h.data][:5]
        waiting = [h for h in bodies if h.data == b""]
        assert len(waiting) == LIMIT_CONN, f"{len(waiting)} body requests wait, not {LIMIT_CONN}"
        assert all(h.open() for h in waiting)

        # Then nginx closes every idle one: unfinished headers and missing
        # bodies after their timeouts, without an answer; the refused ones
        # after their 429 (once nginx gave up waiting for the unread body).
        read_held(held, all_open_at + max(HEADER_TIMEOUT_S, BODY_TIMEOUT_S) + MARGIN_S)
        still_open = [h for h in held if h.open()]
        assert not still_open, f"{len(still_open)} connections still open"
        for h in headers + waiting:
            assert h.data == b"", f"{h.kind}: answered {h.data[:300]!r}"
            lived = h.closed_at - h.opened
            assert HEADER_TIMEOUT_S - 1 <= lived <= HEADER_TIMEOUT_S + MARGIN_S, \
                f"{h.kind} connection closed after {lived:.1f} s"
        refused_ids = [probe_id]
        for h in bodies:
            if h in waiting:
                continue
            refused_ids.append(assert_too_many(parse_http_answer(h.data)))
            assert h.closed_at - h.opened <= LINGERING_TIMEOUT_S + MARGIN_S
        assert len(refused_ids) == HALF - LIMIT_CONN + 1
    finally:
        for h in held:
            h.sock.close()

    # 127.0.0.1 is served again, and the row changes.
    answer, _ = patch(base_url, key, session, chat2, "served again")
    assert answer.status == 200, answer
    assert fetch_recoup_chat(db, chat2)["title"] == "served again"

    # No refused request reached the workers; nginx had connections to spare
    # and says which limit refused.
    worker_log = wait_logged(stack, [answer.get_list("x-request-id")[0]], worker_log_start)
    reached = [r for r in refused_ids if f"rid={r}" in worker_log]
    assert not reached, f"refused requests reached the workers: {reached[:5]}"
    error_log = log_text(stack, "nginx-error.log", error_log_start)
    assert "worker_connections are not enough" not in error_log
    assert 'limiting connections by zone "chatpatch_conn"' in error_log


def test_request_rate_per_client(stack, db, recoup_chat):
    """Requests from 127.0.0.1 as fast as the pool answers: beyond the burst
    and the rate, nginx's 429 in JSON, which never reaches the workers and
    changes no row; meanwhile 127.0.0.2 is served."""
    base_url = stack["BASE_URL"]
    key, session, chat, chat2 = recoup_chat
    time.sleep(LIMIT_REQ_BURST / LIMIT_REQ_RATE + 1)  # any earlier excess has drained
    worker_log_start = log_size(stack, "chatpatch.log")
    error_log_start = log_size(stack, "nginx-error.log")
    results = []  # (status, title, request id, answer)
    lock = threading.Lock()
    stop = threading.Event()
    errors = []
    threads_n = 8  # below LIMIT_CONN: only the rate refuses

    def flood(n):
        try:
            with httpx.Client(base_url=base_url, timeout=30,
                              event_hooks=openapi_check.EVENT_HOOKS) as client:
                i = 0
                while not stop.is_set():
                    title = f"rate {n} {i}"
                    resp = client.patch(recoup_path(session, chat), content=('{"title":"%s"}' % title),
                                        headers={"content-type": "application/json", "x-api-key": key})
                    with lock:
                        results.append((resp.status_code, title, resp.headers.get("x-request-id"),
                                        resp))
                        refused = sum(1 for r in results if r[0] == 429)
                        if refused >= 100 or len(results) >= 5000:
                            stop.set()
                    i += 1
        except Exception as e:  # reported below
            errors.append(repr(e))
            stop.set()

    other = []

    def other_client():
        # Starts once 127.0.0.1 is being refused.
        deadline = time.monotonic() + 60
        while not any(r[0] == 429 for r in list(results)) and time.monotonic() < deadline:
            time.sleep(0.01)
        transport = httpx.HTTPTransport(local_address=OTHER_CLIENT)
        with httpx.Client(base_url=base_url, timeout=30, transport=transport,
                          event_hooks=openapi_check.EVENT_HOOKS) as client:
            for i in range(5):
                resp = client.patch(recoup_path(session, chat2), content=('{"title":"other %d"}' % i),
                                    headers={"content-type": "application/json", "x-api-key": key})
                other.append(resp)
                time.sleep(0.02)

    started = time.monotonic()
    threads = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(threads_n)]
    other_thread = threading.Thread(target=other_client, daemon=True)
    for th in threads + [other_thread]:
        th.start()
    deadline = started + 90
    for th in threads:
        th.join(max(0.1, deadline - time.monotonic()))
    stop.set()
    for th in threads:
        th.join(30)
    other_thread.join(max(0.1, deadline + 30 - time.monotonic()))
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert not any(th.is_alive() for th in threads + [other_thread]), "clients still running"

    statuses = {r[0] for r in results}
    assert statuses <= {200, 429}, statuses
    ok = [r for r in results if r[0] == 200]
    refused = [r for r in results if r[0] == 429]
    assert refused, f"no 429 in {len(results)} requests in {elapsed:.1f} s"
    # A burst at once, then no more than the rate: nginx lets through at most
    # burst + 1 + rate x time (its window is within ours).
    assert LIMIT_REQ_BURST <= len(ok) <= LIMIT_REQ_BURST + 1 + LIMIT_REQ_RATE * elapsed, \
        f"{len(ok)} answered in {elapsed:.1f} s"
    for _, _, _, resp in refused:
        assert resp.json() == TOO_MANY
        assert resp.headers.get_list("content-type") == ["application/json; charset=utf-8"]
        assert resp.headers.get_list("cache-control") == ["no-store"]
        assert resp.headers.get_list("retry-after") == ["1"]
        assert resp.headers.get_list("access-control-allow-origin") == ["*"]
        assert len(resp.headers.get_list("x-request-id")) == 1

    # The other address was served the whole time.
    assert [r.status_code for r in other] == [200] * 5, [(r.status_code, r.text) for r in other]
    assert fetch_recoup_chat(db, chat2)["title"] == "other 4"

    # The row holds one of the answered titles, never a refused one; the
    # workers saw every answered request and no refused one.
    title = fetch_recoup_chat(db, chat)["title"]
    assert title in {r[1] for r in ok} and title not in {r[1] for r in refused}, title
    worker_log = wait_logged(stack, [r[2] for r in ok], worker_log_start)
    assert all(f"rid={r[2]}" in worker_log for r in ok)
    reached = [r[2] for r in refused if f"rid={r[2]}" in worker_log]
    assert not reached, f"refused requests reached the workers: {reached[:5]}"
    assert 'limiting requests, excess:' in log_text(stack, "nginx-error.log", error_log_start)


@pytest.mark.parametrize("knob,value,message", [
    ("LIMIT_CONN", "0", "LIMIT_CONN must be a positive integer, not '0'"),
    ("LIMIT_CONN", "65536", "LIMIT_CONN must be at most 65535, not '65536'"),
    ("LIMIT_REQ_RATE", "10r/s", "LIMIT_REQ_RATE must be a positive integer, not '10r/s'"),
    ("NGINX_WORKER_CONNECTIONS", "4k", "NGINX_WORKER_CONNECTIONS must be a positive integer"),
    ("NGINX_WORKERS", "0", "NGINX_WORKERS must be auto or a positive integer, not '0'"),
])
def test_bad_limit_knob_starts_nothing(stack, knob, value, message):
    """A limit nginx would refuse stops stack.sh up before it starts anything."""
    stack_dir = make_stack_dir("chatpatch-badknob-")
    env = stack_env(stack_dir, WORKERS, **{knob: value})
    try:
        up = run_stack("up", env, 60)
        assert up.returncode != 0
        assert message in up.stderr, up.stderr
        assert not (Path(stack_dir) / "pg").exists()
        assert not (Path(stack_dir) / "run").exists()
    finally:
        run_stack("down", env, 60)
        remove_stack_dir(stack_dir)
