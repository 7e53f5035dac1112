"""Neptun: PATCH /api/users/{user_id}/chats/{chat_id} (SPEC sections 1, 2, 4, 6).

Every test makes its own users, sessions and chats (the `neptun` factory) and
checks the exact status, the exact JSON body (h3 shape, plus data.issues for
body errors), the common headers, and neptun.chat_conversations afterwards:
every column of every row of the test's users unchanged after an error; the
trimmed name and a later updated_at (nothing else changed) after a success.

The documentation's Python example (seeds/003_*) is run as written, only the
base URL pointed at the test stack; so is its curl example.
"""

import asyncio
import json
import random
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from pydantic import BaseModel

import hosts
from conftest import (
    REQUEST_ID_RE,
    TIMESTAMP_RE,
    assert_json_response,
    assert_json_shape,
    fetch_all,
    fetch_one,
    non_postgres_logs,
    pg_log_window,
    worker_log_lines_with,
)
from helpers import (
    ES_WHITESPACE,
    JSON_MEDIA_TYPES,
    NON_JSON_MEDIA_TYPES,
    NON_STRING_JSON,
    api_ts,
    assert_updated_now,
    empty_id,
    fmt_ts,
    neptun_error,
)
from helpers import send as send_json

UNAUTHORIZED = "Unauthorized"
INVALID_PARAMS = "Bad Request. Invalid params."
NOT_FOUND = "Chat or user not found"
INVALID_JSON = "Bad Request. Invalid JSON body."
INVALID_NAME = "Bad Request. Invalid body(name)."
TOO_LARGE = "Payload Too Large"
BAD_MEDIA = "Unsupported Media Type"

REQUIRED = ("invalid_type", "Required")
TOO_SMALL = ("too_small", "String must contain at least 1 character(s)")

BIGINT_MAX = 9223372036854775807
VALID = {"name": "Renamed"}
DEFAULT = object()  # "use the world's own session cookie"
CHAT_KEYS = ["id", "neptun_user_id", "name", "model", "created_at", "updated_at"]

_rng = random.SystemRandom()


# ---- data: users, sessions, chats ------------------------------------------------------


def _random_id():
    """A bigint in a high range that no identity column or demo row reaches."""
    return _rng.randint(10**12, 9 * 10**15)


def fetch_chat(db, chat_id):
    return fetch_one(db, "SELECT * FROM neptun.chat_conversations WHERE id = %s", (chat_id,))


def neptun_path(user_id, chat_id):
    return f"/api/users/{user_id}/chats/{chat_id}"


@dataclass
class NeptunWorld:
    """User A (cookie, chat, chat2, an expired cookie) and user B (other_cookie,
    other_chat)."""

    user_id: int
    cookie: str
    expired_cookie: str
    chat_id: int
    chat2_id: int
    other_user_id: int
    other_cookie: str
    other_chat_id: int
    user_ids: list = field(default_factory=list)

    @property
    def path(self):
        return neptun_path(self.user_id, self.chat_id)

    @property
    def cookie_header(self):
        return f"neptun-session={self.cookie}"

    def snapshot(self, db):
        """Every chat row of this world's users, every column."""
        return fetch_all(
            db,
            "SELECT * FROM neptun.chat_conversations WHERE neptun_user_id = ANY(%s) ORDER BY id",
            (self.user_ids,),
        )


class NeptunFactory:
    """Makes fresh Neptun rows for one test."""

    def __init__(self, db):
        self.db = db

    def user(self, user_id=None):
        while True:
            uid = user_id if user_id is not None else _random_id()
            row = self.db.execute(
                "INSERT INTO neptun.users (id) VALUES (%s) ON CONFLICT DO NOTHING RETURNING id", (uid,)
            ).fetchone()
            if row or user_id is not None:
                return uid

    def session(self, user_id, ttl="30 days"):
        """A session issued by the ops function; returns the plaintext cookie value."""
        return self.db.execute("SELECT neptun.issue_session(%s, %s::interval) AS c",
                               (user_id, ttl)).fetchone()["c"]

    def expired_session(self, user_id, expired_at="now() - interval '1 second'"):
        cookie = self.session(user_id, "1 hour")
        self.db.execute(
            f"UPDATE neptun.sessions SET expires_at = {expired_at} "
            "WHERE token_hash = sha256(convert_to(%s, 'UTF8'))",
            (cookie,),
        )
        return cookie

    def expire(self, cookie, expired_at="now() - interval '1 second'"):
        self.db.execute(
            f"UPDATE neptun.sessions SET expires_at = {expired_at} "
            "WHERE token_hash = sha256(convert_to(%s, 'UTF8'))",
            (cookie,),
        )

    def chat(self, user_id, chat_id=None, name="Old name", model="google/gemma-2-27b-it"):
        """A chat with sub-millisecond timestamps in the past (created_at two
        days ago, updated_at a day later), so that truncation and a later
        updated_at are observable."""
        while True:
            cid = chat_id if chat_id is not None else _random_id()
            row = self.db.execute(
                "INSERT INTO neptun.chat_conversations "
                "(id, neptun_user_id, name, model, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, "
                "        date_trunc('second', now()) - interval '2 days' + interval '4999 microseconds', "
                "        date_trunc('second', now()) - interval '1 day' + interval '123456 microseconds') "
                "ON CONFLICT DO NOTHING RETURNING id",
                (cid, user_id, name, model),
            ).fetchone()
            if row:
                return cid
            if chat_id is not None:
                return None

    def world(self):
        user = self.user()
        other = self.user()
        w = NeptunWorld(
            user_id=user,
            cookie=self.session(user),
            expired_cookie=self.expired_session(user),
            chat_id=self.chat(user, name="My chat"),
            chat2_id=self.chat(user, name="My second chat", model="openai/gpt-4o"),
            other_user_id=other,
            other_cookie=self.session(other),
            other_chat_id=self.chat(other, name="Other's chat"),
            user_ids=[user, other],
        )
        return w


@pytest.fixture
def neptun_factory(db):
    return NeptunFactory(db)


@pytest.fixture
def neptun(neptun_factory):
    return neptun_factory.world()


# ---- requests and checks ----------------------------------------------------------------


def send(http, path, body=VALID, cookie=None, headers=None, content_type="application/json",
         method="PATCH", ensure_ascii=True):
    """`cookie` is the whole Cookie header value (None: no Cookie header)."""
    if cookie is not None:
        headers = {"cookie": cookie, **(headers or {})}
    return send_json(http, path, body, headers, content_type, method, ensure_ascii)


def check_error(http, db, w, status, message, body=VALID, cookie=DEFAULT, path=None,
                content_type="application/json", issue=None, headers=None, ensure_ascii=True):
    """Sends one request that must fail; asserts the answer and that no row changed."""
    if cookie is DEFAULT:
        cookie = w.cookie_header
    before = w.snapshot(db)
    resp = send(http, path or w.path, body, cookie, headers, content_type, ensure_ascii=ensure_ascii)
    got = assert_json_response(resp, status, neptun_error(status, message, issue))
    if issue is None:
        assert "data" not in got
    assert w.snapshot(db) == before, "a failed request changed a row"
    return resp


def expected_chat(resp_chat, row):
    return {
        "id": row["id"],
        "neptun_user_id": row["neptun_user_id"],
        "name": row["name"],
        "model": row["model"],
        "created_at": api_ts(resp_chat.get("created_at"), row["created_at"]),
        "updated_at": api_ts(resp_chat.get("updated_at"), row["updated_at"]),
    }


def assert_success_body(resp, row):
    """Exact 200 body for the DB row `row`: keys, key order, JSON integers."""
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    got = resp.json()
    assert list(got) == ["chat"], got
    assert list(got["chat"]) == CHAT_KEYS, f"key order {list(got['chat'])}"
    assert_json_response(resp, 200, {"chat": expected_chat(got["chat"], row)})
    chat = got["chat"]
    for k in ("id", "neptun_user_id"):
        assert type(chat[k]) is int, f"{k} is {chat[k]!r}, not a JSON integer"
    for k in ("created_at", "updated_at"):
        assert TIMESTAMP_RE.match(chat[k]), chat[k]
    # the raw text carries the integers unquoted
    assert f'"id":{row["id"]}'.encode() in resp.content.replace(b" ", b""), resp.content
    return got


def check_success(http, db, w, body, name, chat_id=None, user_id=None, cookie=DEFAULT, path=None,
                  content_type="application/json", ensure_ascii=True, headers=None):
    """Sends one request that must succeed; asserts the answer, the new row
    (name changed, updated_at later, nothing else) and every other row."""
    chat_id = chat_id if chat_id is not None else w.chat_id
    user_id = user_id if user_id is not None else w.user_id
    if cookie is DEFAULT:
        cookie = w.cookie_header
    before = fetch_chat(db, chat_id)
    others = [r for r in w.snapshot(db) if r["id"] != chat_id]
    resp = send(http, path or neptun_path(user_id, chat_id), body, cookie, headers, content_type,
                ensure_ascii=ensure_ascii)
    after = fetch_chat(db, chat_id)
    assert_success_body(resp, after)

    expected_row = dict(before)
    expected_row["name"] = name
    expected_row["updated_at"] = after["updated_at"]
    expected_row["version"] = after["version"]  # issue 11: a new version on every update
    assert after["version"] > before["version"]
    assert after == expected_row
    assert_updated_now(db, before, after)
    assert [r for r in w.snapshot(db) if r["id"] != chat_id] == others
    return resp


# ---- success ------------------------------------------------------------------------------


def test_rename(http, db, neptun):
    resp = check_success(http, db, neptun, {"name": "Renamed chat"}, "Renamed chat")
    chat = resp.json()["chat"]
    assert chat["id"] == neptun.chat_id and chat["neptun_user_id"] == neptun.user_id
    assert chat["model"] == "google/gemma-2-27b-it"


def test_rename_second_chat_leaves_first(http, db, neptun):
    w = neptun
    resp = check_success(http, db, w, {"name": "Second"}, "Second", chat_id=w.chat2_id)
    assert resp.json()["chat"]["model"] == "openai/gpt-4o"
    assert fetch_chat(db, w.chat_id)["name"] == "My chat"


def test_timestamps_equal_db_to_the_millisecond(http, db, neptun):
    w = neptun
    before = fetch_chat(db, w.chat_id)
    assert before["created_at"].microsecond % 1000 == 999  # sub-millisecond digits exist
    resp = check_success(http, db, w, {"name": "ts"}, "ts")
    chat = resp.json()["chat"]
    after = fetch_chat(db, w.chat_id)
    for key in ("created_at", "updated_at"):
        parsed = datetime.strptime(chat[key], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert abs(parsed - after[key]) < timedelta(milliseconds=1), (key, chat[key], after[key])
    assert chat["created_at"] in (fmt_ts(before["created_at"], False), fmt_ts(before["created_at"], True))


def test_second_update_moves_updated_at_again(http, db, neptun):
    first = check_success(http, db, neptun, {"name": "one"}, "one")
    second = check_success(http, db, neptun, {"name": "two"}, "two")
    assert second.json()["chat"]["updated_at"] >= first.json()["chat"]["updated_at"]
    assert second.json()["chat"]["created_at"] == first.json()["chat"]["created_at"]


@pytest.mark.parametrize(
    "sent,stored",
    [
        ("  Padded  ", "Padded"),
        ("\tTabbed\n", "Tabbed"),
        ("  Ünïcødé 😀 标题  ", "Ünïcødé 😀 标题"),
        ("\u00a0NBSP\u00a0", "NBSP"),
        ("\u3000ideographic\u3000", "ideographic"),
        ("\ufeffBOM\ufeff", "BOM"),
        ("\u2028\u2029ls-ps\u202f\u205f", "ls-ps"),
        (ES_WHITESPACE + "all of them" + ES_WHITESPACE, "all of them"),
        ("a \u00a0 b", "a \u00a0 b"),  # inner whitespace stays
        ("\u200bzero width\u200b", "\u200bzero width\u200b"),  # U+200B is not trimmed
        ("\u0085nel\u0085", "\u0085nel\u0085"),  # nor NEL
        ("\u180e", "\u180e"),  # nor the Mongolian vowel separator
        ("\u001cfs\u001f", "\u001cfs\u001f"),  # nor the C0 separators
        ("x", "x"),
    ],
    ids=["spaces", "tab-newline", "unicode", "nbsp", "ideographic", "bom", "ls-ps-nnbsp-mmsp",
         "every-es-space", "inner", "zwsp", "nel", "mvs", "c0-separators", "one-char"],
)
@pytest.mark.parametrize("ascii_escaped", [True, False], ids=["escaped", "raw-utf8"])
def test_name_stored_trimmed(http, db, neptun, sent, stored, ascii_escaped):
    check_success(http, db, neptun, {"name": sent}, stored, ensure_ascii=ascii_escaped)


@pytest.mark.parametrize(
    "raw,stored",
    [
        (rb'{"name":"\ud83d\ude00"}', "😀"),
        (rb'{"name":"\u00e9t\u00E9"}', "été"),
        (rb'{"name":"a\/b\\c\"d"}', 'a/b\\c"d'),
        (b' \n{ "name" : "ws around" }\n ', "ws around"),
    ],
    ids=["surrogate-pair", "escapes", "slash-backslash-quote", "outer-ws"],
)
def test_json_escapes_decoded(http, db, neptun, raw, stored):
    check_success(http, db, neptun, raw, stored)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "foo": 1},
        {"foo": {"nested": [1, {"a": None}]}, "name": "x", "bar": "y"},
        {"name": "x", "model": "evil/model", "id": 1, "neptun_user_id": 2,
         "created_at": "2000-01-01T00:00:00.000Z", "updated_at": "2000-01-01T00:00:00.000Z"},
        {"name": "x", "Name": 5},
    ],
    ids=["foo", "nested-unknowns", "other-columns", "Name-key"],
)
def test_unknown_keys_ignored(http, db, neptun, body):
    check_success(http, db, neptun, body, "x")


@pytest.mark.parametrize("content_type", JSON_MEDIA_TYPES)
def test_json_content_types_accepted(http, db, neptun, content_type):
    check_success(http, db, neptun, {"name": content_type}, content_type, content_type=content_type)


def test_query_string_ignored(http, db, neptun):
    check_success(http, db, neptun, {"name": "q"}, "q", path=neptun.path + "?name=ignored&user_id=1")


def test_body_size_64k_accepted(http, db, neptun):
    name = "a" * (65536 - len(b'{"name":""}'))
    body = json.dumps({"name": name}, separators=(",", ":")).encode()
    assert len(body) == 65536
    check_success(http, db, neptun, body, name)


def test_depth_32_is_parsed(http, db, neptun):
    body = b'{"name":"deep","a":' + b"[" * 31 + b"]" * 31 + b"}"
    check_success(http, db, neptun, body, "deep")


def test_depth_32_objects_is_parsed(http, db, neptun):
    body = b'{"name":"deep","a":' + b'{"b":' * 31 + b"1" + b"}" * 31 + b"}"
    check_success(http, db, neptun, body, "deep")


# ---- cookies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "a=1; neptun-session={c}; b=2",
        "a=1;neptun-session={c};b=2",
        "a=1 ;  neptun-session={c}  ; b=2",
        "a=1;\tneptun-session={c}",
        "neptun-session = {c}",
        "neptun-session={c};",
        'neptun-session="{c}"',
        'a="q"; neptun-session="{c}"; b=2',
        "xneptun-session=bad; neptun-session={c}",
        "neptun-session-old=bad; neptun-session={c}",
        "neptun-session2=bad; neptun-session={c}; session=bad",
    ],
    ids=["among-several", "no-spaces", "extra-spaces", "tab", "spaces-around-equals",
         "trailing-semicolon", "quoted", "quoted-among-several", "after-xneptun-session",
         "after-neptun-session-old", "between-lookalikes"],
)
def test_cookie_forms_accepted(http, db, neptun, template):
    check_success(http, db, neptun, {"name": "cookie ok"}, "cookie ok",
                  cookie=template.format(c=neptun.cookie))


def test_no_cookie_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED, cookie=None)


def test_unknown_cookie_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED,
                cookie=f"neptun-session=ns_{uuid.uuid4().hex}{uuid.uuid4().hex}")


@pytest.mark.parametrize(
    "template",
    [
        "a=1; b=2",
        "neptun-session=",
        'neptun-session=""',
        "neptun-session",
        "xneptun-session={c}",
        "neptun-session-old={c}",
        "neptun-sessionx={c}",
        "my-neptun-session-cookie={c}",
        "Neptun-Session={c}",
        "NEPTUN-SESSION={c}",
        "neptun_session={c}",
        "session={c}",
        "a=1; xneptun-session={c}; neptun-session-old={c}",
        "neptun-session={c}x",
        "neptun-session=x{c}",
        "neptun-session={c_upper}",
        "neptun-session={c_short}",
        "a=neptun-session={c}",
        "{c}",
    ],
    ids=["other-cookies-only", "empty", "empty-quoted", "no-equals", "xneptun-session",
         "neptun-session-old", "neptun-sessionx", "contains-name", "capitalised", "upper",
         "underscore", "session", "only-lookalikes", "suffixed-token", "prefixed-token",
         "upper-token", "truncated-token", "name-inside-value", "bare-token"],
)
def test_cookie_not_a_session_401(http, db, neptun, template):
    w = neptun
    cookie = template.format(c=w.cookie, c_upper=w.cookie.upper(), c_short=w.cookie[:-1])
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=cookie)


def test_token_in_authorization_header_401(http, db, neptun):
    w = neptun
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=None,
                headers={"authorization": f"Bearer {w.cookie}"})


def test_expired_session_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED, cookie=f"neptun-session={neptun.expired_cookie}")


def test_long_expired_session_401(http, db, neptun_factory, neptun):
    w = neptun
    cookie = neptun_factory.expired_session(w.user_id, "now() - interval '400 days'")
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=f"neptun-session={cookie}")


def test_expired_session_among_several_cookies_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED,
                cookie=f"a=1; neptun-session={neptun.expired_cookie}; b=2")


def test_expiry_takes_effect_at_once(http, db, neptun_factory, neptun):
    w = neptun
    check_success(http, db, w, {"name": "before expiry"}, "before expiry")
    neptun_factory.expire(w.cookie)
    check_error(http, db, w, 401, UNAUTHORIZED)


def test_session_with_short_ttl_works(http, db, neptun_factory, neptun):
    w = neptun
    cookie = neptun_factory.session(w.user_id, "1 minute")
    check_success(http, db, w, {"name": "short ttl"}, "short ttl", cookie=f"neptun-session={cookie}")


def test_second_session_of_same_user_works(http, db, neptun_factory, neptun):
    w = neptun
    cookie = neptun_factory.session(w.user_id)
    check_success(http, db, w, {"name": "second session"}, "second session",
                  cookie=f"neptun-session={cookie}")


def test_session_stored_only_as_sha256(db, neptun):
    w = neptun
    rows = db.execute(
        "SELECT token_hash = sha256(convert_to(%s, 'UTF8')) AS ok FROM neptun.sessions "
        "WHERE user_id = %s ORDER BY expires_at DESC LIMIT 1", (w.cookie, w.user_id)).fetchall()
    assert rows == [{"ok": True}]


# ---- ids (row 2) ---------------------------------------------------------------------------

BAD_IDS = {
    "letters": "abc",
    "digits-then-letter": "1a",
    "letter-then-digits": "a1",
    "plus": "+1",
    "encoded-plus": "%2B1",
    "minus": "-1",
    "zero": "0",
    "zeros": "000",
    "decimal": "1.0",
    "exponent": "1e3",
    "hex": "0x10",
    "leading-space": "%201",
    "trailing-space": "1%20",
    "leading-tab": "%091",
    "underscore": "1_000",
    "comma": "1,000",
    "fullwidth-digit": "%EF%BC%91",
    "arabic-indic-digit": "%D9%A1",
    "bigint-max-plus-one": "9223372036854775808",
    "bigint-max-plus-one-zero-padded": "09223372036854775808",
    "twenty-digits": "99999999999999999999",
    "unsigned-max": "18446744073709551615",
    "two-to-the-64": "18446744073709551616",
    "huge": "9" * 40,
    "percent-sign": "%25",
}


@pytest.mark.parametrize("bad", BAD_IDS.values(), ids=BAD_IDS.keys())
@pytest.mark.parametrize("where", ["user_id", "chat_id", "both"])
def test_bad_id_400(http, db, neptun, where, bad):
    w = neptun
    user = bad if where in ("user_id", "both") else w.user_id
    chat = bad if where in ("chat_id", "both") else w.chat_id
    check_error(http, db, w, 400, INVALID_PARAMS, path=neptun_path(user, chat))


def test_leading_zeros_accepted_007(http, db, neptun_factory, neptun):
    """`007` is chat 7. Chat 7 is made ours (and the identity moved past it);
    when the whole suite shares the stack, another file's identity insert may
    own chat 7 already: then the test acts as its owner (a new session of that
    user) and puts the row back afterwards."""
    w = neptun
    seq = "pg_get_serial_sequence('neptun.chat_conversations', 'id')"
    if neptun_factory.chat(w.user_id, chat_id=7, name="Bond") == 7:
        db.execute(f"SELECT setval({seq}, GREATEST(7, pg_sequence_last_value({seq})))")
        check_success(http, db, w, {"name": "Licence to rename"}, "Licence to rename", chat_id=7,
                      path=f"/api/users/{w.user_id}/chats/007")
        return
    original = fetch_chat(db, 7)
    owner = original["neptun_user_id"]
    w.user_ids.append(owner)
    cookie = neptun_factory.session(owner)
    try:
        check_success(http, db, w, {"name": "Licence to rename"}, "Licence to rename", chat_id=7,
                      user_id=owner, cookie=f"neptun-session={cookie}",
                      path=f"/api/users/{owner}/chats/007")
    finally:
        db.execute("UPDATE neptun.chat_conversations SET name = %s, updated_at = %s WHERE id = 7",
                   (original["name"], original["updated_at"]))


@pytest.mark.parametrize("zeros", ["0", "000", "0" * 30])
def test_leading_zeros_accepted_on_both_ids(http, db, neptun, zeros):
    w = neptun
    check_success(http, db, w, {"name": "zero padded"}, "zero padded",
                  path=f"/api/users/{zeros}{w.user_id}/chats/{zeros}{w.chat_id}")


def test_percent_encoded_digits_accepted(http, db, neptun):
    """Path segments are percent-decoded once (SPEC 1): %3N is the digit N."""
    w = neptun
    enc = lambda n: "".join(f"%3{d}" for d in str(n))  # noqa: E731
    check_success(http, db, w, {"name": "encoded digits"}, "encoded digits",
                  path=f"/api/users/{enc(w.user_id)}/chats/{enc(w.chat_id)}")


def test_double_encoded_digit_is_not_a_digit_400(http, db, neptun):
    w = neptun
    check_error(http, db, w, 400, INVALID_PARAMS, path=f"/api/users/{w.user_id}/chats/%2531")


def test_bigint_max_chat_id_is_valid_form_404(http, db, neptun):
    check_error(http, db, neptun, 404, NOT_FOUND, path=neptun_path(neptun.user_id, BIGINT_MAX))


def test_bigint_max_user_id_is_valid_form_404(http, db, neptun):
    check_error(http, db, neptun, 404, NOT_FOUND, path=neptun_path(BIGINT_MAX, neptun.chat_id))


def test_bigint_max_both_404(http, db, neptun):
    check_error(http, db, neptun, 404, NOT_FOUND, path=neptun_path(BIGINT_MAX, BIGINT_MAX))


def test_bigint_max_ids_accepted_when_they_exist(http, db, neptun_factory, neptun):
    """A user and a chat whose ids are both 9223372036854775807 can be renamed."""
    w = neptun
    neptun_factory.user(BIGINT_MAX)
    w.user_ids.append(BIGINT_MAX)
    if neptun_factory.chat(BIGINT_MAX, chat_id=BIGINT_MAX, name="Max") is None:
        pytest.fail("chat 9223372036854775807 already exists")
    cookie = neptun_factory.session(BIGINT_MAX)
    check_success(http, db, w, {"name": "Max renamed"}, "Max renamed", chat_id=BIGINT_MAX,
                  user_id=BIGINT_MAX, cookie=f"neptun-session={cookie}")


# ---- ownership (row 3) ----------------------------------------------------------------------


def test_missing_chat_404(http, db, neptun, neptun_factory):
    missing = _random_id()
    while fetch_chat(db, missing) is not None:
        missing = _random_id()
    check_error(http, db, neptun, 404, NOT_FOUND, path=neptun_path(neptun.user_id, missing))


def test_other_users_chat_in_own_path_404(http, db, neptun):
    w = neptun
    check_error(http, db, w, 404, NOT_FOUND, path=neptun_path(w.user_id, w.other_chat_id))


def test_other_user_id_in_path_404(http, db, neptun):
    """Path names the other user and their chat; the cookie is ours."""
    w = neptun
    check_error(http, db, w, 404, NOT_FOUND, path=neptun_path(w.other_user_id, w.other_chat_id))


def test_other_user_id_with_own_chat_404(http, db, neptun):
    w = neptun
    check_error(http, db, w, 404, NOT_FOUND, path=neptun_path(w.other_user_id, w.chat_id))


def test_nonexistent_user_id_404(http, db, neptun):
    w = neptun
    check_error(http, db, w, 404, NOT_FOUND, path=neptun_path(_random_id(), w.chat_id))


def test_other_users_cookie_on_own_path_404(http, db, neptun):
    w = neptun
    check_error(http, db, w, 404, NOT_FOUND, cookie=f"neptun-session={w.other_cookie}")


def test_other_user_can_rename_own_chat(http, db, neptun):
    w = neptun
    check_success(http, db, w, {"name": "B's rename"}, "B's rename", chat_id=w.other_chat_id,
                  user_id=w.other_user_id, cookie=f"neptun-session={w.other_cookie}")
    assert fetch_chat(db, w.chat_id)["name"] == "My chat"


# ---- the order of the checks ---------------------------------------------------------------


@pytest.mark.parametrize("cookie", ["none", "unknown", "expired", "lookalike"])
def test_order_bad_cookie_and_bad_ids_and_bad_body_401(http, db, neptun, cookie):
    w = neptun
    header = {
        "none": None,
        "unknown": f"neptun-session=ns_{uuid.uuid4().hex}",
        "expired": f"neptun-session={w.expired_cookie}",
        "lookalike": f"xneptun-session={w.cookie}",
    }[cookie]
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=header, body=b"{bad",
                path=neptun_path("abc", "-1"))


def test_order_bad_cookie_and_missing_chat_401(http, db, neptun):
    w = neptun
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=f"neptun-session={w.expired_cookie}",
                path=neptun_path(w.other_user_id, w.other_chat_id))


def test_order_bad_cookie_and_text_plain_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED, cookie=None, content_type="text/plain")


def test_order_bad_cookie_and_bad_name_401(http, db, neptun):
    check_error(http, db, neptun, 401, UNAUTHORIZED, cookie=None, body={"name": ""})


@pytest.mark.parametrize("body", [b"{bad", b"", {"name": 1}, {}], ids=["json", "empty", "type", "missing"])
def test_order_good_cookie_bad_ids_bad_body_400_params(http, db, neptun, body):
    w = neptun
    check_error(http, db, w, 400, INVALID_PARAMS, body=body, path=neptun_path(w.user_id, "1e3"))


def test_order_bad_ids_and_text_plain_400_params(http, db, neptun):
    check_error(http, db, neptun, 400, INVALID_PARAMS, content_type="text/plain",
                path=neptun_path("0", neptun.chat_id))


def test_order_bad_ids_of_other_user_400_params(http, db, neptun):
    w = neptun
    check_error(http, db, w, 400, INVALID_PARAMS, path=neptun_path(w.other_user_id, "+1"))


@pytest.mark.parametrize(
    "body,content_type",
    [(b"{bad", "application/json"), (b"", "application/json"), (b"[]", "application/json"),
     ({}, "application/json"), ({"name": None}, "application/json"), ({"name": " "}, "application/json"),
     (VALID, "text/plain"), (VALID, None)],
    ids=["json", "empty", "array", "missing", "null", "blank", "text-plain", "no-content-type"],
)
@pytest.mark.parametrize("target", ["missing-chat", "other-users-chat", "other-user-in-path"])
def test_order_404_before_body_errors(http, db, neptun, target, body, content_type):
    w = neptun
    path = {
        "missing-chat": neptun_path(w.user_id, BIGINT_MAX),
        "other-users-chat": neptun_path(w.user_id, w.other_chat_id),
        "other-user-in-path": neptun_path(w.other_user_id, w.other_chat_id),
    }[target]
    check_error(http, db, w, 404, NOT_FOUND, body=body, content_type=content_type, path=path)


def test_order_415_before_invalid_json(http, db, neptun):
    check_error(http, db, neptun, 415, BAD_MEDIA, body=b"{bad", content_type="text/plain")


def test_order_415_before_bad_name(http, db, neptun):
    check_error(http, db, neptun, 415, BAD_MEDIA, body={"name": ""}, content_type="text/plain")


def test_order_invalid_json_before_name(http, db, neptun):
    check_error(http, db, neptun, 400, INVALID_JSON, body=b'{"name":1')


def test_order_413_before_cookie(http, db, neptun):
    body = json.dumps({"name": "a" * 70 * 1024}).encode()
    check_error(http, db, neptun, 413, TOO_LARGE, body=body, cookie=None,
                path=neptun_path("abc", "abc"))


# ---- body: media type and size ------------------------------------------------------------


@pytest.mark.parametrize("content_type", NON_JSON_MEDIA_TYPES + ["application/xml"])
def test_non_json_content_type_415(http, db, neptun, content_type):
    check_error(http, db, neptun, 415, BAD_MEDIA, content_type=content_type)


def test_70kb_body_413(http, db, neptun):
    body = json.dumps({"name": "a" * 70 * 1024}).encode()
    check_error(http, db, neptun, 413, TOO_LARGE, body=body)


def test_body_one_over_64k_413(http, db, neptun):
    body = json.dumps({"name": "a" * (65537 - len(b'{"name":""}'))}, separators=(",", ":")).encode()
    assert len(body) == 65537
    check_error(http, db, neptun, 413, TOO_LARGE, body=body)


# ---- body: JSON (row 4) ----------------------------------------------------------------------

INVALID_BODIES = {
    "empty": b"",
    "whitespace": b"  \n",
    "unterminated": b'{"name":"x"',
    "trailing-garbage": b'{"name":"x"} x',
    "trailing-garbage-no-space": b'{"name":"x"}x',
    "two-documents": b'{"name":"x"}{}',
    "NaN": b"NaN",
    "NaN-value": b'{"name":NaN}',
    "Infinity-value": b'{"name":Infinity}',
    "single-quotes": b"{'name':'x'}",
    "unquoted-key": b'{name:"x"}',
    "trailing-comma": b'{"name":"x",}',
    "comment": b'{"name":"x"/* c */}',
    "leading-zero-number": b'{"name":"x","n":01}',
    "bad-escape": b'{"name":"\\x41"}',
    "raw-newline-in-string": b'{"name":"a\nb"}',
    "raw-nul-byte": b'{"name":"a\x00b"}',
    "escaped-nul": b'{"name":"a\\u0000b"}',
    "escaped-nul-in-other-key": b'{"name":"x","a\\u0000":1}',
    "lone-high-surrogate": b'{"name":"\\ud800"}',
    "lone-low-surrogate": b'{"name":"\\udc00"}',
    "invalid-utf8": b'{"name":"\xff"}',
    "overlong-utf8": b'{"name":"\xc0\xaf"}',
    "utf8-encoded-surrogate": b'{"name":"\xed\xa0\x80"}',
    "utf8-bom": b'\xef\xbb\xbf{"name":"x"}',
    "depth-33": b'{"a":' + b"[" * 32 + b"]" * 32 + b"}",
    "depth-33-objects": b'{"a":' * 33 + b"1" + b"}" * 33,
    # a top level that is not an object answers row 4 too
    "top-level-empty-array": b"[]",
    "top-level-array": b'[{"name":"x"}]',
    "top-level-number": b"0",
    "top-level-negative-float": b"-1.5e3",
    "top-level-string": b'"name"',
    "top-level-empty-string": b'""',
    "top-level-null": b"null",
    "top-level-true": b"true",
    "top-level-false": b"false",
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_json_400(http, db, neptun, body):
    check_error(http, db, neptun, 400, INVALID_JSON, body=body)


# ---- body: name (row 5) ------------------------------------------------------------------------

MISSING = {
    "empty-object": b"{}",
    "empty-object-ws": b" { } ",
    "other-key": b'{"foo":"x"}',
    "capitalised-key": b'{"Name":"x"}',
    "title-key": b'{"title":"x"}',
    "key-with-space": b'{"name ":"x"}',
}


@pytest.mark.parametrize("body", MISSING.values(), ids=MISSING.keys())
def test_name_missing_required(http, db, neptun, body):
    check_error(http, db, neptun, 400, INVALID_NAME, body=body, issue=REQUIRED)


WRONG_TYPES = NON_STRING_JSON


@pytest.mark.parametrize("value,received", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_name_wrong_type(http, db, neptun, value, received):
    check_error(http, db, neptun, 400, INVALID_NAME, body=f'{{"name":{value}}}'.encode(),
                issue=("invalid_type", f"Expected string, received {received}"))


@pytest.mark.parametrize("value,received", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_name_wrong_type_with_unknown_keys(http, db, neptun, value, received):
    check_error(http, db, neptun, 400, INVALID_NAME,
                body=f'{{"foo":1,"name":{value},"bar":[]}}'.encode(),
                issue=("invalid_type", f"Expected string, received {received}"))


EMPTY_VALUES = ["", " ", "   ", "\t\n", ES_WHITESPACE] + list(ES_WHITESPACE)


@pytest.mark.parametrize("value", EMPTY_VALUES, ids=empty_id)
def test_name_empty_after_trim_too_small(http, db, neptun, value):
    check_error(http, db, neptun, 400, INVALID_NAME, body={"name": value}, issue=TOO_SMALL)


@pytest.mark.parametrize("value", ["\u00a0", "\u3000", "\ufeff", "\u2028", "\u1680"], ids=empty_id)
def test_name_empty_raw_utf8_too_small(http, db, neptun, value):
    body = json.dumps({"name": f" {value} "}, ensure_ascii=False).encode()
    assert b"\\u" not in body
    check_error(http, db, neptun, 400, INVALID_NAME, body=body, issue=TOO_SMALL)


def test_name_empty_with_unknown_keys_too_small(http, db, neptun):
    check_error(http, db, neptun, 400, INVALID_NAME, body={"foo": 1, "name": "\u3000"}, issue=TOO_SMALL)


# ---- routing and methods (SPEC 1) ------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE", "OPTIONS"])  # issue 11: GET served
def test_other_methods_405(http, db, neptun, method):
    w = neptun
    before = w.snapshot(db)
    resp = send(http, w.path, VALID, w.cookie_header, method=method)
    assert_json_shape(resp, 405)
    assert resp.headers.get_list("allow") == ["GET, PATCH"], resp.headers
    assert w.snapshot(db) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/users/{u}/chats",
        "/api/users/{u}/chats/",
        "/api/users/{u}/chats/{c}/",
        "/api/users/{u}/chats/{c}/extra",
        "/api/users//chats/{c}",
        "/api/users/{u}/chats//",
        "/API/users/{u}/chats/{c}",
        "/api/user/{u}/chats/{c}",
        pytest.param("/api/users/{u}%2F/chats/{c}", marks=hosts.APACHE_PATH_REFUSED),
        pytest.param("/api/users/{u}/chats/{c}%2F1", marks=hosts.APACHE_PATH_REFUSED),
    ],
)
def test_unknown_path_404(http, db, neptun, path):
    w = neptun
    before = w.snapshot(db)
    resp = send(http, path.format(u=w.user_id, c=w.chat_id), VALID, w.cookie_header)
    assert_json_shape(resp, 404)
    assert w.snapshot(db) == before


# ---- headers and secrets -----------------------------------------------------------------------


def test_request_id_is_nginx_generated_and_unique(http, db, neptun):
    w = neptun
    ids = set()
    for i in range(3):
        resp = send(http, w.path, {"name": f"id {i}"}, w.cookie_header,
                    headers={"x-request-id": "client-id"})
        assert resp.status_code == 200
        (rid,) = resp.headers.get_list("x-request-id")
        assert rid != "client-id" and REQUEST_ID_RE.match(rid)
        ids.add(rid)
    assert len(ids) == 3


def test_cookie_not_in_worker_or_nginx_logs(http, db, stack, neptun):
    w = neptun
    unknown = f"ns_unknown_{uuid.uuid4().hex}"
    check_success(http, db, w, {"name": "logged?"}, "logged?")
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=f"neptun-session={unknown}")
    check_error(http, db, w, 401, UNAUTHORIZED, cookie=f"neptun-session={w.expired_cookie}")
    for name, text in non_postgres_logs(stack):
        for secret in (w.cookie, unknown, w.expired_cookie):
            assert secret.encode() not in text, f"a session cookie found in {name}"


def test_cookie_not_sent_to_postgres_in_clear(http, db, stack, neptun):
    w = neptun
    with pg_log_window(db, stack) as window:
        check_success(http, db, w, {"name": "hash in C"}, "hash in C")
    assert window.statements, "no statement of the worker logged"
    lines = worker_log_lines_with(stack, w.cookie)
    assert not lines, lines[:3]


# ---- the documentation's examples (seeds/003) ---------------------------------------------------

# The Python example, as documented.


class UpdateChatRequest(BaseModel):
    name: str


class ChatConversation(BaseModel):
    id: int
    neptun_user_id: int
    name: str
    model: str
    created_at: datetime
    updated_at: datetime


class UpdateChatResponse(BaseModel):
    chat: ChatConversation


def documented_update_chat(base_url):
    """The documented `update_chat`, unchanged except that the URL's
    https://neptun-webui.vercel.app is `base_url`."""

    async def update_chat(
        user_id: int,
        chat_id: int,
        name: str,
        session_cookie: str
    ) -> UpdateChatResponse:
        async with httpx.AsyncClient() as client:
            response = await client.patch(
                f"{base_url}/api/users/{user_id}/chats/{chat_id}",
                json={"name": name},
                cookies={"neptun-session": session_cookie}
            )
            response.raise_for_status()
            return UpdateChatResponse(**response.json())

    return update_chat


def _ms(dt):
    return dt.replace(microsecond=dt.microsecond // 1000 * 1000)


def test_documented_python_example(db, base_url, neptun):
    w = neptun
    before = fetch_chat(db, w.chat_id)
    update_chat = documented_update_chat(base_url)
    result = asyncio.run(update_chat(w.user_id, w.chat_id, "Python example name", w.cookie))
    after = fetch_chat(db, w.chat_id)

    assert isinstance(result, UpdateChatResponse)
    chat = result.chat
    assert chat.id == w.chat_id
    assert chat.neptun_user_id == w.user_id
    assert chat.name == "Python example name"
    assert chat.model == "google/gemma-2-27b-it"
    assert chat.created_at.tzinfo is not None and chat.created_at.utcoffset() == timedelta(0)
    for key in ("created_at", "updated_at"):
        got = getattr(chat, key)
        assert abs(got - after[key]) < timedelta(milliseconds=1), (key, got, after[key])
    assert chat.created_at in (_ms(before["created_at"]), _ms(before["created_at"] + timedelta(microseconds=500)))

    assert after["name"] == "Python example name"
    assert after["updated_at"] > before["updated_at"]
    assert after["version"] > before["version"]  # issue 11: a new version on every update
    assert {k: v for k, v in after.items() if k not in ("name", "updated_at", "version")} == \
           {k: v for k, v in before.items() if k not in ("name", "updated_at", "version")}
    # the request model validates what the example sends
    assert UpdateChatRequest(name="Python example name").name == "Python example name"


def test_documented_python_example_trims(db, base_url, neptun):
    w = neptun
    result = asyncio.run(documented_update_chat(base_url)(w.user_id, w.chat_id, "  spaced\u3000", w.cookie))
    assert result.chat.name == "spaced"
    assert fetch_chat(db, w.chat_id)["name"] == "spaced"


@pytest.mark.parametrize(
    "case,status",
    [("bad-cookie", 401), ("other-users-chat", 404), ("empty-name", 400)],
)
def test_documented_python_example_raises_on_errors(db, base_url, neptun, case, status):
    w = neptun
    before = w.snapshot(db)
    user_id, chat_id, name, cookie = w.user_id, w.chat_id, "x", w.cookie
    if case == "bad-cookie":
        cookie = w.expired_cookie
    elif case == "other-users-chat":
        chat_id = w.other_chat_id
    else:
        name = " "
    with pytest.raises(httpx.HTTPStatusError) as info:
        asyncio.run(documented_update_chat(base_url)(user_id, chat_id, name, cookie))
    assert info.value.response.status_code == status
    assert w.snapshot(db) == before


def test_documented_curl_example(db, base_url, neptun):
    w = neptun
    before = fetch_chat(db, w.chat_id)
    proc = subprocess.run(
        [
            "curl", "-sS", "--max-time", "20",
            "-w", "\n%{http_code}\n%{content_type}",
            "-X", "PATCH",
            "-H", "Content-Type: application/json",
            "-H", f"Cookie: neptun-session={w.cookie}",
            "-d", '{"name": "New Chat Name"}',
            f"{base_url}/api/users/{w.user_id}/chats/{w.chat_id}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    body, status, content_type = proc.stdout.rsplit("\n", 2)
    assert status == "200", proc.stdout
    assert content_type == "application/json; charset=utf-8"
    after = fetch_chat(db, w.chat_id)
    got = json.loads(body)
    assert got == {"chat": expected_chat(got["chat"], after)}
    assert got["chat"]["name"] == "New Chat Name"
    assert after["name"] == "New Chat Name"
    assert after["updated_at"] > before["updated_at"]
