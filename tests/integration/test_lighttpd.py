"""What lighttpd answers itself, behind deploy/lighttpd/ (issue 10; README,
"What the server answers itself"). Runs behind CHATPATCH_HOST=lighttpd
only (make test-host-lighttpd); the three APIs' suites check the rest.

lighttpd refuses some requests before any worker sees them. Each must come
as JSON: the body `chatpatch --print-errors` wrote for that status (in the
API's own shape under an API's path for 413 and 503, as nginx's, with the
API's Access-Control-Allow-Origin where it has one; routes.tsv), Content-Type
application/json; charset=utf-8, Cache-Control: no-store, an X-Request-Id of
its own (never the client's), Retry-After: 1 on 503; and no row changes. The expected bodies are
read from the documents the host was given, which the binary wrote from its
profiles: nothing here restates an API's shape.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

import hosts
from conftest import fetch_one, recoup_new_account, recoup_new_chat, recoup_new_session
from helpers import assert_raw_json, parse_http_answer, raw_connect, raw_exchange
from hosts import alive

# lighttpd's own answers (503 in the shape of the prefix an unknown path is
# under, OPTIONS *) are not in docs/openapi.yaml.
pytestmark = [hosts.only_behind("lighttpd"), pytest.mark.hosts_own_answers]


CLIENT_ID = "client-chosen-id"


@pytest.fixture
def recoup(db):
    """A Recoup chat and its key: (path, headers, the row)."""
    account, key = recoup_new_account(db)
    session = recoup_new_session(db, account)
    chat = recoup_new_chat(db, session)
    path = f"/api/sessions/{session}/chats/{chat}"
    return path, [("x-api-key", key), ("Content-Type", "application/json"),
                  ("X-Request-Id", CLIENT_ID)], chat


def recoup_row(db, chat):
    return fetch_one(db, "SELECT title, updated_at FROM recoup.chats WHERE id = %s", (chat,))


def check(answer, status, body, origin=None):
    """The JSON answer of lighttpd's own error, with a fresh request id."""
    rid = assert_raw_json(answer, status, body)
    assert rid != CLIENT_ID
    assert answer.get_list("access-control-allow-origin") == ([origin] if origin else []), answer
    assert answer.get_list("retry-after") == (["1"] if status == 503 else []), answer
    return rid


def send_head(base_url, head, body=b""):
    """Writes `head` (the request line and headers, CRLF-separated, no blank
    line) and `body` as they are; the answer."""
    with raw_connect(base_url) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return parse_http_answer(data)


# ---- a body over lighttpd's bound: 413 in the API's shape ---------------------------------


def test_body_over_lighttpd_bound_is_413_in_each_api_shape(base_url, db, printed_error_bodies,
                                                            recoup):
    """Over server.max-request-size (128 KiB) lighttpd answers before reading
    the body, under each API's path in that API's shape; a body between the
    workers' --max-body and that bound gets the workers' own 413 (the APIs'
    suites)."""
    routes, body = printed_error_bodies
    path, headers, chat = recoup
    before = recoup_row(db, chat)
    size = 129 * 1024
    for prefix, origin in routes:
        target = path if path.startswith(prefix) else prefix + "x/chats/y"
        head = "\r\n".join([f"PATCH {target} HTTP/1.1", "Host: x", "Connection: close",
                            *(f"{k}: {v}" for k, v in headers), f"Content-Length: {size}"])
        check(send_head(base_url, head), 413, body(prefix, 413), origin)
    assert recoup_row(db, chat) == before


# ---- requests lighttpd refuses while reading them --------------------------------------------


@pytest.mark.parametrize("name,extra,status", [
    ("two-content-lengths", ["Content-Length: 2", "Content-Length: 2"], 400),
    ("content-length-not-a-number", ["Content-Length: two"], 400),
    ("content-length-and-chunked", ["Content-Length: 2", "Transfer-Encoding: chunked"], 400),
    ("unknown-transfer-coding", ["Transfer-Encoding: gzip"], 501),
    ("header-over-8-kib", ["Content-Length: 2", "X-Big: " + "a" * 9000], 431),
])
def test_malformed_request_is_json(base_url, db, printed_error_bodies, recoup, name, extra,
                                   status):
    """Refusals other than 413 and 503 come in the generic shape, whatever
    the path, as nginx's do."""
    _, body = printed_error_bodies
    path, headers, chat = recoup
    before = recoup_row(db, chat)
    head = "\r\n".join([f"PATCH {path} HTTP/1.1", "Host: x", "Connection: close",
                        *(f"{k}: {v}" for k, v in headers), *extra])
    check(send_head(base_url, head, b"{}"), status, body("", status))
    assert recoup_row(db, chat) == before


def test_unknown_method_is_501_json(base_url, db, printed_error_bodies, recoup):
    """lighttpd refuses a method it does not know (501) where nginx passes it
    to the workers (405)."""
    _, body = printed_error_bodies
    path, headers, chat = recoup
    before = recoup_row(db, chat)
    for target in (path, "/nowhere"):
        answer = raw_exchange(base_url, "FOO", target, headers, b"{}")
        check(answer, 501, body("", 501))
    assert recoup_row(db, chat) == before


def test_missing_host_header_is_400_json(base_url, printed_error_bodies):
    _, body = printed_error_bodies
    answer = send_head(base_url, "GET /healthz HTTP/1.1\r\nConnection: close")
    check(answer, 400, body("", 400))


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0"])
def test_other_http_version_is_505_json(base_url, db, printed_error_bodies, recoup, version):
    _, body = printed_error_bodies
    path, headers, chat = recoup
    before = recoup_row(db, chat)
    head = "\r\n".join([f"PATCH {path} {version}", "Host: x", "Connection: close",
                        *(f"{k}: {v}" for k, v in headers), "Content-Length: 2"])
    check(send_head(base_url, head, b"{}"), 505, body("", 505))
    assert recoup_row(db, chat) == before


def test_options_asterisk_is_lighttpd_own_200(base_url):
    """`OPTIONS *` (a request for the server, no path) lighttpd answers
    itself: 200 with its Allow and no body, no JSON (README lists it)."""
    with raw_connect(base_url) as sock:
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    answer = parse_http_answer(data)
    assert answer.status == 200, answer
    assert answer.body == b"", answer
    assert answer.get_list("x-request-id") == [], answer


# ---- the raw path reaches the workers --------------------------------------------------------


@pytest.mark.parametrize("target", [
    "/api/sessions/{s}%2Fx/chats/{c}", "/api/sessions/x/../{s}/chats/{c}",
    "/api/sessions/{s}/chats/{c}%00", "/api/sessions/{s}%zz/chats/{c}",
])
def test_raw_paths_reach_the_workers(stack, base_url, db, recoup, target):
    """server.http-parseopts: lighttpd neither decodes %2F nor removes "..",
    nor refuses "%00" or a malformed escape: the workers see the path as
    sent and answer it (an unknown path: their 404), as their access line
    shows."""
    path, headers, chat = recoup
    _, _, _, session, _, chat_id = path.split("/")
    before = recoup_row(db, chat)
    answer = raw_exchange(base_url, "PATCH", target.format(s=session, c=chat_id), headers,
                          b'{"title":"never"}')
    assert answer.status == 404, answer
    rid = answer.get_list("x-request-id")[0]
    deadline = time.monotonic() + 5
    while f"rid={rid}" not in Path(stack["WORKER_LOG"]).read_text(errors="replace"):
        assert time.monotonic() < deadline, f"no worker access line for rid={rid}"
        time.sleep(0.05)
    assert recoup_row(db, chat) == before


# ---- no worker: 503 in the API's shape with Retry-After -------------------------------------


def pool_pids(binary):
    """The processes running `binary` (the pool lighttpd spawned)."""
    pids = []
    for exe in Path("/proc").glob("[0-9]*/exe"):
        try:
            if os.readlink(exe) == str(binary):
                pids.append(int(exe.parent.name))
        except OSError:
            pass
    return pids


def test_workers_unreachable_is_503_with_retry_after(stack, db, printed_error_bodies, recoup):
    """A lighttpd of its own whose pool was killed while its binary is gone,
    so lighttpd cannot start it again: lighttpd's 503, in the API's shape
    under its path, with Retry-After: 1; nothing changes. (lighttpd 1.4.69
    did not always start such a pool again by itself once the binary was
    back: README.)"""
    routes, body = printed_error_bodies
    path, headers, chat = recoup
    host = hosts.HOSTS["lighttpd"](dict(stack), Path(stack["STACK_DIR"]) / "lighttpd-503")
    base_url = host.start()
    try:
        binary = host.paths()["bin"]
        pids = pool_pids(binary)
        assert pids, f"no process runs {binary}"
        before = recoup_row(db, chat)
        binary.rename(binary.with_name("chatpatch.aside"))
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        # Gone (or a zombie) before the first request, which a dying worker
        # could otherwise still accept and drop (lighttpd's 500).
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids):
            assert time.monotonic() < deadline, "the pool did not die"
            time.sleep(0.05)
        for prefix, origin in routes:
            target = path if path.startswith(prefix) else prefix + "x/chats/y"
            answer = raw_exchange(base_url, "PATCH", target, headers, b'{"title":"never"}')
            check(answer, 503, body(prefix, 503), origin)
        answer = raw_exchange(base_url, "GET", "/healthz", headers)
        check(answer, 503, body("", 503))
        assert recoup_row(db, chat) == before
    finally:
        host.stop()


def test_recipe_loads_in_debians_lighttpd_conf(tmp_path):
    """The shipped file as README step 5 installs it: in conf-enabled/ of
    Debian's own lighttpd.conf (which sets server.http-parseopts itself and
    may load mod_fastcgi again), lighttpd -tt accepts the whole config."""
    debian = Path("/etc/lighttpd/lighttpd.conf").read_text()
    assert 'include "/etc/lighttpd/conf-enabled/*.conf"' in debian
    (tmp_path / "conf-enabled").mkdir()
    (tmp_path / "conf-enabled" / "10-fastcgi.conf").write_text('server.modules += ( "mod_fastcgi" )\n')
    (tmp_path / "conf-enabled" / "90-chatpatch.conf").write_text(
        (hosts.DEPLOY / "lighttpd" / "chatpatch.conf").read_text())
    conf = tmp_path / "lighttpd.conf"
    conf.write_text(debian.replace("/etc/lighttpd/conf-enabled", str(tmp_path / "conf-enabled")))
    proc = subprocess.run(["lighttpd", "-tt", "-f", str(conf)], capture_output=True, text=True,
                          timeout=30)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "parser failed" not in out and "Duplicate" not in out, out


def test_variant_to_a_pool_of_ones_own(stack, http, db, recoup):
    """The recipe's other fastcgi.server, to a pool run on its own (here the
    stack's, on its socket): lighttpd spawns nothing, the pool answers and
    logs the request."""
    path, headers, chat = recoup
    host = hosts.HOSTS["lighttpd"](dict(stack), Path(stack["STACK_DIR"]) / "lighttpd-pool")
    host.to_pool = True
    base_url = host.start()
    try:
        assert not re.search(r'"bin-path"\s*=>', host.paths()["snippet"].read_text())
        answer = raw_exchange(base_url, "PATCH", path, headers, b'{"title":"through the pool"}')
        assert answer.status == 200, answer
        rid = answer.get_list("x-request-id")[0]
        pool_log = Path(stack["STACK_DIR"]) / "log" / "chatpatch.log"
        deadline = time.monotonic() + 5
        while f"rid={rid}" not in pool_log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"no access line for rid={rid} in the pool's log"
            time.sleep(0.05)
        assert recoup_row(db, chat)["title"] == "through the pool"
    finally:
        host.stop()


def test_pool_stops_with_lighttpd(stack):
    """lighttpd's SIGTERM at its own stop reaches the pool it spawned, which
    stops in order (its log says so) and leaves no process behind."""
    host = hosts.HOSTS["lighttpd"](dict(stack), Path(stack["STACK_DIR"]) / "lighttpd-stop")
    host.start()
    binary = host.paths()["bin"]
    pids = pool_pids(binary)
    assert pids, f"no process runs {binary}"
    host.stop()
    log = host.worker_log()
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in pids) or "pool: stopped" not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.05)
    assert "SIGKILL" not in log.read_text()
