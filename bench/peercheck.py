"""bench/peercheck.py: before `make bench` measures the Node peer, check that
it answers the Recoup route as chatpatch does (SPEC section 3, and issue
11's GET, ETag, If-Match, If-None-Match and CORS preflight): the same
status, body and headers for a set of requests covering every row of the
check table, the schema's messages, the body rules of section 2 and the
check order. A peer that answered differently would be measured doing
other work.

  /usr/bin/python3 bench/peercheck.py CHATPATCH_URL PEER_URL

Uses the bench data set (bench/data.sql: chat 1 is session 1000001, chat
2000001; chat 2 is session 1000002, chat 2000002) and the demo data
(session sess_demo belongs to another account). Timestamps are compared as
to their form only; X-Request-Id must be present on both sides.
"""

import http.client
import json
import re
import sys
import urllib.parse

from params import APIS

KEY = APIS["recoup"].credential
OK_PATH = "/api/sessions/1000001/chats/2000001"
JSON = {"Content-Type": "application/json"}
TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
COMPARED_HEADERS = ("content-type", "cache-control", "access-control-allow-origin",
                    "allow", "retry-after", "access-control-expose-headers",
                    "access-control-allow-methods", "access-control-allow-headers",
                    "access-control-max-age")
DIGITS = re.compile(r"[0-9]+")


def nested(depth):
    """A body nested depth levels deep (the top-level object is level 1)."""
    return '{"title":"a","z":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def cases():
    """(name, method, path, headers, body bytes) of every request compared."""
    key = {"x-api-key": KEY, **JSON}
    out = [
        ("update, x-api-key", "PATCH", OK_PATH, key, '{"title":"  Peer check \u3000","modelId":"m1"}'),
        ("update, Bearer", "PATCH", OK_PATH, {"Authorization": f"bearer  {KEY}", **JSON},
         '{"modelId":"m2"}'),
        ("update, +json media type", "PATCH", OK_PATH,
         {"x-api-key": KEY, "Content-Type": "Application/Merge-Patch+JSON; charset=utf-8"},
         '{"title":"t3"}'),
        ("both credentials", "PATCH", OK_PATH, {"x-api-key": KEY, "Authorization": f"Bearer {KEY}", **JSON},
         '{"title":"x"}'),
        ("no credential", "PATCH", OK_PATH, JSON, '{"title":"x"}'),
        ("Basic scheme", "PATCH", OK_PATH, {"Authorization": "Basic abc", **JSON}, '{"title":"x"}'),
        ("unknown key", "PATCH", OK_PATH, {"x-api-key": "nope", **JSON}, '{"title":"x"}'),
        ("unknown key, bad body", "PATCH", OK_PATH, {"x-api-key": "nope", **JSON}, "{"),
        ("unknown session", "PATCH", "/api/sessions/nope/chats/2000001", key, '{"title":"x"}'),
        ("another account's session", "PATCH", "/api/sessions/sess_demo/chats/chat_demo", key,
         '{"title":"x"}'),
        ("chat of another session", "PATCH", "/api/sessions/1000001/chats/2000002", key, '{"title":"x"}'),
        ("chat not found, bad body", "PATCH", "/api/sessions/1000001/chats/nope", key, "{"),
        ("bad JSON", "PATCH", OK_PATH, key, '{"title":'),
        ("empty body", "PATCH", OK_PATH, key, ""),
        ("text/plain", "PATCH", OK_PATH, {"x-api-key": KEY, "Content-Type": "text/plain"}, '{"title":"x"}'),
        ("no content type", "PATCH", OK_PATH, {"x-api-key": KEY}, '{"title":"x"}'),
        ("array", "PATCH", OK_PATH, key, "[]"),
        ("null", "PATCH", OK_PATH, key, "null"),
        ("string", "PATCH", OK_PATH, key, '"x"'),
        ("empty title", "PATCH", OK_PATH, key, '{"title":" \t "}'),
        ("numeric title", "PATCH", OK_PATH, key, '{"title":5}'),
        ("null modelId", "PATCH", OK_PATH, key, '{"modelId":null}'),
        ("object modelId after bad title", "PATCH", OK_PATH, key, '{"modelId":{},"title":true}'),
        ("one unknown key", "PATCH", OK_PATH, key, '{"x":1}'),
        ("unknown keys", "PATCH", OK_PATH, key, '{"x\\"y":1,"title":"a","y":2}'),
        ("no field", "PATCH", OK_PATH, key, "{}"),
        ("32 levels", "PATCH", OK_PATH, key, nested(32)),
        ("33 levels", "PATCH", OK_PATH, key, nested(33)),
        ("NUL in a string", "PATCH", OK_PATH, key, '{"title":"a\\u0000"}'),
        ("lone surrogate", "PATCH", OK_PATH, key, '{"title":"\\ud800"}'),
        ("invalid UTF-8", "PATCH", OK_PATH, key, b'{"title":"\xff"}'),
        ("duplicate x-api-key", "PATCH", OK_PATH, [("x-api-key", KEY), ("x-api-key", KEY),
                                                   ("Content-Type", "application/json")], '{"title":"x"}'),
        ("GET", "GET", OK_PATH, key, None),
        ("GET, unknown key", "GET", OK_PATH, {"x-api-key": "nope"}, None),
        ("GET, If-None-Match *", "GET", OK_PATH, {**key, "If-None-Match": "*"}, None),
        ("GET, stale If-Match", "GET", OK_PATH, {**key, "If-Match": '"1"'}, None),
        ("update, stale If-Match", "PATCH", OK_PATH, {**key, "If-Match": '"1"'}, '{"title":"x"}'),
        ("update, If-Match *", "PATCH", OK_PATH, {**key, "If-Match": "*"}, '{"title":"t4"}'),
        ("preflight", "OPTIONS", OK_PATH, {"Origin": "http://example.com",
                                           "Access-Control-Request-Method": "PATCH"}, None),
        ("PUT", "PUT", OK_PATH, key, '{"title":"x"}'),
        ("unknown path", "PATCH", "/api/sessions/1000001", key, '{"title":"x"}'),
        ("over 64 KiB", "PATCH", OK_PATH, key, '{"title":"' + "x" * 65536 + '"}'),
    ]
    return [(n, m, p, list(h.items()) if isinstance(h, dict) else h,
             b if isinstance(b, (bytes, type(None))) else b.encode()) for n, m, p, h, b in out]


def send(base_url, method, path, headers, body):
    """(status, {lower-case header: value}, body bytes) of one request."""
    url = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def differences(a, b):
    """What differs between two answers (status, headers, body), as text."""
    out = []
    if a[0] != b[0]:
        out.append(f"status {a[0]} != {b[0]}")
    for h in COMPARED_HEADERS:
        if a[1].get(h) != b[1].get(h):
            out.append(f"{h}: {a[1].get(h)!r} != {b[1].get(h)!r}")
    # Versions differ between the two (each update takes a new one): the
    # ETag's presence and form must agree.
    etags = [DIGITS.sub("N", x[1].get("etag", "")) for x in (a, b)]
    if etags[0] != etags[1]:
        out.append(f"etag: {a[1].get('etag')!r} != {b[1].get('etag')!r}")
    for side, answer in (("chatpatch", a), ("peer", b)):
        if not answer[1].get("x-request-id"):
            out.append(f"{side}: no X-Request-Id")
    body_a, body_b = TIMESTAMP.sub(b"<ts>", a[2]), TIMESTAMP.sub(b"<ts>", b[2])
    if body_a != body_b:
        out.append(f"body {body_a[:300]!r} != {body_b[:300]!r}")
    elif a[0] == 200 and len(TIMESTAMP.findall(a[2])) != len(TIMESTAMP.findall(b[2])):
        out.append("timestamps differ in number")
    return out


def check(chatpatch_url, peer_url):
    """[(case name, [differences])] of the cases that differ."""
    bad = []
    for name, method, path, headers, body in cases():
        a = send(chatpatch_url, method, path, headers, body)
        b = send(peer_url, method, path, headers, body)
        diff = differences(a, b)
        if diff:
            bad.append((name, diff))
    return bad


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    bad = check(argv[1], argv[2])
    for name, diff in bad:
        print(f"peercheck: {name}: " + "; ".join(diff), file=sys.stderr)
    n = len(cases())
    print(json.dumps({"cases": n, "differ": len(bad)}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
