"""docs/openapi.yaml against the running stack, beyond what every other
test's answers show (openapi_check.py checks those as they arrive): the
check is on for the tests' client, it fails on a live answer that the
document does not describe, and nginx's own 405 (TRACE, refused before any
location) names the methods the document and the workers name.
"""

import copy

import pytest

import openapi_check
from helpers import raw_exchange

RECOUP = "/api/sessions/sess_demo/chats/chat_demo"
NEPTUN = "/api/users/1/chats/1"
LEANMCP = "/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f"


def test_the_tests_client_checks_every_answer(http):
    assert openapi_check.check_httpx_response in http.event_hooks["response"]


def test_a_live_answer_the_document_does_not_describe_fails(http):
    """The demo chat's real 200, checked against a copy of the document whose
    representation lacks a key and whose ETag is weak: both are reported."""
    resp = http.get(RECOUP, headers={"x-api-key": "demo-recoup-key"})
    assert resp.status_code == 200
    doc = openapi_check.Document()
    assert doc.check("GET", RECOUP, 200, resp.headers.multi_items(), resp.content) == []
    doc.doc = copy.deepcopy(doc.doc)
    chat = doc.doc["components"]["schemas"]["RecoupChat"]
    del chat["properties"]["modelId"]
    chat["required"].remove("modelId")
    doc.doc["components"]["headers"]["ETag"]["schema"]["pattern"] = '^W/"[0-9]+"$'
    doc.resolver = openapi_check.RefResolver("", doc.doc)
    problems = doc.check("GET", RECOUP, 200, resp.headers.multi_items(), resp.content)
    assert any("'modelId' was unexpected" in p for p in problems), problems
    assert any("header ETag" in p for p in problems), problems


@pytest.mark.parametrize("path, allow", [
    (RECOUP, "GET, PATCH, OPTIONS"),
    (NEPTUN, "GET, PATCH"),
    (LEANMCP, "GET, PATCH"),
    ("/healthz", "GET"),
    ("/status", "GET"),
], ids=["recoup", "neptun", "leanmcp", "healthz", "status"])
def test_nginx_405_names_the_paths_methods(base_url, http, path, allow):
    """TRACE gets nginx's own 405 with the Allow the workers' 405 has."""
    answer = raw_exchange(base_url, "TRACE", path)
    assert answer.status == 405, answer
    assert answer.get_list("allow") == [allow], answer
    workers = http.request("PUT", path)
    assert workers.status_code == 405
    assert workers.headers.get_list("allow") == [allow]
