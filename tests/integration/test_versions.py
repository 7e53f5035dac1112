"""Versions of a chat (issue 11), on all three APIs, through nginx: the ETag
on every 200, If-Match on PATCH (412 in the API's own shape, nothing
changed, and checked inside the one UPDATE, so that of 50 parallel PATCHes
with the same If-Match exactly one wins), and GET on the same paths (the
same checks and statuses as PATCH, 304 for a matching If-None-Match).

Each test checks the status, the exact body, the headers (the common ones,
ETag, and Recoup's CORS headers) and the rows in PostgreSQL afterwards.
"""

import json
import re
import threading

import httpx
import pytest

import openapi_check
from chats import (APIS, FIELD, error, make_chat, missing_chat_message, other_chat_status,
                   precondition_failed)
from conftest import assert_json_headers, assert_json_response, pg_log_window, run_cgi, REQUEST_ID_RE

ETAG_RE = re.compile(r'^"[1-9][0-9]*"$')


@pytest.fixture(params=APIS)
def chat(request, db):
    return make_chat(db, request.param)


def assert_api_headers(resp, chat, etag=None):
    """Recoup's CORS headers on every answer of its route, and exactly the
    given ETag (None: no ETag)."""
    if chat.api == "recoup":
        assert resp.headers.get_list("access-control-allow-origin") == ["*"], resp.headers
        assert resp.headers.get_list("access-control-expose-headers") == ["ETag"], resp.headers
    else:
        assert "access-control-allow-origin" not in resp.headers, resp.headers
    assert resp.headers.get_list("etag") == ([etag] if etag else []), resp.headers


def assert_ok(resp, chat, db):
    """A 200 with the chat's representation as stored, and its ETag."""
    assert_json_response(resp, 200, chat.representation(db))
    assert ETAG_RE.match(resp.headers.get("etag", "")), resp.headers
    assert_api_headers(resp, chat, chat.etag(db))


def assert_refused(resp, chat, status, message, etag=None):
    assert_json_response(resp, status, error(chat.api, status, message))
    assert_api_headers(resp, chat, etag)


def assert_not_modified(resp, chat, etag):
    """304: no body and no Content-Type, the ETag, Cache-Control, X-Request-Id."""
    assert resp.status_code == 304, resp
    assert resp.content == b""
    assert "content-type" not in resp.headers, resp.headers
    assert resp.headers.get_list("cache-control") == ["no-store"], resp.headers
    assert REQUEST_ID_RE.match(resp.headers["x-request-id"])
    assert_api_headers(resp, chat, etag)


# ---- the ETag ------------------------------------------------------------------------------


def test_get_answers_the_chat_with_its_etag(http, db, chat):
    before = chat.row(db)
    resp = chat.get(http)
    assert_ok(resp, chat, db)
    assert resp.headers["etag"] == f'"{before["version"]}"'
    assert chat.row(db) == before
    assert chat.changes(db) == []


def test_etag_changes_on_every_update_and_only_then(http, db, chat):
    first = chat.get(http).headers["etag"]
    assert chat.get(http).headers["etag"] == first  # reading changes nothing
    tags = [first]
    for value in ("One", "Two", "Two"):  # the same value again is an update too
        resp = chat.patch(http, value)
        assert_ok(resp, chat, db)
        assert chat.value(db) == value
        tags.append(resp.headers["etag"])
        # GET answers the same representation and ETag as the PATCH
        again = chat.get(http)
        assert again.headers["etag"] == tags[-1]
        assert again.json() == resp.json()
    assert len(set(tags)) == len(tags), tags
    # refused requests change nothing, ETag included
    bad = http.request("PATCH", chat.path, content=b"{", headers={
        "content-type": "application/json", **chat.headers})
    assert bad.status_code == 400
    assert bad.headers.get_list("etag") == []
    assert chat.get(http).headers["etag"] == tags[-1]


def test_leanmcp_empty_body_keeps_the_etag(http, db):
    chat = make_chat(db, "leanmcp")
    before = chat.row(db)
    resp = http.request("PATCH", chat.path, content=b"{}",
                        headers={"content-type": "application/json", **chat.headers})
    assert_ok(resp, chat, db)
    assert resp.headers["etag"] == f'"{before["version"]}"'
    assert chat.row(db) == before


# ---- If-Match on PATCH ------------------------------------------------------------------------


def test_if_match_current_etag_updates(http, db, chat):
    etag = chat.etag(db)
    resp = chat.patch(http, "Matched", {"if-match": etag})
    assert_ok(resp, chat, db)
    assert resp.headers["etag"] != etag
    assert chat.value(db) == "Matched"


@pytest.mark.parametrize("form", ["list", "star", "spaces"])
def test_if_match_list_and_star(http, db, chat, form):
    etag = chat.etag(db)
    header = {"list": f'"1", W/"2", {etag}, "x"', "star": "*", "spaces": f",{etag} ,\t,"}[form]
    resp = chat.patch(http, f"By {form}", {"if-match": header})
    assert_ok(resp, chat, db)
    assert chat.value(db) == f"By {form}"


@pytest.mark.parametrize("form", ["stale", "weak", "other-tags", "malformed", "unquoted"])
def test_if_match_other_version_is_412_and_changes_nothing(http, db, chat, form):
    etag = chat.etag(db)
    version = int(etag.strip('"'))
    header = {"stale": f'"{version - 1}"', "weak": f"W/{etag}", "other-tags": '"a", "b"',
              "malformed": f"{etag} x", "unquoted": str(version)}[form]
    before = chat.row(db)
    resp = chat.patch(http, "Lost", {"if-match": header})
    assert_refused(resp, chat, 412, "Precondition Failed", etag)
    assert chat.row(db) == before
    assert chat.changes(db) == []


def test_if_match_after_another_update_is_412(http, db, chat):
    etag = chat.etag(db)
    assert chat.patch(http, "First", {"if-match": etag}).status_code == 200
    now = chat.etag(db)
    resp = chat.patch(http, "Second", {"if-match": etag})
    assert_refused(resp, chat, 412, "Precondition Failed", now)
    assert chat.value(db) == "First"
    assert len(chat.changes(db)) == 1


def test_if_match_on_a_missing_chat_is_the_api_404(http, db, chat):
    for header in ('"1"', "*"):
        resp = http.request("PATCH", chat.missing_path, content=json.dumps(chat.body("x")),
                            headers={"content-type": "application/json", **chat.headers,
                                     "if-match": header})
        assert_refused(resp, chat, 404, missing_chat_message(chat.api))


def test_412_is_the_last_step(http, db, chat):
    """Only a request that would otherwise succeed gets 412."""
    before = chat.row(db)
    stale = {"if-match": '"1"'}
    # a bad credential
    resp = http.request("PATCH", chat.path, content=json.dumps(chat.body("x")),
                        headers={"content-type": "application/json", **stale})
    assert resp.status_code == 401
    assert resp.headers.get_list("etag") == []
    # another caller's chat
    status, message = other_chat_status(chat.api)
    resp = http.request("PATCH", chat.other_path, content=json.dumps(chat.body("x")),
                        headers={"content-type": "application/json", **chat.headers, **stale})
    assert_refused(resp, chat, status, message)
    # a body that fails the schema: the body's 400
    resp = http.request("PATCH", chat.path, content=json.dumps({FIELD[chat.api][0]: 5}),
                        headers={"content-type": "application/json", **chat.headers, **stale})
    assert resp.status_code == 400, resp.content
    assert resp.headers.get_list("etag") == []
    # not JSON at all
    resp = http.request("PATCH", chat.path, content=b"x", headers={
        "content-type": "text/plain", **chat.headers, **stale})
    assert resp.status_code == 415, resp.content
    assert chat.row(db) == before
    assert chat.changes(db) == []


def test_50_parallel_patches_with_the_same_if_match_one_wins(base_url, db, chat):
    etag = chat.etag(db)
    start = threading.Barrier(50)
    results = [None] * 50

    def one(i):
        # Five source addresses: nginx allows 32 requests in progress per address.
        transport = httpx.HTTPTransport(local_address=f"127.0.0.{2 + i % 5}")
        with httpx.Client(base_url=base_url, timeout=30, transport=transport,
                          event_hooks=openapi_check.EVENT_HOOKS) as client:
            start.wait()
            results[i] = chat.patch(client, f"Racer {i}", {"if-match": etag})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [412] * 49, statuses
    winner = next(i for i, r in enumerate(results) if r.status_code == 200)
    final = chat.etag(db)
    assert chat.value(db) == f"Racer {winner}"
    assert results[winner].headers["etag"] == final
    for r in results:
        if r.status_code == 412:
            assert r.json() == precondition_failed(chat.api)
            assert r.headers["etag"] == final  # the version that won
    changes = chat.changes(db)
    assert len(changes) == 1 and f'"{changes[0]["version"]}"' == final


# ---- GET ------------------------------------------------------------------------------------


def test_get_checks_like_patch(http, db, chat):
    before = chat.row(db)
    assert_refused(http.request("GET", chat.path), chat, 401,
                   "Exactly one of x-api-key or Authorization must be provided"
                   if chat.api == "recoup" else "Unauthorized")
    status, message = other_chat_status(chat.api)
    assert_refused(chat.get(http, path=chat.other_path), chat, status, message)
    assert_refused(chat.get(http, path=chat.missing_path), chat, 404,
                   missing_chat_message(chat.api))
    assert chat.row(db) == before


def test_get_each_api_order(http, db):
    recoup, neptun, lean = (make_chat(db, api) for api in APIS)
    assert_refused(http.request("GET", recoup.path, headers={"x-api-key": "nope"}), recoup, 401,
                   "Unauthorized")
    assert_refused(http.request("GET", recoup.path, headers={"authorization": "Basic x"}),
                   recoup, 401, "Authorization header with Bearer token required")
    session_missing = recoup.path.replace(recoup.extra["session"], "sess_missing")
    assert_refused(recoup.get(http, path=session_missing), recoup, 404, "Session not found")
    assert_refused(neptun.get(http, path=f"/api/users/{neptun.extra['user']}/chats/x1"), neptun,
                   400, "Bad Request. Invalid params.")
    assert_refused(http.request("GET", neptun.path, headers={"cookie": "neptun-session=nope"}),
                   neptun, 401, "Unauthorized")
    assert_refused(lean.get(http, headers={"authorization": f"Bearer {lean.extra['noscope']}"}),
                   lean, 403, "Forbidden resource")
    assert_refused(lean.get(http, path="/api/chats/id/not-a-uuid"), lean, 400,
                   "Validation failed (uuid is expected)")
    assert_refused(lean.get(http, path=lean.extra["deleted_path"]), lean, 404, "Chat not found")


def test_get_ignores_a_body(http, db, chat):
    resp = http.request("GET", chat.path, content=b'{"not json', headers={
        "content-type": "text/plain", **chat.headers})
    assert_ok(resp, chat, db)


def test_get_if_none_match(http, db, chat):
    etag = chat.etag(db)
    for header in (etag, f"W/{etag}", "*", f'"1", {etag}'):
        assert_not_modified(chat.get(http, {"if-none-match": header}), chat, etag)
    for header in ('"1"', f"{etag} x", ""):
        assert_ok(chat.get(http, {"if-none-match": header}), chat, db)
    chat.patch(http, "Changed")
    assert_ok(chat.get(http, {"if-none-match": etag}), chat, db)


def test_get_if_match(http, db, chat):
    etag = chat.etag(db)
    assert_ok(chat.get(http, {"if-match": etag}), chat, db)
    assert_refused(chat.get(http, {"if-match": '"1"'}), chat, 412, "Precondition Failed", etag)
    assert_refused(chat.get(http, {"if-match": f"W/{etag}"}), chat, 412, "Precondition Failed",
                   etag)
    assert_not_modified(chat.get(http, {"if-match": etag, "if-none-match": etag}), chat, etag)


def test_one_statement_per_request(http, db, stack, chat):
    with pg_log_window(db, stack) as w:
        assert chat.get(http).status_code == 200
    assert len(w.statements) == 1, w.statements
    with pg_log_window(db, stack) as w:
        assert chat.patch(http, "Once", {"if-match": chat.etag(db)}).status_code == 200
    assert len(w.statements) == 1, w.statements
    with pg_log_window(db, stack) as w:
        assert chat.patch(http, "Never", {"if-match": '"1"'}).status_code == 412
    assert len(w.statements) == 1, w.statements


def test_cgi_mode_answers_the_same(stack, db, chat):
    etag = chat.etag(db)
    status, headers, body = run_cgi(stack, "GET", chat.path, chat.headers, content_type=None)
    assert (status, headers.get("etag")) == (200, etag)
    assert json.loads(body) == chat.representation(db)
    status, headers, body = run_cgi(stack, "GET", chat.path, {**chat.headers,
                                                              "if-none-match": etag},
                                    content_type=None)
    assert (status, headers.get("etag"), body) == (304, etag, b"")
    assert "content-type" not in headers and "content-length" not in headers
    status, headers, body = run_cgi(stack, "PATCH", chat.path, {**chat.headers,
                                                                "if-match": '"1"'},
                                    json.dumps(chat.body("CGI")).encode())
    assert (status, headers.get("etag")) == (412, etag)
    assert json.loads(body) == precondition_failed(chat.api)
    status, headers, body = run_cgi(stack, "PATCH", chat.path, {**chat.headers, "if-match": etag},
                                    json.dumps(chat.body("CGI")).encode())
    assert status == 200 and headers.get("etag") == chat.etag(db) != etag
    assert chat.value(db) == "CGI"
