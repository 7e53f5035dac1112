"""The audit trail (issue 11), on all three APIs: every successful PATCH
appends one row to <schema>.chat_changes, written by the update's own
statement: the chat, the caller (Recoup: the account; Neptun: the user;
LeanMCP: the key's user), the chat's new version (its ETag), the fields the
request set with their old and new values, the request id (X-Request-Id)
and the time (the update's updated_at). No refused request writes one. The
README's query answers "who renamed this chat, when, and from what", and
the workers' role may append rows and nothing more.
"""

import json
from pathlib import Path

import pytest

from chats import ACTOR, APIS, FIELD, make_chat
from conftest import REPO, fetch_all, fetch_one

# README, "Audit trail": kept here word for word (the test checks it is there).
README_QUERY = """SELECT changed_at, account_id, request_id,
       changes->'title'->>'old' AS old_title,
       changes->'title'->>'new' AS new_title
  FROM recoup.chat_changes
 WHERE chat_id = 'chat_demo' AND changes ? 'title'
 ORDER BY changed_at DESC, version DESC;"""


@pytest.fixture(params=APIS)
def chat(request, db):
    return make_chat(db, request.param)


def patch(http, chat, body, headers=None):
    return http.request("PATCH", chat.path, content=json.dumps(body) if not isinstance(
        body, bytes) else body, headers={"content-type": "application/json", **chat.headers,
                                         **(headers or {})})


def assert_change(row, chat, resp, changes, db):
    """One audit row as it must be for the successful resp."""
    stored = chat.row(db)
    assert row == {
        "chat_id": chat.chat_id if chat.api != "leanmcp" else row["chat_id"],
        ACTOR[chat.api]: chat.actor,
        "version": stored["version"],
        "changes": changes,
        "request_id": resp.headers["x-request-id"],
        "changed_at": stored["updated_at"],
    }
    assert str(row["chat_id"]) == str(chat.chat_id)
    assert resp.headers["etag"] == f'"{row["version"]}"'


def test_each_successful_patch_appends_one_row(http, db, chat):
    key, column = FIELD[chat.api]
    old = chat.value(db)
    first = patch(http, chat, {key: " First "})
    assert first.status_code == 200
    rows = chat.changes(db)
    assert len(rows) == 1
    assert_change(rows[0], chat, first, {key: {"old": old, "new": "First"}}, db)
    second = patch(http, chat, {key: "Second"}, {"if-match": first.headers["etag"]})
    assert second.status_code == 200
    rows = chat.changes(db)
    assert len(rows) == 2 and rows[0]["version"] < rows[1]["version"]
    assert_change(rows[1], chat, second, {key: {"old": "First", "new": "Second"}}, db)


def test_recoup_both_fields(http, db):
    chat = make_chat(db, "recoup")
    resp = patch(http, chat, {"modelId": "m2", "title": "T2"})
    assert resp.status_code == 200
    [row] = chat.changes(db)
    assert_change(row, chat, resp, {"title": {"old": "Old title", "new": "T2"},
                                    "modelId": {"old": "openai/gpt-5.4", "new": "m2"}}, db)


def test_leanmcp_every_field(http, db):
    chat = make_chat(db, "leanmcp")
    body = {"title": "T", "summary": None, "modelUsed": "mu", "systemMessageId": "s1",
            "metadata": {"b": [1, 2.5], "n": None}}
    resp = patch(http, chat, body)
    assert resp.status_code == 200
    [row] = chat.changes(db)
    assert_change(row, chat, resp, {
        "title": {"old": "Old title", "new": "T"},
        "summary": {"old": "Old summary", "new": None},
        "modelUsed": {"old": None, "new": "mu"},
        "systemMessageId": {"old": None, "new": "s1"},
        "metadata": {"old": {"a": 1}, "new": {"b": [1, 2.5], "n": None}},
    }, db)


def test_leanmcp_empty_body_appends_a_row_of_no_changes(http, db):
    """{} is a successful PATCH that changes nothing: its row says so."""
    chat = make_chat(db, "leanmcp")
    before = chat.row(db)
    resp = patch(http, chat, {})
    assert resp.status_code == 200
    [row] = chat.changes(db)
    assert row["changes"] == {} and row["version"] == before["version"]
    assert row["request_id"] == resp.headers["x-request-id"]
    assert row["user_id"] == chat.actor


def test_no_row_after_any_refusal(http, db, chat):
    key, _ = FIELD[chat.api]
    body = {key: "Never"}
    refused = [
        http.request("PATCH", chat.path, content=json.dumps(body),
                     headers={"content-type": "application/json"}),  # 401
        patch(http, chat, b"{"),  # 400: bad JSON
        patch(http, chat, {key: 5}),  # 400: schema
        http.request("PATCH", chat.path, content=json.dumps(body),
                     headers={"content-type": "text/plain", **chat.headers}),  # 415
        patch(http, chat, body, {"if-match": '"1"'}),  # 412
        http.request("PATCH", chat.other_path, content=json.dumps(body),
                     headers={"content-type": "application/json", **chat.headers}),  # 403/404
        http.request("PATCH", chat.missing_path, content=json.dumps(body),
                     headers={"content-type": "application/json", **chat.headers}),  # 404
    ]
    assert sorted(r.status_code for r in refused) == sorted(
        [401, 400, 400, 415, 412, 403 if chat.api == "recoup" else 404, 404])
    assert chat.changes(db) == []
    assert fetch_one(db, f"SELECT count(*) AS n FROM {chat.api}.chat_changes "
                         "WHERE request_id = ANY(%s)",
                     ([r.headers["x-request-id"] for r in refused],))["n"] == 0
    assert chat.value(db) != "Never"


def test_get_appends_no_row(http, db, chat):
    assert chat.get(http).status_code == 200
    assert chat.changes(db) == []


def test_readme_query_answers_who_renamed(http, db):
    readme = (REPO / "README.md").read_text()
    assert README_QUERY in readme, "README's audit query changed: update README_QUERY"
    chat = make_chat(db, "recoup")
    first = patch(http, chat, {"title": "Renamed once"})
    patch(http, chat, {"modelId": "only-the-model"})
    second = patch(http, chat, {"title": "Renamed twice"})
    rows = fetch_all(db, README_QUERY.replace("'chat_demo'", "%s"), (chat.chat_id,))
    when = [fetch_one(db, "SELECT changed_at FROM recoup.chat_changes WHERE request_id = %s",
                      (r.headers["x-request-id"],))["changed_at"] for r in (second, first)]
    assert rows == [
        {"changed_at": when[0], "account_id": chat.actor,
         "request_id": second.headers["x-request-id"], "old_title": "Renamed once",
         "new_title": "Renamed twice"},
        {"changed_at": when[1], "account_id": chat.actor,
         "request_id": first.headers["x-request-id"], "old_title": "Old title",
         "new_title": "Renamed once"},
    ]


@pytest.mark.parametrize("api", APIS)
def test_worker_role_may_append_and_nothing_more(db, api):
    """sql/grants.sql: the stack's workers run as chatpatch_worker with it alone."""
    row = fetch_one(db, """
        SELECT has_table_privilege('chatpatch_worker', %(t)s, 'INSERT') AS insert,
               has_table_privilege('chatpatch_worker', %(t)s, 'SELECT') AS select,
               has_table_privilege('chatpatch_worker', %(t)s, 'UPDATE') AS update,
               has_table_privilege('chatpatch_worker', %(t)s, 'DELETE') AS delete,
               has_sequence_privilege('chatpatch_worker', %(s)s, 'USAGE') AS usage""",
                    {"t": f"{api}.chat_changes", "s": f"{api}.chat_versions"})
    assert row == {"insert": True, "select": False, "update": False, "delete": False,
                   "usage": True}


def test_audit_indexes_exist(db):
    rows = fetch_all(db, """SELECT schemaname, indexname, indexdef FROM pg_indexes
                             WHERE tablename = 'chat_changes' ORDER BY 1, 2""")
    assert [(r["schemaname"], r["indexname"]) for r in rows] == [
        (s, i) for s in ("leanmcp", "neptun", "recoup")
        for i in ("chat_changes_changed_at_idx", "chat_changes_chat_id_changed_at_idx")]
    for r in rows:
        if "chat_id" in r["indexname"]:
            assert "USING btree (chat_id, changed_at)" in r["indexdef"], r
        else:
            assert "USING brin (changed_at)" in r["indexdef"], r
