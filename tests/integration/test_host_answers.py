"""What a web server other than nginx answers itself (README, "What the
server answers itself"), checked behind the host CHATPATCH_HOST names
(make test-hosts). Each test is about the hosts it names and is skipped
behind the others; the three APIs' suites check the rest behind every host.

A host without workers is a second instance of the current host's class
(hosts.py) whose pool socket and binary do not exist.
"""

import json
import subprocess

import pytest

import hosts
from conftest import assert_json_headers
from helpers import raw_exchange

APACHE = ("apache-fcgid", "apache-proxy-fcgi")
# A path of each API, by the prefix --print-errors names it with.
API_PATHS = {
    "recoup": "/api/sessions/s/chats/c",
    "neptun": "/api/users/1/chats/1",
    "leanmcp": "/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f",
}


@pytest.fixture(scope="module")
def printed(stack, tmp_path_factory):
    """{api name: (prefix, its folder)} and the folder of --print-errors."""
    out = tmp_path_factory.mktemp("errors")
    subprocess.run([stack["CHATPATCH_BIN"], "--print-errors", str(out)], check=True, timeout=30)
    apis = {}
    for line in (out / "routes.tsv").read_text().splitlines():
        name, prefix, _, _ = line.split("\t")
        apis[name] = out / prefix.strip("/")
    return out, apis


@pytest.fixture(scope="module")
def no_workers(stack, tmp_path_factory):
    """The base URL of the current host with no worker behind it."""
    broken = dict(stack, CHATPATCH_SOCKET="/nonexistent/chatpatch.sock",
                  CHATPATCH_BIN="/nonexistent/chatpatch")
    host = hosts.HOSTS[hosts.CURRENT](broken, tmp_path_factory.mktemp("no-workers"))
    url = host.start(healthy=False)
    yield url
    host.stop()


def assert_body(answer_body, path):
    assert json.loads(answer_body) == json.loads(path.read_text()), answer_body[:300]


@hosts.only_behind(*APACHE)
@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_no_worker_is_503_json_with_retry_after(no_workers, printed, name):
    _, apis = printed
    answer = raw_exchange(no_workers, "PATCH", API_PATHS[name],
                          [("Content-Type", "application/json")], b"{}")
    assert answer.status == 503, answer
    assert answer.get_list("retry-after") == ["1"], answer
    assert answer.get_list("content-type") == ["application/json; charset=utf-8"], answer
    assert answer.get_list("cache-control") == ["no-store"], answer
    assert_body(answer.body, apis[name] / "503.json")


@hosts.only_behind(*APACHE)
def test_no_worker_healthz_is_the_generic_503(no_workers, printed):
    out, _ = printed
    answer = raw_exchange(no_workers, "GET", "/healthz")
    assert answer.status == 503 and answer.get_list("retry-after") == ["1"], answer
    assert_body(answer.body, out / "503.json")


@hosts.only_behind("apache-fcgid")
@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_fcgid_body_over_its_limit_is_500_json(http, printed, name):
    _, apis = printed
    resp = http.patch(API_PATHS[name], content=b" " * (128 * 1024 + 1),
                      headers={"content-type": "application/json"})
    assert resp.status_code == 500, resp.content[:300]
    assert_json_headers(resp)
    assert_body(resp.content, apis[name] / "500.json")


@hosts.only_behind("apache-fcgid")
@pytest.mark.parametrize("path", ["/api/sessions/a%2Fb/chats/c", "/api/users/1%00/chats/1"])
def test_fcgid_encoded_slash_or_nul_is_apaches_html_404(base_url, path):
    answer = raw_exchange(base_url, "GET", path)
    assert answer.status == 404, answer
    assert answer.get_list("content-type")[0].startswith("text/html"), answer


@hosts.only_behind("apache-fcgid")
def test_fcgid_trace_is_apaches_echo(http):
    resp = http.request("TRACE", "/api/users/1/chats/1")
    assert resp.status_code == 200, resp.content[:300]
    assert resp.headers.get_list("content-type") == ["message/http"], resp.headers


@hosts.only_behind("apache-fcgid")
def test_fcgid_long_uri_and_header_are_apaches_html(base_url):
    uri = raw_exchange(base_url, "GET", "/api/users/1/chats/" + "a" * 9000)
    header = raw_exchange(base_url, "GET", "/api/users/1/chats/1", [("X-Big", "a" * 9000)])
    assert uri.status == 414 and header.status == 400, (uri, header)
    for answer in (uri, header):
        assert answer.get_list("content-type")[0].startswith("text/html"), answer


@hosts.only_behind("apache-proxy-fcgi")
def test_proxy_long_uri_and_header_are_the_apis_json(base_url, printed):
    _, apis = printed
    uri = raw_exchange(base_url, "GET", "/api/users/1/chats/" + "a" * 9000)
    header = raw_exchange(base_url, "GET", "/api/users/1/chats/1", [("X-Big", "a" * 9000)])
    assert uri.status == 414 and header.status == 400, (uri, header)
    assert_body(uri.body, apis["neptun"] / "414.json")
    assert_body(header.body, apis["neptun"] / "400.json")
    for answer in (uri, header):
        assert answer.get_list("content-type") == ["application/json; charset=utf-8"], answer
        assert answer.get_list("cache-control") == ["no-store"], answer


@hosts.only_behind("apache-proxy-fcgi")
def test_proxy_nul_is_the_generic_json_404(base_url, printed):
    out, _ = printed
    answer = raw_exchange(base_url, "GET", "/api/users/1%00/chats/1")
    assert answer.status == 404, answer
    assert_body(answer.body, out / "404.json")


@hosts.only_behind(*APACHE)
def test_recoup_cors_origin_not_on_apaches_own_answers(no_workers):
    answer = raw_exchange(no_workers, "PATCH", API_PATHS["recoup"],
                          [("Content-Type", "application/json")], b"{}")
    assert answer.status == 503 and answer.get_list("access-control-allow-origin") == [], answer
