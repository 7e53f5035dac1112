"""docs/openapi.yaml against the worker's own profiles, and the validator
the integration tests use (tests/integration/openapi_check.py) against
answers that must fail it. Run by `make test-openapi`, which builds
build/openapi/profiles (tests/openapi/profiles.c: the profiles as JSON) and
build/chatpatch (its --help) first. No stack needed.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))

import openapi_check  # noqa: E402

PROFILES_BIN = Path(os.environ.get("OPENAPI_PROFILES_BIN", REPO / "build" / "openapi" / "profiles"))
DOC = openapi_check.Document()
SPEC = DOC.doc


WORKER_BIN = Path(os.environ.get("CHATPATCH_BIN", REPO / "build" / "chatpatch"))
NGINX_SNIPPET = REPO / "nginx" / "chatpatch.conf"


def run(binary, *args):
    if not binary.exists():
        pytest.fail(f"{binary} is missing: run make test-openapi", pytrace=False)
    return subprocess.run([str(binary), *args], capture_output=True, check=True, text=True).stdout


PROFILES = json.loads(run(PROFILES_BIN))
APIS = PROFILES["apis"]


def api_ids():
    return [a["name"] for a in APIS]


def path_item(api):
    """(template, path item) of a profile's pattern ("/api/users/{}/chats/{}")."""
    for template, item in SPEC["paths"].items():
        parts = ["{}" if p.startswith("{") else p for p in template.split("/")]
        if "/".join(parts) == api["pattern"]:
            return template, item
    raise AssertionError(f"no path in docs/openapi.yaml for {api['name']}'s {api['pattern']}")


def constants(schema, seen=None):
    """Every string a schema names with const or enum, through $ref, allOf,
    anyOf, oneOf and properties."""
    seen = set() if seen is None else seen
    schema = DOC.deref(schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return set()
    seen.add(id(schema))
    found = set()
    if isinstance(schema.get("const"), str):
        found.add(schema["const"])
    found.update(v for v in schema.get("enum", []) if isinstance(v, str))
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key, []):
            found |= constants(sub, seen)
    for sub in (schema.get("properties") or {}).values():
        found |= constants(sub, seen)
    if "items" in schema:
        found |= constants(schema["items"], seen)
    return found


def response(op, status):
    return DOC.deref(op["responses"][str(status)])


def json_schema(resp):
    return resp["content"]["application/json"]["schema"]


# ---- the document against the profiles -------------------------------------------


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_methods_and_success_statuses(api):
    template, item = path_item(api)
    documented = {m for m in item if m in openapi_check.METHODS}
    assert documented == {op["method"].lower() for op in api["ops"]}, template
    for op in api["ops"]:
        assert str(op["status"]) in item[op["method"].lower()]["responses"], (template, op)
    allow = DOC.deref(item["x-other-methods"]["responses"]["405"])["headers"]["Allow"]
    assert DOC.deref(allow)["schema"]["const"] == api["allow"]


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_path_parameters(api):
    template, item = path_item(api)
    params = [DOC.deref(p) for p in item["parameters"]]
    names = [p[1:-1] for p in template.split("/") if p.startswith("{")]
    assert [p["name"] for p in params] == names
    for kind, p in zip(api["params"], params):
        schema = p["schema"]
        assert p["in"] == "path" and p["required"] is True
        if kind == "text":
            assert schema == {"type": "string", "minLength": 1}, p
        elif kind == "bigint":
            assert schema["pattern"] == "^[0-9]+$", p
        else:
            assert schema["format"] == "uuid", p


SECURITY = {
    "api_key_or_bearer": [("apiKey", "header", "x-api-key"), ("http", "bearer", None)],
    "bearer": [("http", "bearer", None)],
}


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_credentials(api):
    _, item = path_item(api)
    schemes = SPEC["components"]["securitySchemes"]
    for op in api["ops"]:
        operation = item[op["method"].lower()]
        got = []
        for requirement in operation["security"]:
            (name,) = requirement
            s = schemes[name]
            got.append((s["type"], s.get("scheme") or s["in"], s.get("name")))
        if op["method"] == "OPTIONS":
            assert got == [], "a preflight carries no credential"
        elif api["credential"] == "cookie":
            assert got == [("apiKey", "cookie", api["cookie"])]
        else:
            assert got == SECURITY[api["credential"]]


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_body_fields(api):
    _, item = path_item(api)
    body = DOC.deref(item["patch"]["requestBody"]["content"]["application/json"]["schema"])
    assert list(body["properties"]) == [f["key"] for f in api["fields"]]
    assert set(body.get("required", [])) == {f["key"] for f in api["fields"] if f["required"]}
    assert body["type"] == "object"
    for f in api["fields"]:
        prop = body["properties"][f["key"]]
        types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
        assert f["type"] in types, f
        assert ("null" in types) == f["nullable"], f
        if f["type"] == "string":
            assert (prop.get("pattern") == "\\S") == (not f["may_be_empty"]), f


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_body_limits(api):
    """The size limit is the worker's default --max-body (its --help) and
    nginx's client_max_body_size in every location of the snippet; the
    depth is the schema checker's."""
    _, item = path_item(api)
    body = item["patch"]["requestBody"]
    (default,) = re.findall(r"--max-body=BYTES.*?\(default (\d+)", run(WORKER_BIN, "--help"), re.S)
    assert body["x-max-bytes"] == int(default)
    sizes = set(re.findall(r"client_max_body_size (\d+)k;", NGINX_SNIPPET.read_text()))
    assert sizes and {int(s) * 1024 for s in sizes} == {body["x-max-bytes"]}, sizes
    assert body["x-max-depth"] == PROFILES["max_depth"]


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_every_step_message(api):
    """Each check's status is documented on PATCH with the check's message."""
    _, item = path_item(api)
    patch = item["patch"]
    for step in api["steps"]:
        resp = response(patch, step["status"])
        if step["message"] is not None:
            assert step["message"] in constants(json_schema(resp)), step
    for status, key in ((413, "message_413"), (415, "message_415")):
        assert api[key] in constants(json_schema(response(patch, status))), key


SHAPES = {"status_error": "RecoupError", "h3": "NeptunError", "nestjs": "LeanmcpErrorString"}


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_error_shape(api):
    _, item = path_item(api)
    text = json.dumps(json_schema(response(item["patch"], 401)))
    text += json.dumps(DOC.deref(json_schema(response(item["patch"], 401))))
    assert f"#/components/schemas/{SHAPES[api['shape']]}" in text


COLUMN_TYPES = {"text": "string", "int4": "integer", "int8": "integer", "bool": "boolean",
                "timestamp": "string", "uuid": "string", "jsonb": "object"}


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_representation(api):
    _, item = path_item(api)
    for op in api["ops"]:
        if op["status"] != 200:
            continue
        schema = DOC.deref(json_schema(response(item[op["method"].lower()], 200)))
        if api["envelope"]:
            assert list(schema["properties"]) == [api["envelope"]]
            schema = DOC.deref(schema["properties"][api["envelope"]])
        assert list(schema["properties"]) == [c["key"] for c in api["columns"]]
        assert schema["required"] == [c["key"] for c in api["columns"]]
        for c in api["columns"]:
            prop = DOC.deref(schema["properties"][c["key"]])
            types = prop.get("type", "string")
            types = types if isinstance(types, list) else [types]
            assert COLUMN_TYPES[c["type"]] in types, c
            if c["type"] == "timestamp":
                assert prop["format"] == "date-time", c


@pytest.mark.parametrize("api", APIS, ids=api_ids())
def test_cors(api):
    _, item = path_item(api)
    ok = response(item["get"], 200)["headers"]
    cors = api["cors"]
    if cors is None:
        assert not any(h.lower().startswith("access-control-") for h in ok), ok
        return
    assert DOC.deref(ok["Access-Control-Allow-Origin"])["schema"]["const"] == cors["allow_origin"]
    assert DOC.deref(ok["Access-Control-Expose-Headers"])["schema"]["const"] == cors["expose_headers"]
    preflight = response(item["options"], 204)["headers"]
    assert preflight["Access-Control-Allow-Methods"]["schema"]["const"] == api["allow"]
    assert preflight["Access-Control-Allow-Headers"]["schema"]["const"] == cors["allow_headers"]
    assert preflight["Access-Control-Max-Age"]["schema"]["const"] == str(cors["max_age"])


def test_every_component_is_referenced():
    """Redocly's no-unused-components does not follow the x- extensions, so
    it is off (tests/openapi/redocly.yaml); this does."""
    text = json.dumps(SPEC)
    for kind, items in SPEC["components"].items():
        if kind == "securitySchemes":
            continue
        for name in items:
            assert f'"#/components/{kind}/{name}"' in text, f"components/{kind}/{name} is never used"


# ---- the validator can fail ------------------------------------------------------------

COMMON = [("x-request-id", "0123456789abcdef0123456789abcdef"), ("cache-control", "no-store"),
          ("content-type", "application/json; charset=utf-8")]
RECOUP = COMMON + [("access-control-allow-origin", "*"), ("access-control-expose-headers", "ETag")]
RECOUP_PATH = "/api/sessions/sess_demo/chats/chat_demo"
CHAT = {"id": "chat_demo", "sessionId": "sess_demo", "title": "t", "modelId": "m",
        "activeStreamId": None, "lastAssistantMessageAt": None,
        "createdAt": "2026-11-21T20:39:31.123Z", "updatedAt": "2026-11-21T20:39:31.123Z"}


def check(method, target, status, headers, body):
    return openapi_check.check(method, target, status, headers,
                               body if isinstance(body, bytes) else json.dumps(body).encode())


def test_a_documented_answer_passes():
    assert check("PATCH", RECOUP_PATH, 200, RECOUP + [("etag", '"7"')], {"chat": CHAT}) == []
    assert check("GET", RECOUP_PATH + "?x=1", 304, RECOUP + [("etag", '"7"')], b"") == []
    assert check("PATCH", "/api/chats/id/nope", 400, COMMON,
                 {"statusCode": 400, "message": "Validation failed (uuid is expected)",
                  "error": "Bad Request"}) == []
    assert check("DELETE", "/nowhere", 404, COMMON, {"statusCode": 404, "error": "Not Found"}) == []
    assert check("HEAD", "/healthz", 405, COMMON + [("allow", "GET")], b"") == []


@pytest.mark.parametrize("body", [
    {"chat": {**CHAT, "title": None}},
    {"chat": {**CHAT, "createdAt": "2026-11-21T20:39:31Z"}},
    {"chat": {**CHAT, "extra": 1}},
    {"chat": {k: v for k, v in CHAT.items() if k != "modelId"}},
    CHAT,
    {"status": "error", "error": "Chat not found"},
], ids=["null-title", "no-millis", "extra-key", "missing-key", "no-envelope", "error-body"])
def test_a_wrong_body_fails(body):
    problems = check("PATCH", RECOUP_PATH, 200, RECOUP + [("etag", '"7"')], body)
    assert problems and all("body" in p for p in problems), problems


def test_a_wrong_message_fails():
    problems = check("PATCH", RECOUP_PATH, 401, RECOUP, {"status": "error", "error": "Nope"})
    assert problems, "a 401 message no check gives"
    problems = check("GET", "/api/users/1/chats/1", 404, COMMON,
                     {"status": "error", "error": "Chat not found"})
    assert problems, "Recoup's shape from Neptun's path"


def test_an_undocumented_status_fails():
    problems = check("PATCH", RECOUP_PATH, 402, RECOUP, {"status": "error", "error": "x"})
    assert problems == [f"PATCH {RECOUP_PATH} -> 402: status not documented for "
                        "PATCH /api/sessions/{sessionId}/chats/{chatId}"]
    assert check("OPTIONS", "/api/users/1/chats/1", 204, COMMON, b"")  # Neptun has no preflight


@pytest.mark.parametrize("drop", ["etag", "x-request-id", "cache-control", "access-control-allow-origin"])
def test_a_missing_required_header_fails(drop):
    headers = [h for h in RECOUP + [("etag", '"7"')] if h[0] != drop]
    problems = check("PATCH", RECOUP_PATH, 200, headers, {"chat": CHAT})
    assert problems and drop in problems[0].lower(), problems


def test_a_wrong_header_value_fails():
    assert check("PATCH", RECOUP_PATH, 200, RECOUP + [("etag", 'W/"7"')], {"chat": CHAT})
    assert check("PUT", "/api/chats/id/x", 405, COMMON + [("allow", "GET, PATCH, OPTIONS")],
                 {"statusCode": 405, "message": "Method Not Allowed", "error": "Method Not Allowed"})
    assert check("GET", "/healthz", 503, COMMON, {"status": "unavailable"}), "no Retry-After"


def test_content_type_and_empty_bodies():
    plain = [h for h in COMMON if h[0] != "content-type"] + [("content-type", "text/html")]
    assert check("GET", "/healthz", 200, plain, {"status": "ok"})
    assert check("GET", "/healthz", 200, COMMON, b"<html>")
    assert check("GET", RECOUP_PATH, 304, RECOUP + [("etag", '"7"')], b"{}"), "a 304 with a body"
    om = [h for h in COMMON if h[0] != "content-type"] + [
        ("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")]
    assert check("GET", "/status?openmetrics", 200, om, b"# EOF\n") == []
