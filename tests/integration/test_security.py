"""Security: what a hostile black-box probe of the stack found (issue 8), one
section per problem, each test showing what the worker does now.

  1. No write through a concurrent change: another transaction holds the
     chat row, changes who may write it, commits; the PATCH that waited on
     the row lock answers for the new state and writes nothing.
  2. LeanMCP `metadata` numbers as Node.js holds them (doubles), so a small
     body can no longer be stored as, and answered with, megabytes of digits.
  3. Bad input is never a 503: numbers PostgreSQL cannot store, and any
     value a statement refuses (SQLSTATE class 22), answer in the API's own
     order (401, 400 ...), never 503 with Retry-After.
  4. Cheap refusals of the largest hostile bodies: 8,191 unknown keys.
  5. Header values without surrounding spaces and tabs; the request id only
     from the host, and only a plain token; an access line no method can
     break.

Every test makes its own rows and checks the status, the exact JSON body, the
headers, and the row in PostgreSQL afterwards (unchanged after every refusal).
Sections 1 to 4 go through nginx; section 5 also talks FastCGI to the shared
pool's socket ($STACK_DIR/run/chatpatch.sock, fcgi_client.py), as a host
other than nginx could. Every wait is bounded; no timing is asserted beyond
"answered within seconds".
"""

import contextlib
import decimal
import json
import random
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.string import TextLoader

import openapi_check
from conftest import (
    REQUEST_ID_RE,
    _uid,
    assert_json_headers,
    assert_json_response,
    fetch_one,
    make_recoup_world,
    run_cgi,
)
from fcgi_client import ACCESS_RE, fcgi_http
from helpers import (
    api_ts,
    assert_updated_now,
    leanmcp_error,
    neptun_error,
    raw_exchange,
    recoup_error,
    send,
)

LOCK_WAIT_BOUND_S = 10.0  # the PATCH must be seen waiting on the lock within this
ANSWER_BOUND_S = 15.0  # and answer within this once the lock holder commits

LEAN_UNAUTHORIZED = leanmcp_error(401, "Unauthorized", "Unauthorized")
LEAN_FORBIDDEN = leanmcp_error(403, "Forbidden resource", "Forbidden")
LEAN_BAD_UUID = leanmcp_error(400, "Validation failed (uuid is expected)", "Bad Request")
LEAN_BAD_JSON = leanmcp_error(400, "Unexpected token in JSON body", "Bad Request")
LEAN_NOT_FOUND = leanmcp_error(404, "Chat not found", "Not Found")
LEAN_CHAT_KEYS = ["id", "userId", "title", "isPublic", "status", "createdAt", "updatedAt",
                  "messageCount", "showcased", "summary", "modelUsed", "systemMessageId",
                  "metadata"]


# ---- rows -----------------------------------------------------------------------------------


def exact(text):
    """JSON text with exact numbers (Decimal for fractions and exponents)."""
    return json.loads(text, parse_float=decimal.Decimal, parse_int=int)


def lean_user(db):
    user = _uid("sec_user")
    db.execute("INSERT INTO leanmcp.users (id) VALUES (%s)", (user,))
    return user


def lean_key(db, user, scopes="{chat}"):
    return db.execute("SELECT leanmcp.issue_api_key(%s, %s::text[]) AS k",
                      (user, scopes)).fetchone()["k"]


def lean_chat(db, user, **columns):
    cols = {"user_id": user, "title": "Original title", "summary": "old summary",
            "metadata": '{"old": 1}', **columns}
    names = ", ".join(cols)
    marks = ", ".join("%s::jsonb" if k == "metadata" else "%s" for k in cols)
    return db.execute(f"INSERT INTO leanmcp.chats ({names}) VALUES ({marks}) "
                      "RETURNING id::text AS id", tuple(cols.values())).fetchone()["id"]


LEAN_ROW = "SELECT *, id::text AS id_text, metadata::text AS metadata_text FROM leanmcp.chats"


def lean_row(conn, chat_id):
    """Every column of a chat (metadata as text only: Python's json refuses
    integers of more than 4,300 digits), plus id_text and metadata_text."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.adapters.register_loader("jsonb", TextLoader)
        cur.execute(LEAN_ROW + " WHERE id = %s::uuid", (chat_id,))
        return cur.fetchone()


class Lean:
    """User A with a chat-scoped key, a key without the scope, a revoked key,
    an active chat and a deleted one; user B with a chat of its own."""

    def __init__(self, db):
        self.user = lean_user(db)
        self.key = lean_key(db, self.user)
        self.noscope_key = lean_key(db, self.user, "{other}")
        self.revoked_key = lean_key(db, self.user)
        db.execute("UPDATE leanmcp.api_keys SET revoked_at = now() "
                   "WHERE key_hash = sha256(convert_to(%s, 'UTF8'))", (self.revoked_key,))
        self.chat = lean_chat(db, self.user)
        self.deleted_chat = lean_chat(db, self.user, status="deleted")
        self.other_user = lean_user(db)
        self.other_chat = lean_chat(db, self.other_user)
        self.chats = [self.chat, self.deleted_chat, self.other_chat]

    def path(self, chat=None):
        return f"/api/chats/id/{chat or self.chat}"

    def snapshot(self, db):
        return [lean_row(db, c) for c in self.chats]


def lean_body(got, row, metadata=None):
    """The 200 body for `row` (with `metadata` instead of the row's when
    given); `got` lends its timestamps' rounding."""
    return {
        "id": row["id_text"], "userId": row["user_id"], "title": row["title"],
        "isPublic": row["is_public"], "status": row["status"],
        "createdAt": api_ts(got.get("createdAt"), row["created_at"]),
        "updatedAt": api_ts(got.get("updatedAt"), row["updated_at"]),
        "messageCount": row["message_count"], "showcased": row["showcased"],
        "summary": row["summary"], "modelUsed": row["model_used"],
        "systemMessageId": row["system_message_id"],
        "metadata": exact(row["metadata_text"]) if metadata is None else metadata,
    }


def keys_in_order(content):
    return [k for k, _ in json.loads(content, object_pairs_hook=lambda p: p)]


def assert_lean_200(resp, row, metadata=None):
    """200, the common headers, the key order, and the body equal to `row`,
    numbers compared exactly (its metadata as `metadata` when given: how
    Node.js writes the row's)."""
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    assert_json_headers(resp)
    got = exact(resp.content)
    assert got == lean_body(got, row, metadata)
    assert keys_in_order(resp.content) == LEAN_CHAT_KEYS
    assert "retry-after" not in resp.headers
    return got


def assert_refusal(resp, status, body, cors=False):
    """An error answer: status, exact body, common headers, no Retry-After
    (it is not the database's fault), CORS on Recoup."""
    assert_json_response(resp, status, body)
    assert "retry-after" not in resp.headers, resp.headers
    if cors:
        assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers


def recoup_chat_row(conn, chat_id):
    return fetch_one(conn, "SELECT * FROM recoup.chats WHERE id = %s", (chat_id,))


def recoup_body(got, row):
    chat = got.get("chat", {})
    return {"chat": {
        "id": row["id"], "sessionId": row["session_id"], "title": row["title"],
        "modelId": row["model_id"], "activeStreamId": row["active_stream_id"],
        "lastAssistantMessageAt": api_ts(chat.get("lastAssistantMessageAt"),
                                         row["last_assistant_message_at"]),
        "createdAt": api_ts(chat.get("createdAt"), row["created_at"]),
        "updatedAt": api_ts(chat.get("updatedAt"), row["updated_at"]),
    }}


def assert_recoup_200(resp, row):
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    assert_json_response(resp, 200, recoup_body(resp.json(), row))
    assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers


_rng = random.SystemRandom()


class Neptun:
    """User A (session cookie, chat) and user B (chat)."""

    def __init__(self, db):
        self.user, self.other_user = self._user(db), self._user(db)
        self.cookie = db.execute("SELECT neptun.issue_session(%s) AS c",
                                 (self.user,)).fetchone()["c"]
        self.chat = self._chat(db, self.user, "My chat")
        self.other_chat = self._chat(db, self.other_user, "Other's chat")

    @staticmethod
    def _user(db):
        while True:
            uid = _rng.randint(10**12, 9 * 10**15)
            if db.execute("INSERT INTO neptun.users (id) VALUES (%s) ON CONFLICT DO NOTHING "
                          "RETURNING id", (uid,)).fetchone():
                return uid

    @staticmethod
    def _chat(db, user, name):
        return db.execute(
            "INSERT INTO neptun.chat_conversations (neptun_user_id, name, model, updated_at) "
            "VALUES (%s, %s, 'google/gemma-2-27b-it', now() - interval '1 day') RETURNING id",
            (user, name)).fetchone()["id"]

    @property
    def path(self):
        return f"/api/users/{self.user}/chats/{self.chat}"

    @property
    def headers(self):
        return {"cookie": f"neptun-session={self.cookie}"}


def neptun_row(conn, chat_id):
    return fetch_one(conn, "SELECT * FROM neptun.chat_conversations WHERE id = %s", (chat_id,))


def neptun_body(got, row):
    chat = got.get("chat", {})
    return {"chat": {
        "id": row["id"], "neptun_user_id": row["neptun_user_id"], "name": row["name"],
        "model": row["model"],
        "created_at": api_ts(chat.get("created_at"), row["created_at"]),
        "updated_at": api_ts(chat.get("updated_at"), row["updated_at"]),
    }}


def assert_neptun_200(resp, row):
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    assert_json_response(resp, 200, neptun_body(resp.json(), row))


# ---- 1. no write through a concurrent change -------------------------------------------------


@contextlib.contextmanager
def lock_holder(stack):
    """A transaction of its own (not autocommit) to take row locks with."""
    conn = psycopg.connect(stack["DATABASE_URL"], autocommit=False, row_factory=dict_row,
                           application_name="chatpatch-tests-locker")
    try:
        yield conn
    finally:
        conn.close()  # rolls back whatever is still open


def blocked_worker_backends(db, holder_pid):
    """pids of the worker's backends waiting on a lock that `holder_pid` holds."""
    rows = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'chatpatch' "
        "AND wait_event_type = 'Lock' AND %s = ANY (pg_blocking_pids(pid))",
        (holder_pid,)).fetchall()
    return [r["pid"] for r in rows]


def patch_behind_lock(stack, db, holder_statements, request, expected_row):
    """Runs `holder_statements` ((sql, params) pairs) in an open transaction,
    sends `request` (a function of an httpx.Client returning a response) from
    a thread, waits (bounded) until a worker backend waits on the holder's
    lock, reads `expected_row(holder)` (the row as the holder will commit it),
    commits, and returns (response, expected row)."""
    with lock_holder(stack) as holder:
        for sql, params in holder_statements:
            holder.execute(sql, params)
        holder_pid = holder.info.backend_pid
        result = {}

        def run():
            try:
                with httpx.Client(base_url=stack["BASE_URL"], timeout=ANSWER_BOUND_S + 5,
                                  event_hooks=openapi_check.EVENT_HOOKS) as c:
                    result["resp"] = request(c)
            except Exception as e:  # reported by the main thread
                result["error"] = e

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + LOCK_WAIT_BOUND_S
        while not blocked_worker_backends(db, holder_pid):
            if not thread.is_alive():
                resp = result.get("resp")
                pytest.fail("the PATCH answered without waiting on the held row: "
                            f"{result.get('error') or (resp.status_code, resp.content[:300])}")
            assert time.monotonic() < deadline, \
                f"no worker backend waited on the lock within {LOCK_WAIT_BOUND_S} s"
            time.sleep(0.02)
        assert thread.is_alive(), "answered while waiting on the lock"
        expected = expected_row(holder)
        holder.commit()
        thread.join(ANSWER_BOUND_S)
        assert not thread.is_alive(), f"no answer {ANSWER_BOUND_S} s after the commit"
    assert "error" not in result, f"request failed: {result['error']!r}"
    assert not blocked_worker_backends(db, holder_pid)
    return result["resp"], expected


KEY_HASH = "sha256(convert_to(%s, 'UTF8'))"
WRITE_THROUGH = "written through a concurrent change"


def lean_race(stack, db, w, holder_statements):
    return patch_behind_lock(
        stack, db, holder_statements,
        lambda c: send(c, w.path(), {"title": WRITE_THROUGH}, {"authorization": f"Bearer {w.key}"}),
        lambda holder: lean_row(holder, w.chat))


def test_race_leanmcp_chat_deleted_meanwhile_404(stack, db):
    w = Lean(db)
    resp, expected = lean_race(stack, db, w, [
        ("UPDATE leanmcp.chats SET status = 'deleted', updated_at = now() WHERE id = %s::uuid",
         (w.chat,))])
    assert_refusal(resp, 404, LEAN_NOT_FOUND)
    assert lean_row(db, w.chat) == expected
    assert expected["status"] == "deleted" and expected["title"] == "Original title"


def test_race_leanmcp_chat_given_to_another_user_404(stack, db):
    w = Lean(db)
    resp, expected = lean_race(stack, db, w, [
        ("UPDATE leanmcp.chats SET user_id = %s WHERE id = %s::uuid", (w.other_user, w.chat))])
    assert_refusal(resp, 404, LEAN_NOT_FOUND)
    assert lean_row(db, w.chat) == expected
    assert expected["user_id"] == w.other_user and expected["title"] == "Original title"


def test_race_leanmcp_key_revoked_with_the_chat_touched_401(stack, db):
    w = Lean(db)
    resp, expected = lean_race(stack, db, w, [
        (f"UPDATE leanmcp.api_keys SET revoked_at = now() WHERE key_hash = {KEY_HASH}", (w.key,)),
        ("UPDATE leanmcp.chats SET message_count = message_count + 1 WHERE id = %s::uuid",
         (w.chat,))])
    assert_refusal(resp, 401, LEAN_UNAUTHORIZED)
    assert lean_row(db, w.chat) == expected
    assert expected["message_count"] == 1 and expected["title"] == "Original title"


def test_race_leanmcp_scope_withdrawn_with_the_chat_touched_403(stack, db):
    w = Lean(db)
    resp, expected = lean_race(stack, db, w, [
        (f"UPDATE leanmcp.api_keys SET scopes = '{{other}}' WHERE key_hash = {KEY_HASH}",
         (w.key,)),
        ("UPDATE leanmcp.chats SET message_count = 2 WHERE id = %s::uuid", (w.chat,))])
    assert_refusal(resp, 403, LEAN_FORBIDDEN)
    assert lean_row(db, w.chat) == expected
    assert expected["message_count"] == 2 and expected["title"] == "Original title"


def test_race_leanmcp_empty_patch_on_a_chat_deleted_meanwhile_404(stack, db):
    """`{}` changes nothing but still answers the chat: not once it is deleted."""
    w = Lean(db)
    resp, expected = patch_behind_lock(
        stack, db,
        [("UPDATE leanmcp.chats SET status = 'deleted' WHERE id = %s::uuid", (w.chat,))],
        lambda c: send(c, w.path(), {}, {"authorization": f"Bearer {w.key}"}),
        lambda holder: lean_row(holder, w.chat))
    assert_refusal(resp, 404, LEAN_NOT_FOUND)
    assert lean_row(db, w.chat) == expected and expected["status"] == "deleted"


def test_race_leanmcp_harmless_change_meanwhile_is_kept_and_the_patch_lands(stack, db):
    """The control: a change that leaves the PATCH allowed (a message
    counted) makes it run again on the new row, which it then updates; both
    changes are in the answer and the row. A worker that answered a
    serialization failure with 503 fails here."""
    w = Lean(db)
    resp, _ = lean_race(stack, db, w, [
        ("UPDATE leanmcp.chats SET message_count = message_count + 5 WHERE id = %s::uuid",
         (w.chat,))])
    row = lean_row(db, w.chat)
    assert (row["title"], row["message_count"]) == (WRITE_THROUGH, 5), row
    assert_lean_200(resp, row)


def recoup_race(stack, db, w, holder_statements):
    return patch_behind_lock(
        stack, db, holder_statements,
        lambda c: send(c, w.path, {"title": WRITE_THROUGH}, {"x-api-key": w.key}),
        lambda holder: recoup_chat_row(holder, w.chat_id))


def test_race_recoup_session_transferred_with_the_chat_touched_403(stack, db):
    w = make_recoup_world(db)
    resp, expected = recoup_race(stack, db, w, [
        ("UPDATE recoup.sessions SET account_id = %s WHERE id = %s",
         (w.other_account_id, w.session_id)),
        ("UPDATE recoup.chats SET updated_at = now() WHERE id = %s", (w.chat_id,))])
    assert_refusal(resp, 403, recoup_error("Forbidden"), cors=True)
    assert recoup_chat_row(db, w.chat_id) == expected
    assert expected["title"] == "New chat"


def test_race_recoup_chat_moved_to_another_session_404(stack, db):
    w = make_recoup_world(db)
    resp, expected = recoup_race(stack, db, w, [
        ("UPDATE recoup.chats SET session_id = %s WHERE id = %s", (w.session2_id, w.chat_id))])
    assert_refusal(resp, 404, recoup_error("Chat not found"), cors=True)
    assert recoup_chat_row(db, w.chat_id) == expected
    assert expected["session_id"] == w.session2_id and expected["title"] == "New chat"


def test_race_recoup_session_deleted_meanwhile_404_session_not_found(stack, db):
    """The session deleted, its chats with it (on delete cascade): the first
    failing check is now the session's."""
    w = make_recoup_world(db)
    resp, expected = recoup_race(stack, db, w, [
        ("DELETE FROM recoup.sessions WHERE id = %s", (w.session_id,))])
    assert_refusal(resp, 404, recoup_error("Session not found"), cors=True)
    assert expected is None and recoup_chat_row(db, w.chat_id) is None
    assert fetch_one(db, "SELECT 1 AS x FROM recoup.sessions WHERE id = %s",
                     (w.session_id,)) is None


def test_race_recoup_key_revoked_with_the_chat_touched_401(stack, db):
    w = make_recoup_world(db)
    resp, expected = recoup_race(stack, db, w, [
        (f"UPDATE recoup.api_keys SET revoked_at = now() WHERE key_hash = {KEY_HASH}", (w.key,)),
        ("UPDATE recoup.chats SET active_stream_id = 'stream-1' WHERE id = %s", (w.chat_id,))])
    assert_refusal(resp, 401, recoup_error("Unauthorized"), cors=True)
    assert recoup_chat_row(db, w.chat_id) == expected
    assert expected["active_stream_id"] == "stream-1" and expected["title"] == "New chat"


def test_race_recoup_harmless_change_meanwhile_is_kept_and_the_patch_lands(stack, db):
    """The control for Recoup: a stream started meanwhile stays, the title lands."""
    w = make_recoup_world(db)
    resp, _ = recoup_race(stack, db, w, [
        ("UPDATE recoup.chats SET active_stream_id = 'stream-2' WHERE id = %s", (w.chat_id,))])
    row = recoup_chat_row(db, w.chat_id)
    assert (row["title"], row["active_stream_id"]) == (WRITE_THROUGH, "stream-2"), row
    assert_recoup_200(resp, row)


def neptun_race(stack, db, w, holder_statements):
    return patch_behind_lock(
        stack, db, holder_statements,
        lambda c: send(c, w.path, {"name": WRITE_THROUGH}, w.headers),
        lambda holder: neptun_row(holder, w.chat))


def test_race_neptun_chat_moved_to_another_user_404(stack, db):
    w = Neptun(db)
    resp, expected = neptun_race(stack, db, w, [
        ("UPDATE neptun.chat_conversations SET neptun_user_id = %s WHERE id = %s",
         (w.other_user, w.chat))])
    assert_refusal(resp, 404, neptun_error(404, "Chat or user not found"))
    assert neptun_row(db, w.chat) == expected
    assert expected["neptun_user_id"] == w.other_user and expected["name"] == "My chat"


def test_race_neptun_logged_out_with_the_chat_touched_401(stack, db):
    w = Neptun(db)
    resp, expected = neptun_race(stack, db, w, [
        (f"DELETE FROM neptun.sessions WHERE token_hash = {KEY_HASH}", (w.cookie,)),
        ("UPDATE neptun.chat_conversations SET model = 'openai/gpt-4o' WHERE id = %s",
         (w.chat,))])
    assert_refusal(resp, 401, neptun_error(401, "Unauthorized"))
    assert neptun_row(db, w.chat) == expected
    assert expected["model"] == "openai/gpt-4o" and expected["name"] == "My chat"


def test_race_neptun_harmless_change_meanwhile_is_kept_and_the_patch_lands(stack, db):
    w = Neptun(db)
    resp, _ = neptun_race(stack, db, w, [
        ("UPDATE neptun.chat_conversations SET model = 'openai/gpt-4o' WHERE id = %s",
         (w.chat,))])
    row = neptun_row(db, w.chat)
    assert (row["name"], row["model"]) == (WRITE_THROUGH, "openai/gpt-4o"), row
    assert_neptun_200(resp, row)


# ---- 2. LeanMCP metadata numbers as Node.js holds them ------------------------------------


def metadata_text_of(content):
    """The raw text of the answer's metadata (its last key, up to the final brace)."""
    text = content.decode()
    start = text.rindex('"metadata":') + len('"metadata":')
    assert text.endswith("}"), text[-100:]
    return text[start:-1]


def test_metadata_numbers_become_doubles_as_node_writes_them(http, db):
    """The probe's five numbers; the expected text is what
    JSON.stringify(JSON.parse(body).metadata) prints in Node.js. jsonb sorts
    keys of one length by bytes, so the order is the body's here."""
    w = Lean(db)
    body = (b'{"metadata":{"a":1e400,"b":1e-400,"c":1.0,"d":1e21,'
            b'"e":12345678901234567890}}')
    resp = send(http, w.path(), body, {"authorization": f"Bearer {w.key}"})
    row = lean_row(db, w.chat)
    assert_lean_200(resp, row)
    node = '{"a":null,"b":0,"c":1,"d":1e+21,"e":12345678901234567000}'
    assert metadata_text_of(resp.content) == node
    assert exact(row["metadata_text"]) == exact(node), row["metadata_text"]


HUGE = "1e131071"  # the largest power of ten PostgreSQL's numeric holds: 131,072 digits


def test_small_body_of_huge_numbers_is_a_small_answer_and_row(http, db):
    """The probe's 2.7 KB body, 300 numbers of 131,072 digits each: stored
    and answered as 300 nulls (was 39 MB in the row and in the answer), and
    a later `{}` PATCH answers the same 2 KB (it answered the 39 MB again)."""
    w = Lean(db)
    body = ('{"metadata":{"n":[' + ",".join([HUGE] * 300) + "]}}").encode()
    assert len(body) < 2750
    headers = {"authorization": f"Bearer {w.key}"}
    resp = send(http, w.path(), body, headers)
    row = lean_row(db, w.chat)
    assert_lean_200(resp, row)
    assert exact(row["metadata_text"]) == {"n": [None] * 300}
    assert metadata_text_of(resp.content) == '{"n":[' + ",".join(["null"] * 300) + "]}"
    assert len(resp.content) < 2048 and len(row["metadata_text"]) < 2048, \
        (len(resp.content), len(row["metadata_text"]))

    again = send(http, w.path(), {}, headers)
    assert lean_row(db, w.chat) == row, "{} changed the row"
    assert_lean_200(again, row)
    assert again.content == resp.content


def test_number_stored_before_the_fix_is_answered_as_node_would(http, db):
    """A row that already holds numbers numeric keeps in full (written before
    the fix, or by ops) is answered as Node.js would write it: `{}` answers
    null and 0, not 131,072 digits, and leaves the row as it was."""
    w = Lean(db)
    chat = lean_chat(db, w.user, metadata=f'{{"big": {HUGE}, "tiny": 1e-16383, "n": 1.50}}')
    before = lean_row(db, chat)
    assert len(before["metadata_text"]) > 131072
    resp = send(http, w.path(chat), {}, {"authorization": f"Bearer {w.key}"})
    assert lean_row(db, chat) == before, "{} changed the row"
    assert (resp.status_code, len(resp.content) < 1024) == (200, True), \
        (resp.status_code, len(resp.content), resp.content[-200:])
    assert_lean_200(resp, before, metadata={"n": decimal.Decimal("1.5"), "big": None, "tiny": 0})
    assert metadata_text_of(resp.content) == '{"n":1.5,"big":null,"tiny":0}'


# ---- 3. bad input is never a 503 ------------------------------------------------------------

# Numbers numeric cannot hold (beyond its 131,072 digits before the point or
# 16,383 after it, or an exponent beyond any integer): once a 503 with
# Retry-After whatever the key or id; now doubles, null or 0 as in Node.js.
UNSTORABLE = {"1e131072": None, "1e-16384": 0, "1e99999999999999999999": None}


@pytest.mark.parametrize("number", UNSTORABLE)
def test_unstorable_number_with_a_good_key_200(http, db, number):
    w = Lean(db)
    body = ('{"metadata":{"x":' + number + "}}").encode()
    resp = send(http, w.path(), body, {"authorization": f"Bearer {w.key}"})
    row = lean_row(db, w.chat)
    assert_lean_200(resp, row)
    assert exact(row["metadata_text"]) == {"x": UNSTORABLE[number]}
    assert metadata_text_of(resp.content) == json.dumps({"x": UNSTORABLE[number]},
                                                        separators=(",", ":"))


# (test id, key attribute or None for an unknown key, chat attribute or a raw
# id, expected body): each check of LeanMCP's order that comes first.
UNSTORABLE_REFUSALS = {
    "unknown-key": (None, "chat", LEAN_UNAUTHORIZED),
    "revoked-key": ("revoked_key", "chat", LEAN_UNAUTHORIZED),
    "key-without-scope": ("noscope_key", "chat", LEAN_FORBIDDEN),
    "malformed-id": ("key", "not-a-uuid", LEAN_BAD_UUID),
    "malformed-id-unknown-key": (None, "not-a-uuid", LEAN_UNAUTHORIZED),
    "deleted-chat": ("key", "deleted_chat", LEAN_NOT_FOUND),
    "other-users-chat": ("key", "other_chat", LEAN_NOT_FOUND),
}


@pytest.mark.parametrize("case", UNSTORABLE_REFUSALS)
@pytest.mark.parametrize("number", UNSTORABLE)
def test_unstorable_number_refused_in_the_apis_order_not_503(http, db, number, case):
    w = Lean(db)
    key_attr, chat, expected = UNSTORABLE_REFUSALS[case]
    key = getattr(w, key_attr) if key_attr else f"unknown-{uuid.uuid4().hex}"
    chat_id = getattr(w, chat, chat)
    before = w.snapshot(db)
    resp = send(http, w.path(chat_id), ('{"metadata":{"x":' + number + "}}").encode(),
                {"authorization": f"Bearer {key}"})
    assert_refusal(resp, expected["statusCode"], expected)
    assert w.snapshot(db) == before


@contextlib.contextmanager
def refusing_trigger(db, table, column, marker):
    """A BEFORE UPDATE trigger on `table` that refuses the value `marker` in
    `column` with SQLSTATE 22023 (class 22, data exception), its message
    quoting the value as PostgreSQL's own messages do. Dropped at the end."""
    name = f"sec_refuse_{uuid.uuid4().hex[:16]}"
    db.execute(f"""
        CREATE FUNCTION public.{name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
        BEGIN
            IF NEW.{column} = '{marker}' THEN
                RAISE EXCEPTION 'value refused: "%"', NEW.{column} USING ERRCODE = '22023';
            END IF;
            RETURN NEW;
        END $fn$""")
    try:
        db.execute(f"CREATE TRIGGER {name} BEFORE UPDATE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION public.{name}()")
        yield
    finally:
        db.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        db.execute(f"DROP FUNCTION IF EXISTS public.{name}()")


def worker_log(stack):
    return Path(stack["STACK_DIR"]) / "log" / "chatpatch.log"


def wait_logged(stack, rids, start, timeout=10.0):
    """The worker log from byte `start` once it holds an access line of every
    rid (a worker holds its lines up to 200 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        with open(worker_log(stack), "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if all(f"rid={rid} " in text for rid in rids):
            return text
        assert time.monotonic() < deadline, f"access lines of {rids} not logged:\n{text[-3000:]}"
        time.sleep(0.05)


def class22_case(db, api):
    """(table, column, marker, path, headers, the marker's body, the expected
    400 body, a function reading the rows, a body that succeeds) for one API,
    on fresh rows."""
    marker = f"refused-{uuid.uuid4().hex}"
    if api == "leanmcp":
        w = Lean(db)
        return ("leanmcp.chats", "title", marker, w.path(), {"authorization": f"Bearer {w.key}"},
                {"title": marker}, LEAN_BAD_JSON, lambda: w.snapshot(db), {"title": "fine"})
    if api == "recoup":
        w = make_recoup_world(db)
        return ("recoup.chats", "title", marker, w.path, {"x-api-key": w.key}, {"title": marker},
                recoup_error("Invalid JSON body"), lambda: w.snapshot(db), {"title": "fine"})
    w = Neptun(db)
    return ("neptun.chat_conversations", "name", marker, w.path, w.headers, {"name": marker},
            neptun_error(400, "Bad Request. Invalid JSON body."),
            lambda: [neptun_row(db, w.chat), neptun_row(db, w.other_chat)], {"name": "fine"})


@pytest.mark.parametrize("api", ["leanmcp", "recoup", "neptun"])
def test_value_refused_by_the_database_is_400_at_the_body_step(http, stack, db, api):
    """A statement refused for a value (class 22) answers the API's bad-body
    400, not 503 + Retry-After; nothing changes; the worker's log does not
    quote the value (PostgreSQL's message may); the next requests, on either
    worker, are served."""
    table, column, marker, path, headers, body, expected, rows, fine = class22_case(db, api)
    start = worker_log(stack).stat().st_size
    before = rows()
    with refusing_trigger(db, table, column, marker):
        resp = send(http, path, body, headers)
        assert_refusal(resp, 400, expected, cors=api == "recoup")
        assert rows() == before
        rids = [resp.headers["x-request-id"]]
        for _ in range(4):  # the pool is sound afterwards, whichever worker answers
            ok = send(http, path, fine, headers)
            assert ok.status_code == 200, ok.content[:300]
            rids.append(ok.headers["x-request-id"])
    text = wait_logged(stack, rids, start)
    assert marker not in text, f"the worker logged the refused value:\n{text[-2000:]}"


# ---- 4. cheap refusals: 8,191 unknown keys -------------------------------------------------
# The answers were right before issue 8 too; what changed is their cost (the
# keys are no longer worded for a 401, nor one allocation each for a 400),
# which `make bench` measures. These pin the answers that the cheaper path
# must keep: the 401 before the body, each key once, in first-occurrence order.

LIMIT = 65536
DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def key_name(i):
    """Three characters, a letter then two base-62 digits: never an array
    index (JavaScript would list those first)."""
    first, rest = divmod(i, len(DIGITS) ** 2)
    return "klmnopqrstuvwxyzabcdefghij"[first] + DIGITS[rest // 62] + DIGITS[rest % 62]


def many_keys_body(names, lead=""):
    """{<lead>"k00":0,...} padded with spaces before the brace to 65,535 bytes."""
    text = "{" + lead + ",".join(f'"{n}":0' for n in names) + "}"
    assert len(text) <= LIMIT - 1, len(text)
    return (text[:-1] + " " * (LIMIT - 1 - len(text)) + "}").encode()


MANY = [key_name(i) for i in range(8191)]  # the most 8-byte members under 64 KiB
# 8,191 members of 4,096 names: each name twice (the last once), in an order
# whose first occurrences are not the sorted order.
REPEATED_NAMES = [key_name(i) for i in range(4095, -1, -1)]
REPEATED = [REPEATED_NAMES[i // 2] for i in range(8191)]


def first_occurrences(names):
    return list(dict.fromkeys(names))


@pytest.mark.parametrize("names", [MANY, REPEATED], ids=["distinct", "each-twice"])
def test_many_unknown_keys_leanmcp(http, db, names):
    w = Lean(db)
    body = many_keys_body(names)
    assert len(body) == LIMIT - 1 and len(names) == 8191
    before = w.snapshot(db)
    resp = send(http, w.path(), body, {"authorization": f"Bearer unknown-{uuid.uuid4().hex}"})
    assert_refusal(resp, 401, LEAN_UNAUTHORIZED)
    resp = send(http, w.path(), body, {"authorization": f"Bearer {w.key}"})
    expected = [f"property {n} should not exist" for n in first_occurrences(names)]
    assert_refusal(resp, 400, leanmcp_error(400, expected, "Bad Request"))
    assert w.snapshot(db) == before


@pytest.mark.parametrize("names", [MANY, REPEATED], ids=["distinct", "each-twice"])
def test_many_unknown_keys_recoup(http, db, names):
    w = make_recoup_world(db)
    body = many_keys_body(names)
    before = w.snapshot(db)
    resp = send(http, w.path, body, {"x-api-key": f"unknown-{uuid.uuid4().hex}"})
    assert_refusal(resp, 401, recoup_error("Unauthorized"), cors=True)
    resp = send(http, w.path, body, {"x-api-key": w.key})
    listed = ", ".join(f'"{n}"' for n in first_occurrences(names))
    assert_refusal(resp, 400, recoup_error(f"Unrecognized keys: {listed}"), cors=True)
    assert w.snapshot(db) == before


def test_many_unknown_keys_neptun_ignores_them(http, db):
    """Neptun ignores unknown keys (zod 3's strip): 401 with an unknown
    cookie, the name's own issue without a name, 200 with one."""
    w = Neptun(db)
    before = neptun_row(db, w.chat)
    resp = send(http, w.path, many_keys_body(MANY),
                {"cookie": f"neptun-session=unknown-{uuid.uuid4().hex}"})
    assert_refusal(resp, 401, neptun_error(401, "Unauthorized"))
    resp = send(http, w.path, many_keys_body(MANY), w.headers)
    assert_refusal(resp, 400, neptun_error(400, "Bad Request. Invalid body(name).",
                                           ("invalid_type", "Required")))
    assert neptun_row(db, w.chat) == before
    resp = send(http, w.path, many_keys_body(MANY[:8190], lead='"name":"k",'), w.headers)
    after = neptun_row(db, w.chat)
    assert after["name"] == "k"
    assert_updated_now(db, before, after)
    assert_neptun_200(resp, after)


# ---- 5. headers, the request id, the access line ---------------------------------------------


def stack_socket(stack):
    return str(Path(stack["STACK_DIR"]) / "run" / "chatpatch.sock")


def assert_fcgi_json(resp, status, body, request_id=None, parse=json.loads):
    """A FastCGI answer: status, exact JSON body (`parse`d), the common
    headers, and the X-Request-Id (`request_id`, or a fresh 32-hex one when
    None). Returns the X-Request-Id."""
    assert resp.status == status, f"status {resp.status}: {resp.body[:500]!r}"
    assert resp.headers.get("content-type") == "application/json; charset=utf-8", resp.headers
    assert resp.headers.get("cache-control") == "no-store", resp.headers
    rid = resp.headers.get("x-request-id")
    if request_id is None:
        assert rid and REQUEST_ID_RE.match(rid), resp.headers
    else:
        assert rid == request_id, resp.headers
    assert parse(resp.body) == body
    return rid


@pytest.mark.parametrize("value", ["{key}\t", "{key} \t", "{key}\t \t"],
                         ids=["tab", "space-tab", "tab-space-tab"])
def test_x_api_key_with_trailing_tab_through_nginx(stack, db, value):
    """Header bytes as a client sends them (nginx keeps a trailing tab and
    passes it on): the key still works, as in Node.js."""
    w = make_recoup_world(db)
    before = recoup_chat_row(db, w.chat_id)
    title = f"tab {uuid.uuid4().hex[:8]}"
    answer = raw_exchange(stack["BASE_URL"], "PATCH", w.path,
                          [("x-api-key", value.format(key=w.key)),
                           ("Content-Type", "application/json")],
                          json.dumps({"title": title}).encode())
    row = recoup_chat_row(db, w.chat_id)
    assert answer.status == 200, answer
    assert row["title"] == title
    assert_updated_now(db, before, row)
    got = json.loads(answer.body)
    assert got == recoup_body(got, row)
    assert answer.get_list("access-control-allow-origin") == ["*"]


# (API, header name, value template): spaces and tabs around the value, as a
# FastCGI host other than nginx may pass them.
PADDED_HEADERS = {
    "recoup-x-api-key": ("recoup", "x-api-key", " \t{key} \t"),
    "recoup-bearer": ("recoup", "authorization", "\t Bearer {key}\t "),
    "leanmcp-bearer": ("leanmcp", "authorization", " \tBearer {key} \t"),
}


@pytest.mark.parametrize("case", PADDED_HEADERS)
def test_header_value_padded_with_spaces_and_tabs_over_fastcgi(stack, db, case):
    api, name, template = PADDED_HEADERS[case]
    title = f"padded {uuid.uuid4().hex[:8]}"
    body = json.dumps({"title": title}).encode()
    if api == "recoup":
        w = make_recoup_world(db)
        before = recoup_chat_row(db, w.chat_id)
        resp = fcgi_http(stack_socket(stack), "PATCH", w.path, body,
                         {name: template.format(key=w.key)})
        row = recoup_chat_row(db, w.chat_id)
        assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row))
    else:
        w = Lean(db)
        before = lean_row(db, w.chat)
        resp = fcgi_http(stack_socket(stack), "PATCH", w.path(), body,
                         {name: template.format(key=w.key)})
        row = lean_row(db, w.chat)
        assert_fcgi_json(resp, 200, lean_body(exact(resp.body), row), parse=exact)
    assert row["title"] == title
    assert_updated_now(db, before, row)


# Two credential headers of which one is only spaces and tabs: that one is
# empty, and an empty header counts as absent, so the other one is used.
BLANK_SECOND_HEADER = {
    "blank-x-api-key": {"x-api-key": " \t ", "authorization": "Bearer {key}"},
    "blank-authorization": {"x-api-key": "{key}", "authorization": "\t "},
}


@pytest.mark.parametrize("case", BLANK_SECOND_HEADER)
def test_header_of_only_spaces_and_tabs_counts_as_absent(stack, db, case):
    w = make_recoup_world(db)
    before = recoup_chat_row(db, w.chat_id)
    headers = {k: v.format(key=w.key) for k, v in BLANK_SECOND_HEADER[case].items()}
    resp = fcgi_http(stack_socket(stack), "PATCH", w.path, b'{"title":"one credential"}',
                     headers)
    row = recoup_chat_row(db, w.chat_id)
    assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row))
    assert row["title"] == "one credential"
    assert_updated_now(db, before, row)


def test_only_spaces_and_tabs_are_removed_from_a_header(stack, db):
    """HTTP's white space, not JavaScript's trim set: a key followed by
    U+00A0 is another key (401), as in Node.js."""
    w = make_recoup_world(db)
    before = w.snapshot(db)
    resp = fcgi_http(stack_socket(stack), "PATCH", w.path, b'{"title":"x"}',
                     {"x-api-key": w.key + "\u00a0"})
    assert_fcgi_json(resp, 401, recoup_error("Unauthorized"))
    assert w.snapshot(db) == before


def recoup_fcgi(stack, db, request_id=None, extra_params=None, headers=None):
    """A Recoup PATCH over FastCGI; returns (response, the world, title)."""
    w = make_recoup_world(db)
    title = f"rid {uuid.uuid4().hex[:8]}"
    resp = fcgi_http(stack_socket(stack), "PATCH", w.path, json.dumps({"title": title}).encode(),
                     {"x-api-key": w.key, **(headers or {})}, request_id,
                     extra_params=extra_params)
    row = recoup_chat_row(db, w.chat_id)
    assert row["title"] == title, row
    return resp, row


def access_line_of(stack, rid, start):
    """The one access line of `rid` in the worker log from byte `start`; it
    must match the documented format in full."""
    text = wait_logged(stack, [rid], start)
    lines = [line for line in text.splitlines() if f" rid={rid} " in line]
    assert len(lines) == 1, f"access lines of {rid}: {lines}"
    m = ACCESS_RE.match(lines[0])
    assert m, f"not in the documented format: {lines[0]!r}"
    return m


# Plain tokens a host may give: used as they are, in the header and the log.
GOOD_REQUEST_IDS = {
    "nginx": "0123456789abcdef0123456789abcdef",
    "with-at-and-dots": "Wq3@x.example-1_2",
    "128-bytes": "r" * 128,
}


@pytest.mark.parametrize("rid", GOOD_REQUEST_IDS.values(), ids=GOOD_REQUEST_IDS.keys())
def test_request_id_from_the_host_is_used(stack, db, rid):
    start = worker_log(stack).stat().st_size
    resp, row = recoup_fcgi(stack, db, request_id=rid)
    assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row), request_id=rid)
    assert access_line_of(stack, rid, start)["status"] == "200"


@pytest.mark.parametrize("given", ["apache-unique-id", "REQUEST_ID-not-a-token"])
def test_apache_unique_id_is_used(stack, db, given):
    """Apache's mod_unique_id (UNIQUE_ID, base64-ish with '@'), when there is no
    REQUEST_ID or it is not a plain token."""
    uid = f"ZX{uuid.uuid4().hex[:20]}@AAAB"
    params = {"UNIQUE_ID": uid}
    if given == "REQUEST_ID-not-a-token":
        params["REQUEST_ID"] = "not a token"
    start = worker_log(stack).stat().st_size
    resp, row = recoup_fcgi(stack, db, extra_params=params)
    assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row), request_id=uid)
    assert access_line_of(stack, uid, start)["status"] == "200"


# What a host may pass that is not a plain token: never echoed, never logged.
BAD_REQUEST_IDS = {
    "space": "a b",
    "quote": 'a"b',
    "crlf-header": "x\r\nSet-Cookie: a=b",
    "newline-log-line": "x\n2026-11-21T00:00:00.000Z [1] info: access rid=forged",
    "129-bytes": "r" * 129,
    "non-ascii": "caf\u00e9",
    "colon": "a:b",
    "empty": "",
}


@pytest.mark.parametrize("rid", BAD_REQUEST_IDS.values(), ids=BAD_REQUEST_IDS.keys())
def test_request_id_not_a_plain_token_is_replaced(stack, db, rid):
    """Not a plain token ([A-Za-z0-9._@-], 1 to 128 bytes): the worker makes
    a 32-hex id, in the header and in the one access line; the client's
    X-Request-Id is not taken instead."""
    start = worker_log(stack).stat().st_size
    resp, row = recoup_fcgi(stack, db, request_id=rid, headers={"x-request-id": "client-chosen"})
    made = assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row))
    assert "set-cookie" not in resp.headers
    m = access_line_of(stack, made, start)
    assert m["status"] == "200"
    text = worker_log(stack).read_bytes()[start:].decode(errors="replace")
    assert "rid=forged" not in text and "client-chosen" not in text


def test_client_x_request_id_is_never_used(stack, db):
    """No REQUEST_ID (a host that does not pass one): the client's
    X-Request-Id, a plain token, is still not the request id."""
    start = worker_log(stack).stat().st_size
    resp, row = recoup_fcgi(stack, db, headers={"x-request-id": "client-chosen-id"})
    made = assert_fcgi_json(resp, 200, recoup_body(json.loads(resp.body), row))
    assert made != "client-chosen-id"
    access_line_of(stack, made, start)
    assert "client-chosen-id" not in worker_log(stack).read_bytes()[start:].decode(errors="replace")


def test_cgi_client_x_request_id_is_never_used(stack, db):
    """Under a CGI host, which passes no REQUEST_ID: the worker's own id,
    never the client's X-Request-Id."""
    w = make_recoup_world(db)
    status, headers, body = run_cgi(stack, "PATCH", w.path,
                                    {"x-api-key": w.key, "x-request-id": "client-chosen-id"},
                                    b'{"title":"via CGI"}')
    row = recoup_chat_row(db, w.chat_id)
    assert status == 200, body
    assert json.loads(body) == recoup_body(json.loads(body), row)
    assert row["title"] == "via CGI"
    assert REQUEST_ID_RE.match(headers.get("x-request-id", "")), headers


def escaped_method(method, limit=32):
    """How the access line writes a method: its first `limit` bytes, each
    outside [A-Za-z0-9-_.!#$%&*+^`|~@] as \\xHH, then "..." when cut."""
    raw = method.encode() if isinstance(method, str) else method
    plain = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&*+^`|~@")
    out = "".join(chr(c) if c in plain else f"\\x{c:02x}" for c in raw[:limit])
    return out + ("..." if len(raw) > limit else "")


HOSTILE_METHODS = {
    "1000-chars": "B" * 1000,
    "spaces-quotes-fields": 'PATCH x" status=200 route=health',
    "newline": "PATCH\n2026-11-21T00:00:00.000Z [1] info: access rid=forged",
    "bytes": b"P\xffATCH\x1b[31m\x7f",
    "33-chars": "A" * 33,
    "32-chars": "A" * 32,
}


@pytest.mark.parametrize("method", HOSTILE_METHODS.values(), ids=HOSTILE_METHODS.keys())
def test_hostile_method_keeps_the_access_line_whole(stack, db, method):
    """405 in Recoup's shape, and one access line in the documented format
    with the method bounded and escaped, so status= and what follows are
    always there."""
    w = make_recoup_world(db)
    before = w.snapshot(db)
    rid = f"sec-{uuid.uuid4().hex}"
    start = worker_log(stack).stat().st_size
    resp = fcgi_http(stack_socket(stack), "PATCH", w.path, b'{"title":"x"}',
                     {"x-api-key": w.key}, rid, extra_params={"REQUEST_METHOD": method})
    assert_fcgi_json(resp, 405, recoup_error("Method Not Allowed"), request_id=rid)
    assert resp.headers.get("allow") == "GET, PATCH, OPTIONS", resp.headers  # issue 11
    m = access_line_of(stack, rid, start)
    assert (m["method"], m["route"], m["status"]) == (escaped_method(method), "recoup", "405")
    assert w.snapshot(db) == before
    text = worker_log(stack).read_bytes()[start:].decode(errors="replace")
    assert "rid=forged" not in text


def test_1000_char_method_through_nginx(stack, db):
    """The probe's request: nginx passes a 1,000-letter method on; the worker
    answers 405 and its access line keeps status= (it was cut off)."""
    w = make_recoup_world(db)
    before = w.snapshot(db)
    start = worker_log(stack).stat().st_size
    answer = raw_exchange(stack["BASE_URL"], "Q" * 1000, w.path,
                          [("x-api-key", w.key), ("Content-Type", "application/json")],
                          b'{"title":"x"}')
    assert answer.status == 405, answer
    assert json.loads(answer.body) == recoup_error("Method Not Allowed")
    (rid,) = answer.get_list("x-request-id")
    m = access_line_of(stack, rid, start)
    assert (m["method"], m["route"], m["status"]) == ("Q" * 32 + "...", "recoup", "405")
    assert w.snapshot(db) == before
