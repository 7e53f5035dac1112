"""CORS for the Recoup API (issue 11), whose real service answers browsers.

OPTIONS on its route is a browser's preflight: 204 without authentication
and without touching the database, allowing any origin, the profile's
methods (GET, PATCH, OPTIONS), the headers a client sends, for a day. Every
other answer of the route carries Access-Control-Allow-Origin: * and
exposes ETag. Neptun and LeanMCP name no browser clients: OPTIONS is 405
there, and no CORS header. A real browser (Debian's chromium, headless), on
a page served from another origin, PATCHes a chat with fetch(), an
x-api-key and an If-Match, and reads the answer and its ETag.
"""

import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from chats import make_chat
from conftest import REQUEST_ID_RE, fetch_one, pg_log_window

PREFLIGHT = {
    "access-control-allow-origin": "*",
    "access-control-allow-methods": "GET, PATCH, OPTIONS",
    "access-control-allow-headers": "authorization, content-type, if-match, if-none-match, "
                                    "x-api-key",
    "access-control-max-age": "86400",
}
BROWSER_ASKS = {"origin": "http://127.0.0.1:9", "access-control-request-method": "PATCH",
                "access-control-request-headers": "content-type,if-match,x-api-key"}


def assert_preflight(resp):
    assert resp.status_code == 204, resp.content
    assert resp.content == b""
    for name, value in PREFLIGHT.items():
        assert resp.headers.get_list(name) == [value], resp.headers
    assert resp.headers.get_list("cache-control") == ["no-store"], resp.headers
    assert REQUEST_ID_RE.match(resp.headers["x-request-id"])
    for absent in ("content-type", "content-length", "etag", "allow",
                   "access-control-expose-headers"):
        assert absent not in resp.headers, resp.headers


@pytest.mark.parametrize("credential", [{}, {"x-api-key": "not-a-key"},
                                        {"authorization": "Basic x", "x-api-key": "y"}])
def test_preflight_needs_no_credential_and_no_database(http, db, stack, credential):
    chat = make_chat(db, "recoup")
    before = chat.row(db)
    with pg_log_window(db, stack) as w:
        for path in (chat.path, chat.missing_path, "/api/sessions/nope/chats/nope"):
            assert_preflight(http.request("OPTIONS", path, headers={**BROWSER_ASKS,
                                                                    **credential}))
        assert_preflight(http.request("OPTIONS", chat.path))  # not even the CORS headers
    assert w.statements == []
    assert chat.row(db) == before


def test_actual_answers_expose_etag(http, db):
    chat = make_chat(db, "recoup")
    for resp in (chat.get(http), chat.patch(http, "x"), chat.patch(http, "y", {"if-match": '"1"'}),
                 http.request("GET", chat.path), http.request("PUT", chat.path)):
        assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers
        assert resp.headers.get_list("access-control-expose-headers") == ["ETag"], resp.headers


@pytest.mark.parametrize("api", ["neptun", "leanmcp"])
def test_other_apis_have_no_cors(http, db, api):
    chat = make_chat(db, api)
    resp = http.request("OPTIONS", chat.path, headers={**BROWSER_ASKS, **chat.headers})
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, PATCH"
    for resp in (resp, chat.get(http)):
        assert not [h for h in resp.headers if h.startswith("access-control-")], resp.headers


# ---- a real browser -------------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cors</title></head>
<body><pre id="out">pending</pre>
<script>
const out = document.getElementById("out");
fetch(%(url)s, {
  method: "PATCH",
  headers: {"x-api-key": %(key)s, "content-type": "application/json", "if-match": %(etag)s},
  body: JSON.stringify({title: "From a browser"}),
}).then(async (r) => {
  out.textContent = JSON.stringify({status: r.status, etag: r.headers.get("ETag"),
                                    body: await r.json()});
}).catch((e) => { out.textContent = JSON.stringify({error: String(e)}); });
</script></body></html>
"""


class _Page(BaseHTTPRequestHandler):
    page = b""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args):
        pass


def _access_lines(stack, since):
    log = Path(stack["STACK_DIR"]) / "log" / "chatpatch.log"
    with open(log, "rb") as f:
        f.seek(since)
        return f.read().decode(errors="replace")


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium (scripts/deps.sh test)")
def test_browser_from_another_origin_patches_the_chat(stack, db, base_url):
    chat = make_chat(db, "recoup")
    etag = f'"{chat.row(db)["version"]}"'
    _Page.page = (PAGE % {"url": json.dumps(base_url + chat.path),
                          "key": json.dumps(chat.extra["key"]),
                          "etag": json.dumps(etag)}).encode()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log = Path(stack["STACK_DIR"]) / "log" / "chatpatch.log"
    since = log.stat().st_size
    profile = tempfile.mkdtemp(prefix="chatpatch-chromium-")
    try:
        page_url = f"http://127.0.0.1:{server.server_address[1]}/page.html"
        assert page_url.split("/")[2] != base_url.split("/")[2]  # another origin
        proc = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", "--dump-dom", page_url],
            capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(profile, ignore_errors=True)
    m = re.search(r'<pre id="out">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"no outcome in the page (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n" \
              f"{proc.stderr[-2000:]}"
    outcome = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    row = chat.row(db)
    # The browser accepted the answer: status, body and the exposed ETag are readable.
    assert outcome == {"status": 200, "etag": f'"{row["version"]}"',
                       "body": chat.representation(db)}, outcome
    assert row["title"] == "From a browser"
    [change] = chat.changes(db)
    assert change["changes"] == {"title": {"old": "Old title", "new": "From a browser"}}
    # It asked first: the preflight reached the workers (access lines are
    # written in batches, within 200 ms).
    deadline = time.monotonic() + 5
    while "method=OPTIONS route=recoup status=204" not in _access_lines(stack, since):
        assert time.monotonic() < deadline, _access_lines(stack, since)[-2000:]
        time.sleep(0.1)
    assert fetch_one(db, "SELECT count(*) AS n FROM recoup.chat_changes WHERE chat_id = %s",
                     (chat.chat_id,))["n"] == 1
