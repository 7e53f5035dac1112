"""Malformed requests against all three APIs (SPEC sections 1-5, README
"Choices where the contract is silent"), as one table of cases.

Every case gets fresh rows with valid credentials for all three APIs (so the
malformation alone is at fault), snapshots the three target rows (every
column, updated_at included), sends one request through nginx, and checks
the exact status, the exact JSON body in the shape of whoever answers (the
API's own shape for the worker's answers and nginx's 413; nginx's JSON from
nginx/chatpatch.conf for the errors nginx makes before a location is chosen),
`Content-Type: application/json; charset=utf-8`, `Cache-Control: no-store`,
`X-Request-Id`, `Access-Control-Allow-Origin: *` on Recoup's answers,
`Allow` on 405s, and that no row changed.

A few cases are positive controls (expected status 200): they show that the
limit next to a malformation is where SPEC puts it (nesting depth 32, the
last duplicate key wins, chunked bodies are read). They check the field they
set, and that the other two APIs' rows did not change.

Requests httpx cannot send as written (duplicate headers, a wrong or missing
Content-Length, chunked bodies, raw bytes, `..`, or bad escapes in the path,
which httpx would normalise or re-quote) go over a raw socket with
`Connection: close`, and the answer is parsed here.

Choices made here where SPEC and README are silent are marked "CHOICE:" in
the table below.
"""

import json
import random
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from conftest import (
    REQUEST_ID_RE,
    fetch_one,
    recoup_new_account,
    recoup_new_chat,
    recoup_new_session,
)
from helpers import leanmcp_error, neptun_error
from helpers import recoup_error as recoup  # Recoup's error shape

# ---- expected bodies ------------------------------------------------------------------

REASON = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    501: "Not Implemented",
}


def neptun(status, message=None, issue=None):
    """Neptun's error shape, the reason phrase unless `message` is given."""
    return neptun_error(status, message or REASON[status], issue)


def leanmcp(status, message=None):
    """LeanMCP's error shape, the reason phrase unless `message` is given."""
    return leanmcp_error(status, REASON[status] if message is None else message, REASON[status])


def generic(status):
    """Unknown paths, /healthz, and nginx's own errors (nginx/chatpatch.conf)."""
    return {"statusCode": status, "error": REASON[status]}


NGINX_400 = generic(400)  # /_chatpatch_error/400, for errors nginx raises before a location

INVALID_JSON = {
    "recoup": recoup("Invalid JSON body"),
    "neptun": neptun(400, "Bad Request. Invalid JSON body."),
    "leanmcp": leanmcp(400, "Unexpected token in JSON body"),
}
UNSUPPORTED = {
    "recoup": recoup("Content-Type must be application/json"),
    "neptun": neptun(415),
    "leanmcp": leanmcp(415),
}
TOO_LARGE = {  # nginx's 413 in each API's location (nginx/chatpatch.conf)
    "recoup": recoup("Request body too large"),
    "neptun": neptun(413),
    "leanmcp": leanmcp(413),
}
NOT_ALLOWED = {  # CHOICE: the worker's 405 in the API's shape with the reason phrase
    "recoup": recoup("Method Not Allowed"),
    "neptun": neptun(405),
    "leanmcp": leanmcp(405),
}
FIELD = {"recoup": "title", "neptun": "name", "leanmcp": "title"}
EMPTY_FIELD = {
    "recoup": recoup("title cannot be empty"),
    "neptun": neptun(400, "Bad Request. Invalid body(name).",
                     ("too_small", "String must contain at least 1 character(s)")),
    "leanmcp": leanmcp(400, ["title should not be empty"]),
}
NUMBER_FIELD = {
    "recoup": recoup("Invalid input: expected string, received number"),
    "neptun": neptun(400, "Bad Request. Invalid body(name).",
                     ("invalid_type", "Expected string, received number")),
    "leanmcp": leanmcp(400, ["title must be a string"]),
}
PATHS = {
    "recoup": "/api/sessions/{s}/chats/{c}",
    "neptun": "/api/users/{u}/chats/{n}",
    "leanmcp": "/api/chats/id/{l}",
}
CREDENTIAL = {
    "recoup": ("x-api-key", "{rk}"),
    "neptun": ("Cookie", "neptun-session={nt}"),
    "leanmcp": ("Authorization", "Bearer {lk}"),
}
# Row key and column of each API's target row in the snapshot.
TABLE = {"recoup": "recoup.chats", "neptun": "neptun.chat_conversations", "leanmcp": "leanmcp.chats"}

AUTO = object()  # raw requests: Content-Length is the body's length


def valid_body(api, value="Renamed"):
    return json.dumps({FIELD[api]: value}).encode()


def nested_arrays(depth_inside):
    """`depth_inside` levels of arrays, for a value inside the top-level object."""
    return b"[" * depth_inside + b"]" * depth_inside


def nested_objects(levels):
    """`levels` levels of objects, innermost {"a":1}, as a Python value."""
    value = 1
    for _ in range(levels):
        value = {"a": value}
    return value


@dataclass(frozen=True)
class Case:
    id: str
    api: str                      # whose route/credential is the default: recoup|neptun|leanmcp|health
    status: int
    expect: object                # the exact JSON body; for controls, {column: value} stored
    method: str = "PATCH"
    path: str = None              # template with {s} {c} {u} {n} {l}; None: the API's route
    body: bytes = None            # None: a valid body for the API
    content_type: str = "application/json"  # None: no Content-Type header
    credential: bool = True       # send the API's valid credential
    headers: tuple = ()           # more (name, template) pairs; templates see {rk} {nt} {lk}
    raw: bool = False             # send over a raw socket
    length: object = AUTO         # raw only: AUTO, None (no header) or the literal value
    chunks: tuple = None          # raw only: send the body as these chunks
    allow: str = None             # the Allow header a 405 must carry
    cors: bool = None             # None: from the expected body's shape (Recoup's)
    control: bool = False         # a positive control: 200 and the row changed as `expect`
    special: str = None           # "content-length-larger"


CASES = []


def case(*args, **kwargs):
    CASES.append(Case(*args, **kwargs))


APIS = ("recoup", "neptun", "leanmcp")

# ---- bodies, for each API --------------------------------------------------------------

for api in APIS:
    f = FIELD[api].encode()
    bad_json = INVALID_JSON[api]
    case(f"{api}-invalid-json", api, 400, bad_json, body=b'{"' + f + b'":')
    case(f"{api}-trailing-garbage", api, 400, bad_json, body=b'{"' + f + b'":"ok"} x')
    case(f"{api}-second-document", api, 400, bad_json, body=b'{"' + f + b'":"ok"}{}')
    case(f"{api}-invalid-utf8", api, 400, bad_json, body=b'{"' + f + b'":"ok\xff\xfe"}')
    case(f"{api}-escaped-nul", api, 400, bad_json, body=b'{"' + f + b'":"a\\u0000b"}')
    case(f"{api}-raw-nul-byte", api, 400, bad_json, body=b'{"' + f + b'":"a\x00b"}')
    case(f"{api}-lone-high-surrogate", api, 400, bad_json, body=b'{"' + f + b'":"a\\ud83d"}')
    case(f"{api}-lone-low-surrogate", api, 400, bad_json, body=b'{"' + f + b'":"\\ude00a"}')
    # The top-level object is level 1: 32 arrays inside it make 33 levels.
    case(f"{api}-depth-33", api, 400, bad_json,
         body=b'{"' + f + b'":"ok","x":' + nested_arrays(32) + b"}")
    case(f"{api}-depth-40", api, 400, bad_json,
         body=b'{"' + f + b'":"ok","x":' + nested_arrays(39) + b"}")
    case(f"{api}-depth-33-objects", api, 400, bad_json,
         body=b'{"' + f + b'":' + b'{"a":' * 32 + b"1" + b"}" * 32 + b"}")
    # Empty bodies are not JSON (SPEC 2), with or without a Content-Length: 0.
    case(f"{api}-empty-body-content-length-0", api, 400, bad_json, body=b"", raw=True, length="0")
    case(f"{api}-empty-body-no-content-length", api, 400, bad_json, body=b"", raw=True, length=None)
    # nginx reads Content-Length bytes: the worker gets `{"<field>":"o`, which is not JSON;
    # with Connection: close the rest of the bytes is never read as a request.
    case(f"{api}-content-length-smaller", api, 400, bad_json,
         body=b'{"' + f + b'":"ok"}', raw=True, length=str(len(f) + 6))
    # CHOICE: a Content-Length larger than the body sent. nginx waits for the rest
    # (client_body_timeout) and never passes a partial body on, so within a short
    # wait there must be no answer (or at most nginx's own JSON 400/408); once the
    # client half-closes, nginx closes the connection (or answers JSON 400/408).
    # Never an answer from the worker, and no row changes.
    case(f"{api}-content-length-larger", api, 0, None, body=valid_body(api), raw=True,
         length=str(len(valid_body(api)) + 10), special="content-length-larger")
    # Positive control: a chunked body is read whole and passed on.
    case(f"{api}-chunked-ok", api, 200, {FIELD[api]: "chunked"},
         body=valid_body(api, "chunked"), raw=True, length=None,
         chunks=(b'{"' + f + b'"', b':"chun', b'ked"}'), control=True)
    # 70 KiB: nginx's own 413 (client_max_body_size 64k) in the API's shape.
    case(f"{api}-body-70KiB", api, 413, TOO_LARGE[api], body=valid_body(api, "a" * 70 * 1024))
    case(f"{api}-no-content-type", api, 415, UNSUPPORTED[api], content_type=None)
    case(f"{api}-text-plain", api, 415, UNSUPPORTED[api], content_type="text/plain")
    case(f"{api}-application-jsonx", api, 415, UNSUPPORTED[api], content_type="application/jsonx")
    # Duplicate keys: the last one wins (README), so an empty last value is an error.
    case(f"{api}-duplicate-key-empty-last", api, 400, EMPTY_FIELD[api],
         body=b'{"' + f + b'":"ok","' + f + b'":""}')
    # Huge numbers are still numbers: a type error for a string field, never stored.
    case(f"{api}-huge-number-1e999999", api, 400, NUMBER_FIELD[api], body=b'{"' + f + b'":1e999999}')
    case(f"{api}-huge-integer-5000-digits", api, 400, NUMBER_FIELD[api],
         body=b'{"' + f + b'":' + b"9" * 5000 + b"}")

# Wrong top-level types: Recoup's zod message; Neptun row 4 (SPEC 4).
# CHOICE: LeanMCP answers a top level that is not an object with its row 4
# ("Unexpected token in JSON body"): SPEC 2 lists it among the JSON failures.
for name, raw_body, received in [
    ("array", b'[{"title":"ok"}]', "array"),
    ("string", b'"ok"', "string"),
    ("null", b"null", "null"),
    ("number", b"42", "number"),
    ("boolean", b"true", "boolean"),
]:
    case(f"recoup-top-level-{name}", "recoup", 400,
         recoup(f"Invalid input: expected object, received {received}"), body=raw_body)
for name, raw_body in [("array", b'[{"name":"ok"}]'), ("string", b'"ok"'), ("null", b"null"),
                       ("number", b"1")]:
    case(f"neptun-top-level-{name}", "neptun", 400, INVALID_JSON["neptun"], body=raw_body)
for name, raw_body in [("array", b'[{"title":"ok"}]'), ("string", b'"ok"'), ("null", b"null"),
                       ("boolean", b"false")]:
    case(f"leanmcp-top-level-{name}", "leanmcp", 400, INVALID_JSON["leanmcp"], body=raw_body)

# Positive controls at the edges.
case("recoup-duplicate-key-last-wins-ok", "recoup", 200, {"title": "ok"},
     body=b'{"title":"","title":"ok"}', control=True)
# metadata nested to depth 31 inside the top object: 32 levels, accepted.
case("leanmcp-depth-32-metadata-ok", "leanmcp", 200, {"metadata": nested_objects(31)},
     body=json.dumps({"metadata": nested_objects(31)}).encode(), control=True)
case("leanmcp-depth-33-metadata", "leanmcp", 400, INVALID_JSON["leanmcp"],
     body=json.dumps({"metadata": nested_objects(32)}).encode())

# ---- headers ----------------------------------------------------------------------------

# Two x-api-key lines are joined as Node joins them ("k, k"): one unknown key.
case("recoup-two-x-api-key-headers", "recoup", 401, recoup("Unauthorized"),
     headers=(("x-api-key", "{rk}"),), raw=True)
case("recoup-authorization-basic", "recoup", 401,
     recoup("Authorization header with Bearer token required"), credential=False,
     headers=(("Authorization", "Basic dXNlcjpwYXNz"),))
case("recoup-bearer-empty-token", "recoup", 401,
     recoup("Authorization header with Bearer token required"), credential=False,
     headers=(("Authorization", "Bearer"),))
case("recoup-bearer-only-spaces", "recoup", 401,
     recoup("Authorization header with Bearer token required"), credential=False,
     headers=(("Authorization", "Bearer    "),), raw=True)
case("recoup-x-api-key-and-authorization", "recoup", 401,
     recoup("Exactly one of x-api-key or Authorization must be provided"),
     headers=(("Authorization", "Bearer {rk}"),))
# An empty header counts as absent (README): neither credential.
case("recoup-empty-x-api-key", "recoup", 401,
     recoup("Exactly one of x-api-key or Authorization must be provided"), credential=False,
     headers=(("x-api-key", ""),), raw=True)
case("leanmcp-authorization-basic", "leanmcp", 401, leanmcp(401), credential=False,
     headers=(("Authorization", "Basic dXNlcjpwYXNz"),))
case("leanmcp-bearer-empty-token", "leanmcp", 401, leanmcp(401), credential=False,
     headers=(("Authorization", "Bearer"),))
# LeanMCP reads only Authorization (SPEC 5 row 1): its key in x-api-key is no credential.
case("leanmcp-key-in-x-api-key", "leanmcp", 401, leanmcp(401), credential=False,
     headers=(("x-api-key", "{lk}"),))
# CHOICE: nginx treats Authorization as a unique header: a second line is its own
# 400, raised while reading headers, so the server-level JSON (not the API's shape).
case("leanmcp-two-authorization-headers", "leanmcp", 400, NGINX_400,
     headers=(("Authorization", "Bearer {lk}"),), raw=True)
# Neptun reads only its cookie (SPEC 4 row 1): the token as a Bearer token is none.
case("neptun-token-as-bearer", "neptun", 401, neptun(401), credential=False,
     headers=(("Authorization", "Bearer {nt}"),))
# 8 KiB of other cookies (the line stays just under nginx's 8 KiB header-line
# buffer, large_client_header_buffers 4 8k), no neptun-session: 401.
_BIG_COOKIE = "; ".join(f"c{i:03d}={'x' * 60}" for i in range(122))
assert 8000 < len(_BIG_COOKIE) < 8192 - len("Cookie: \r\n")
case("neptun-8KiB-cookie-without-session", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", _BIG_COOKIE),))
# CHOICE: a Cookie line over nginx's 8 KiB header-line buffer is nginx's own
# "Request Header Or Cookie Too Large" (494), mapped to its JSON 400.
case("neptun-cookie-line-over-8KiB", "neptun", 400, NGINX_400,
     headers=(("Cookie", "neptun-session={nt}; big=" + "x" * 8192),))
# Cookie names match exactly (CHOICE: case-sensitively, as the `cookie` package does).
case("neptun-cookie-name-prefixed", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", "xneptun-session={nt}"),))
case("neptun-cookie-name-suffixed", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", "neptun-session2={nt}"),))
case("neptun-cookie-name-in-other-value", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", "a=neptun-session={nt}"),))
case("neptun-cookie-name-uppercase", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", "Neptun-Session={nt}"),))
case("neptun-cookie-empty-value", "neptun", 401, neptun(401), credential=False,
     headers=(("Cookie", "neptun-session="),))
# CHOICE: nginx's own checks of the message framing answer first, with the JSON of
# the server-level mappings: duplicate or non-numeric Content-Length, Content-Length
# with Transfer-Encoding (400), an unknown Transfer-Encoding (501).
case("recoup-two-content-length-headers", "recoup", 400, NGINX_400, raw=True,
     headers=(("Content-Length", "{len}"),))
case("neptun-content-length-not-a-number", "neptun", 400, NGINX_400, raw=True, length="abc")
case("leanmcp-content-length-and-chunked", "leanmcp", 400, NGINX_400, raw=True,
     headers=(("Transfer-Encoding", "chunked"),))
case("recoup-transfer-encoding-gzip", "recoup", 501, generic(501), raw=True, length=None,
     headers=(("Transfer-Encoding", "gzip"),))

# ---- paths -------------------------------------------------------------------------------

UUID_MSG = leanmcp(400, "Validation failed (uuid is expected)")
NEPTUN_PARAMS = neptun(400, "Bad Request. Invalid params.")
LONG = 4000

for api, path in [
    ("recoup", "/api/sessions/{s}%2Fx/chats/{c}"),
    ("neptun", "/api/users/{u}/chats/{n}%2F1"),
    ("leanmcp", "/api/chats/id/{l}%2F"),
]:
    case(f"{api}-percent-encoded-slash", api, 404, generic(404), path=path, raw=True)
for api, path in [
    ("recoup", "/api/sessions/{s}%00/chats/{c}"),
    ("neptun", "/api/users/{u}/chats/%00{n}"),
    ("leanmcp", "/api/chats/id/{l}%00"),
]:
    # A decoded NUL makes the path unknown (SPEC 1): nginx's own 400 for it
    # becomes the generic 404 (nginx/chatpatch.conf, /_chatpatch_error/400).
    case(f"{api}-percent-00", api, 404, generic(404), path=path, raw=True)
# `..` is an id like any other (README); nginx's normalised $uri is not used.
case("recoup-dotdot-as-chat-id", "recoup", 404, recoup("Chat not found"),
     path="/api/sessions/{s}/chats/..", raw=True)
case("recoup-dotdot-as-session-id", "recoup", 404, recoup("Session not found"),
     path="/api/sessions/../chats/{c}", raw=True)
case("neptun-dotdot-as-chat-id", "neptun", 400, NEPTUN_PARAMS,
     path="/api/users/{u}/chats/..", raw=True)
case("leanmcp-dotdot-segments", "leanmcp", 404, generic(404),
     path="/api/chats/id/../id/{l}", raw=True)
case("neptun-dotdot-segments", "neptun", 404, generic(404),
     path="/api/users/{u}/chats/../chats/{n}", raw=True)
# CHOICE: `..` above the root is refused by nginx's URI parser: its JSON 400.
case("recoup-dotdot-above-root", "recoup", 400, NGINX_400,
     path="/api/../../api/sessions/{s}/chats/{c}", raw=True)
for api, path in [
    ("recoup", "/api/sessions/{s}//chats/{c}"),
    ("neptun", "/api/users/{u}/chats//{n}"),
    ("leanmcp", "//api/chats/id/{l}"),
]:
    case(f"{api}-double-slash", api, 404, generic(404), path=path, raw=True)
for api in APIS:
    case(f"{api}-trailing-slash", api, 404, generic(404), path=PATHS[api] + "/", raw=True)
case("recoup-4000-char-session-id", "recoup", 404, recoup("Session not found"),
     path="/api/sessions/" + "s" * LONG + "/chats/{c}", raw=True)
case("recoup-4000-char-chat-id", "recoup", 404, recoup("Chat not found"),
     path="/api/sessions/{s}/chats/" + "c" * LONG, raw=True)
case("neptun-4000-digit-user-id", "neptun", 400, NEPTUN_PARAMS,
     path="/api/users/" + "9" * LONG + "/chats/{n}", raw=True)
case("neptun-4000-char-chat-id", "neptun", 400, NEPTUN_PARAMS,
     path="/api/users/{u}/chats/" + "x" * LONG, raw=True)
case("leanmcp-4000-char-id", "leanmcp", 400, UUID_MSG, path="/api/chats/id/" + "a" * LONG, raw=True)
# CHOICE: a malformed escape is refused by nginx's own URI parser (400, its JSON)
# before any location; README's 404 for `%zz` is what the worker does without nginx.
case("recoup-percent-zz", "recoup", 400, NGINX_400, path="/api/sessions/{s}%zz/chats/{c}", raw=True)
case("neptun-percent-zz", "neptun", 400, NGINX_400, path="/api/users/%zz{u}/chats/{n}", raw=True)
case("leanmcp-percent-truncated", "leanmcp", 400, NGINX_400, path="/api/chats/id/{l}%4", raw=True)
# Raw bytes in the request target: a raw NUL (not a decoded one) is nginx's 400
# (CHOICE: nginx refuses the request line itself);
# bytes that are not UTF-8 name no Recoup row (README).
case("recoup-raw-nul-in-path", "recoup", 400, NGINX_400,
     path="/api/sessions/{s}\x00/chats/{c}", raw=True)
case("recoup-raw-invalid-utf8-session-id", "recoup", 404, recoup("Session not found"),
     path="/api/sessions/{s}\xff/chats/{c}", raw=True)
case("recoup-percent-ff-session-id", "recoup", 404, recoup("Session not found"),
     path="/api/sessions/{s}%FF/chats/{c}", raw=True)
# Neptun ids: positive bigints written in ASCII digits only.
for name, path in [
    ("user-id-zero", "/api/users/0/chats/{n}"),
    ("user-id-negative", "/api/users/-{u}/chats/{n}"),
    ("chat-id-plus", "/api/users/{u}/chats/%2B{n}"),
    ("chat-id-bigint-overflow", "/api/users/{u}/chats/9223372036854775808"),
    ("chat-id-exponent", "/api/users/{u}/chats/1e3"),
    ("chat-id-arabic-indic-digit", "/api/users/{u}/chats/%D9%A3"),
    ("chat-id-space", "/api/users/{u}/chats/%20{n}"),
]:
    case(f"neptun-{name}", "neptun", 400, NEPTUN_PARAMS, path=path, raw=True)
for name, path in [
    ("uuid-braces", "/api/chats/id/%7B{l}%7D"),
    ("uuid-no-dashes", "/api/chats/id/{l_hex}"),
    ("uuid-non-hex", "/api/chats/id/{l_g}"),
    ("uuid-urn", "/api/chats/id/urn:uuid:{l}"),
]:
    case(f"leanmcp-{name}", "leanmcp", 400, UUID_MSG, path=path, raw=True)
case("leanmcp-missing-id", "leanmcp", 404, generic(404), path="/api/chats/id", raw=True)

# ---- methods -------------------------------------------------------------------------------

# issue 11: GET (and Recoup's OPTIONS) are operations; Allow lists each profile's.
ALLOW = {"recoup": "GET, PATCH, OPTIONS", "neptun": "GET, PATCH", "leanmcp": "GET, PATCH"}
for api in APIS:
    for method in ("PUT", "POST", "DELETE"):
        case(f"{api}-{method}", api, 405, NOT_ALLOWED[api], method=method, allow=ALLOW[api])
case("healthz-PATCH", "health", 405, generic(405), method="PATCH", path="/healthz",
     body=b"{}", credential=False, allow="GET")
# CHOICE: TRACE is refused by nginx itself (its JSON 405 from @chatpatch_405); SPEC's
# "405 with an Allow header" for a known path with another method holds there too.
case("recoup-TRACE", "recoup", 405, generic(405), method="TRACE", raw=True, body=b"",
     length=None, content_type=None, allow=ALLOW["recoup"])

IDS = [c.id for c in CASES]
assert len(IDS) == len(set(IDS)), "duplicate case ids"
assert len(CASES) >= 60


# ---- the rows ---------------------------------------------------------------------------------


@dataclass
class World:
    recoup_key: str
    session_id: str
    recoup_chat: str
    neptun_token: str
    neptun_user: int
    neptun_chat: int
    leanmcp_key: str
    leanmcp_chat: str
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        self.values = {
            "rk": self.recoup_key, "s": self.session_id, "c": self.recoup_chat,
            "nt": self.neptun_token, "u": self.neptun_user, "n": self.neptun_chat,
            "lk": self.leanmcp_key, "l": self.leanmcp_chat,
            "l_hex": self.leanmcp_chat.replace("-", ""),
            "l_g": "g" + self.leanmcp_chat[1:],
        }

    def keys(self):
        return {"recoup": self.recoup_chat, "neptun": self.neptun_chat,
                "leanmcp": self.leanmcp_chat}

    def snapshot(self, db):
        """Every column of the three target rows."""
        rows = {}
        for api, key in self.keys().items():
            rows[api] = fetch_one(db, f"SELECT * FROM {TABLE[api]} WHERE id = %s", (key,))
            assert rows[api] is not None, f"{api} row {key} missing"
        return rows


@pytest.fixture
def world(db):
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
        "INSERT INTO leanmcp.chats (user_id, title, summary, metadata) "
        "VALUES (%s, 'LeanMCP chat', 'a summary', '{\"k\": \"v\"}') RETURNING id",
        (leanmcp_user,)).fetchone()["id"])
    return World(recoup_key, session_id, recoup_chat, neptun_token, neptun_user, neptun_chat,
                 leanmcp_key, leanmcp_chat)


# ---- sending -------------------------------------------------------------------------------------


@dataclass
class Answer:
    """An HTTP answer from httpx or a raw socket: lower-cased header names."""

    status: int
    headers: list  # [(name, value)]
    body: bytes

    def get_list(self, name):
        return [v for k, v in self.headers if k == name]


def request_parts(c, w):
    """(method, path, headers list, body) of a case for world `w`."""
    path = (c.path or PATHS.get(c.api, "/")).format(**w.values)
    body = valid_body(c.api) if c.body is None else c.body
    headers = []
    if c.content_type is not None:
        headers.append(("Content-Type", c.content_type))
    if c.credential and c.api in CREDENTIAL:
        name, value = CREDENTIAL[c.api]
        headers.append((name, value.format(**w.values)))
    for name, value in c.headers:
        headers.append((name, value.format(len=len(body), **w.values)))
    return c.method, path, headers, body


def send_httpx(http, method, path, headers, body):
    resp = http.request(method, path, content=body, headers=headers)
    return Answer(resp.status_code, [(k.decode("latin-1").lower(), v.decode("latin-1"))
                                     for k, v in resp.headers.raw], resp.content)


def raw_head(base_url, method, path, headers, length, body, chunked=False):
    host = urlsplit(base_url).netloc
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    if length is AUTO and not chunked:
        lines.append(f"Content-Length: {len(body)}")
    elif length not in (AUTO, None):
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(base_url, timeout=10):
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    return sock


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def dechunk(data):
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return out
        out += data[:size]
        data = data[size + 2:]


def parse_answer(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP answer: {data[:500]!r}"
    lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    assert version.startswith("HTTP/1."), lines[0]
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        assert colon, f"bad header line {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    answer = Answer(int(status), headers, rest)
    if "chunked" in ",".join(answer.get_list("transfer-encoding")).lower():
        answer.body = dechunk(rest)
    elif answer.get_list("content-length"):
        n = int(answer.get_list("content-length")[0])
        assert len(rest) >= n, f"short body: {len(rest)} of {n} bytes"
        answer.body = rest[:n]
    return answer


def send_raw(base_url, c, method, path, headers, body):
    if c.chunks:
        payload = b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in c.chunks) + b"0\r\n\r\n"
        data = raw_head(base_url, method, path, headers, None, body, chunked=True) + payload
    else:
        data = raw_head(base_url, method, path, headers, c.length, body) + body
    with connect(base_url) as sock:
        sock.sendall(data)
        return parse_answer(read_all(sock))


# ---- checking ----------------------------------------------------------------------------------------


def assert_answer(answer, c, status, expect_body):
    where = f"{c.id}: status {answer.status}, body {answer.body[:300]!r}"
    assert answer.status == status, where
    assert answer.get_list("content-type") == ["application/json; charset=utf-8"], \
        f"{c.id}: headers {answer.headers}"
    assert answer.get_list("cache-control") == ["no-store"], f"{c.id}: headers {answer.headers}"
    ids = answer.get_list("x-request-id")
    assert len(ids) == 1 and REQUEST_ID_RE.match(ids[0]), f"{c.id}: X-Request-Id {ids}"
    try:
        got = json.loads(answer.body)
    except ValueError:
        raise AssertionError(f"{c.id}: body is not JSON: {answer.body[:300]!r}") from None
    if expect_body is not None:
        assert got == expect_body, f"{c.id}: body {got!r} != {expect_body!r}"
    cors = c.cors
    if cors is None:  # Recoup's own answers carry CORS, nginx's 413 in its location too
        cors = c.api == "recoup" and (status == 200 or (isinstance(expect_body, dict)
                                                        and expect_body.get("status") == "error"))
    if cors:
        assert answer.get_list("access-control-allow-origin") == ["*"], \
            f"{c.id}: headers {answer.headers}"
    if c.allow is not None:
        assert answer.get_list("allow") == [c.allow], f"{c.id}: headers {answer.headers}"
    return got


def check_content_length_larger(base_url, c, method, path, headers, body):
    """See the CHOICE at the content-length-larger cases."""
    allowed = {400: generic(400), 408: generic(408)}
    with connect(base_url, timeout=1.5) as sock:
        sock.sendall(raw_head(base_url, method, path, headers, c.length, body) + body)
        try:
            early = sock.recv(65536)
        except socket.timeout:
            early = None  # nginx still waits for the announced bytes: expected
        if early is None:
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(10)
            data = read_all(sock)
        else:
            sock.settimeout(10)
            data = early + (read_all(sock) if early else b"")
    if data == b"":
        return  # closed without an answer
    answer = parse_answer(data)
    assert answer.status in allowed, f"{c.id}: {answer.status} {answer.body[:300]!r}"
    assert_answer(answer, c, answer.status, allowed[answer.status])


def check_control(c, got, before, after):
    """A positive control: the field(s) in `c.expect` are in the answer and stored."""
    chat = got["chat"] if c.api in ("recoup", "neptun") else got
    column = {"title": "title", "name": "name", "metadata": "metadata"}
    expected_row = dict(before[c.api])
    for key, value in c.expect.items():
        assert chat[key] == value, f"{c.id}: answer {key}={chat[key]!r}"
        expected_row[column[key]] = value
    expected_row["updated_at"] = after[c.api]["updated_at"]
    expected_row["version"] = after[c.api]["version"]  # issue 11: a new version per update
    assert after[c.api]["version"] > before[c.api]["version"]
    assert after[c.api] == expected_row, f"{c.id}: row {after[c.api]} != {expected_row}"
    assert after[c.api]["updated_at"] > before[c.api]["updated_at"]
    for api in APIS:
        if api != c.api:
            assert after[api] == before[api], f"{c.id}: the {api} row changed"


@pytest.mark.parametrize("c", CASES, ids=IDS)
def test_malformed_request(http, db, base_url, world, c):
    before = world.snapshot(db)
    method, path, headers, body = request_parts(c, world)
    if c.special == "content-length-larger":
        check_content_length_larger(base_url, c, method, path, headers, body)
        time.sleep(0.2)  # nothing may reach the worker after the close either
    else:
        if c.raw:
            answer = send_raw(base_url, c, method, path, headers, body)
        else:
            answer = send_httpx(http, method, path, headers, body)
        got = assert_answer(answer, c, c.status, None if c.control else c.expect)
        if c.control:
            check_control(c, got, before, world.snapshot(db))
            return
    assert world.snapshot(db) == before, f"{c.id}: a malformed request changed a row"
