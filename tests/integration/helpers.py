"""Tables and helpers the API test files share (`from helpers import ...`).

Facts that hold for every API, or for several, stated once: the ECMAScript
trim set, the JSON values that are not strings, the media types the engine
takes for JSON, each API's error body shape, how the APIs write timestamps,
the request and row checks around them, and requests written byte for byte
on a socket of one's own (raw_exchange, for what httpx would normalise or
for a chosen source address). Fixtures and the stack live in conftest.py.
"""

import json
import socket
from datetime import timedelta, timezone
from urllib.parse import urlsplit

import openapi_check
from conftest import REQUEST_ID_RE, TIMESTAMP_RE, json_body

# ---- tables ---------------------------------------------------------------------------

# The ECMAScript String.prototype.trim set (SPEC: Trim).
ES_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def empty_id(v):
    """A test id for a (white space) string: its code points, or "empty"."""
    return "+".join(f"U{ord(c):04X}" for c in v) or "empty"


# JSON values that are not strings, by test id: (the JSON text, the type the
# zod-style messages name, "received <type>"). Each API's tests pick from it.
NON_STRING_JSON = {
    "null": ("null", "null"),
    "zero": ("0", "number"),
    "integer": ("42", "number"),
    "float": ("1.5", "number"),
    "exponent": ("-2e10", "number"),
    "true": ("true", "boolean"),
    "false": ("false", "boolean"),
    "empty-array": ("[]", "array"),
    "array": ('["x"]', "array"),
    "empty-object": ("{}", "object"),
    "object": ('{"a":"x"}', "object"),
}

# Content-Type values every API takes as JSON, and values none takes (None:
# no Content-Type header).
JSON_MEDIA_TYPES = [
    "application/json", "application/json; charset=utf-8", "APPLICATION/JSON",
    "Application/Json;Charset=UTF-8", "application/merge-patch+json", "application/vnd.api+json",
]
NON_JSON_MEDIA_TYPES = [
    "text/plain", None, "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "text/json", "application/jsonx", "application/json-patch", "json",
]


# A path of each API that its pattern matches, by profile name (the values
# need not exist: what comes before any row is looked at).
API_SAMPLE_PATHS = {
    "recoup": "/api/sessions/s/chats/c",
    "neptun": "/api/users/1/chats/1",
    "leanmcp": "/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f",
}


# ---- each API's error body ---------------------------------------------------------------


def recoup_error(message):
    """Recoup's error shape."""
    return {"status": "error", "error": message}


def neptun_error(status, message, issue=None):
    """Neptun's h3 error shape; `issue` is (code, message) of the one zod issue."""
    body = {"statusCode": status, "statusMessage": message}
    if issue is not None:
        code, text = issue
        body["data"] = {"issues": [{"code": code, "message": text, "path": ["name"]}]}
    return body


def leanmcp_error(status, message, reason):
    """LeanMCP's NestJS error shape; `message` may be a list of strings."""
    return {"statusCode": status, "message": message, "error": reason}


# ---- timestamps ----------------------------------------------------------------------------


def fmt_ts(dt, rounding=False):
    """A timestamptz as the APIs write it, milliseconds truncated or rounded."""
    dt = dt.astimezone(timezone.utc)
    if rounding:
        dt = dt + timedelta(microseconds=500)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def api_ts(got, dt):
    """The expected API string for `dt`: JS truncates to milliseconds; rounding
    is tolerated since the contract does not say which. None stays None."""
    if dt is None:
        return None
    if isinstance(got, str) and TIMESTAMP_RE.match(got) and got in (fmt_ts(dt, False), fmt_ts(dt, True)):
        return got
    return fmt_ts(dt, False)


# ---- requests and rows ---------------------------------------------------------------------


def send(http, path, body, headers=None, content_type="application/json", method="PATCH",
         ensure_ascii=True):
    """One request through `http` (an httpx.Client); `body` as json_body() makes
    it; content_type None sends no Content-Type header."""
    h = {} if content_type is None else {"content-type": content_type}
    h.update(headers or {})
    return http.request(method, path, content=json_body(body, ensure_ascii), headers=h)


def assert_updated_now(db, before, after):
    """updated_at moved forward, to the database's now (within a minute)."""
    assert after["updated_at"] > before["updated_at"]
    now = db.execute("SELECT now() AS n").fetchone()["n"]
    assert abs(now - after["updated_at"]) < timedelta(minutes=1)


# ---- raw HTTP ------------------------------------------------------------------------------


class RawAnswer:
    """An HTTP/1.1 answer read off a socket: status, headers as (lower-cased
    name, value) pairs in order, and the body (Content-Length framed)."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def get_list(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def __repr__(self):
        return f"<{self.status} {self.headers} {self.body[:300]!r}>"


def parse_http_answer(data, head_request=False):
    """One whole answer (status line, headers, a body of Content-Length bytes,
    none for a HEAD request) from `data`; AssertionError when it is not one."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP answer: {data[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version.startswith("HTTP/1.") and status.isdigit(), lines[0]
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    lengths = [v for k, v in headers if k == "content-length"]
    assert len(lengths) == 1 and lengths[0].isdigit(), f"Content-Length: {lengths}"
    if head_request:
        assert rest == b"", f"a body after HEAD: {rest[:300]!r}"
        return RawAnswer(int(status), headers, rest)
    assert len(rest) >= int(lengths[0]), f"short body: {len(rest)} of {lengths[0]} bytes"
    return RawAnswer(int(status), headers, rest[: int(lengths[0])])


def raw_connect(base_url, source=None, timeout=10):
    """A TCP connection to nginx at `base_url`, from the local address
    `source` (e.g. "127.0.0.2") when given."""
    parts = urlsplit(base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((parts.hostname, parts.port))
    except OSError:
        sock.close()
        raise
    return sock


def raw_exchange(base_url, method, target, headers=(), body=b"", source=None, timeout=15):
    """One request written byte for byte (the target is not re-quoted; Host,
    Connection: close and Content-Length, unless `headers` has one, are
    added), read to EOF; a RawAnswer, checked against docs/openapi.yaml."""
    host = urlsplit(base_url).netloc
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body or method not in ("GET", "HEAD"):
        if not any(k.lower() == "content-length" for k, _ in headers):
            lines.append(f"Content-Length: {len(body)}")
    with raw_connect(base_url, source, timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = parse_http_answer(data, head_request=method == "HEAD")
    openapi_check.check_raw(method, target, answer)
    return answer


def assert_raw_json(answer, status, body):
    """A RawAnswer with exactly `status` and the JSON `body` (compared parsed),
    the headers every answer carries (one Content-Type application/json;
    charset=utf-8, Cache-Control: no-store, one X-Request-Id of 32 hex
    digits) and no Location. Returns the X-Request-Id."""
    where = f"{answer!r}"
    assert answer.status == status, f"status {answer.status} != {status}: {where}"
    assert answer.get_list("content-type") == ["application/json; charset=utf-8"], where
    assert answer.get_list("cache-control") == ["no-store"], where
    assert answer.get_list("location") == [], where
    ids = answer.get_list("x-request-id")
    assert len(ids) == 1 and REQUEST_ID_RE.match(ids[0]), where
    try:
        got = json.loads(answer.body)
    except ValueError:
        raise AssertionError(f"body is not JSON: {where}") from None
    assert got == body, f"body {got!r} != {body!r}"
    return ids[0]


def lock_waiters(db):
    """How many of the workers' statements wait on a lock (a row another
    transaction holds), from pg_stat_activity; db: a dict_row connection."""
    return db.execute(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'chatpatch' "
        "AND wait_event_type = 'Lock'").fetchone()["n"]
