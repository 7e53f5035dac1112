"""What a web server other than nginx answers itself (README, "What the
server answers itself"), checked behind the host CHATPATCH_HOST names
(make test-hosts). Each test is about the hosts it names and is skipped
behind the others; the three APIs' suites check the rest behind every host.

A host without workers is a second instance of the current host's class
(hosts.py) whose pool socket does not exist and whose spawned worker dies
before it answers.
"""

import json
import tempfile
from pathlib import Path

import pytest

import hosts
from conftest import assert_json_headers
from helpers import API_SAMPLE_PATHS as API_PATHS
from helpers import raw_exchange

APACHE = ("apache-fcgid", "apache-proxy-fcgi")

# Apache's HTML pages and its TRACE echo are not in docs/openapi.yaml.
pytestmark = pytest.mark.hosts_own_answers



@pytest.fixture
def printed(printed_errors):
    """The folder of --print-errors, and {api name: its API's folder}."""
    out, routes = printed_errors
    return out, {name: out / prefix.strip("/") for name, (prefix, _, _) in routes.items()}


def host_dir(stack):
    """A fresh folder for a second host instance, in the stack's folder,
    which the host's own user may enter (pytest's tmp_path is root's only)."""
    return Path(tempfile.mkdtemp(prefix="host-", dir=stack["STACK_DIR"]))


# What mod_fcgid spawns for a host without workers: a worker that starts
# and dies before it answers. One that cannot start at all races mod_fcgid,
# which answers its 500 only when a request reaches the process before it
# is gone, and otherwise sleeps a second and spawns again, up to a minute.
DYING_WORKER = "#!/bin/sh\nsleep 1\nexit 1\n"


@pytest.fixture(scope="module")
def no_workers(stack):
    """The base URL of the current host with no worker behind it."""
    folder = host_dir(stack)
    dying = folder / "dying-worker"
    dying.write_text(DYING_WORKER)
    dying.chmod(0o755)
    broken = dict(stack, CHATPATCH_SOCKET="/nonexistent/chatpatch.sock",
                  SPAWN_BIN=str(dying))
    host = hosts.HOSTS[hosts.CURRENT](broken, folder)
    url = host.start(healthy=False)
    yield url
    host.stop()


def assert_body(answer_body, path):
    assert json.loads(answer_body) == json.loads(path.read_text()), answer_body[:300]


# No worker: the pool's socket is gone (mod_proxy_fcgi: 503), or the
# worker mod_fcgid starts dies before it answers (mod_fcgid: 500,
# "premature end of script headers"; Retry-After goes only with 503).
NO_WORKER_STATUS = {"apache-proxy-fcgi": 503, "apache-fcgid": 500}


def assert_no_worker_answer(answer, body_file):
    status = NO_WORKER_STATUS[hosts.CURRENT]
    assert answer.status == status, answer
    assert answer.get_list("retry-after") == (["1"] if status == 503 else []), answer
    assert answer.get_list("content-type") == ["application/json; charset=utf-8"], answer
    assert answer.get_list("cache-control") == ["no-store"], answer
    assert_body(answer.body, body_file.parent / f"{status}.json")


@hosts.only_behind(*APACHE)
@pytest.mark.parametrize("name", sorted(API_PATHS))
def test_no_worker_is_the_apis_json(no_workers, printed, name):
    _, apis = printed
    answer = raw_exchange(no_workers, "PATCH", API_PATHS[name],
                          [("Content-Type", "application/json")], b"{}")
    assert_no_worker_answer(answer, apis[name] / "any")


@hosts.only_behind(*APACHE)
def test_no_worker_healthz_is_the_generic_body(no_workers, printed):
    out, _ = printed
    assert_no_worker_answer(raw_exchange(no_workers, "GET", "/healthz"), out / "any")


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
    assert answer.status == NO_WORKER_STATUS[hosts.CURRENT], answer
    assert answer.get_list("access-control-allow-origin") == [], answer


@hosts.only_behind("apache-fcgid")
def test_fcgid_worker_exits_0_on_apaches_sigterm(stack):
    """mod_fcgid starts the worker with the socket on fd 0 and, when Apache
    stops, ends it with SIGTERM; the worker exits by itself with status 0
    (mod_fcgid logs how each process ended, at info level)."""
    work = host_dir(stack)
    host = hosts.HOSTS["apache-fcgid"](stack, work, log_level="warn fcgid:info")
    url = host.start()
    assert raw_exchange(url, "GET", "/healthz").status == 200
    host.stop()
    log = (work / "log" / "error.log").read_text(errors="replace")
    ends = [line for line in log.splitlines() if "chatpatch.fcgi" in line and " exit(" in line]
    assert ends, log[-3000:]
    for line in ends:
        assert "terminated by calling exit(), return code: 0" in line, line
