"""nginx/chatpatch.conf, the ops snippet, is what scripts/nginx_snippet.py
makes of nginx/chatpatch.conf.in and the binary's own --print-errors (the
API profiles), so no profile fact is copied into it by hand. Run by
`make test-nginx-snippet` (part of `make test`), which builds build/chatpatch
first; CHATPATCH_BIN names another binary. No stack needed; nginx -t checks
the snippet where nginx is installed.

When test_committed_snippet_is_generated fails: `make nginx-snippet`, and
commit nginx/chatpatch.conf with the change that altered it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

import nginx_snippet  # noqa: E402

BIN = Path(os.environ.get("CHATPATCH_BIN", REPO / "build" / "chatpatch"))
SNIPPET = REPO / "nginx" / "chatpatch.conf"


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """What the binary's --print-errors wrote: its folder, untouched."""
    if not BIN.exists():
        pytest.fail(f"{BIN} is missing: run make test-nginx-snippet", pytrace=False)
    out = tmp_path_factory.mktemp("errors")
    nginx_snippet.print_errors(BIN, out)
    return out


@pytest.fixture
def changed(printed, tmp_path):
    """A copy of the printed folder, for a test to change."""
    out = tmp_path / "errors"
    shutil.copytree(printed, out)
    return out


def named_location(text, name):
    """The body of `location NAME { ... }` (no nested braces but types { })."""
    m = re.search(r"^location " + re.escape(name) + r" \{\n(.*?)^\}", text, re.M | re.S)
    assert m, f"no location {name}"
    return m[1]


def returned(block, status):
    m = re.search(r"return %d '(.*)';" % status, block)
    assert m, (status, block)
    return json.loads(m[1])


def routes(out):
    return [line.split("\t") for line in (out / "routes.tsv").read_text().splitlines()]


def test_committed_snippet_is_generated(printed):
    made = nginx_snippet.generate(errors=printed)
    assert SNIPPET.read_text() == made, (
        "nginx/chatpatch.conf is not what the template and the binary make: "
        "run `make nginx-snippet` and commit it")


def test_the_binary_is_run_the_same_way(printed):
    """--binary (make nginx-snippet) and --errors give the same text."""
    assert nginx_snippet.generate(binary=BIN) == nginx_snippet.generate(errors=printed)


def test_every_api_fact_is_in_the_snippet(printed):
    text = SNIPPET.read_text()
    for name, prefix, allow, origin in routes(printed):
        api_dir = printed / prefix.strip("/")
        collection = "/" + "/".join(prefix.strip("/").split("/")[:2])
        assert f"    location {collection}/ {{  # {name}\n" in text
        assert f"    location = {collection} {{\n" in text
        cors = f'add_header Access-Control-Allow-Origin "{origin}" always;'
        for location, status in ((f"@chatpatch_{name}_413", 413),
                                 (f"@chatpatch_{name}_unavailable", 503)):
            block = named_location(text, location)
            assert returned(block, status) == json.loads((api_dir / f"{status}.json").read_text())
            assert (cors in block) == (origin != "-"), (location, origin)
        if origin != "-":
            assert cors in named_location(text, f"@chatpatch_{name}_429")
        allow_405 = named_location(text, "@chatpatch_405")
        assert f'if ($uri ~ "^{collection}/") {{\n        set $chatpatch_allow "{allow}";' \
            in allow_405
    assert returned(named_location(text, "@chatpatch_health_unavailable"), 503) == \
        json.loads((printed / "healthz" / "503.json").read_text())


@pytest.mark.parametrize("status", [403, 405, 408, 413, 429, 500, 501, 503])
def test_generic_bodies_are_the_printed_ones(printed, status):
    generic = {403: "@chatpatch_403", 405: "@chatpatch_405", 408: "@chatpatch_408",
               413: "@chatpatch_413", 429: "@chatpatch_429", 500: "@chatpatch_500",
               501: "@chatpatch_501", 503: "@chatpatch_unavailable"}[status]
    assert returned(named_location(SNIPPET.read_text(), generic), status) == \
        json.loads((printed / f"{status}.json").read_text())


def test_a_changed_profile_fails_the_check(changed):
    """What the committed-file check sees when a profile changes and nobody
    regenerates: another 413 message, another CORS origin, a fourth API."""
    rows = routes(changed)
    name, prefix, allow, _ = rows[0]
    body = {"status": "error", "error": "Body over the limit"}
    (changed / prefix.strip("/") / "413.json").write_text(json.dumps(body))
    rows[0] = [name, prefix, allow, "https://app.example"]
    shutil.copytree(changed / rows[1][1].strip("/"), changed / "api" / "things")
    rows.append(["things", "/api/things/", "GET", "-"])
    (changed / "routes.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))

    made = nginx_snippet.generate(errors=changed)
    assert made != SNIPPET.read_text()
    block = named_location(made, f"@chatpatch_{name}_413")
    assert returned(block, 413) == body
    assert 'add_header Access-Control-Allow-Origin "https://app.example" always;' in block
    assert "    location /api/things/ {  # things\n" in made
    assert "    location = /api/things {\n" in made
    assert 'if ($uri ~ "^/api/things/") {\n        set $chatpatch_allow "GET";' in made
    assert named_location(made, "@chatpatch_things_unavailable")
    # the methods every API has, for paths of none
    assert 'set $chatpatch_allow "GET";\n' in named_location(made, "@chatpatch_405")


@pytest.mark.parametrize("body", ['{"error":"costs $5"}', "not json", '{"a":\n1}'])
def test_refuses_a_body_nginx_would_not_send_as_it_is(changed, body):
    (changed / "413.json").write_text(body)
    with pytest.raises(nginx_snippet.SnippetError):
        nginx_snippet.generate(errors=changed)


def test_quotes_are_escaped_for_their_string(changed):
    (changed / "413.json").write_text(json.dumps({"statusCode": 413, "error": "it's \\ big"}))
    made = nginx_snippet.generate(errors=changed)
    assert "return 413 '{\"statusCode\": 413, \"error\": \"it\\'s \\\\\\\\ big\"}';" in made


@pytest.mark.parametrize("missing", ["routes.tsv", "fixed.tsv", "params.tsv", "503.json",
                                     "healthz/503.json", "api/users/413.json"])
def test_a_missing_file_is_an_error(changed, missing):
    (changed / missing).unlink()
    with pytest.raises(nginx_snippet.SnippetError, match=re.escape(missing.split("/")[-1])):
        nginx_snippet.generate(errors=changed)


def fastcgi_params(block):
    """The params a location passes: {NAME: value}."""
    return dict(re.findall(r"^\s*fastcgi_param (\S+) (.*?)(?: if_not_empty)?;$", block, re.M))


def test_each_location_passes_what_the_workers_read(printed):
    """Each location that passes to the workers sends every param the
    binary says it reads (params.tsv; headers go as HTTP_* by themselves)
    which nginx has, and nothing of fastcgi_params beyond them."""
    text = SNIPPET.read_text()
    read = (printed / "params.tsv").read_text().split()
    assert {"REQUEST_METHOD", "REQUEST_URI", "CONTENT_LENGTH", "HTTP_X_API_KEY"} <= set(read)
    blocks = re.findall(r"^location ([^@{]+?) \{\n(.*?)^\}", text, re.M | re.S)
    passing = [(name, b) for name, b in blocks if "fastcgi_pass" in b]
    assert {name for name, _ in passing} >= {"= /api", "/api/", "= /healthz", "= /status"}
    expected = {n: v for n, v in nginx_snippet.NGINX_PARAMS.items() if v and n in read}
    for name, block in passing:
        params = fastcgi_params(block)
        assert {n: params.get(n) for n in expected} == expected, name
        assert set(params) == set(expected) | {"GATEWAY_INTERFACE", "SCRIPT_FILENAME",
                                               "HTTP_PROXY"}, name
        assert "include fastcgi_params" not in block, name


def test_a_param_nginx_has_no_value_for_is_refused(changed):
    with (changed / "params.tsv").open("a") as f:
        f.write("REMOTE_USER\n")
    with pytest.raises(nginx_snippet.SnippetError, match="REMOTE_USER.*NGINX_PARAMS"):
        nginx_snippet.generate(errors=changed)


def test_the_command_line(printed, tmp_path):
    out = tmp_path / "chatpatch.conf"
    script = REPO / "scripts" / "nginx_snippet.py"
    subprocess.run([sys.executable, str(script), "--errors", str(printed), "-o", str(out)],
                   check=True)
    assert out.read_text() == SNIPPET.read_text()
    proc = subprocess.run([sys.executable, str(script), "--errors", str(tmp_path / "none")],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "routes.tsv: missing" in proc.stderr


@pytest.mark.skipif(not shutil.which("nginx") and not Path("/usr/sbin/nginx").exists(),
                    reason="nginx is not installed")
def test_nginx_accepts_the_snippet(tmp_path):
    """nginx -t of a server {} that includes the snippet, as README says."""
    for name in ("chatpatch.conf", "chatpatch-http.conf"):
        shutil.copy(REPO / "nginx" / name, tmp_path / name)
    shutil.copy("/etc/nginx/fastcgi_params", tmp_path / "fastcgi_params")
    (tmp_path / "nginx.conf").write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{}}
http {{
    include {tmp_path}/chatpatch-http.conf;
    client_body_temp_path {tmp_path}/body;
    fastcgi_temp_path {tmp_path}/fastcgi;
    proxy_temp_path {tmp_path}/proxy;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    access_log off;
    server {{
        listen 127.0.0.1:1;
        include {tmp_path}/chatpatch.conf;
    }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.run([nginx, "-t", "-q", "-p", str(tmp_path),
                           "-c", str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
