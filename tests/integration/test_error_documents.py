"""chatpatch --print-errors DIR (issue 10): the bodies a web server maps its
own answers to are the very bodies the worker answers for the same status
on the same path, routes.tsv states each API's prefix, Allow and CORS
origin as the worker's answers do, and fixed.tsv the fixed routes' Allow
(with /healthz's own 503 body in healthz/503.json).

The worker is asked directly, in CGI mode (run_cgi), so no web server's
config stands between: 405 (a method no profile has), 413 (a body over
--max-body), 503 (no database) under each API's prefix, and 404 for a
path no API knows, under a prefix too.
"""

import json

import pytest

from conftest import printed_body, run_cgi
from helpers import API_SAMPLE_PATHS as API_PATHS
# A credential of each API's kind, so the request needs the database.
API_CREDENTIALS = {
    "recoup": {"x-api-key": "k"},
    "neptun": {"cookie": "neptun-session=t"},
    "leanmcp": {"authorization": "Bearer k"},
}
NO_DATABASE = "postgresql://nobody@/nothing?host=/nonexistent&connect_timeout=2"


@pytest.fixture
def printed(printed_errors):
    return printed_errors


def test_routes_name_every_api(printed):
    _, routes = printed
    assert sorted(routes) == sorted(API_PATHS)
    for name, (prefix, _, _) in routes.items():
        assert API_PATHS[name].startswith(prefix) and prefix.endswith("/"), (name, prefix)


@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_405_is_the_workers(stack, printed, name):
    out, routes = printed
    prefix, allow, origin = routes[name]
    status, headers, body = run_cgi(stack, "PUT", API_PATHS[name], body=b"{}")
    assert status == 405
    assert json.loads(body) == printed_body(out, prefix, 405)
    assert headers["allow"] == allow
    assert headers.get("access-control-allow-origin", "-") == origin


@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_413_is_the_workers(stack, printed, name):
    out, routes = printed
    prefix, _, origin = routes[name]
    status, headers, body = run_cgi(stack, "PATCH", API_PATHS[name], body=b" " * 65537)
    assert status == 413
    assert json.loads(body) == printed_body(out, prefix, 413)
    assert headers.get("access-control-allow-origin", "-") == origin


@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_503_is_the_workers(stack, printed, name):
    out, routes = printed
    prefix, _, _ = routes[name]
    no_db = dict(stack, DATABASE_URL=NO_DATABASE)
    status, headers, body = run_cgi(no_db, "PATCH", API_PATHS[name], body=b"{}",
                                    headers=API_CREDENTIALS[name])
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body) == printed_body(out, prefix, 503)


@pytest.mark.parametrize("path", ["/nope", "/api/sessions/s/chats", "/api/users/1/chats/1/x"])
def test_404_is_the_generic_body_under_any_prefix(stack, printed, path):
    out, routes = printed
    status, _, body = run_cgi(stack, "GET", path)
    assert status == 404
    assert json.loads(body) == printed_body(out, "", 404)
    for prefix, _, _ in routes.values():
        assert printed_body(out, prefix, 404) is None, prefix


@pytest.mark.parametrize("status", [400, 403, 405, 408, 413, 414, 429, 500, 501, 503])
def test_every_status_has_a_body_per_api_and_a_generic_one(printed, status):
    out, routes = printed
    generic = printed_body(out, "", status)
    assert generic == {"statusCode": status, "error": generic["error"]}
    for prefix, _, _ in routes.values():
        assert printed_body(out, prefix, status) is not None, (prefix, status)


def test_fixed_routes_are_the_workers(stack, printed):
    """fixed.tsv: each fixed route's Allow is its 405's; healthz/503.json is
    the health check's body without a database."""
    out, _ = printed
    fixed = [line.split("\t") for line in (out / "fixed.tsv").read_text().splitlines()]
    assert sorted(path for path, _ in fixed) == ["/healthz", "/status"]
    for path, allow in fixed:
        status, headers, body = run_cgi(stack, "PUT", path, body=b"{}")
        assert status == 405
        assert headers["allow"] == allow
        assert json.loads(body) == printed_body(out, "", 405)
    no_db = dict(stack, DATABASE_URL=NO_DATABASE)
    status, headers, body = run_cgi(no_db, "GET", "/healthz")
    assert status == 503
    assert headers["retry-after"] == "1"
    assert json.loads(body) == printed_body(out, "/healthz", 503)
