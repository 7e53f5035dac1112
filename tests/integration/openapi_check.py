"""Every answer the integration tests receive, checked against docs/openapi.yaml.

check(method, target, status, headers, body) returns the ways one answer
differs from the document (an empty list when it fits):

  - the path item: the first path template whose segments match the raw path
    (literal segments as sent, a parameter any non-empty segment), else the
    document's x-unknown-path; the query string is ignored;
  - the responses: the operation's for the method, else the path item's
    x-other-methods (405); a status found in neither falls back to
    x-any-request (what nginx answers before it chooses a location); a
    status in none of them is undocumented;
  - every header the response names as required is present, and every header
    it names has a value its schema accepts;
  - a response without content has no body; one with content has a
    Content-Type among its media types, and a JSON body that its schema
    (JSON Schema 2020-12, python3-jsonschema) accepts. A HEAD answer has no
    body to check.

conftest.py hooks check_httpx_response() on the session's `http` client (and
the tests' other httpx clients take EVENT_HOOKS), helpers.raw_exchange()
calls check_raw(); a mismatch raises OpenAPIMismatch
in the test that received the answer, and is also kept (take_mismatches())
so that one raised in a thread of the test still fails it.
"""

import json
import threading
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, RefResolver

import hosts

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class OpenAPIMismatch(AssertionError):
    """An answer that docs/openapi.yaml does not describe."""


class Document:
    """docs/openapi.yaml, loaded once, with its path templates split."""

    def __init__(self, path=DOCUMENT):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.resolver = RefResolver("", self.doc)
        self.templates = [(t.strip("/").split("/"), t) for t in self.doc["paths"]]
        self._validators = {}

    def deref(self, obj):
        """obj, or what its local $ref names (followed to the end)."""
        seen = 0
        while isinstance(obj, dict) and "$ref" in obj:
            ref = obj["$ref"]
            if not ref.startswith("#/"):
                raise ValueError(f"only local references: {ref}")
            obj = self.doc
            for part in ref[2:].split("/"):
                obj = obj[part.replace("~1", "/").replace("~0", "~")]
            seen += 1
            if seen > 32:
                raise ValueError(f"a $ref cycle at {ref}")
        return obj

    def match_path(self, path):
        """(template, path item) for a raw path, or (None, None)."""
        segments = path.strip("/").split("/") if path != "/" else [""]
        if not path.startswith("/"):
            return None, None
        for parts, template in self.templates:
            if len(parts) != len(segments):
                continue
            if all((p.startswith("{") and p.endswith("}") and s) or p == s
                   for p, s in zip(parts, segments)):
                return template, self.doc["paths"][template]
        return None, None

    def responses_for(self, method, path):
        """(where, [responses objects, in the order they are consulted])."""
        template, item = self.match_path(path)
        tail = [self.doc["x-any-request"]["responses"]]
        if item is None:
            return "x-unknown-path", [self.doc["x-unknown-path"]["responses"]] + tail
        op = item.get(method.lower()) if method.lower() in METHODS else None
        if op is None:
            return f"{template} x-other-methods", [item["x-other-methods"]["responses"]] + tail
        return f"{method.upper()} {template}", [op["responses"]] + tail

    def validator(self, schema):
        key = id(schema)
        if key not in self._validators:
            self._validators[key] = (schema, Draft202012Validator(schema, resolver=self.resolver))
        return self._validators[key][1]

    def check(self, method, target, status, headers, body, via_nginx=True):
        """The list of problems of one answer; `headers` as (name, value) pairs.
        via_nginx false: the worker's own answer to another FastCGI or CGI
        host, whose header values may follow a header's x-other-hosts-pattern."""
        path = target.split("?", 1)[0]
        if "://" in path:  # an absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        where, candidates = self.responses_for(method, path)
        response = None
        for responses in candidates:
            if str(status) in responses:
                response = self.deref(responses[str(status)])
                break
        if response is None:
            return [f"{method} {target} -> {status}: status not documented for {where}"]
        problems = []
        by_name = {}
        for name, value in headers:
            by_name.setdefault(name.lower(), []).append(value)
        for name, spec in (response.get("headers") or {}).items():
            spec = self.deref(spec)
            values = by_name.get(name.lower(), [])
            if not values:
                if spec.get("required"):
                    problems.append(f"required header {name} missing")
                continue
            schema = spec.get("schema")
            if not via_nginx and "x-other-hosts-pattern" in spec:
                schema = {"type": "string", "pattern": spec["x-other-hosts-pattern"]}
            for value in values:
                for error in self.validator(schema).iter_errors(value) if schema else ():
                    problems.append(f"header {name}: {value!r}: {error.message}")
        content = response.get("content")
        if method.upper() == "HEAD":
            pass
        elif not content:
            if body:
                problems.append(f"a body where the document has none: {body[:200]!r}")
        else:
            problems += self._check_content(content, by_name, body)
        return [f"{method} {target} -> {status} ({where}): {p}" for p in problems]

    def _check_content(self, content, by_name, body):
        types = by_name.get("content-type", [])
        if len(types) != 1:
            return [f"Content-Type {types}, one of {list(content)} expected"]
        base = types[0].split(";", 1)[0].strip().lower()
        media = next((m for m in content if m.split(";", 1)[0].strip().lower() == base), None)
        if media is None:
            return [f"Content-Type {types[0]!r} not among {list(content)}"]
        schema = (content[media] or {}).get("schema")
        if schema is None:
            return []
        if base != "application/json" and not base.endswith("+json"):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return ["body is not UTF-8 text"]
            return [f"body: {e.message}" for e in self.validator(schema).iter_errors(text)]
        try:
            value = json.loads(body)
        except ValueError:
            return [f"body is not JSON: {body[:200]!r}"]
        return [
            f"body at {'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in self.validator(schema).iter_errors(value)
        ]


_document = None
_mismatches = []
_lock = threading.Lock()


def document():
    global _document
    if _document is None:
        _document = Document()
    return _document


# Behind a host other than the stack's nginx (make test-hosts), answers
# come from that host: its own request id, as the worker's answers to
# other hosts carry.
BEHIND_NGINX = hosts.CURRENT == "nginx"


def check(method, target, status, headers, body, via_nginx=BEHIND_NGINX):
    return document().check(method, target, status, headers, body, via_nginx)



# Off during a test about the answers a web server gives itself, which the
# document does not describe (test_host_answers.py, marked
# hosts_own_answers).
_checking = True


def set_checking(on):
    global _checking
    _checking = on


def _report(problems):
    if problems and _checking:

        with _lock:
            _mismatches.extend(problems)
        raise OpenAPIMismatch("answer not as docs/openapi.yaml says:\n  " + "\n  ".join(problems))


def check_httpx_response(response):
    """An httpx response event hook: reads the answer and checks it."""
    response.read()
    request = response.request
    _report(check(request.method, request.url.raw_path.decode("latin-1"), response.status_code,
                  response.headers.multi_items(), response.content))


# For httpx.Client(event_hooks=...): every client of the tests takes these.
EVENT_HOOKS = {"response": [check_httpx_response]}


def check_raw(method, target, answer):
    """helpers.RawAnswer of a request written byte for byte."""
    _report(check(method, target, answer.status, answer.headers, answer.body))


def check_cgi(method, target, status, headers, body):
    """A CGI response (conftest.run_cgi, fcgi_client.fcgi_http): the worker's
    own answer, without nginx; `headers` a dict with lower-cased names."""
    _report(check(method, target, status, list(headers.items()), body, via_nginx=False))


def take_mismatches():
    """The mismatches seen since the last call, forgotten."""
    with _lock:
        taken = list(_mismatches)
        _mismatches.clear()
    return taken
