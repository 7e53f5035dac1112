"""bench/params.py: what `make bench` sends to each API, and THE table of
the values each API's statement is given for those requests.

Everything else about an API comes from the profiles and the engine the
worker is built from (build/bench/sqltext: the statement text, its
parameter count, the route, and the values the engine binds for a request:
`statement_values()`).

The data set (bench/data.sql) makes every id a function of a chat number i
in 1..BENCH_CHATS, so that wrk (Lua) and pgbench (integer arithmetic only)
can both go over all chats; `Seq` states such an id once for every side.
"""

import hashlib
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Seq:
    """An id of chat i: prefix + (offset + i), zero-padded to width digits."""

    prefix: str = ""
    offset: int = 0
    width: int = 0

    def text(self, i):
        return f"{self.prefix}{self.offset + i:0{self.width}d}"

    def is_integer(self):
        return self.prefix == "" and self.width == 0

    def pgbench_expr(self, var="i"):
        """pgbench \\set expression; only for integer ids."""
        assert self.is_integer()
        return f"{self.offset} + :{var}"

    def sql_expr(self, var="i"):
        """SQL text of the id from psql/pgbench variable :var."""
        if self.is_integer():
            return f"({self.offset} + :{var})::text"
        number = f"({self.offset} + :{var})::text"
        if self.width:
            number = f"lpad({number}, {self.width}, '0')"
        return f"'{self.prefix}' || {number}"

    def lua_spec(self):
        return f"seq {self.prefix or '-'} {self.offset} {self.width}"


@dataclass(frozen=True)
class Const:
    """The same value for every request."""

    value: str

    def text(self, i):
        return self.value

    def lua_spec(self):
        return f"const {self.value}"


@dataclass(frozen=True)
class Null:
    """SQL NULL: what the engine binds for a condition the request does not
    state (a PATCH without If-Match). pgbench cannot bind NULL, so the
    ceiling writes it into the statement as a literal (ceiling.py); value is
    None, as explain.py writes it."""

    value: object = None


@dataclass(frozen=True)
class PathParam:
    """A statement parameter bound to the request's path parameter number k."""

    k: int


@dataclass(frozen=True)
class Api:
    name: str
    table: str  # the chats table, to count updated rows
    credential: str  # plaintext; only its sha256 is stored and bound
    headers: tuple  # ((name, value), ...) with {credential} in values
    body: str
    path: tuple  # one Seq or Const per {} of the route
    ok_prefix: str  # how a 200 body starts
    error_401: str  # the body of 401 for an unknown credential
    hostile_400_prefix: str  # how the 400 body for an unknown key starts
    peer: bool = False  # bench/peer serves it too

    def request_headers(self, credential=None):
        cred = self.credential if credential is None else credential
        return [(k, v.format(credential=cred)) for k, v in self.headers]


TITLE = "Bench title"
MODEL = "bench/model-1"
SUMMARY = "Bench summary"
SYSTEM_MESSAGE = "msg_bench_system"
METADATA = '{"source":"bench","run":1}'
UNKNOWN_CREDENTIAL = "bench-unknown-key"

# Every body sets every field of its API, so that every field's parameters
# have a value and pgbench's values are the worker's. (The If-Match versions
# the bench's PATCHes do not send are NULL: params.Null.)
APIS = {
    "recoup": Api(
        name="recoup",
        table="recoup.chats",
        credential="bench-recoup-key",
        headers=(("x-api-key", "{credential}"), ("Content-Type", "application/json")),
        body=f'{{"title":"{TITLE}","modelId":"{MODEL}"}}',
        path=(Seq(offset=1000000), Seq(offset=2000000)),
        ok_prefix='{"chat":{"id":"',
        error_401='{"status":"error","error":"Unauthorized"}',
        hostile_400_prefix='{"status":"error","error":"Unrecognized key',
        peer=True,
    ),
    "neptun": Api(
        name="neptun",
        table="neptun.chat_conversations",
        credential="bench-neptun-session",
        headers=(("Cookie", "neptun-session={credential}"), ("Content-Type", "application/json")),
        body=f'{{"name":"{TITLE}"}}',
        path=(Const("1000000"), Seq(offset=1000000)),
        ok_prefix='{"chat":{"id":',
        error_401='{"statusCode":401,"statusMessage":"Unauthorized"}',
        hostile_400_prefix='{"statusCode":400,',
    ),
    "leanmcp": Api(
        name="leanmcp",
        table="leanmcp.chats",
        credential="bench-leanmcp-key",
        headers=(("Authorization", "Bearer {credential}"), ("Content-Type", "application/json")),
        body=(
            f'{{"title":"{TITLE}","summary":"{SUMMARY}","modelUsed":"{MODEL}",'
            f'"systemMessageId":"{SYSTEM_MESSAGE}","metadata":{METADATA}}}'
        ),
        path=(Seq(prefix="00000000-0000-4000-8000-", width=12),),
        ok_prefix='{"id":"',
        error_401='{"statusCode":401,"message":"Unauthorized","error":"Unauthorized"}',
        hostile_400_prefix='{"statusCode":400,"message":["property ',
    ),
}


def data_sql_args(chats):
    """psql's arguments that load bench/data.sql with `chats` chats per API
    and the credentials above."""
    return ["-v", f"n={chats}",
            "-v", f"recoup_key={APIS['recoup'].credential}",
            "-v", f"neptun_cookie={APIS['neptun'].credential}",
            "-v", f"leanmcp_key={APIS['leanmcp'].credential}",
            "-f", os.path.join(os.path.dirname(os.path.abspath(__file__)), "data.sql")]


def hash_text(key):
    """The credential as the worker binds it: sha256 as bytea text."""
    return "\\x" + hashlib.sha256(key.encode()).hexdigest()


# ---- the bare path ----------------------------------------------------------
# GET /healthz: nginx, a FastCGI connection, the worker and one `SELECT 1`,
# without an API's checks (issue 9's "bare path"). wrk checks every answer
# against these, so a change of the route or its body stops the bench.
HEALTH_PATH = "/healthz"
HEALTH_OK = '{"status":"ok"}'


# ---- the statement's values -------------------------------------------------
def statement_values(api, sqltext):
    """Statement parameter number -> its value for the bench's requests:
    a Const, a PathParam (the request's own id, which varies per chat), or
    Null (the engine binds NULL).

    The worker's own engine says what it binds (sqltext --values, given the
    request for chat 1); a value equal to one of that request's path ids is
    that id for every chat."""
    import json
    import subprocess

    a = APIS[api]
    route = subprocess.run([sqltext, "--route", api], check=True, capture_output=True,
                           text=True).stdout
    ids = [seq.text(1) for seq in a.path]
    path = route
    for i in ids:
        path = path.replace("{}", i, 1)
    headers = [f"{k}: {v}" for k, v in a.request_headers()]
    out = subprocess.run([sqltext, "--values", "PATCH", path, *headers], input=a.body,
                         check=True, capture_output=True, text=True).stdout
    values = {}
    for n, v in enumerate(json.loads(out), start=1):
        if v is None:
            values[n] = Null()
        else:
            values[n] = PathParam(ids.index(v)) if v in ids else Const(v)
    return values
