"""Tables and helpers the API test files share (`from helpers import ...`).

Facts that hold for every API, or for several, stated once: the ECMAScript
trim set, the JSON values that are not strings, the media types the engine
takes for JSON, each API's error body shape, how the APIs write timestamps,
and the request and row checks around them. Fixtures and the stack live in
conftest.py.
"""

from datetime import timedelta, timezone

from conftest import TIMESTAMP_RE, json_body

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
