#!/usr/bin/python3
"""nginx/chatpatch.conf, the ops snippet, from its template
nginx/chatpatch.conf.in and what the binary prints from its API profiles
(`chatpatch --print-errors DIR`, cgi/errors.c), so no fact of a profile is
written into the snippet by hand (README, "Deploying behind your own nginx").

    scripts/nginx_snippet.py --binary build/chatpatch > nginx/chatpatch.conf
    scripts/nginx_snippet.py --errors DIR [--template FILE] [-o FILE]

`make nginx-snippet` runs the first; tests/nginx/test_snippet.py checks that
the committed file is what it makes.

The template is the snippet's text with
  - "#@" lines, dropped (notes on the template itself);
  - "#@each api" ... "#@end": the lines between, once per API of routes.tsv
    in its order; "#@each api with origin": only the APIs with a CORS
    origin; "#@each fixed": once per fixed route of fixed.tsv (/healthz,
    /status);
  - @NAME@ placeholders. Anywhere: @BODY_<status>@ (the generic body,
    DIR/<status>.json), @GENERIC_<status>@ (the same), @COMMON_ALLOW@ (the
    methods every API has, for paths of none), @HEALTH_503@ (DIR/healthz/
    503.json). In "#@each api": @NAME@, @COLLECTION@ ("/api/sessions": the
    location of the API's paths, its prefix's first two segments),
    @COLLECTION_RE@ (the same as a regex), @ALLOW@, @CORS_HEADER@ (the
    add_header line of its origin, or nothing), @API_429@ (the named
    location of its 429), @BODY_<status>@ (DIR/<prefix>/<status>.json). In
    "#@each fixed": @PATH@, @ALLOW@.
  - @FASTCGI_PARAMS@: the fastcgi_param lines of the params the workers
    read (DIR/params.tsv), one per line at the placeholder's indentation.
A line that is only a placeholder which comes out empty is dropped. Values
are escaped for the quotes the template puts them in (or checked to be one
bare word); a value nginx could not hold literally ("$" starts a variable)
is refused.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "nginx" / "chatpatch.conf.in"
PLACEHOLDER = re.compile(r"@([A-Z][A-Z0-9_]*)@")
API_ROOT = "/api/"  # the template's `location /api/`, which holds the APIs'


# What nginx passes for each param the workers read (params.tsv), None
# for those it need not pass: only these go, not all of fastcgi_params
# (twenty more params cost nginx and a worker a sixth of their instructions
# per request; README, Performance). A param the workers start to read
# must be added here, or the snippet is not made.
NGINX_PARAMS = {
    "REQUEST_METHOD": "$request_method",
    "REQUEST_URI": "$request_uri",
    "CONTENT_TYPE": "$content_type",
    "CONTENT_LENGTH": "$content_length",
    "REQUEST_ID": "$request_id",
    "QUERY_STRING": None,  # in REQUEST_URI, which the workers read first
    "PATH_INFO": None,     # for CGI hosts without REQUEST_URI
    "UNIQUE_ID": None,     # Apache's request id; nginx's is REQUEST_ID
}
HEADER_PARAM = re.compile(r"HTTP_[A-Z0-9_]+")  # nginx passes each request header


class SnippetError(Exception):
    pass


class Raw(str):
    """A value that is nginx text already (a whole directive)."""


def nginx_text(value, quote):
    """value as nginx reads it literally inside quote ('"', "'", or None:
    a bare word)."""
    if isinstance(value, Raw):
        return value
    if "$" in value or any(c in value for c in "\n\r\0"):
        raise SnippetError(f"cannot write {value!r} literally in nginx's config")
    if quote is None:
        if not value or re.search(r"[\s;{}'\"\\#]", value):
            raise SnippetError(f"cannot write {value!r} as a bare word in nginx's config")
        return value
    return value.replace("\\", "\\\\").replace(quote, "\\" + quote)


def quote_at(line, end):
    """The quote that is open at line[end] ('"', "'" or None)."""
    quote, escaped = None, False
    for c in line[:end]:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif quote is None and c in "\"'":
            quote = c
        elif c == quote:
            quote = None
    return quote


def read_body(path):
    """A printed JSON body, checked to be one JSON value on one line."""
    if not path.is_file():
        raise SnippetError(f"{path}: missing (chatpatch --print-errors writes it)")
    text = path.read_text(encoding="utf-8").strip()
    try:
        json.loads(text)
    except ValueError as e:
        raise SnippetError(f"{path}: not JSON: {e}") from None
    return text


def read_tsv(path, columns):
    if not path.is_file():
        raise SnippetError(f"{path}: missing (chatpatch --print-errors writes it)")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("\t")
        if len(fields) != columns:
            raise SnippetError(f"{path}:{n}: {columns} tab-separated fields expected")
        rows.append(fields)
    return rows


def collection(prefix):
    """"/api/sessions/" of "/api/sessions/" and "/api/chats/id/" of
    "/api/chats/id/" -> "/api/sessions", "/api/chats": where nginx sends the
    API's paths (the API's own location)."""
    segments = prefix.strip("/").split("/")
    if not prefix.startswith(API_ROOT) or len(segments) < 2 or "" in segments:
        raise SnippetError(f"routes.tsv: prefix {prefix!r} is not under {API_ROOT}")
    return "/" + "/".join(segments[:2])


class Printed:
    """What `chatpatch --print-errors DIR` wrote."""

    def __init__(self, out):
        self.out = Path(out)
        self.apis = []
        for name, prefix, allow, origin in read_tsv(self.out / "routes.tsv", 4):
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise SnippetError(f"routes.tsv: API name {name!r} cannot name a location")
            self.apis.append({"name": name, "prefix": prefix, "allow": allow,
                              "origin": None if origin == "-" else origin,
                              "collection": collection(prefix)})
        seen = [a["collection"] for a in self.apis]
        if not self.apis or len(set(seen)) != len(seen):
            raise SnippetError(f"routes.tsv: no APIs, or two in one collection: {seen}")
        self.fixed = [{"path": path, "allow": allow}
                      for path, allow in read_tsv(self.out / "fixed.tsv", 2)]
        self.params = [name for (name,) in read_tsv(self.out / "params.tsv", 1)]

    def fastcgi_params(self):
        """The fastcgi_param lines of the params the workers read."""
        lines = []
        for name in self.params:
            if HEADER_PARAM.fullmatch(name):
                continue
            if name not in NGINX_PARAMS:
                raise SnippetError(f"params.tsv: the workers read {name}; say in "
                                   "NGINX_PARAMS what nginx passes for it")
            if NGINX_PARAMS[name] is not None:
                lines.append(f"fastcgi_param {name} {NGINX_PARAMS[name]};")
        return Raw("\n".join(lines))

    def generic(self, name):
        """The value of a placeholder outside an "#@each" block."""
        m = re.fullmatch(r"(?:BODY|GENERIC)_(\d{3})", name)
        if m:
            return read_body(self.out / f"{m[1]}.json")
        if name == "HEALTH_503":
            return read_body(self.out / "healthz" / "503.json")
        if name == "FASTCGI_PARAMS":
            return self.fastcgi_params()
        if name == "COMMON_ALLOW":
            methods = [[m.strip() for m in a["allow"].split(",")] for a in self.apis]
            return ", ".join(m for m in methods[0] if all(m in other for other in methods))
        raise SnippetError(f"template: unknown placeholder @{name}@")

    def of_api(self, api, name):
        m = re.fullmatch(r"BODY_(\d{3})", name)
        if m:
            return read_body(self.out / api["prefix"].strip("/") / f"{m[1]}.json")
        if name == "NAME":
            return api["name"]
        if name == "COLLECTION":
            return api["collection"]
        if name == "COLLECTION_RE":
            return re.escape(api["collection"])
        if name == "ALLOW":
            return api["allow"]
        if name == "CORS_HEADER":
            if api["origin"] is None:
                return Raw("")
            origin = nginx_text(api["origin"], '"')
            return Raw(f'add_header Access-Control-Allow-Origin "{origin}" always;')
        if name == "API_429":
            return Raw(f"@chatpatch_{api['name']}_429" if api["origin"] else "@chatpatch_429")
        return self.generic(name)

    def of_fixed(self, route, name):
        if name == "PATH":
            return route["path"]
        if name == "ALLOW":
            return route["allow"]
        return self.generic(name)


def fill(line, value_of):
    """line with its placeholders replaced; None when it is nothing but a
    placeholder that came out empty."""
    filled = PLACEHOLDER.sub(lambda m: nginx_text(value_of(m[1]), quote_at(line, m.start())),
                             line)
    indent = line[:len(line) - len(line.lstrip())]
    filled = filled.replace("\n", "\n" + indent)  # a value of several lines
    if not filled.strip() and PLACEHOLDER.search(line):
        return None
    return filled


def render(template_text, printed):
    """The snippet's text."""
    out, block, each = [], None, None
    for n, line in enumerate(template_text.splitlines(), 1):
        directive = line.strip()
        if directive.startswith("#@each "):
            if block is not None:
                raise SnippetError(f"template:{n}: #@each inside #@each")
            each, block = directive[len("#@each "):], []
            if each == "api":
                items = [(a, printed.of_api) for a in printed.apis]
            elif each == "api with origin":
                items = [(a, printed.of_api) for a in printed.apis if a["origin"]]
            elif each == "fixed":
                items = [(r, printed.of_fixed) for r in printed.fixed]
            else:
                raise SnippetError(f"template:{n}: unknown #@each {each!r}")
        elif directive == "#@end":
            if block is None:
                raise SnippetError(f"template:{n}: #@end without #@each")
            for item, value_of in items:
                for body_line in block:
                    filled = fill(body_line, lambda name, i=item, v=value_of: v(i, name))
                    if filled is not None:
                        out.append(filled)
            block = None
        elif directive.startswith("#@"):
            continue
        elif block is not None:
            block.append(line)
        else:
            filled = fill(line, printed.generic)
            if filled is not None:
                out.append(filled)
    if block is not None:
        raise SnippetError("template: #@each without #@end")
    return "\n".join(out) + "\n"


def print_errors(binary, out_dir):
    proc = subprocess.run([str(binary), "--print-errors", str(out_dir)],
                          capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise SnippetError(f"{binary} --print-errors: exit {proc.returncode}\n{proc.stderr}")


def generate(template=TEMPLATE, errors=None, binary=None):
    """The snippet from the template and a --print-errors folder, or from
    what binary prints into a temporary one."""
    text = Path(template).read_text(encoding="utf-8")
    if errors is not None:
        return render(text, Printed(errors))
    with tempfile.TemporaryDirectory(prefix="chatpatch-errors-") as tmp:
        print_errors(binary, tmp)
        return render(text, Printed(tmp))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--errors", metavar="DIR", help="what `chatpatch --print-errors DIR` wrote")
    source.add_argument("--binary", metavar="PATH", help="run PATH --print-errors into a temp dir")
    parser.add_argument("--template", default=str(TEMPLATE), metavar="FILE")
    parser.add_argument("-o", "--output", metavar="FILE", help="write here, not to stdout")
    args = parser.parse_args(argv)
    try:
        text = generate(args.template, args.errors, args.binary)
    except (SnippetError, OSError, subprocess.SubprocessError) as e:
        print(f"nginx_snippet.py: {e}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
