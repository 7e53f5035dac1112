"""LeanMCP: PATCH /api/chats/id/{id} (SPEC sections 1, 2 and 5).

Every test makes its own users, keys and chats (the `leanmcp_world` factory)
and checks the exact status, the exact NestJS-shaped JSON body, the common
headers, and the leanmcp.chats rows afterwards: every column unchanged after
an error; after a success the given fields changed (trimmed), the others not,
and updated_at later.

Numbers in `metadata` are compared exactly: HTTP bodies and jsonb text are
parsed with decimal.Decimal for fractions and exponents and int for integers.
They are stored and answered as the Node.js service holds them (issue 8):
JSON.parse makes each a double, JSON.stringify writes it back; the expected
texts below were written by Node.js itself.
"""

import decimal
import http.client
import json
import shlex
import subprocess
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import httpx
import pytest

import hosts
from conftest import (
    TIMESTAMP_RE,
    _uid,
    assert_json_headers,
    assert_json_response,
    assert_json_shape,
    fetch_all,
    fetch_one,
    json_body,
)
from helpers import (
    ES_WHITESPACE,
    JSON_MEDIA_TYPES,
    NON_JSON_MEDIA_TYPES,
    NON_STRING_JSON,
    api_ts,
    assert_updated_now,
    empty_id,
    leanmcp_error,
    send,
)

UNAUTHORIZED = (401, "Unauthorized", "Unauthorized")
FORBIDDEN = (403, "Forbidden resource", "Forbidden")
BAD_UUID = (400, "Validation failed (uuid is expected)", "Bad Request")
BAD_JSON = (400, "Unexpected token in JSON body", "Bad Request")
NOT_FOUND = (404, "Chat not found", "Not Found")
UNSUPPORTED = (415, "Unsupported Media Type", "Unsupported Media Type")
TOO_LARGE = (413, "Payload Too Large", "Payload Too Large")

CHAT_KEYS = ["id", "userId", "title", "isPublic", "status", "createdAt", "updatedAt",
             "messageCount", "showcased", "summary", "modelUsed", "systemMessageId", "metadata"]
ERROR_KEYS = ["statusCode", "message", "error"]

VALID = {"title": "Renamed"}
DEFAULT = object()  # "the world's chat-scoped key as Bearer"

DEMO_KEY = "demo-leanmcp-key"
DEMO_CHAT = "c1a83d84-7154-464c-bd19-a9f10e0a067f"


# ---- exact JSON -------------------------------------------------------------------------


def exact(text):
    """JSON text parsed with exact numbers (Decimal for fractions/exponents, int otherwise)."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=int)


def raw_keys(text):
    """The top-level keys of a JSON object in the order the text has them (duplicates kept)."""
    pairs = json.loads(text, object_pairs_hook=lambda p: p)
    assert isinstance(pairs, list), f"not a JSON object: {text[:300]!r}"
    return [k for k, _ in pairs]


def schema_err(*messages):
    return leanmcp_error(400, list(messages), "Bad Request")


# ---- data -------------------------------------------------------------------------------


def new_user(db):
    user = _uid("lm_user")
    db.execute("INSERT INTO leanmcp.users (id) VALUES (%s)", (user,))
    return user


def issue_key(db, user, scopes="{chat}"):
    return db.execute("SELECT leanmcp.issue_api_key(%s, %s::text[]) AS k", (user, scopes)).fetchone()["k"]


def revoke_key(db, key, when="now()"):
    db.execute(
        f"UPDATE leanmcp.api_keys SET revoked_at = {when} "
        "WHERE key_hash = sha256(convert_to(%s, 'UTF8'))",
        (key,),
    )


def new_chat(db, user, **columns):
    """Inserts a chat (extra keyword arguments are leanmcp.chats columns); returns its id as text."""
    cols = {"user_id": user, "title": "Original title", **columns}
    if "metadata" in cols and not isinstance(cols["metadata"], str):
        cols["metadata"] = json.dumps(cols["metadata"])
    names = ", ".join(cols)
    marks = ", ".join("%s::jsonb" if k == "metadata" else "%s" for k in cols)
    row = db.execute(f"INSERT INTO leanmcp.chats ({names}) VALUES ({marks}) RETURNING id::text AS id",
                     tuple(cols.values())).fetchone()
    return row["id"]


SELECT_CHAT = "SELECT *, id::text AS id_text, metadata::text AS metadata_text FROM leanmcp.chats"


def fetch_chat(db, chat_id):
    """Every column of a chat (plus id_text and metadata_text), or None."""
    return fetch_one(db, SELECT_CHAT + " WHERE id = %s::uuid", (chat_id,))


@dataclass
class LeanWorld:
    """User A: key (scope chat), noscope_key ({other}), revoked_key; chats
    active (chat_id, with every column set), plain (defaults), archived,
    deleted. User B: other_key and other_chat_id."""

    user_id: str
    key: str
    noscope_key: str
    revoked_key: str
    chat_id: str
    plain_chat_id: str
    archived_chat_id: str
    deleted_chat_id: str
    other_user_id: str
    other_key: str
    other_chat_id: str
    chat_ids: list = field(default_factory=list)

    @property
    def path(self):
        return chat_path(self.chat_id)

    def bearer(self, key=None):
        return {"authorization": f"Bearer {key or self.key}"}

    def snapshot(self, db):
        rows = fetch_all(db, SELECT_CHAT + " WHERE id::text = ANY(%s) ORDER BY id", (self.chat_ids,))
        assert len(rows) == len(self.chat_ids)
        return rows

    def new_chat(self, db, user=None, **columns):
        chat_id = new_chat(db, user or self.user_id, **columns)
        self.chat_ids.append(chat_id)
        return chat_id


def chat_path(chat_id):
    return f"/api/chats/id/{chat_id}"


FULL_CHAT = dict(
    title="Original title",
    is_public=True,
    status="active",
    created_at="2025-03-04T05:06:07.891234Z",
    updated_at="2025-03-05T06:07:08.912345Z",
    message_count=7,
    showcased=True,
    summary="Old summary",
    model_used="old-model",
    system_message_id="msg_old",
    metadata={"old": {"nested": [1, 2.5, "x"]}, "keep": True},
)


def make_world(db):
    user = new_user(db)
    key = issue_key(db, user)
    noscope_key = issue_key(db, user, "{other}")
    revoked_key = issue_key(db, user)
    revoke_key(db, revoked_key)
    other_user = new_user(db)
    other_key = issue_key(db, other_user)
    chats = [
        new_chat(db, user, **FULL_CHAT),
        new_chat(db, user, title="Plain chat"),
        new_chat(db, user, title="Archived chat", status="archived",
                 updated_at="2025-01-01T00:00:00.000001Z", summary="arch"),
        new_chat(db, user, title="Deleted chat", status="deleted",
                 updated_at="2025-01-01T00:00:00.5Z"),
        new_chat(db, other_user, title="Other user's chat", metadata={"o": 1}),
    ]
    return LeanWorld(user, key, noscope_key, revoked_key, *chats[:4], other_user, other_key,
                     chats[4], chat_ids=list(chats))


@pytest.fixture
def leanmcp_world(db):
    """A factory: each call makes a fresh LeanWorld."""
    return lambda: make_world(db)


@pytest.fixture
def w(leanmcp_world):
    return leanmcp_world()


# ---- requests ------------------------------------------------------------------------------


def raw_send(base_url, method, path, headers, body):
    """A request through http.client, which (unlike httpx) sends header values as
    given (e.g. with trailing spaces); returned as an httpx.Response."""
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        content = r.read()
        return httpx.Response(r.status, headers=r.getheaders(), content=content,
                              request=httpx.Request(method, base_url + path))
    finally:
        conn.close()


def assert_error(resp, expected):
    """Status, headers, the exact NestJS body and its key order."""
    status, message, reason = expected
    assert_json_response(resp, status, leanmcp_error(status, message, reason))
    assert raw_keys(resp.content) == ERROR_KEYS, resp.content


def check_error(http, db, w, expected, body=VALID, headers=DEFAULT, path=None,
                content_type="application/json", ensure_ascii=True):
    """One request that must fail with `expected` ((status, message, reason) or a
    whole body dict); no chat of the world may change."""
    if headers is DEFAULT:
        headers = w.bearer()
    before = w.snapshot(db)
    resp = send(http, path or w.path, body, headers, content_type, ensure_ascii=ensure_ascii)
    if isinstance(expected, dict):
        assert_json_response(resp, expected["statusCode"], expected)
        assert raw_keys(resp.content) == ERROR_KEYS, resp.content
    else:
        assert_error(resp, expected)
    assert w.snapshot(db) == before, "a failed request changed a chat"
    return resp


def expected_chat(got, row):
    return {
        "id": row["id_text"],
        "userId": row["user_id"],
        "title": row["title"],
        "isPublic": row["is_public"],
        "status": row["status"],
        "createdAt": api_ts(got.get("createdAt"), row["created_at"]),
        "updatedAt": api_ts(got.get("updatedAt"), row["updated_at"]),
        "messageCount": row["message_count"],
        "showcased": row["showcased"],
        "summary": row["summary"],
        "modelUsed": row["model_used"],
        "systemMessageId": row["system_message_id"],
        "metadata": exact(row["metadata_text"]),
    }


def assert_chat_response(resp, row):
    """200, headers, raw key order, and the body equal to the row (numbers exact)."""
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    assert_json_headers(resp)
    assert raw_keys(resp.content) == CHAT_KEYS, f"key order {raw_keys(resp.content)}"
    got = exact(resp.content)
    for k in ("createdAt", "updatedAt"):
        assert isinstance(got[k], str) and TIMESTAMP_RE.match(got[k]), got[k]
    assert got == expected_chat(got, row)
    return got


COLUMNS = {"title": "title", "summary": "summary", "modelUsed": "model_used",
           "systemMessageId": "system_message_id", "metadata": "metadata"}


def check_success(http, db, w, body, chat_id=None, headers=DEFAULT, path=None,
                  content_type="application/json", ensure_ascii=True, touched=True, **expect):
    """One request that must succeed. `expect` maps API field names to the stored
    values (metadata: an exact() value); the other columns must not change,
    updated_at must be later (or unchanged when nothing was given, touched=False)."""
    chat_id = chat_id or w.chat_id
    if headers is DEFAULT:
        headers = w.bearer()
    before = fetch_chat(db, chat_id)
    others = [r for r in w.snapshot(db) if r["id_text"] != chat_id]
    resp = send(http, path or chat_path(chat_id), body, headers, content_type, ensure_ascii=ensure_ascii)
    after = fetch_chat(db, chat_id)
    got = assert_chat_response(resp, after)

    expected_row = dict(before)
    for name, value in expect.items():
        column = COLUMNS[name]
        if column == "metadata":
            assert exact(after["metadata_text"]) == value, after["metadata_text"][:500]
            assert got["metadata"] == value
            expected_row["metadata"] = after["metadata"]
            expected_row["metadata_text"] = after["metadata_text"]
        else:
            expected_row[column] = value
            assert got[name] == value
    if touched:
        expected_row["updated_at"] = after["updated_at"]
        assert_updated_now(db, before, after)
        expected_row["version"] = after["version"]  # issue 11: a new version on every update
        assert after["version"] > before["version"]
    assert after == expected_row
    assert [r for r in w.snapshot(db) if r["id_text"] != chat_id] == others
    return resp


# ---- success ----------------------------------------------------------------------------------


def test_title_only(http, db, w):
    check_success(http, db, w, {"title": "Renamed chat"}, title="Renamed chat")


def test_every_field(http, db, w):
    body = {"title": "T", "summary": "S", "modelUsed": "claude-3-sonnet",
            "systemMessageId": "msg_1", "metadata": {"a": 1}}
    check_success(http, db, w, body, title="T", summary="S", modelUsed="claude-3-sonnet",
                  systemMessageId="msg_1", metadata={"a": 1})


def test_every_field_trimmed(http, db, w):
    body = {"title": "  T  ", "summary": "\t S \n", "modelUsed": "\u3000m\ufeff",
            "systemMessageId": "\u00a0id\u2028"}
    check_success(http, db, w, body, title="T", summary="S", modelUsed="m", systemMessageId="id")


def test_chat_with_defaults(http, db, w):
    resp = check_success(http, db, w, {"summary": "first"}, chat_id=w.plain_chat_id, summary="first")
    got = resp.json()
    assert (got["isPublic"], got["status"], got["messageCount"], got["showcased"]) == (False, "active", 0, False)
    assert (got["modelUsed"], got["systemMessageId"], got["metadata"]) == (None, None, {})


def test_full_chat_values_in_response(http, db, w):
    resp = check_success(http, db, w, {"modelUsed": "new-model"}, modelUsed="new-model")
    got = resp.json()
    assert got["id"] == w.chat_id and got["userId"] == w.user_id
    assert got["isPublic"] is True and got["showcased"] is True and got["messageCount"] == 7
    assert got["createdAt"] == "2025-03-04T05:06:07.891Z"
    assert got["title"] == "Original title" and got["summary"] == "Old summary"
    assert got["metadata"] == {"old": {"nested": [1, 2.5, "x"]}, "keep": True}


def test_archived_chat_is_updatable(http, db, w):
    resp = check_success(http, db, w, {"title": "Still here"}, chat_id=w.archived_chat_id,
                         title="Still here")
    assert resp.json()["status"] == "archived"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_any_case(http, db, w, scheme):
    check_success(http, db, w, {"title": scheme}, headers={"authorization": f"{scheme} {w.key}"},
                  title=scheme)


@pytest.mark.parametrize("scopes", ["{chat,other}", "{other,chat}"])
def test_key_with_several_scopes(http, db, w, scopes):
    key = issue_key(db, w.user_id, scopes)
    check_success(http, db, w, {"title": scopes}, headers=w.bearer(key), title=scopes)


def test_key_revoked_in_future_still_works(http, db, w):
    revoke_key(db, w.key, "now() + interval '1 day'")
    check_success(http, db, w, {"title": "still valid"}, title="still valid")


def test_x_api_key_header_is_ignored(http, db, w):
    """LeanMCP knows only Authorization (seed): another header does not get in the way."""
    check_success(http, db, w, {"title": "x-api-key ignored"},
                  headers={**w.bearer(), "x-api-key": "whatever"}, title="x-api-key ignored")


def test_upper_case_uuid_accepted_response_id_lower(http, db, w):
    resp = check_success(http, db, w, {"title": "upper"}, path=chat_path(w.chat_id.upper()),
                         title="upper")
    assert resp.json()["id"] == w.chat_id
    assert resp.json()["id"] == resp.json()["id"].lower()


def test_mixed_case_uuid_accepted(http, db, w):
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(w.chat_id))
    resp = check_success(http, db, w, {"title": "mixed"}, path=chat_path(mixed), title="mixed")
    assert resp.json()["id"] == w.chat_id


def test_percent_encoded_id_decoded_once(http, db, w):
    path = chat_path("".join(f"%{ord(c):02X}" for c in w.chat_id))
    check_success(http, db, w, {"title": "decoded"}, path=path, title="decoded")


def test_query_string_ignored(http, db, w):
    check_success(http, db, w, {"title": "q"}, path=w.path + "?title=ignored&id=x", title="q")


@pytest.mark.parametrize("content_type", JSON_MEDIA_TYPES)
def test_json_content_types_accepted(http, db, w, content_type):
    check_success(http, db, w, {"title": content_type}, content_type=content_type, title=content_type)


@pytest.mark.parametrize("value", ["", "  ", "\u00a0", ES_WHITESPACE],
                         ids=["empty", "spaces", "nbsp", "every-es-space"])
def test_summary_empty_allowed_stored_empty(http, db, w, value):
    check_success(http, db, w, {"summary": value}, summary="")


@pytest.mark.parametrize("name", ["summary", "modelUsed", "systemMessageId"])
def test_null_clears_nullable_field(http, db, w, name):
    check_success(http, db, w, {name: None}, **{name: None})


def test_all_nullable_fields_null(http, db, w):
    check_success(http, db, w, {"summary": None, "modelUsed": None, "systemMessageId": None},
                  summary=None, modelUsed=None, systemMessageId=None)


def test_null_then_set_again(http, db, w):
    check_success(http, db, w, {"modelUsed": None}, modelUsed=None)
    check_success(http, db, w, {"modelUsed": " m2 "}, modelUsed="m2")


@pytest.mark.parametrize(
    "sent,stored",
    [
        ("  Ünïcødé 😀 标题  ", "Ünïcødé 😀 标题"),
        ("\u00a0\u2028Hi there\u3000\ufeff", "Hi there"),
        (ES_WHITESPACE + "all of them" + ES_WHITESPACE, "all of them"),
        ("a \u00a0 b", "a \u00a0 b"),
        ("\u200bzero width\u200b", "\u200bzero width\u200b"),
        ("\u0085", "\u0085"),
        ("\u180e", "\u180e"),
        ("😀", "😀"),
    ],
    ids=["unicode", "nbsp-ls-ideographic-bom", "every-es-space", "inner", "zwsp", "nel-only",
         "mvs-only", "emoji"],
)
@pytest.mark.parametrize("ascii_escaped", [True, False], ids=["escaped", "raw-utf8"])
def test_title_trimmed_es_set(http, db, w, sent, stored, ascii_escaped):
    check_success(http, db, w, {"title": sent}, ensure_ascii=ascii_escaped, title=stored)


@pytest.mark.parametrize(
    "raw,stored",
    [
        (rb'{"title":"\ud83d\ude00"}', "😀"),
        (rb'{"title":"\u00e9t\u00E9"}', "été"),
        (rb'{"title":"a\/b\\c\"d"}', 'a/b\\c"d'),
        (b' \n{"title":"ws around"}\n ', "ws around"),
    ],
    ids=["surrogate-pair", "escapes", "slash-backslash-quote", "outer-ws"],
)
def test_json_escapes_decoded(http, db, w, raw, stored):
    check_success(http, db, w, raw, title=stored)


def test_empty_object_changes_nothing(http, db, w):
    before = fetch_chat(db, w.chat_id)
    resp = check_success(http, db, w, {}, touched=False)
    assert fetch_chat(db, w.chat_id) == before
    assert resp.json()["updatedAt"] == api_ts(resp.json()["updatedAt"], before["updated_at"])
    assert resp.json()["updatedAt"] in ("2025-03-05T06:07:08.912Z", "2025-03-05T06:07:08.913Z")


def test_empty_object_on_archived_chat(http, db, w):
    before = fetch_chat(db, w.archived_chat_id)
    check_success(http, db, w, b" { } ", chat_id=w.archived_chat_id, touched=False)
    assert fetch_chat(db, w.archived_chat_id) == before


def test_second_update_keeps_first(http, db, w):
    first = check_success(http, db, w, {"title": "one"}, title="one")
    second = check_success(http, db, w, {"summary": "two"}, summary="two")
    assert second.json()["title"] == "one"
    assert second.json()["updatedAt"] >= first.json()["updatedAt"]


# ---- metadata --------------------------------------------------------------------------------

# body metadata -> what Node.js's JSON.stringify(JSON.parse(...)) gives
METADATA_CASES = {
    "empty": ("{}", "{}"),
    "nested": ('{"a":{"b":{"c":[1,[2,[3,{"d":null}]],true,false]}},"e":[]}',
               '{"a":{"b":{"c":[1,[2,[3,{"d":null}]],true,false]}},"e":[]}'),
    "unicode": ('{"emoji":"😀","cjk":"标题","é":"ü","rtl":"עברית","esc":"\\u00e9\\ud83d\\ude00\\n\\t"}',
                '{"emoji":"😀","cjk":"标题","é":"ü","rtl":"עברית","esc":"é😀\\n\\t"}'),
    "point-one": ('{"x":0.1}', '{"x":0.1}'),
    "huge-exponent": ('{"x":1e400}', '{"x":null}'),
    "tiny-exponent": ('{"x":1e-400}', '{"x":0}'),
    "big-integer": ('{"x":123456789012345678901234567890}', '{"x":1.2345678901234568e+29}'),
    "negative-big": ('{"x":-123456789012345678901234567890.123456789}',
                     '{"x":-1.2345678901234568e+29}'),
    "many-numbers": ('{"n":[0,-0.5,1.0,1.50,2E3,-7e-3,9007199254740993,3.141592653589793238462643383279]}',
                     '{"n":[0,-0.5,1,1.5,2000,-0.007,9007199254740992,3.141592653589793]}'),
    "strings-that-look-like-numbers": ('{"s":"1e400","t":"0.1"}', '{"s":"1e400","t":"0.1"}'),
    "key-order-and-types": ('{"zeta":1,"alpha":"x","mid":[{}],"b":false,"a":null}',
                            '{"zeta":1,"alpha":"x","mid":[{}],"b":false,"a":null}'),
    # issue 8: numbers PostgreSQL's numeric cannot hold, or would write out in full
    "beyond-double": ('{"x":1e131071,"y":1e131072,"z":1e-16384,"w":1e99999999999999999999}',
                      '{"x":null,"y":null,"z":0,"w":null}'),
    "exponent-forms": ('{"a":1e21,"b":1e20,"c":1e-7,"d":1E+2,"e":-0}',
                       '{"a":1e+21,"b":100000000000000000000,"c":1e-7,"d":100,"e":0}'),
}


@pytest.mark.parametrize("text,node", METADATA_CASES.values(), ids=METADATA_CASES.keys())
def test_metadata_stored_and_answered_as_node_does(http, db, w, text, node):
    body = ('{"metadata":' + text + "}").encode()
    resp = check_success(http, db, w, body, metadata=exact(node))
    # What jsonb holds is the same value, and the answer writes every number
    # as Node.js would (compared as text, number by number).
    stored = fetch_chat(db, w.chat_id)["metadata_text"]
    assert exact(resp.content)["metadata"] == exact(stored) == exact(node)
    text = resp.content.decode()
    assert text.endswith("}") and '"metadata":' in text, text[:300]
    answered = text[text.rindex('"metadata":') + len('"metadata":') : -1]  # the last key
    assert numbers_in(answered) == numbers_in(node), answered


def numbers_in(text):
    """The number tokens of a JSON text, outside strings, in order."""
    import re

    outside = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    return sorted(re.findall(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?", outside))


def test_metadata_numbers_as_doubles(http, db, w):
    body = b'{"metadata":{"big":123456789012345678901234567890,"p":0.1,"huge":1e400}}'
    resp = check_success(http, db, w, body,
                         metadata={"big": decimal.Decimal("1.2345678901234568e+29"),
                                   "p": decimal.Decimal("0.1"), "huge": None})
    text = resp.content.decode()
    assert '"big":1.2345678901234568e+29' in text and '"huge":null' in text, text
    row = db.execute("SELECT metadata->>'big' AS big, metadata->>'p' AS p, "
                     "metadata->'huge' AS huge FROM leanmcp.chats "
                     "WHERE id = %s::uuid", (w.chat_id,)).fetchone()
    assert row == {"big": "123456789012345680000000000000", "p": "0.1", "huge": None}


def test_metadata_replaces_whole(http, db, w):
    check_success(http, db, w, {"metadata": {"new": 2}}, metadata={"new": 2})
    assert exact(fetch_chat(db, w.chat_id)["metadata_text"]) == {"new": 2}


def test_metadata_empty_object_clears_and_touches(http, db, w):
    check_success(http, db, w, {"metadata": {}}, metadata={})


def test_metadata_raw_utf8(http, db, w):
    meta = {"ключ": "значение 😀", "k": ["\u00a0 untrimmed \u00a0"]}
    check_success(http, db, w, {"metadata": meta}, ensure_ascii=False, metadata=meta)


def test_metadata_depth_32_accepted(http, db, w):
    meta = '{"a":' * 30 + '{}' + "}" * 30  # 31 levels; inside the top-level object: 32
    body = ('{"metadata":' + meta + "}").encode()
    assert body.count(b"{") == 32
    check_success(http, db, w, body, metadata=exact(meta))


def test_metadata_depth_33_rejected(http, db, w):
    meta = '{"a":' * 31 + '{}' + "}" * 31  # 32 levels; with the top level: 33
    body = ('{"metadata":' + meta + "}").encode()
    assert body.count(b"{") == 33
    check_error(http, db, w, BAD_JSON, body=body)


# ---- authentication: row 1 -------------------------------------------------------------------


def test_no_authorization_401(http, db, w):
    check_error(http, db, w, UNAUTHORIZED, headers={})


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token {key}", "Bearer", "{key}", "Bearer:{key}", "Bearer{key}",
     "Digest username=x", "ApiKey {key}"],
)
def test_authorization_not_bearer_401(http, db, w, authorization):
    check_error(http, db, w, UNAUTHORIZED, headers={"authorization": authorization.format(key=w.key)})


@pytest.mark.parametrize("value", ["Bearer ", "Bearer   ", "bearer \t"])
def test_empty_bearer_token_401(http, base_url, db, w, value):
    before = w.snapshot(db)
    resp = raw_send(base_url, "PATCH", w.path,
                    [("Authorization", value), ("Content-Type", "application/json")],
                    json_body(VALID))
    assert_error(resp, UNAUTHORIZED)
    assert w.snapshot(db) == before


def test_x_api_key_alone_401(http, db, w):
    check_error(http, db, w, UNAUTHORIZED, headers={"x-api-key": w.key})


def test_unknown_key_401(http, db, w):
    check_error(http, db, w, UNAUTHORIZED, headers=w.bearer(f"lm_{uuid.uuid4().hex}"))


def test_key_prefix_or_extension_401(http, db, w):
    check_error(http, db, w, UNAUTHORIZED, headers=w.bearer(w.key + "0"))
    check_error(http, db, w, UNAUTHORIZED, headers=w.bearer(w.key[:-1]))
    check_error(http, db, w, UNAUTHORIZED, headers=w.bearer(w.key.upper()))


def test_revoked_key_401(http, db, w):
    check_error(http, db, w, UNAUTHORIZED, headers=w.bearer(w.revoked_key))


def test_key_revoked_in_past_401(http, db, w):
    revoke_key(db, w.key, "now() - interval '1 day'")
    check_error(http, db, w, UNAUTHORIZED)


def test_revocation_takes_effect_at_once(http, db, w):
    check_success(http, db, w, {"title": "before revoke"}, title="before revoke")
    revoke_key(db, w.key)
    check_error(http, db, w, UNAUTHORIZED)


def test_key_stored_only_as_sha256(db, w):
    rows = db.execute(
        "SELECT key_hash = sha256(convert_to(%s, 'UTF8')) AS ok, scopes FROM leanmcp.api_keys "
        "WHERE user_id = %s AND revoked_at IS NULL ORDER BY scopes", (w.key, w.user_id)).fetchall()
    assert rows == [{"ok": True, "scopes": ["chat"]}, {"ok": False, "scopes": ["other"]}]


# ---- scope: row 2 ----------------------------------------------------------------------------


def test_scope_missing_403(http, db, w):
    check_error(http, db, w, FORBIDDEN, headers=w.bearer(w.noscope_key))


def test_empty_scopes_403(http, db, w):
    check_error(http, db, w, FORBIDDEN, headers=w.bearer(issue_key(db, w.user_id, "{}")))


def test_scope_case_matters_403(http, db, w):
    check_error(http, db, w, FORBIDDEN, headers=w.bearer(issue_key(db, w.user_id, "{Chat,chats}")))


@pytest.mark.parametrize(
    "path,body,content_type",
    [
        ("/api/chats/id/nope", VALID, "application/json"),
        (None, b"{bad", "application/json"),
        (None, {"title": ""}, "application/json"),
        (None, {"foo": 1}, "application/json"),
        (None, VALID, "text/plain"),
        ("/api/chats/id/nope", b"{bad", "text/plain"),
        ("missing", VALID, "application/json"),
        ("other", VALID, "application/json"),
        ("deleted", VALID, "application/json"),
    ],
    ids=["bad-id", "bad-json", "empty-title", "unknown-prop", "text-plain", "everything-bad",
         "missing-chat", "other-users-chat", "deleted-chat"],
)
def test_order_scope_before_everything_else_403(http, db, w, path, body, content_type):
    path = {"missing": chat_path(uuid.uuid4()), "other": chat_path(w.other_chat_id),
            "deleted": chat_path(w.deleted_chat_id)}.get(path, path)
    check_error(http, db, w, FORBIDDEN, headers=w.bearer(w.noscope_key), path=path, body=body,
                content_type=content_type)


# ---- id: row 3 --------------------------------------------------------------------------------


def _bad_ids(good):
    return {
        "nope": "nope",
        "braces": "{" + good + "}",
        "braces-encoded": "%7B" + good + "%7D",
        "no-dashes": good.replace("-", ""),
        "urn": "urn:uuid:" + good,
        "35-chars": good[:-1],
        "37-chars": good + "0",
        "37-chars-hex-front": "a" + good,
        "non-hex": "g" + good[1:],
        "non-hex-last": good[:-1] + "z",
        "dashes-moved": good[:7] + "-" + good[7] + good[9:],
        "extra-dash": good[:8] + "--" + good[9:],
        "spaces": " " + good[1:],
        "encoded-space": "%20" + good,
        "double-encoded": "%25" + f"{ord(good[0]):02X}" + good[1:],
        "underscores": good.replace("-", "_"),
        "numeric": "12345",
        "unicode-digit": "\u0661" + good[1:],
    }


BAD_ID_NAMES = list(_bad_ids(str(uuid.UUID(int=0))).keys())


@pytest.mark.parametrize("name", BAD_ID_NAMES)
def test_id_not_uuid_400(http, db, w, name):
    bad = _bad_ids(w.chat_id)[name]
    path = "/api/chats/id/" + (bad if "%" in bad else quote(bad, safe=":{}"))
    check_error(http, db, w, BAD_UUID, path=path)


def test_order_bad_id_before_body_400(http, db, w):
    check_error(http, db, w, BAD_UUID, path="/api/chats/id/nope", body=b"{bad")
    check_error(http, db, w, BAD_UUID, path="/api/chats/id/nope", body={"foo": 1})
    check_error(http, db, w, BAD_UUID, path="/api/chats/id/nope", content_type="text/plain")


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Basic x"}, {"authorization": "Bearer lm_unknown"}, "revoked"],
    ids=["none", "basic", "unknown", "revoked"],
)
def test_order_auth_before_id_and_body_401(http, db, w, headers):
    if headers == "revoked":
        headers = w.bearer(w.revoked_key)
    check_error(http, db, w, UNAUTHORIZED, headers=headers, path="/api/chats/id/nope", body=b"{bad",
                content_type="text/plain")
    check_error(http, db, w, UNAUTHORIZED, headers=headers, path=chat_path(uuid.uuid4()),
                body={"foo": 1})


# ---- body: media type and size ------------------------------------------------------------------


@pytest.mark.parametrize("content_type", NON_JSON_MEDIA_TYPES)
def test_non_json_content_type_415(http, db, w, content_type):
    check_error(http, db, w, {"statusCode": 415, "message": "Unsupported Media Type",
                              "error": "Unsupported Media Type"}, content_type=content_type)


def test_order_415_before_json_parse(http, db, w):
    check_error(http, db, w, UNSUPPORTED, body=b"{bad", content_type="text/plain")


def test_order_415_before_chat_lookup(http, db, w):
    check_error(http, db, w, UNSUPPORTED, path=chat_path(uuid.uuid4()), content_type="text/plain")
    check_error(http, db, w, UNSUPPORTED, path=chat_path(w.other_chat_id), content_type="text/plain")


def test_70kb_body_413(http, db, w):
    body = json.dumps({"title": "a" * 70 * 1024}).encode()
    check_error(http, db, w, TOO_LARGE, body=body)


def test_70kb_metadata_413(http, db, w):
    body = json.dumps({"metadata": {"k": "b" * 70 * 1024}}).encode()
    check_error(http, db, w, TOO_LARGE, body=body)


@pytest.mark.parametrize("size,status", [(65536, 200), (65537, 413)])
def test_body_size_limit_edge(http, db, w, size, status):
    title = "a" * (size - len(b'{"title":""}'))
    body = json.dumps({"title": title}, separators=(",", ":")).encode()
    assert len(body) == size
    if status == 200:
        check_success(http, db, w, body, title=title)
    else:
        check_error(http, db, w, TOO_LARGE, body=body)


# ---- body: JSON (row 4) --------------------------------------------------------------------------

INVALID_BODIES = {
    "empty": b"",
    "whitespace": b"  \n",
    "unterminated": b'{"title":"x"',
    "trailing-garbage": b'{"title":"x"} x',
    "trailing-comma-garbage": b'{"title":"x"},',
    "two-documents": b'{"title":"x"}{}',
    "top-level-array": b'[{"title":"x"}]',
    "top-level-empty-array": b"[]",
    "top-level-string": b'"title"',
    "top-level-null": b"null",
    "top-level-number": b"1",
    "top-level-true": b"true",
    "NaN-value": b'{"title":NaN}',
    "Infinity-metadata": b'{"metadata":{"x":Infinity}}',
    "single-quotes": b"{'title':'x'}",
    "unquoted-key": b'{title:"x"}',
    "trailing-comma": b'{"title":"x",}',
    "comment": b'{"title":"x"/* c */}',
    "leading-zero": b'{"metadata":{"x":01}}',
    "plus-number": b'{"metadata":{"x":+1}}',
    "bare-fraction": b'{"metadata":{"x":.5}}',
    "dangling-point": b'{"metadata":{"x":1.}}',
    "hex-number": b'{"metadata":{"x":0x10}}',
    "bad-escape": b'{"title":"\\x41"}',
    "raw-newline-in-string": b'{"title":"a\nb"}',
    "raw-nul-byte": b'{"title":"a\x00b"}',
    "escaped-nul": b'{"title":"a\\u0000b"}',
    "escaped-nul-in-metadata": b'{"metadata":{"k":"\\u0000"}}',
    "escaped-nul-in-metadata-key": b'{"metadata":{"\\u0000":1}}',
    "lone-high-surrogate": b'{"title":"\\ud800"}',
    "lone-low-surrogate-in-metadata": b'{"metadata":{"k":"\\udc00"}}',
    "invalid-utf8": b'{"title":"\xff"}',
    "invalid-utf8-in-metadata": b'{"metadata":{"k":"\xc3"}}',
    "overlong-utf8": b'{"title":"\xc0\xaf"}',
    "depth-33-arrays": b'{"metadata":{"a":' + b"[" * 31 + b"]" * 31 + b"}}",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_json_400(http, db, w, body):
    check_error(http, db, w, BAD_JSON, body=body)


def test_depth_32_arrays_accepted(http, db, w):
    text = '{"a":' + "[" * 30 + "]" * 30 + "}"
    body = ('{"metadata":' + text + "}").encode()
    check_success(http, db, w, body, metadata=exact(text))


def test_order_bad_json_before_missing_chat_400(http, db, w):
    check_error(http, db, w, BAD_JSON, body=b"{bad", path=chat_path(uuid.uuid4()))
    check_error(http, db, w, BAD_JSON, body=b"", path=chat_path(w.deleted_chat_id))


# ---- body: schema (row 5) -------------------------------------------------------------------------

WRONG_TYPES = {k: text for k, (text, _) in NON_STRING_JSON.items()
               if k not in ("null", "integer", "exponent")}


@pytest.mark.parametrize("value", list(WRONG_TYPES.values()) + ["null"],
                         ids=list(WRONG_TYPES.keys()) + ["null"])
def test_title_must_be_a_string(http, db, w, value):
    check_error(http, db, w, schema_err("title must be a string"), body=f'{{"title":{value}}}'.encode())


@pytest.mark.parametrize("name", ["summary", "modelUsed", "systemMessageId"])
@pytest.mark.parametrize("value", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_nullable_field_must_be_a_string(http, db, w, name, value):
    check_error(http, db, w, schema_err(f"{name} must be a string"),
                body=f'{{"{name}":{value}}}'.encode())


EMPTY_VALUES = ["", " ", "   ", "\u00a0", " \u00a0 ", "\ufeff", "\u3000", ES_WHITESPACE] + list(ES_WHITESPACE)


@pytest.mark.parametrize("value", EMPTY_VALUES, ids=empty_id)
def test_title_should_not_be_empty(http, db, w, value):
    check_error(http, db, w, schema_err("title should not be empty"), body={"title": value})


@pytest.mark.parametrize("value", ["\u00a0", "\u2028", "\ufeff", "\u3000"], ids=empty_id)
def test_title_should_not_be_empty_raw_utf8(http, db, w, value):
    check_error(http, db, w, schema_err("title should not be empty"), body={"title": f" {value} "},
                ensure_ascii=False)


@pytest.mark.parametrize("name", ["modelUsed", "systemMessageId"])
@pytest.mark.parametrize("value", ["", "  ", "\u00a0", "\t\n", ES_WHITESPACE], ids=empty_id)
def test_field_should_not_be_empty(http, db, w, name, value):
    check_error(http, db, w, schema_err(f"{name} should not be empty"), body={name: value})


@pytest.mark.parametrize(
    "value",
    ["[]", '[{"a":1}]', '"x"', '""', "null", "0", "1.5", "true", "false"],
    ids=["array", "array-of-object", "string", "empty-string", "null", "zero", "float", "true",
         "false"],
)
def test_metadata_must_be_an_object(http, db, w, value):
    check_error(http, db, w, schema_err("metadata must be an object"),
                body=f'{{"metadata":{value}}}'.encode())


SCHEMA_CASES = {
    "unknown-only": (b'{"foo":1}', ["property foo should not exist"]),
    "unknown-null": (b'{"foo":null}', ["property foo should not exist"]),
    "unknown-with-valid": (b'{"title":"ok","foo":1}', ["property foo should not exist"]),
    "two-unknown-body-order": (b'{"zed":1,"alpha":2}',
                               ["property zed should not exist", "property alpha should not exist"]),
    "unknown-around-fields": (b'{"z":1,"title":"ok","a":2,"summary":"s","m":3}',
                              ["property z should not exist", "property a should not exist",
                               "property m should not exist"]),
    "key-case-matters": (b'{"Title":"x"}', ["property Title should not exist"]),
    "snake-case": (b'{"model_used":"x","system_message_id":"y"}',
                   ["property model_used should not exist",
                    "property system_message_id should not exist"]),
    "read-only-columns": (b'{"id":"x","userId":"u","status":"deleted","isPublic":true,'
                          b'"messageCount":9,"showcased":true,"createdAt":"x","updatedAt":"y"}',
                          [f"property {k} should not exist" for k in
                           ["id", "userId", "status", "isPublic", "messageCount", "showcased",
                            "createdAt", "updatedAt"]]),
    "unicode-key": ('{"tïtle":"x"}'.encode(), ["property tïtle should not exist"]),
    "title-null-and-empty-model": (b'{"modelUsed":"","title":null}',
                                   ["title must be a string", "modelUsed should not be empty"]),
    "field-order-not-body-order": (
        b'{"metadata":[],"systemMessageId":5,"modelUsed":" ","summary":1,"title":""}',
        ["title should not be empty", "summary must be a string", "modelUsed should not be empty",
         "systemMessageId must be a string", "metadata must be an object"]),
    "everything-wrong": (
        b'{"foo":1,"metadata":null,"systemMessageId":"","modelUsed":5,"summary":[],"title":"","bar":2}',
        ["title should not be empty", "summary must be a string", "modelUsed must be a string",
         "systemMessageId should not be empty", "metadata must be an object",
         "property foo should not exist", "property bar should not exist"]),
    "valid-fields-not-listed": (
        b'{"title":"ok","summary":null,"modelUsed":"m","systemMessageId":null,"metadata":"x","q":0}',
        ["metadata must be an object", "property q should not exist"]),
    "one-problem-still-array": (b'{"title":"ok","modelUsed":""}', ["modelUsed should not be empty"]),
}


@pytest.mark.parametrize("body,messages", SCHEMA_CASES.values(), ids=SCHEMA_CASES.keys())
def test_schema_messages(http, db, w, body, messages):
    check_error(http, db, w, schema_err(*messages), body=body)


def test_order_schema_before_missing_chat_400(http, db, w):
    check_error(http, db, w, schema_err("title should not be empty"), body={"title": " "},
                path=chat_path(uuid.uuid4()))
    check_error(http, db, w, schema_err("property foo should not exist"), body={"foo": 1},
                path=chat_path(w.other_chat_id))
    check_error(http, db, w, schema_err("metadata must be an object"), body={"metadata": []},
                path=chat_path(w.deleted_chat_id))


# ---- chat: row 6 -----------------------------------------------------------------------------------


def test_missing_chat_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, path=chat_path(uuid.uuid4()))


@pytest.mark.parametrize("chat_id", ["00000000-0000-0000-0000-000000000000",
                                     "ffffffff-ffff-ffff-ffff-ffffffffffff",
                                     "c1a83d84-7154-064c-0d19-a9f10e0a067e"],
                         ids=["nil", "max", "no-version"])
def test_any_hex_uuid_is_valid_form_404(http, db, w, chat_id):
    check_error(http, db, w, NOT_FOUND, path=chat_path(chat_id))


def test_other_users_chat_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, path=chat_path(w.other_chat_id))


def test_other_users_key_on_my_chat_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, headers=w.bearer(w.other_key))


def test_deleted_chat_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, path=chat_path(w.deleted_chat_id))


def test_deleted_chat_upper_case_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, path=chat_path(w.deleted_chat_id.upper()))


def test_empty_object_missing_or_deleted_chat_404(http, db, w):
    check_error(http, db, w, NOT_FOUND, body={}, path=chat_path(uuid.uuid4()))
    check_error(http, db, w, NOT_FOUND, body={}, path=chat_path(w.deleted_chat_id))


def test_chat_ids_of_two_worlds_are_isolated(http, db, leanmcp_world):
    a, b = leanmcp_world(), leanmcp_world()
    check_error(http, db, a, NOT_FOUND, path=chat_path(b.chat_id))
    check_success(http, db, b, {"title": "B"}, title="B")


# ---- routing and methods -----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "OPTIONS"])  # issue 11: GET served
def test_other_methods_405(http, db, w, method):
    before = w.snapshot(db)
    resp = send(http, w.path, VALID, w.bearer(), method=method)
    assert_json_shape(resp, 405)
    assert resp.headers.get_list("allow") == ["GET, PATCH"], resp.headers
    assert w.snapshot(db) == before


@pytest.mark.parametrize(
    "path",
    ["/api/chats/id", "/api/chats/id/", "/api/chats/id/{c}/", "/api/chats/id/{c}/extra",
     "/api/chats/{c}", "/api/chats//id/{c}", "/API/chats/id/{c}",
     pytest.param("/api/chats/id/{c}%2F", marks=hosts.APACHE_PATH_REFUSED)],
)
def test_unknown_path_404(http, db, w, path):
    before = w.snapshot(db)
    resp = send(http, path.format(c=w.chat_id), VALID, w.bearer())
    assert_json_shape(resp, 404)
    assert w.snapshot(db) == before


# ---- the seed's curl example, unchanged -----------------------------------------------------------------

SEED_CURL = """curl --request PATCH \\
  --url https://api.leanmcp.com/api/chats/id/{id} \\
  --header 'Authorization: Bearer <token>' \\
  --header 'Content-Type: application/json' \\
  --data '
{
  "title": "My Updated Chat Title",
  "summary": "Discussion about TypeScript best practices",
  "modelUsed": "claude-3-sonnet",
  "systemMessageId": "msg_uuid_system_001",
  "metadata": {
    "category": "development",
    "priority": "high"
  }
}
'"""


def test_seed_curl_example(stack, db):
    command = (SEED_CURL.replace("https://api.leanmcp.com", stack["BASE_URL"])
               .replace("{id}", DEMO_CHAT).replace("<token>", DEMO_KEY))
    before = fetch_chat(db, DEMO_CHAT)
    assert before is not None and before["user_id"] == "user_demo"
    # Only output options are added after the unchanged command: headers, no progress meter.
    proc = subprocess.run(["bash", "-c", command + " --silent --show-error --include"],
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    head, _, body = proc.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "200", proc.stdout[:800]
    headers = httpx.Headers([tuple(p.strip() for p in line.split(":", 1)) for line in lines[1:]])
    resp = httpx.Response(200, headers=headers, content=body,
                          request=httpx.Request("PATCH", stack["BASE_URL"]))
    after = fetch_chat(db, DEMO_CHAT)
    got = assert_chat_response(resp, after)  # the bare chat object, no wrapper
    assert got["id"] == DEMO_CHAT and got["userId"] == "user_demo"
    assert (got["title"], got["summary"], got["modelUsed"], got["systemMessageId"], got["metadata"]) == (
        "My Updated Chat Title", "Discussion about TypeScript best practices", "claude-3-sonnet",
        "msg_uuid_system_001", {"category": "development", "priority": "high"})
    assert (after["title"], after["summary"], after["model_used"], after["system_message_id"]) == (
        "My Updated Chat Title", "Discussion about TypeScript best practices", "claude-3-sonnet",
        "msg_uuid_system_001")
    assert exact(after["metadata_text"]) == {"category": "development", "priority": "high"}
    assert after["updated_at"] > before["updated_at"]
    for col in ("is_public", "status", "created_at", "message_count", "showcased"):
        assert after[col] == before[col], col
    assert shlex.split(command)[:3] == ["curl", "--request", "PATCH"]
