"""How the integration tests start their own chatpatch processes and talk to
them: the worker's environment, the Worker handle, requests and access lines."""

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import TIMESTAMP_RE, child_pids, fetch_recoup_chat, recoup_path
from fcgi_client import ACCESS_RE, FCGI_REQUEST_COMPLETE, fcgi_http

START_TIMEOUT_S = 20.0  # ASan build, first connection to PostgreSQL
STOP_TIMEOUT_S = 5.0  # "exits within a few seconds" after SIGTERM
KILL_TIMEOUT_S = 20.0


def chatpatch_bin(stack):
    return stack["CHATPATCH_BIN"]


def worker_env(stack, **extra):
    """A clean environment: no GATEWAY_INTERFACE or other CGI variables
    inherited from whoever runs pytest, the stack's DATABASE_URL."""
    env = {k: os.environ[k] for k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                      "LANG", "LC_ALL", "HOME") if k in os.environ}
    env["DATABASE_URL"] = stack["DATABASE_URL"]
    env.update(extra)
    return env


def new_rid():
    return f"test-{uuid.uuid4()}"


def recoup_patch(address, w, title, request_id=None, key=None, extra_headers=None,
                 chat_id=None):
    headers = {"x-api-key": key if key is not None else w.key}
    headers.update(extra_headers or {})
    body = json.dumps({"title": title}).encode()
    return fcgi_http(address, "PATCH", recoup_path(w.session_id, chat_id or w.chat_id), body,
                     headers, request_id)


def assert_common_headers(resp, request_id=None):
    assert resp.headers.get("content-type") == "application/json; charset=utf-8", resp.headers
    assert resp.headers.get("cache-control") == "no-store", resp.headers
    if request_id is not None:
        assert resp.headers.get("x-request-id") == request_id, resp.headers


def check_recoup_200(resp, db, w, title, request_id=None, chat_id=None):
    """200, the Recoup chat body with the new title, and the row updated."""
    chat_id = chat_id or w.chat_id
    assert resp.app_status == 0 and resp.protocol_status == FCGI_REQUEST_COMPLETE, resp
    assert resp.status == 200, f"status {resp.status}: {resp.body[:500]!r}"
    assert_common_headers(resp, request_id)
    assert resp.headers.get("access-control-allow-origin") == "*", resp.headers
    got = resp.json()
    assert list(got) == ["chat"], got
    chat = got["chat"]
    assert list(chat) == ["id", "sessionId", "title", "modelId", "activeStreamId",
                          "lastAssistantMessageAt", "createdAt", "updatedAt"], chat
    row = fetch_recoup_chat(db, chat_id)
    assert row["title"] == title, row
    assert chat["id"] == chat_id and chat["sessionId"] == w.session_id, chat
    assert chat["title"] == title and chat["modelId"] == row["model_id"], chat
    assert chat["activeStreamId"] is None and chat["lastAssistantMessageAt"] is None, chat
    for k in ("createdAt", "updatedAt"):
        assert TIMESTAMP_RE.match(chat[k]), chat[k]
    updated = row["updated_at"].astimezone(timezone.utc)
    assert chat["updatedAt"][:19] == updated.strftime("%Y-%m-%dT%H:%M:%S"), (chat, row)
    return chat


# ---- starting and stopping workers -----------------------------------------------------


@dataclass
class Worker:
    proc: subprocess.Popen
    log_path: Path
    address: object = None  # unix path or (host, port), when known
    keep: list = field(default_factory=list)  # objects to close at the end (sockets)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.log_path.read_text(errors="replace")

    def describe(self):
        return f"worker {self.pid} (exit {self.proc.poll()}); stderr:\n{self.log()[-3000:]}"

    def wait_children(self, n, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            kids = child_pids(self.pid)
            if len(kids) == n:
                return kids
            assert self.proc.poll() is None, f"exited early: {self.describe()}"
            assert time.monotonic() < deadline, (
                f"{len(kids)} children, not {n}, after {timeout} s: {self.describe()}")
            time.sleep(0.05)

    def wait_serving(self, address=None, timeout=START_TIMEOUT_S):
        """Retries GET /healthz until the socket takes connections and answers."""
        address = address or self.address
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"exited early: {self.describe()}"
            try:
                resp = fcgi_http(address, "GET", "/healthz", request_id=new_rid(),
                                 timeout=max(1.0, deadline - time.monotonic()))
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, f"not listening after {timeout} s: {self.describe()}"
                time.sleep(0.05)
                continue
            assert resp.status == 200 and resp.json() == {"status": "ok"}, resp
            return resp

    def terminate(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM to the parent; returns its exit status (fails on timeout)."""
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running {timeout} s after SIGTERM: {self.describe()}")


def reap(proc):
    """After a Popen with piped stdout and stderr: closes its stdin (if piped),
    kills it if it still runs, and closes its pipes."""
    if proc.stdin:
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=KILL_TIMEOUT_S)
    proc.stdout.close()
    proc.stderr.close()


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass



def listening_unix_socket(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    return sock


def access_lines(text, rid):
    return [line for line in text.splitlines() if f"rid={rid} " in line or line.endswith(f"rid={rid}")]


def wait_access_line(worker_or_path, rid, timeout=10.0):
    """The access lines of `rid` once at least one is there (the line is
    written after the response, so a reader may be a little early)."""
    deadline = time.monotonic() + timeout
    while True:
        text = (worker_or_path.log() if isinstance(worker_or_path, Worker)
                else Path(worker_or_path).read_text(errors="replace"))
        lines = access_lines(text, rid)
        if lines or time.monotonic() >= deadline:
            return lines, text
        time.sleep(0.05)


def check_access_line(line, rid, method, route, status):
    m = ACCESS_RE.match(line)
    assert m, f"access line not in the documented format: {line!r}"
    assert m["level"] == "info", line
    assert (m["rid"], m["method"], m["route"], int(m["status"])) == (rid, method, route, status), line
    assert TIMESTAMP_RE.match(m["ts"]), line
    stamp = datetime.strptime(m["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=2), f"not UTC now: {line}"
    total, db_us = int(m["total"]), int(m["db"])
    assert 0 <= db_us <= total, line
    return m
