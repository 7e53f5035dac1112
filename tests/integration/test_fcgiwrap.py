"""nginx + fcgiwrap in CGI mode, behind deploy/fcgiwrap/ (issue 10; README,
"nginx + fcgiwrap (CGI mode)"). Runs behind CHATPATCH_HOST=nginx-fcgiwrap
only (make test-host-nginx-fcgiwrap), beside test_nginx_paths.py (nginx's
own answers, the same snippet) and the three APIs' suites.

What the README says it costs, and what nginx answers when fcgiwrap is
gone; and that the shipped systemd units are valid.
"""

import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

import hosts
from conftest import recoup_new_account, recoup_new_chat, recoup_new_session
from helpers import assert_raw_json, raw_exchange

pytestmark = hosts.only_behind("nginx-fcgiwrap")

ACCESS_RE = re.compile(r"\[(\d+)\] info: access rid=([0-9a-f]{32}) ")


def worker_lines(stack, request_id, timeout=5.0):
    """The pid of the chatpatch process that answered `request_id`, and the
    log lines that pid wrote, waiting a little for them."""
    log = Path(stack["WORKER_LOG"])
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text(errors="replace")
        pids = [pid for pid, rid in ACCESS_RE.findall(text) if rid == request_id]
        if pids:
            return pids[0], [line for line in text.splitlines() if f"[{pids[0]}]" in line]
        assert time.monotonic() < deadline, f"no access line for rid={request_id}"
        time.sleep(0.05)


def test_a_process_and_a_connection_per_request(stack, http):
    """Each request is a chatpatch process of its own, which connects to
    PostgreSQL (and prepares its statements) for that request alone."""
    seen = set()
    for _ in range(3):
        resp = http.get("/healthz")
        assert resp.status_code == 200, resp.text
        pid, lines = worker_lines(stack, resp.headers["x-request-id"])
        assert pid not in seen
        seen.add(pid)
        assert len([line for line in lines if "db: connection 1 connected" in line]) == 1, lines
        assert len([line for line in lines if " access rid=" in line]) == 1, lines


def test_fcgiwrap_gone_is_the_apis_503(stack, db, printed_error_bodies):
    """A second nginx + fcgiwrap whose fcgiwrap is stopped: nginx's 502
    becomes the snippet's 503 with Retry-After: 1, in the API's shape (the
    bodies --print-errors writes, with Recoup's CORS origin), nothing
    changes."""
    routes, body = printed_error_bodies
    account, key = recoup_new_account(db)
    session = recoup_new_session(db, account)
    chat = recoup_new_chat(db, session)
    path = f"/api/sessions/{session}/chats/{chat}"
    host = hosts.HOSTS["nginx-fcgiwrap"](dict(stack), Path(stack["STACK_DIR"]) / "fcgiwrap-gone")
    base_url = host.start()
    try:
        host.stop_fcgiwrap()
        headers = [("x-api-key", key), ("Content-Type", "application/json")]
        for prefix, origin in routes:
            target = path if path.startswith(prefix) else prefix + "x/chats/y"
            answer = raw_exchange(base_url, "PATCH", target, headers, b'{"title":"never"}')
            assert_raw_json(answer, 503, body(prefix, 503))
            assert answer.get_list("retry-after") == ["1"], answer
            assert answer.get_list("access-control-allow-origin") == (
                [origin] if origin else []), answer
        resp = httpx.get(base_url + "/healthz", timeout=15)
        assert resp.status_code == 503 and resp.json() == {"status": "unavailable"}, resp.text
        assert resp.headers.get_list("retry-after") == ["1"], resp.headers
    finally:
        host.stop()
    row = db.execute("SELECT title FROM recoup.chats WHERE id = %s", (chat,)).fetchone()
    assert row["title"] != "never"


def test_shipped_units_verify(tmp_path):
    """deploy/fcgiwrap's socket and service pass systemd-analyze verify."""
    for name in ("chatpatch-cgi.socket", "chatpatch-cgi.service"):
        (tmp_path / name).write_text((hosts.DEPLOY / "fcgiwrap" / name).read_text())
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(tmp_path / "chatpatch-cgi.socket"),
                           str(tmp_path / "chatpatch-cgi.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    service = (tmp_path / "chatpatch-cgi.service").read_text()
    assert re.search(r"^ExecStart=/usr/sbin/fcgiwrap .*-p /usr/local/sbin/chatpatch$", service,
                     re.M), service
