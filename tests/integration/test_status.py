"""GET /status: the pool's figures, as PHP-FPM's status page has them, plus
per route, method and status the request count and histograms of total
and database time (issue 12).

Checked through the real stack, as ops read it: the counters move by
exactly the requests sent, whichever worker answers (the figures are the
pool's, kept in shared memory); the OpenMetrics text says the same as the
JSON; the page is for the machine itself (nginx allows loopback only);
a worker the pool replaces is counted. Tests in this file run one after
another on the session stack, so between two reads only their own requests
count.
"""

import json
import os
import re
import signal
import socket
import threading
import time
import uuid

import psycopg
import pytest

from fcgi_client import fcgi_http
from conftest import (
    assert_json_response,
    child_pids,
    pool_parent_pid,
    recoup_new_account,
    recoup_new_chat,
    recoup_new_session,
    recoup_path,
)
from helpers import lock_waiters

OM_LINE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.]+$')


def status(http, **kw):
    resp = http.get("/status", **kw)
    assert resp.status_code == 200, resp.content[:300]
    return resp


def figures(http):
    resp = status(http)
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers.get_list("cache-control") == ["no-store"]
    return resp.json()


def cell(fig, route, method, status_code):
    """The request count, total and db histograms of one route/method/status (zeros if none)."""
    for r in fig["requests"]:
        if (r["route"], r["method"], r["status"]) == (route, method, status_code):
            return r
    return {"count": 0, "total": {"buckets": {"+Inf": 0}}, "db": {"buckets": {"+Inf": 0}}}


def recoup_target(db):
    account, key = recoup_new_account(db)
    session = recoup_new_session(db, account)
    chat = recoup_new_chat(db, session)
    return recoup_path(session, chat), key


def test_counters_move_by_the_requests_sent(http, db):
    path, key = recoup_target(db)
    before = figures(http)
    for i in range(3):
        r = http.patch(path, json={"title": f"status {i}"}, headers={"x-api-key": key})
        assert r.status_code == 200
    for _ in range(2):
        r = http.patch(path, json={"title": "x"}, headers={"x-api-key": "unknown-" + uuid.uuid4().hex})
        assert r.status_code == 401
    r = http.get(f"/api/chats/id/{uuid.uuid4()}", headers={"authorization": "Bearer nope"})
    assert r.status_code == 401
    after = figures(http)

    # The first read is counted once answered; the second is in flight.
    assert after["pool"]["accepted"] - before["pool"]["accepted"] == 6 + 1
    assert after["pool"]["in_flight"] == 1
    for route, method, code, n in [("recoup", "PATCH", 200, 3), ("recoup", "PATCH", 401, 2),
                                   ("leanmcp", "GET", 401, 1), ("status", "GET", 200, 1)]:
        got = cell(after, route, method, code)["count"] - cell(before, route, method, code)["count"]
        assert got == n, (route, method, code, got)
    ok = cell(after, "recoup", "PATCH", 200)
    # Histograms: cumulative, +Inf is the count; a 200 PATCH waited on PostgreSQL.
    buckets = list(ok["total"]["buckets"].values())
    assert buckets == sorted(buckets) and buckets[-1] == ok["count"]
    assert ok["db"]["buckets"]["+Inf"] == ok["count"]
    assert float(ok["db"]["sum_ms"]) > 0
    assert float(ok["total"]["sum_ms"]) >= float(ok["db"]["sum_ms"])


def test_the_pool_answers_whichever_worker(http, db, stack):
    """While one worker waits on a row lock with a PATCH, another answers
    /status, and its figures hold the first worker's request too: the
    figures are the pool's. Reads in a row each see one more request."""
    path, key = recoup_target(db)
    chat_id = path.rsplit("/", 1)[1]
    seen = [figures(http)["pool"] for _ in range(5)]
    accepted = [p["accepted"] for p in seen]
    assert accepted == list(range(accepted[0], accepted[0] + 5)), accepted
    workers = int(stack["WORKERS"])
    assert all(p["workers"]["total"] == workers and p["workers"]["active"] == 1
               and p["workers"]["idle"] == workers - 1 for p in seen)
    assert all(p["listen_queue"] >= 0 for p in seen)

    locker = psycopg.connect(stack["DATABASE_URL"])
    try:
        locker.execute("SELECT 1 FROM recoup.chats WHERE id = %s FOR UPDATE", (chat_id,))
        slow = threading.Thread(target=http.patch, args=(path,),
                                kwargs={"json": {"title": "slow"}, "headers": {"x-api-key": key}})
        slow.start()
        deadline = time.monotonic() + 10
        while lock_waiters(db) == 0:
            assert time.monotonic() < deadline, "the PATCH never waited on the lock"
            time.sleep(0.05)
        # A new connection straight to the pool's socket, which an idle
        # worker takes: one with a request in hand waits on a set without
        # the listening socket (serve.c). Through nginx a kept connection
        # could reach the busy worker, which answers too.
        during = fcgi_http(stack["CHATPATCH_SOCKET"], "GET", "/status").json()["pool"]
    finally:
        locker.rollback()
        locker.close()
    slow.join(10)
    assert during["in_flight"] == 2 and during["workers"]["active"] == 2
    assert during["accepted"] == accepted[-1] + 2  # the slow PATCH and this read
    assert during["workers"]["max_active"] >= 2
    time.sleep(0.5)  # the workers write their access lines within 200 ms
    log = open(os.path.join(stack["STACK_DIR"], "log", "chatpatch.log"), errors="replace").read()
    slow_pid = re.findall(r"\[(\d+)\] info: access rid=\S+ method=PATCH route=recoup status=200", log)
    status_pids = re.findall(r"\[(\d+)\] info: access rid=\S+ method=GET route=status", log)
    assert slow_pid and status_pids and status_pids[-1] != slow_pid[-1], (slow_pid[-1:], status_pids[-1:])


def test_openmetrics_says_what_the_json_says(http):
    fig = figures(http)
    for kw in ({"params": {"openmetrics": ""}},
               {"headers": {"accept": "application/openmetrics-text; version=1.0.0"}}):
        resp = status(http, **kw)
        assert resp.headers["content-type"] == \
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        text = resp.text
        assert text.endswith("# EOF\n")
        for line in text.splitlines()[:-1]:
            assert line.startswith("# ") or OM_LINE.match(line), line
        want = cell(fig, "status", "GET", 200)["count"]
        got = re.search(r'^chatpatch_requests_total\{route="status",method="GET",status="200"\} (\d+)$',
                        text, re.M)
        assert got and int(got.group(1)) >= want
        assert re.search(r'^chatpatch_request_duration_seconds_bucket\{route="status",method="GET",'
                         r'status="200",le="\+Inf"\} \d+$', text, re.M)
        assert "# TYPE chatpatch_request_db_seconds histogram" in text


def test_status_is_for_the_machine_itself(stack):
    """nginx lets loopback through only: a client from 127.0.0.2 gets 403 in JSON."""
    port = int(stack["BASE_URL"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0),
                                  timeout=10) as s:
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 "), head[:200]
    assert json.loads(body) == {"statusCode": 403, "error": "Forbidden"}
    assert b"application/json; charset=utf-8" in head


def test_other_methods_405(http):
    resp = http.post("/status")
    assert_json_response(resp, 405, {"statusCode": 405, "error": "Method Not Allowed"})
    assert resp.headers["allow"] == "GET"


def test_a_replaced_worker_is_counted(http, stack):
    before = figures(http)["pool"]
    parent = pool_parent_pid(stack)
    victim = min(child_pids(parent))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        kids = child_pids(parent)
        if len(kids) == int(stack["WORKERS"]) and victim not in kids:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the pool did not replace the killed worker")
    after = figures(http)["pool"]
    assert after["workers"]["restarted"] == before["workers"]["restarted"] + 1
    assert after["workers"]["total"] == int(stack["WORKERS"])
