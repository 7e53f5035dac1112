"""Paths that nginx used to answer itself (SPEC section 1; issue 11), through
the shared stack.

1. No path under /api ever gets a redirect or HTML. A prefix location ending
   in "/" made nginx answer its path without the slash (/api,
   /api/sessions, /api/users, /api/chats) with its own HTML 301 and a
   Location header, for every method. Every route cut after any segment,
   with and without a trailing slash, with any method, is an unknown path:
   the workers' 404 {"statusCode":404,"error":"Not Found"}.
2. A decoded NUL in the path ("%00") is an unknown path too: 404 in the same
   generic shape, where nginx answered its own 400. nginx's other 400s
   (a malformed escape, ".." above the root, a raw NUL byte, a second
   Authorization header) stay 400, and "%00" in the query string, which is
   ignored, changes nothing.
3. An HTTP version other than 1.x: nginx's 505, in JSON too.

Each case checks the status, the exact JSON body, Content-Type,
Cache-Control, X-Request-Id, that there is no Location, and that none of
the three APIs' rows (made for this module, with valid credentials sent
along on every request) changed. Requests go over a raw socket, so the
request target is sent exactly as written.
"""

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import fetch_one, recoup_new_account, recoup_new_chat, recoup_new_session
from helpers import assert_raw_json, parse_http_answer, raw_connect, raw_exchange, recoup_error

NOT_FOUND = {"statusCode": 404, "error": "Not Found"}
BAD_REQUEST = {"statusCode": 400, "error": "Bad Request"}
METHODS = ["PATCH", "GET", "POST", "PUT", "DELETE", "OPTIONS"]
TABLES = {"recoup": "recoup.chats", "neptun": "neptun.chat_conversations",
          "leanmcp": "leanmcp.chats"}


@dataclass
class Rows:
    """One chat per API with its credential; `values` fills path templates."""

    values: dict = field(default_factory=dict)
    ids: dict = field(default_factory=dict)

    def headers(self):
        """Every API's valid credential and a JSON body type."""
        return [("Content-Type", "application/json"), ("x-api-key", self.values["rk"]),
                ("Cookie", f"neptun-session={self.values['nt']}"),
                ("Authorization", f"Bearer {self.values['lk']}")]

    def snapshot(self, db):
        """Every column of the three rows."""
        rows = {}
        for api, key in self.ids.items():
            rows[api] = fetch_one(db, f"SELECT * FROM {TABLES[api]} WHERE id = %s", (key,))
            assert rows[api] is not None, f"{api} row {key} is gone"
        return rows


BODY = b'{"title":"Changed","name":"Changed"}'


@pytest.fixture(scope="module")
def rows(db):
    account, recoup_key = recoup_new_account(db)
    session_id = recoup_new_session(db, account)
    recoup_chat = recoup_new_chat(db, session_id)
    neptun_user = random.randrange(10**12, 2**62)
    db.execute("INSERT INTO neptun.users (id) VALUES (%s)", (neptun_user,))
    neptun_token = db.execute("SELECT neptun.issue_session(%s) AS t", (neptun_user,)).fetchone()["t"]
    neptun_chat = db.execute(
        "INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
        "VALUES (%s, 'Neptun chat', 'google/gemma-2-27b-it') RETURNING id",
        (neptun_user,)).fetchone()["id"]
    leanmcp_user = f"user_{uuid.uuid4().hex}"
    db.execute("INSERT INTO leanmcp.users (id) VALUES (%s)", (leanmcp_user,))
    leanmcp_key = db.execute("SELECT leanmcp.issue_api_key(%s) AS k", (leanmcp_user,)).fetchone()["k"]
    leanmcp_chat = str(db.execute(
        "INSERT INTO leanmcp.chats (user_id, title) VALUES (%s, 'LeanMCP chat') RETURNING id",
        (leanmcp_user,)).fetchone()["id"])
    return Rows(
        values={"rk": recoup_key, "s": session_id, "c": recoup_chat, "nt": neptun_token,
                "u": neptun_user, "n": neptun_chat, "lk": leanmcp_key, "l": leanmcp_chat},
        ids={"recoup": recoup_chat, "neptun": neptun_chat, "leanmcp": leanmcp_chat},
    )


def worker_saw(stack, request_id, timeout=5.0):
    """Whether the workers' access log has a line for `request_id` (README:
    `access rid=...`); waits a little for the line to be written. Behind a
    host that spawns the workers itself, their log is its WORKER_LOG."""
    log = Path(stack.get("WORKER_LOG") or Path(stack["STACK_DIR"]) / "log" / "chatpatch.log")
    deadline = time.monotonic() + timeout
    while True:
        if f"rid={request_id}" in log.read_text(errors="replace"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


# ---- 1. no redirect, ever ----------------------------------------------------------------

# Each API's route cut after every segment, with and without a trailing
# slash (the full routes are the APIs' own tests), and two with a query.
ROUTE_PREFIXES = [
    "/api", "/api/", "/api?x=1",
    "/api/sessions", "/api/sessions/", "/api/sessions?x=1", "/api/sessions/{s}",
    "/api/sessions/{s}/", "/api/sessions/{s}/chats", "/api/sessions/{s}/chats/",
    "/api/users", "/api/users/", "/api/users/{u}", "/api/users/{u}/", "/api/users/{u}/chats",
    "/api/users/{u}/chats/",
    "/api/chats", "/api/chats/", "/api/chats/id", "/api/chats/id/",
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ROUTE_PREFIXES)
def test_route_prefix_is_a_json_404_never_a_redirect(stack, base_url, db, rows, path, method):
    before = rows.snapshot(db)
    answer = raw_exchange(base_url, method, path.format(**rows.values), rows.headers(), BODY)
    request_id = assert_raw_json(answer, 404, NOT_FOUND)
    # The workers answered it, not nginx.
    assert worker_saw(stack, request_id), f"no access line for rid={request_id}"
    assert rows.snapshot(db) == before


@pytest.mark.parametrize("path", ["/api", "/api/sessions", "/api/users", "/api/chats"])
def test_head_on_collection_is_404_without_location(base_url, rows, path):
    answer = raw_exchange(base_url, "HEAD", path, rows.headers()[1:])
    assert answer.status == 404, answer
    assert answer.get_list("location") == [], answer
    assert answer.get_list("content-type") == ["application/json; charset=utf-8"], answer
    assert answer.get_list("cache-control") == ["no-store"], answer
    assert answer.body == b"", answer


# ---- 2. a decoded NUL in the path ------------------------------------------------------------

NUL_PATHS = [
    "/api/sessions/a%00b/chats/c",
    "/api/users/1/chats/1%00",
    "/api/sessions/{s}%00/chats/{c}",
    "/api/sessions/{s}/chats/%00{c}",
    "/api/users/{u}%00/chats/{n}",
    "/api/users/{u}/chats/{n}%00",
    "/api/chats/id/{l}%00",
    "/api/chats/id/%00{l}",
    "/api%00",
    "/api/%00/sessions/{s}/chats/{c}",
    "/%00",
    "/healthz%00",
    "/api/sessions/{s}/chats/{c}%00?x=1",
]


@pytest.mark.parametrize("method", ["PATCH", "GET"])
@pytest.mark.parametrize("path", NUL_PATHS)
def test_percent_00_in_path_is_404(base_url, db, rows, path, method):
    before = rows.snapshot(db)
    answer = raw_exchange(base_url, method, path.format(**rows.values), rows.headers(), BODY)
    assert_raw_json(answer, 404, NOT_FOUND)
    assert rows.snapshot(db) == before


# nginx's other 400s, raised while reading the request, keep their 400.
OTHER_400 = [
    ("percent-zz", "/api/sessions/{s}%zz/chats/{c}", []),
    ("percent-zz-and-00-in-query", "/api/sessions/{s}%zz/chats/{c}?x=%00", []),
    ("dotdot-above-root", "/api/../../api/sessions/{s}/chats/{c}", []),
    ("raw-nul-byte", "/api/sessions/{s}\x00/chats/{c}", []),
    # Header-phase 400 on a path with %00 in its query.
    ("second-authorization", "/api/chats/id/{l}?x=%00", [("Authorization", "Bearer {lk}")]),
]


@pytest.mark.parametrize("path,extra", [(p, e) for _, p, e in OTHER_400],
                         ids=[i for i, _, _ in OTHER_400])
def test_other_nginx_400_stay_400(base_url, db, rows, path, extra):
    before = rows.snapshot(db)
    headers = rows.headers() + [(k, v.format(**rows.values)) for k, v in extra]
    answer = raw_exchange(base_url, "PATCH", path.format(**rows.values), headers, BODY)
    assert_raw_json(answer, 400, BAD_REQUEST)
    assert rows.snapshot(db) == before


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.0"])
def test_other_http_version_is_json_505(base_url, db, rows, version):
    """nginx refuses an HTTP version other than 1.x itself: JSON, not HTML."""
    before = rows.snapshot(db)
    host = base_url.split("//", 1)[1]
    head = (f"PATCH /api/sessions/{rows.values['s']}/chats/{rows.values['c']} {version}\r\n"
            f"Host: {host}\r\nx-api-key: {rows.values['rk']}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n")
    with raw_connect(base_url) as sock:
        sock.sendall(head.encode() + BODY)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert_raw_json(parse_http_answer(data), 505,
                    {"statusCode": 505, "error": "HTTP Version Not Supported"})
    assert rows.snapshot(db) == before


def test_error_location_asked_directly_is_still_400(base_url):
    answer = raw_exchange(base_url, "GET", "/_chatpatch_error/400")
    assert_raw_json(answer, 400, BAD_REQUEST)


def test_percent_00_in_query_is_ignored(base_url, db, rows):
    """Positive control: the query string is ignored (SPEC 1), "%00" in it too."""
    before = rows.snapshot(db)
    path = "/api/sessions/{s}/chats/{c}?x=%00&y=a%00b".format(**rows.values)
    headers = [("Content-Type", "application/json"), ("x-api-key", rows.values["rk"])]
    answer = raw_exchange(base_url, "PATCH", path, headers, b'{"title":"query %00 ignored"}')
    assert answer.status == 200, answer
    after = rows.snapshot(db)
    assert after["recoup"]["title"] == "query %00 ignored"
    assert after["neptun"] == before["neptun"] and after["leanmcp"] == before["leanmcp"]


def test_percent_25_00_is_text_not_nul(base_url, db, rows):
    """"%2500" decodes once to the three characters "%00", not to a NUL: the
    workers look for that chat id and answer Recoup's own 404."""
    before = rows.snapshot(db)
    path = "/api/sessions/{s}/chats/{c}%2500".format(**rows.values)
    headers = [("Content-Type", "application/json"), ("x-api-key", rows.values["rk"])]
    answer = raw_exchange(base_url, "PATCH", path, headers, b'{"title":"x"}')
    assert_raw_json(answer, 404, recoup_error("Chat not found"))
    assert answer.get_list("access-control-allow-origin") == ["*"], answer
    assert rows.snapshot(db) == before
