"""Recoup: PATCH /api/sessions/{sessionId}/chats/{chatId} (SPEC sections 1-3).

Every test makes its own account/session/chat rows (recoup_world) and checks
the status, the exact JSON body, the headers, and the rows afterwards:
unchanged after every error, trimmed values and a later updated_at after a
success.
"""

import json
import os
import signal
import time
import uuid

import pytest

import hosts
from conftest import (
    TIMESTAMP_RE,
    WORKERS,
    assert_json_response,
    assert_json_shape,
    child_pids,
    fetch_recoup_chat,
    json_body,
    make_recoup_world,
    non_postgres_logs,
    pg_log_window,
    pool_parent_pid,
    recoup_new_session,
    recoup_path,
    recoup_revoke_key,
    run_cgi,
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
    recoup_error,
    send,
)

ROW1 = "Exactly one of x-api-key or Authorization must be provided"
ROW2 = "Authorization header with Bearer token required"
UNAUTHORIZED = "Unauthorized"
SESSION_NOT_FOUND = "Session not found"
FORBIDDEN = "Forbidden"
CHAT_NOT_FOUND = "Chat not found"
INVALID_JSON = "Invalid JSON body"
AT_LEAST_ONE = "At least one field is required"
TOO_LARGE = "Request body too large"
BAD_MEDIA = "Content-Type must be application/json"

VALID = {"title": "Renamed"}
DEFAULT = object()  # "use the world's x-api-key"


def assert_recoup(resp, status, body):
    """assert_json_response plus the CORS header every Recoup answer carries."""
    got = assert_json_response(resp, status, body)
    assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers
    return got


def check_error(http, db, w, status, message, body=VALID, headers=DEFAULT, path=None,
                content_type="application/json"):
    """Sends one request that must fail; asserts the answer and that no row changed."""
    if headers is DEFAULT:
        headers = {"x-api-key": w.key}
    before = w.snapshot(db)
    resp = send(http, path or w.path, body, headers, content_type)
    assert_recoup(resp, status, recoup_error(message))
    assert w.snapshot(db) == before, "a failed request changed a row"
    return resp


def expected_chat(resp_chat, row):
    return {
        "id": row["id"],
        "sessionId": row["session_id"],
        "title": row["title"],
        "modelId": row["model_id"],
        "activeStreamId": row["active_stream_id"],
        "lastAssistantMessageAt": api_ts(resp_chat.get("lastAssistantMessageAt"),
                                         row["last_assistant_message_at"]),
        "createdAt": api_ts(resp_chat.get("createdAt"), row["created_at"]),
        "updatedAt": api_ts(resp_chat.get("updatedAt"), row["updated_at"]),
    }


CHAT_KEYS = ["id", "sessionId", "title", "modelId", "activeStreamId", "lastAssistantMessageAt",
             "createdAt", "updatedAt"]


def check_success(http, db, w, body, title=None, model_id=None, headers=DEFAULT, chat_id=None,
                  session_id=None, path=None, content_type="application/json", ensure_ascii=True):
    """Sends one request that must succeed; asserts the answer, the new row
    (given fields changed, updated_at later, nothing else) and other rows."""
    chat_id = chat_id or w.chat_id
    session_id = session_id or w.session_id
    if headers is DEFAULT:
        headers = {"x-api-key": w.key}
    before = fetch_recoup_chat(db, chat_id)
    others = [r for r in w.snapshot(db) if r["id"] != chat_id]
    resp = send(http, path or recoup_path(session_id, chat_id), body, headers, content_type,
                ensure_ascii=ensure_ascii)
    after = fetch_recoup_chat(db, chat_id)
    assert resp.status_code == 200, f"status {resp.status_code}: {resp.content[:500]!r}"
    got = resp.json()
    assert list(got) == ["chat"], got
    assert list(got["chat"]) == CHAT_KEYS, f"key order {list(got['chat'])}"
    assert_recoup(resp, 200, {"chat": expected_chat(got["chat"], after)})
    for k in ("createdAt", "updatedAt"):
        assert TIMESTAMP_RE.match(got["chat"][k]), got["chat"][k]

    expected_row = dict(before)
    if title is not None:
        expected_row["title"] = title
    if model_id is not None:
        expected_row["model_id"] = model_id
    expected_row["updated_at"] = after["updated_at"]
    expected_row["version"] = after["version"]  # issue 11: a new version on every update
    assert after["version"] > before["version"]
    assert after == expected_row
    assert_updated_now(db, before, after)
    assert [r for r in w.snapshot(db) if r["id"] != chat_id] == others
    return resp


# ---- success ------------------------------------------------------------------------


def test_title_only_with_x_api_key(http, db, recoup_world):
    check_success(http, db, recoup_world, {"title": "Renamed chat"}, title="Renamed chat")


def test_model_id_only_with_bearer(http, db, recoup_world):
    w = recoup_world
    check_success(http, db, w, {"modelId": "anthropic/claude-4"}, model_id="anthropic/claude-4",
                  headers={"authorization": f"Bearer {w.key}"})


def test_both_fields_trimmed(http, db, recoup_world):
    check_success(http, db, recoup_world, {"title": "  Both  ", "modelId": "\t openai/gpt-5 \n"},
                  title="Both", model_id="openai/gpt-5")


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_any_case(http, db, recoup_world, scheme):
    w = recoup_world
    check_success(http, db, w, {"title": scheme}, title=scheme,
                  headers={"authorization": f"{scheme} {w.key}"})


def test_x_api_key_header_name_any_case(http, db, recoup_world):
    w = recoup_world
    check_success(http, db, w, {"title": "caps"}, title="caps", headers={"X-API-KEY": w.key})


def test_success_shape_with_nullable_fields_set(http, db, recoup_world):
    w = recoup_world
    chat = w.new_chat(db, active_stream_id="stream_123",
                      last_assistant_message_at="2026-11-20T10:11:12.345678Z",
                      created_at="2026-11-19T01:02:03.004005Z",
                      updated_at="2026-11-19T01:02:03.004005Z")
    resp = check_success(http, db, w, {"title": "With stream"}, title="With stream", chat_id=chat)
    c = resp.json()["chat"]
    assert c["activeStreamId"] == "stream_123"
    assert c["lastAssistantMessageAt"] in ("2026-11-20T10:11:12.345Z", "2026-11-20T10:11:12.346Z")
    assert c["createdAt"] == "2026-11-19T01:02:03.004Z"


def test_success_shape_with_nulls(http, db, recoup_world):
    resp = check_success(http, db, recoup_world, {"title": "nulls"}, title="nulls")
    c = resp.json()["chat"]
    assert c["activeStreamId"] is None and c["lastAssistantMessageAt"] is None
    assert c["id"] == recoup_world.chat_id and c["sessionId"] == recoup_world.session_id


def test_second_update_moves_updated_at_again(http, db, recoup_world):
    first = check_success(http, db, recoup_world, {"title": "one"}, title="one")
    second = check_success(http, db, recoup_world, {"modelId": "m/two"}, model_id="m/two")
    assert second.json()["chat"]["title"] == "one"
    assert second.json()["chat"]["updatedAt"] >= first.json()["chat"]["updatedAt"]


@pytest.mark.parametrize(
    "sent,stored",
    [
        ("  Ünïcødé 😀 标题  ", "Ünïcødé 😀 标题"),
        ("\u00a0\u2028Hi there\u3000\ufeff", "Hi there"),
        (ES_WHITESPACE + "all of them" + ES_WHITESPACE, "all of them"),
        ("a \u00a0 b", "a \u00a0 b"),  # inner whitespace stays
        ("\u200bzero width\u200b", "\u200bzero width\u200b"),  # U+200B is not trimmed
        ("\u0085nel\u0085", "\u0085nel\u0085"),  # nor NEL
        ("\u180e", "\u180e"),  # nor the Mongolian vowel separator
        ("\u001cfs\u001f", "\u001cfs\u001f"),  # nor the C0 separators
        ("😀", "😀"),
        ("x", "x"),
    ],
    ids=["unicode", "nbsp-ls-ideographic-bom", "every-es-space", "inner", "zwsp", "nel", "mvs",
         "c0-separators", "emoji", "one-char"],
)
@pytest.mark.parametrize("ascii_escaped", [True, False], ids=["escaped", "raw-utf8"])
def test_unicode_title_stored_trimmed(http, db, recoup_world, sent, stored, ascii_escaped):
    check_success(http, db, recoup_world, {"title": sent}, title=stored, ensure_ascii=ascii_escaped)


@pytest.mark.parametrize(
    "raw,stored",
    [
        (rb'{"title":"\ud83d\ude00"}', "😀"),
        (rb'{"title":"\u00e9t\u00E9"}', "été"),
        (rb'{"title":"a\/b\\c\"d"}', 'a/b\\c"d'),
        (rb'{"title":"tab\tin\nit"}', "tab\tin\nit"),
        (b' \n{"title":"ws around"}\n ', "ws around"),
    ],
    ids=["surrogate-pair", "escapes", "slash-backslash-quote", "escaped-controls", "outer-ws"],
)
def test_json_escapes_decoded(http, db, recoup_world, raw, stored):
    check_success(http, db, recoup_world, raw, title=stored)


@pytest.mark.parametrize("model", ["  m  ", "\u3000openai/gpt-5.4-mini\ufeff"])
def test_model_id_trimmed(http, db, recoup_world, model):
    check_success(http, db, recoup_world, {"modelId": model}, model_id=model.strip(ES_WHITESPACE))


@pytest.mark.parametrize("content_type", JSON_MEDIA_TYPES)
def test_json_content_types_accepted(http, db, recoup_world, content_type):
    check_success(http, db, recoup_world, {"title": content_type}, title=content_type,
                  content_type=content_type)


def test_query_string_ignored(http, db, recoup_world):
    w = recoup_world
    check_success(http, db, w, {"title": "q"}, title="q", path=w.path + "?title=ignored&x=1")


def test_path_segments_percent_decoded_once(http, db, recoup_world):
    w = recoup_world
    hexid = uuid.uuid4().hex
    session = recoup_new_session(db, w.account_id, f"sess+{hexid} ü%41")
    chat = w.new_chat(db, session_id=session, chat_id=f"chat {hexid}%2F")
    path = recoup_path(session, chat)
    assert "%2541" in path and "%252F" in path
    check_success(http, db, w, {"title": "decoded"}, title="decoded", chat_id=chat, session_id=session)


def test_raw_plus_in_path_is_not_a_space(http, db, recoup_world):
    w = recoup_world
    hexid = uuid.uuid4().hex
    session = recoup_new_session(db, w.account_id, f"sess+{hexid}")
    chat = w.new_chat(db, session_id=session, chat_id=f"chat+{hexid}")
    check_success(http, db, w, {"title": "plus"}, title="plus", chat_id=chat, session_id=session,
                  path=f"/api/sessions/sess+{hexid}/chats/chat+{hexid}")


@pytest.mark.parametrize("size,status", [(65536, 200), (65537, 413)])
def test_body_size_limit_edge(http, db, recoup_world, size, status):
    w = recoup_world
    title = "a" * (size - len(b'{"title":""}'))
    body = b'{"title":"' + title.encode() + b'"}'
    assert len(body) == size
    if status == 200:
        check_success(http, db, w, body, title=title)
    else:
        check_error(http, db, w, 413, TOO_LARGE, body=body)


# ---- authentication (rows 1-3) --------------------------------------------------------


def test_neither_header_401(http, db, recoup_world):
    check_error(http, db, recoup_world, 401, ROW1, headers={})


@pytest.mark.parametrize("authorization", ["Bearer {key}", "Basic dXNlcjpwYXNz", "Bearer nope"])
def test_both_headers_401(http, db, recoup_world, authorization):
    w = recoup_world
    check_error(http, db, w, 401, ROW1,
                headers={"x-api-key": w.key, "authorization": authorization.format(key=w.key)})


@pytest.mark.parametrize(
    "authorization",
    ["Basic dXNlcjpwYXNz", "Token {key}", "Bearer", "Bearer:{key}", "Bearer{key}", "{key}",
     "Digest username=x"],
)
def test_authorization_not_bearer_401(http, db, recoup_world, authorization):
    w = recoup_world
    check_error(http, db, w, 401, ROW2, headers={"authorization": authorization.format(key=w.key)})


@pytest.mark.parametrize("mode", ["x-api-key", "bearer"])
def test_unknown_key_401(http, db, recoup_world, mode):
    key = f"unknown-{uuid.uuid4().hex}"
    headers = {"x-api-key": key} if mode == "x-api-key" else {"authorization": f"Bearer {key}"}
    check_error(http, db, recoup_world, 401, UNAUTHORIZED, headers=headers)


@pytest.mark.parametrize("mode", ["x-api-key", "bearer"])
@pytest.mark.parametrize("when", ["now()", "now() - interval '1 day'"], ids=["now", "past"])
def test_revoked_key_401(http, db, recoup_world, mode, when):
    w = recoup_world
    recoup_revoke_key(db, w.key, when)
    headers = {"x-api-key": w.key} if mode == "x-api-key" else {"authorization": f"Bearer {w.key}"}
    check_error(http, db, w, 401, UNAUTHORIZED, headers=headers)


def test_key_revoked_in_future_still_works(http, db, recoup_world):
    w = recoup_world
    recoup_revoke_key(db, w.key, "now() + interval '1 day'")
    check_success(http, db, w, {"title": "still valid"}, title="still valid")


def test_revocation_takes_effect_at_once(http, db, recoup_world):
    w = recoup_world
    check_success(http, db, w, {"title": "before revoke"}, title="before revoke")
    recoup_revoke_key(db, w.key)
    check_error(http, db, w, 401, UNAUTHORIZED)


def test_key_of_other_account_is_not_a_prefix_match(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 401, UNAUTHORIZED, headers={"x-api-key": w.key + "x"})
    check_error(http, db, w, 401, UNAUTHORIZED, headers={"x-api-key": w.key[:-1]})


@pytest.mark.parametrize("mode", ["x-api-key", "bearer"])
def test_non_ascii_key_hashed_as_utf8(http, db, recoup_world, mode):
    w = recoup_world
    key = f"ключ-🔑-{uuid.uuid4().hex}"
    db.execute("INSERT INTO recoup.api_keys (account_id, key_hash) "
               "VALUES (%s, sha256(convert_to(%s, 'UTF8')))", (w.account_id, key))
    raw = key.encode()
    headers = {"x-api-key": raw} if mode == "x-api-key" else {"authorization": b"Bearer " + raw}
    check_success(http, db, w, {"title": "utf-8 key"}, title="utf-8 key", headers=headers)


def test_key_stored_only_as_sha256(db, recoup_world):
    w = recoup_world
    rows = db.execute(
        "SELECT key_hash = sha256(convert_to(%s, 'UTF8')) AS ok FROM recoup.api_keys "
        "WHERE account_id = %s", (w.key, w.account_id)).fetchall()
    assert rows == [{"ok": True}]


# ---- session and chat (rows 4-6) ---------------------------------------------------------


def test_session_missing_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, SESSION_NOT_FOUND,
                path=recoup_path(f"sess_missing_{uuid.uuid4().hex}", w.chat_id))


def test_session_id_is_case_sensitive(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, SESSION_NOT_FOUND, path=recoup_path(w.session_id.upper(), w.chat_id))


def test_session_of_other_account_403(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 403, FORBIDDEN, path=recoup_path(w.other_session_id, w.other_chat_id))


def test_session_of_other_account_with_bearer_403(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 403, FORBIDDEN, headers={"authorization": f"Bearer {w.other_key}"})


def test_session_of_other_account_and_missing_chat_403(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 403, FORBIDDEN, path=recoup_path(w.other_session_id, "chat_missing"))


def test_chat_missing_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, CHAT_NOT_FOUND,
                path=recoup_path(w.session_id, f"chat_missing_{uuid.uuid4().hex}"))


def test_chat_in_other_session_of_same_account_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, CHAT_NOT_FOUND, path=recoup_path(w.session_id, w.chat2_id))


def test_chat_of_other_account_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, CHAT_NOT_FOUND, path=recoup_path(w.session_id, w.other_chat_id))


# ---- the order of the checks ------------------------------------------------------------


def test_order_both_headers_before_body(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 401, ROW1, body=b"{bad",
                headers={"x-api-key": w.key, "authorization": f"Bearer {w.key}"},
                path=recoup_path("sess_missing", "chat_missing"))


def test_order_basic_before_session(http, db, recoup_world):
    check_error(http, db, recoup_world, 401, ROW2, body=b"{bad", headers={"authorization": "Basic x"},
                path=recoup_path("sess_missing", "chat_missing"))


def test_order_bad_key_and_bad_body_401(http, db, recoup_world):
    check_error(http, db, recoup_world, 401, UNAUTHORIZED, body=b"{bad",
                headers={"x-api-key": "unknown-" + uuid.uuid4().hex})


def test_order_bad_key_and_missing_session_401(http, db, recoup_world):
    check_error(http, db, recoup_world, 401, UNAUTHORIZED,
                headers={"x-api-key": "unknown-" + uuid.uuid4().hex},
                path=recoup_path("sess_missing", "chat_missing"))


def test_order_revoked_key_and_missing_session_401(http, db, recoup_world):
    w = recoup_world
    recoup_revoke_key(db, w.key)
    check_error(http, db, w, 401, UNAUTHORIZED, path=recoup_path("sess_missing", w.chat_id))


def test_order_missing_session_and_bad_body_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, SESSION_NOT_FOUND, body=b"{bad",
                path=recoup_path(f"sess_missing_{uuid.uuid4().hex}", w.chat_id))


def test_order_other_account_and_bad_body_403(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 403, FORBIDDEN, body={}, path=recoup_path(w.other_session_id, w.other_chat_id))


def test_order_missing_chat_and_bad_body_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, CHAT_NOT_FOUND, body={"title": ""},
                path=recoup_path(w.session_id, "chat_missing"))


def test_order_missing_chat_and_text_plain_404(http, db, recoup_world):
    w = recoup_world
    check_error(http, db, w, 404, CHAT_NOT_FOUND, content_type="text/plain",
                path=recoup_path(w.session_id, "chat_missing"))


def test_order_bad_key_and_text_plain_401(http, db, recoup_world):
    check_error(http, db, recoup_world, 401, UNAUTHORIZED, content_type="text/plain",
                headers={"x-api-key": "unknown-" + uuid.uuid4().hex})


def test_order_text_plain_before_json_parse_415(http, db, recoup_world):
    check_error(http, db, recoup_world, 415, BAD_MEDIA, body=b"{bad", content_type="text/plain")


def test_order_big_body_before_auth_413(http, db, recoup_world):
    body = json.dumps({"title": "a" * 70 * 1024}).encode()
    check_error(http, db, recoup_world, 413, TOO_LARGE, body=body, headers={})


# ---- body: media type and size -------------------------------------------------------------


@pytest.mark.parametrize("content_type", NON_JSON_MEDIA_TYPES)
def test_non_json_content_type_415(http, db, recoup_world, content_type):
    check_error(http, db, recoup_world, 415, BAD_MEDIA, content_type=content_type)


def test_70kb_body_413(http, db, recoup_world):
    body = json.dumps({"title": "a" * 70 * 1024}).encode()
    check_error(http, db, recoup_world, 413, TOO_LARGE, body=body)


# ---- body: JSON (row 7) ---------------------------------------------------------------------

INVALID_BODIES = {
    "empty": b"",
    "whitespace": b"  \n",
    "unterminated": b'{"title":"x"',
    "trailing-garbage": b'{"title":"x"} x',
    "two-documents": b'{"title":"x"}{}',
    "NaN": b"NaN",
    "NaN-value": b'{"title":NaN}',
    "Infinity-value": b'{"title":Infinity}',
    "minus-Infinity": b'{"title":-Infinity}',
    "single-quotes": b"{'title':'x'}",
    "single-quoted-value": b"{\"title\":'x'}",
    "unquoted-key": b'{title:"x"}',
    "trailing-comma-object": b'{"title":"x",}',
    "trailing-comma-array": b'{"title":"x","a":[1,]}',
    "comment-block": b'{"title":"x"/* c */}',
    "comment-line": b'{"title":"x"}// c',
    "leading-zero": b'{"title":01}',
    "plus-number": b'{"title":+1}',
    "bare-fraction": b'{"title":.5}',
    "dangling-point": b'{"title":1.}',
    "hex-number": b'{"title":0x10}',
    "True": b'{"title":True}',
    "truncated-literal": b'{"title":nul}',
    "bad-escape": b'{"title":"\\x41"}',
    "short-unicode-escape": b'{"title":"\\u12"}',
    "raw-tab-in-string": b'{"title":"a\tb"}',
    "raw-newline-in-string": b'{"title":"a\nb"}',
    "raw-nul-byte": b'{"title":"a\x00b"}',
    "escaped-nul": b'{"title":"a\\u0000b"}',
    "escaped-nul-in-key": b'{"a\\u0000":1}',
    "lone-high-surrogate": b'{"title":"\\ud800"}',
    "lone-low-surrogate": b'{"title":"\\udc00"}',
    "high-surrogate-then-char": b'{"title":"\\ud800x"}',
    "high-surrogate-then-bmp-escape": b'{"title":"\\ud800\\u0041"}',
    "invalid-utf8-ff": b'{"title":"\xff"}',
    "truncated-utf8": b'{"title":"\xc3"}',
    "overlong-utf8": b'{"title":"\xc0\xaf"}',
    "utf8-encoded-surrogate": b'{"title":"\xed\xa0\x80"}',
    "utf8-beyond-10ffff": b'{"title":"\xf4\x90\x80\x80"}',
    "invalid-utf8-in-key": b'{"\xff":1}',
    "utf8-bom": b'\xef\xbb\xbf{"title":"x"}',
    "depth-33": b'{"a":' + b"[" * 32 + b"]" * 32 + b"}",
    "depth-33-objects": b'{"a":' * 33 + b"1" + b"}" * 33,
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_invalid_json_400(http, db, recoup_world, body):
    check_error(http, db, recoup_world, 400, INVALID_JSON, body=body)


def test_depth_32_is_parsed(http, db, recoup_world):
    body = b'{"title":"x","a":' + b"[" * 31 + b"]" * 31 + b"}"
    check_error(http, db, recoup_world, 400, 'Unrecognized key: "a"', body=body)


def test_depth_32_objects_is_parsed(http, db, recoup_world):
    body = b'{"title":"x","a":' + b'{"b":' * 31 + b"1" + b"}" * 31 + b"}"
    check_error(http, db, recoup_world, 400, 'Unrecognized key: "a"', body=body)


# ---- body: schema (row 8) --------------------------------------------------------------------

TOP_LEVEL = {
    "array": (b"[]", "array"),
    "array-of-object": (b'[{"title":"x"}]', "array"),
    "null": (b"null", "null"),
    "zero": (b"0", "number"),
    "negative-float": (b"-1.5e3", "number"),
    "true": (b"true", "boolean"),
    "false": (b"false", "boolean"),
    "string": (b'"title"', "string"),
    "empty-string": (b'""', "string"),
}


@pytest.mark.parametrize("body,received", TOP_LEVEL.values(), ids=TOP_LEVEL.keys())
def test_top_level_not_object(http, db, recoup_world, body, received):
    check_error(http, db, recoup_world, 400, f"Invalid input: expected object, received {received}",
                body=body)


WRONG_TYPES = {k: v for k, v in NON_STRING_JSON.items() if k != "integer"}


@pytest.mark.parametrize("value,received", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_title_wrong_type(http, db, recoup_world, value, received):
    check_error(http, db, recoup_world, 400, f"Invalid input: expected string, received {received}",
                body=f'{{"title":{value}}}'.encode())


@pytest.mark.parametrize("value,received", WRONG_TYPES.values(), ids=WRONG_TYPES.keys())
def test_model_id_wrong_type(http, db, recoup_world, value, received):
    check_error(http, db, recoup_world, 400, f"Invalid input: expected string, received {received}",
                body=f'{{"title":"ok","modelId":{value}}}'.encode())


EMPTY_VALUES = ["", " ", "   ", ES_WHITESPACE] + list(ES_WHITESPACE)


@pytest.mark.parametrize("value", EMPTY_VALUES, ids=empty_id)
def test_title_empty_after_trim(http, db, recoup_world, value):
    check_error(http, db, recoup_world, 400, "title cannot be empty", body={"title": value})


@pytest.mark.parametrize("value", ["", " ", "\u00a0", "\u2028", "\ufeff", "\u3000", ES_WHITESPACE],
                         ids=empty_id)
def test_model_id_empty_after_trim(http, db, recoup_world, value):
    check_error(http, db, recoup_world, 400, "modelId cannot be empty", body={"modelId": value})


@pytest.mark.parametrize("value", ["\u00a0", "\u2028", "\ufeff", "\u3000"], ids=empty_id)
def test_title_empty_raw_utf8(http, db, recoup_world, value):
    body = json.dumps({"title": f" {value} "}, ensure_ascii=False).encode()
    check_error(http, db, recoup_world, 400, "title cannot be empty", body=body)


SCHEMA_ORDER = {
    "title-type-before-model-type": (b'{"modelId":1,"title":2}', "Invalid input: expected string, received number"),
    "title-empty-before-model-type": (b'{"modelId":1,"title":" "}', "title cannot be empty"),
    "title-type-before-unknown": (b'{"foo":1,"title":null}', "Invalid input: expected string, received null"),
    "title-empty-before-unknown": (b'{"foo":1,"title":""}', "title cannot be empty"),
    "model-type-before-unknown": (b'{"foo":1,"modelId":true}', "Invalid input: expected string, received boolean"),
    "model-empty-before-unknown": (b'{"foo":1,"modelId":""}', "modelId cannot be empty"),
    "model-empty-with-good-title": (b'{"title":"ok","modelId":"\\t"}', "modelId cannot be empty"),
    "unknown-with-valid-fields": (b'{"title":"ok","modelId":"m","foo":1}', 'Unrecognized key: "foo"'),
    "unknown-only": (b'{"foo":1}', 'Unrecognized key: "foo"'),
    "unknown-null-value": (b'{"foo":null}', 'Unrecognized key: "foo"'),
    "two-unknown": (b'{"foo":1,"bar":2}', 'Unrecognized keys: "foo", "bar"'),
    "two-unknown-reversed": (b'{"bar":1,"foo":2}', 'Unrecognized keys: "bar", "foo"'),
    "three-unknown-around-title": (b'{"z":1,"title":"ok","a":2,"m":3}', 'Unrecognized keys: "z", "a", "m"'),
    "key-case-matters": (b'{"Title":"x"}', 'Unrecognized key: "Title"'),
    "snake-case-model": (b'{"model_id":"x"}', 'Unrecognized key: "model_id"'),
    "unicode-key": ('{"tïtle":"x"}'.encode(), 'Unrecognized key: "tïtle"'),
    "empty-object": (b"{}", AT_LEAST_ONE),
    "empty-object-ws": (b" { } ", AT_LEAST_ONE),
}


@pytest.mark.parametrize("body,message", SCHEMA_ORDER.values(), ids=SCHEMA_ORDER.keys())
def test_schema_messages(http, db, recoup_world, body, message):
    check_error(http, db, recoup_world, 400, message, body=body)


# ---- routing, methods, health ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["PUT", "POST", "DELETE"])  # issue 11: GET, OPTIONS served
def test_other_methods_405(http, db, recoup_world, method):
    w = recoup_world
    before = w.snapshot(db)
    resp = send(http, w.path, VALID, {"x-api-key": w.key}, method=method)
    assert_json_shape(resp, 405)
    assert resp.headers.get_list("allow") == ["GET, PATCH, OPTIONS"], resp.headers
    assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers
    assert w.snapshot(db) == before


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/nope",
        "/api/sessions/{s}/chats",
        "/api/sessions/{s}/chats/",
        "/api/sessions/{s}/chats/{c}/",
        "/api/sessions/{s}/chats/{c}/extra",
        "/api/sessions//chats/{c}",
        "/API/sessions/{s}/chats/{c}",
        "/api/session/{s}/chats/{c}",
        pytest.param("/api/sessions/{s}%2Fx/chats/{c}", marks=hosts.APACHE_PATH_REFUSED),
        pytest.param("/api/sessions/{s}/chats/{c}%2F", marks=hosts.APACHE_PATH_REFUSED),
    ],
)
def test_unknown_path_404(http, db, recoup_world, path):
    w = recoup_world
    before = w.snapshot(db)
    resp = send(http, path.format(s=w.session_id, c=w.chat_id), VALID, {"x-api-key": w.key})
    assert_json_shape(resp, 404)
    assert w.snapshot(db) == before


@hosts.APACHE_PATH_REFUSED
def test_nul_in_path_is_json_error(http, db, recoup_world):
    w = recoup_world
    before = w.snapshot(db)
    resp = send(http, f"/api/sessions/{w.session_id}/chats/{w.chat_id}%00", VALID, {"x-api-key": w.key})
    assert resp.status_code in (400, 404), resp.status_code
    assert_json_shape(resp, resp.status_code)
    assert w.snapshot(db) == before


def test_healthz(http):
    assert_json_response(http.get("/healthz"), 200, {"status": "ok"})


def test_healthz_ignores_query(http):
    assert_json_response(http.get("/healthz?x=1"), 200, {"status": "ok"})


def test_healthz_other_method_405(http):
    resp = http.post("/healthz")
    assert_json_shape(resp, 405)
    assert "GET" in resp.headers.get("allow", ""), resp.headers


# ---- headers --------------------------------------------------------------------------------


def test_request_id_is_the_hosts_and_unique(http, db, stack, recoup_world):
    w = recoup_world
    ids = set()
    for i in range(3):
        resp = send(http, w.path, {"title": f"id {i}"}, {"x-api-key": w.key, "x-request-id": "client-id"})
        assert resp.status_code == 200
        (rid,) = resp.headers.get_list("x-request-id")
        assert rid != "client-id"
        ids.add(rid)
    assert len(ids) == 3
    # The web server logs its own id as id=... in its access log (nginx its
    # $request_id, Apache mod_unique_id's): the ids echoed are the ones the
    # host generated for these requests.
    access = stack["ACCESS_LOG"]
    deadline = time.monotonic() + 5
    while True:
        with open(access, errors="replace") as f:
            logged = f.read()
        missing = [rid for rid in ids if f"id={rid}" not in logged]
        if not missing:
            break
        assert time.monotonic() < deadline, f"ids not in {access}: {missing}"
        time.sleep(0.1)


def test_key_not_in_worker_or_nginx_logs(http, db, stack, recoup_world):
    w = recoup_world
    unknown = f"unknown-{uuid.uuid4().hex}"
    check_success(http, db, w, {"title": "logged?"}, title="logged?")
    send(http, w.path, VALID, {"authorization": f"Bearer {w.key}"})
    check_error(http, db, w, 401, UNAUTHORIZED, headers={"x-api-key": unknown})
    for name, text in non_postgres_logs(stack):
        assert w.key.encode() not in text, f"key found in {name}"
        assert unknown.encode() not in text, f"unknown key found in {name}"


def test_key_not_sent_to_postgres_in_clear(http, db, stack, recoup_world):
    """With every statement logged (our PG_EXTRA_CONF), the worker's statements
    and their parameters must not carry the plaintext key (hash it in C)."""
    w = recoup_world
    with pg_log_window(db, stack) as window:
        check_success(http, db, w, {"title": "hash in C"}, title="hash in C")
    assert window.statements, "no statement of the worker logged"
    lines = worker_log_lines_with(stack, w.key)
    assert not lines, lines[:3]


# ---- acceptance: CGI mode answers as nginx does ----------------------------------------------


def _cgi_cases():
    big = json.dumps({"title": "a" * 70 * 1024}).encode()
    k = lambda w: {"x-api-key": w.key}  # noqa: E731
    return {
        "success-title": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, {"title": "  Same title \u3000"}, "application/json"),
        "success-bearer-model": ("PATCH", lambda w, c: recoup_path(w.session_id, c), lambda w: {"authorization": f"bearer {w.key}"}, {"modelId": "m/x"}, "application/json; charset=utf-8"),
        "row1-neither": ("PATCH", lambda w, c: recoup_path(w.session_id, c), lambda w: {}, VALID, "application/json"),
        "row1-both": ("PATCH", lambda w, c: recoup_path(w.session_id, c), lambda w: {"x-api-key": w.key, "authorization": f"Bearer {w.key}"}, VALID, "application/json"),
        "row2-basic": ("PATCH", lambda w, c: recoup_path(w.session_id, c), lambda w: {"authorization": "Basic abc"}, VALID, "application/json"),
        "row3-unknown": ("PATCH", lambda w, c: recoup_path(w.session_id, c), lambda w: {"x-api-key": "nope"}, VALID, "application/json"),
        "row4-session": ("PATCH", lambda w, c: recoup_path("sess_missing", c), k, VALID, "application/json"),
        "row5-forbidden": ("PATCH", lambda w, c: recoup_path(w.other_session_id, c), k, VALID, "application/json"),
        "row6-chat": ("PATCH", lambda w, c: recoup_path(w.session_id, "chat_missing"), k, VALID, "application/json"),
        "row7-json": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, b'{"title":', "application/json"),
        "row8-top-level": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, b"[]", "application/json"),
        "row8-empty-title": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, {"title": "\u00a0"}, "application/json"),
        "row8-unknown-keys": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, b'{"b":1,"a":2}', "application/json"),
        "row8-empty-object": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, {}, "application/json"),
        "415": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, VALID, "text/plain"),
        "413": ("PATCH", lambda w, c: recoup_path(w.session_id, c), k, big, "application/json"),
        "405": ("PUT", lambda w, c: recoup_path(w.session_id, c), k, b"", None),
        "unknown-path": ("PATCH", lambda w, c: "/nope", k, VALID, "application/json"),
        "healthz": ("GET", lambda w, c: "/healthz", lambda w: {}, b"", None),
    }


CGI_CASES = _cgi_cases()


def _volatile_free(body):
    data = json.loads(body)
    if isinstance(data, dict) and isinstance(data.get("chat"), dict):
        data["chat"] = {k: v for k, v in data["chat"].items() if k not in ("id", "createdAt", "updatedAt")}
    return data


@pytest.mark.parametrize("case", CGI_CASES.keys())
def test_cgi_mode_matches_nginx(http, db, stack, recoup_world, case):
    method, path_of, headers_of, body, content_type = CGI_CASES[case]
    w = recoup_world
    chat_nginx, chat_cgi = w.chat_id, w.new_chat(db)
    body = json_body(body)

    resp = send(http, path_of(w, chat_nginx), body, headers_of(w), content_type, method=method)
    status, headers, cgi_body = run_cgi(stack, method, path_of(w, chat_cgi), headers_of(w), body,
                                        content_type=content_type)

    assert status == resp.status_code, f"CGI {status} {cgi_body[:300]!r} vs nginx {resp.status_code} {resp.content[:300]!r}"
    assert _volatile_free(cgi_body) == _volatile_free(resp.content)
    assert list(json.loads(cgi_body)) == list(resp.json())
    assert headers.get("content-type") == "application/json; charset=utf-8", headers
    assert headers.get("cache-control") == "no-store", headers
    if path_of(w, chat_cgi).startswith("/api/sessions/"):
        assert headers.get("access-control-allow-origin") == "*", headers
    if status == 405:
        assert headers.get("allow") == resp.headers.get("allow"), headers
    if status == 200 and method == "PATCH":
        a, b = fetch_recoup_chat(db, chat_nginx), fetch_recoup_chat(db, chat_cgi)
        assert (a["title"], a["model_id"]) == (b["title"], b["model_id"])
        cgi_chat = json.loads(cgi_body)["chat"]
        assert cgi_chat["id"] == chat_cgi
        assert cgi_chat["updatedAt"] == api_ts(cgi_chat["updatedAt"], b["updated_at"])


# ---- acceptance: one statement per PATCH -----------------------------------------------------


def _warm_up_workers(http, db, w):
    """Makes every worker open its connection before statements are counted."""
    for i in range(60):
        n = db.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'chatpatch'").fetchone()["n"]
        if n >= WORKERS:
            return
        http.get("/healthz")
        send(http, w.path, {"title": f"warm {i}"}, {"x-api-key": w.key})


@pytest.mark.parametrize(
    "case,status",
    [("success", 200), ("forbidden", 403), ("invalid-json", 400), ("schema", 400)],
)
def test_one_statement_per_patch(http, db, stack, recoup_world, case, status):
    w = recoup_world
    _warm_up_workers(http, db, w)
    path, body = w.path, {"title": "one statement"}
    if case == "forbidden":
        path = recoup_path(w.other_session_id, w.other_chat_id)
    elif case == "invalid-json":
        body = b"{nope"
    elif case == "schema":
        body = {"title": " "}
    with pg_log_window(db, stack) as window:
        resp = send(http, path, body, {"x-api-key": w.key})
    assert resp.status_code == status, resp.content
    assert len(window.statements) == 1, "statements run by the worker:\n" + "\n".join(window.statements)


# ---- acceptance: a killed worker is replaced -------------------------------------------------


def test_killed_worker_is_replaced(http, db, stack):
    parent = pool_parent_pid(stack)
    os.kill(parent, 0)
    children = child_pids(parent)
    assert len(children) == WORKERS, f"pool parent {parent} has children {children}"
    victim = sorted(children)[0]
    os.kill(victim, signal.SIGKILL)

    deadline = time.monotonic() + 15
    while True:
        now = child_pids(parent)
        if victim not in now and len(now) == WORKERS:
            break
        assert time.monotonic() < deadline, f"no replacement worker: children {now} (killed {victim})"
        time.sleep(0.1)
    os.kill(parent, 0)  # the parent is still alive

    w = make_recoup_world(db)
    for i in range(20):
        title = f"after kill {i}"
        resp = send(http, w.path, {"title": title}, {"x-api-key": w.key})
        assert resp.status_code == 200, f"request {i}: {resp.status_code} {resp.content[:300]!r}"
        assert resp.json()["chat"]["title"] == title
        assert fetch_recoup_chat(db, w.chat_id)["title"] == title
