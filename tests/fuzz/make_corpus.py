#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/<target>/ from SPEC sections
1-5: valid bodies of each API and each of their error cases, JSON edge cases
(depth, surrogates, big numbers, UTF-8), the routes with percent-encoding
edge cases, and Authorization / Cookie / Content-Type header values.

Run it from anywhere after changing a seed below; it only adds or rewrites
the seed-*.bin files it owns (crash-* regression inputs are left alone).
"""
import os
import pathlib

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def deep(levels, inner=b"1", key=True):
    """An object nested `levels` deep (the top level counts as 1)."""
    text = inner
    for _ in range(levels - 1):
        text = (b'{"a":' + text + b"}") if key else (b"[" + text + b"]")
    return b'{"metadata":' + text + b"}" if levels > 1 else b"{}"


BODY = {
    # Recoup (SPEC 3): valid, then each problem in zod's order.
    "recoup-title": b'{"title":"Renamed chat"}',
    "recoup-model": b'{"modelId":"gpt-4o-mini"}',
    "recoup-both-trimmed": b'{ "title" : "  padded\\u00a0", "modelId" : "\\tm\\n" }',
    "recoup-not-object-array": b"[]",
    "recoup-not-object-string": b'"title"',
    "recoup-not-object-number": b"42 ",
    "recoup-not-object-null": b"null\n",
    "recoup-not-object-bool": b"true\n",
    "recoup-title-number": b'{"title":1}',
    "recoup-title-null": b'{"title":null}',
    "recoup-title-object": b'{"title":{"x":"y"}}',
    "recoup-title-blank": b'{"title":"   "}',
    "recoup-model-empty": b'{"title":"ok","modelId":""}',
    "recoup-unknown-one": b'{"title":"t","foo":1}',
    "recoup-unknown-many": b'{"b":1,"title":"t","a":[],"c\\"q":null}',
    "recoup-none": b"{}",
    "recoup-duplicate": b'{"title":1,"title":"last wins"}',
    # Neptun (SPEC 4)
    "neptun-name": b'{"name":"My chat"}',
    "neptun-name-extra-ignored": b'{"name":"x","model":"ignored","id":7}',
    "neptun-name-missing": b'{"nam":"x"}',
    "neptun-name-array": b'{"name":["x"]}',
    "neptun-name-js-spaces": '{"name":"\u3000\ufeff\u2028\u00a0"}'.encode(),
    "neptun-name-not-trimmed-mvs": b'{"name":"\\u180e"}',
    # LeanMCP (SPEC 5)
    "leanmcp-all": (b'{"title":"T","summary":"","modelUsed":"claude","systemMessageId":"sys-1",'
                    b'"metadata":{"tags":["a","b"],"n":1.5e3,"o":{"p":null,"q":true}}}'),
    "leanmcp-nulls": b'{"summary":null,"modelUsed":null,"systemMessageId":null}',
    "leanmcp-title-null": b'{"title":null}',
    "leanmcp-all-wrong": (b'{"zz":0,"title":"","summary":5,"modelUsed":" ","systemMessageId":[],'
                          b'"metadata":[],"aa":1}'),
    "leanmcp-metadata-string": b'{"metadata":"{}"}',
    "leanmcp-metadata-null": b'{"metadata":null}',
    "leanmcp-metadata-bignum": (b'{"metadata":{"big":123456789012345678901234567890,'
                                b'"huge":1e400,"tiny":-1e-400,"negz":-0,"max":9223372036854775808}}'),
    "leanmcp-metadata-dup": b'{"metadata":{"a":1},"metadata":{"b":2}}',
    "leanmcp-metadata-escaped-key": b'{"meta\\u0064ata":{"k":"\\ud83d\\ude00"}}',
    # nesting: 32 levels accepted, 33 not (SPEC 2)
    "depth-32-objects": deep(32),
    "depth-33-objects": deep(33),
    "depth-32-arrays": deep(32, key=False),
    "depth-33-arrays": deep(33, key=False),
    # strings: surrogates, U+0000, UTF-8
    "str-pair": b'{"title":"\\ud83d\\ude00 \\uD83D\\uDE00"}',
    "str-lone-high": b'{"title":"\\ud83d"}',
    "str-lone-low": b'{"title":"\\ude00x"}',
    "str-high-high": b'{"title":"\\ud83d\\ud83d"}',
    "str-high-then-char": b'{"title":"\\ud83dx"}',
    "str-nul-escape": b'{"title":"a\\u0000b"}',
    "str-raw-control": b'{"title":"a\tb"}',
    "str-utf8": '{"title":"caf\u00e9 \U0001F600 \u4e2d"}'.encode(),
    "str-utf8-bad-cont": b'{"title":"\xc3\x28"}',
    "str-utf8-overlong": b'{"title":"\xc0\xaf"}',
    "str-utf8-surrogate": b'{"title":"\xed\xa0\x80"}',
    "str-utf8-too-big": b'{"title":"\xf4\x90\x80\x80"}',
    "str-utf8-truncated": b'{"title":"\xe2\x82',
    "str-escapes": b'{"title":"\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041"}',
    "str-bad-escape": b'{"title":"\\x41"}',
    "key-long": b'{"' + b"k" * 300 + b'":1,"title":"t"}',
    # JSON syntax that JSON.parse refuses (json-c takes some of it)
    "bad-empty": b"",
    "bad-space": b" \n\t",
    "bad-trailing-comma": b'{"title":"x",}',
    "bad-single-quotes": b"{'title':'x'}",
    "bad-comment": b'{"title":"x"/* c */}',
    "bad-nan": b'{"metadata":{"n":NaN}}',
    "bad-leading-zero": b'{"metadata":{"n":01}}',
    "bad-dot": b'{"metadata":{"n":1.}}',
    "bad-bom": b'\xef\xbb\xbf{"title":"x"}',
    "bad-trailing-garbage": b'{"title":"x"} x',
    "bad-two-values": b"{} {}",
    "bad-unclosed": b'{"title":"x"',
    "bad-backslash-end": b'{"title":"\\',
    "bad-vt-space": b'\x0b{"title":"x"}',
}

ROUTE = {
    "health": b"/healthz",
    "recoup": b"/api/sessions/sess_demo/chats/chat_demo",
    "neptun": b"/api/users/1/chats/1",
    "neptun-zeros": b"/api/users/0001/chats/9223372036854775807",
    "leanmcp": b"/api/chats/id/c1a83d84-7154-464c-bd19-a9f10e0a067f",
    "leanmcp-upper": b"/api/chats/id/C1A83D84-7154-464C-BD19-A9F10E0A067F",
    "pct-plain": b"/api/sessions/%73ess/chats/%E2%82%AC",
    "pct-lower-hex": b"/api/sessions/a%2db/chats/c%7e",
    "pct-slash": b"/api/sessions/a%2Fb/chats/c",
    "pct-slash-lower": b"/api/sessions/a%2fb/chats/c",
    "pct-nul": b"/api/sessions/a%00b/chats/c",
    "pct-double": b"/api/sessions/a%252Fb/chats/c",
    "pct-truncated-1": b"/api/sessions/a%/chats/c",
    "pct-truncated-2": b"/api/users/1/chats/%4",
    "pct-not-hex": b"/api/chats/id/%zz",
    "pct-at-end": b"/healthz%",
    "pct-literal-segment": b"/api/%63hats/id/x",
    "pct-utf8-bad": b"/api/sessions/%FF%FE/chats/%C0%AF",
    "empty-segment": b"/api/sessions//chats/c",
    "trailing-slash": b"/healthz/",
    "root": b"/",
    "empty": b"",
    "relative": b"api/users/1/chats/1",
    "case": b"/HEALTHZ",
    "too-short": b"/api/chats/id",
    "too-long": b"/api/chats/id/x/y",
    "many-segments": b"/a" * 17,
    "dots": b"/api/sessions/../chats/.",
    "query-kept": b"/healthz?x=1",
    "plus-space": b"/api/sessions/a+b%20c/chats/d",
}

HEADERS = {
    # Authorization (SPEC 2: scheme in any case)
    "bearer": b"Bearer demo-leanmcp-key",
    "bearer-lower-spaces": b"bearer   k-1  ",
    "bearer-tab": b"BEARER\tdemo-recoup-key",
    "bearer-no-token": b"Bearer ",
    "bearer-bare": b"Bearer",
    "bearer-glued": b"Bearerk",
    "basic": b"Basic dXNlcjpwYXNz",
    "bearer-comma-joined": b"Bearer a, Bearer b",
    # Cookie, then \0 and a cookie name to look up
    "cookie": b"neptun-session=demo-neptun-session",
    "cookie-among": b"a=1; neptun-session=tok; b=2",
    "cookie-quoted": b'neptun-session="quoted value"',
    "cookie-empty-first": b"neptun-session=; neptun-session=second",
    "cookie-spaces": b"  neptun-session  =  v  ;",
    "cookie-no-eq": b"neptun-session; x=1",
    "cookie-lone-quote": b'neptun-session="',
    "cookie-named": b"sid=1; other=2\x00other",
    "cookie-named-empty": b"=v; a=b\x00",
    "cookie-prefix": b"xneptun-session=1; neptun-sessionx=2",
    # header, cookie name, x-api-key value, presence flags (last byte)
    "api-key-and-bearer": b"Bearer k\x00name\x00demo-recoup-key\x00",
    "api-key-only": b"\x00\x00demo-recoup-key\x02",
    "none": b"\x00\x00\x00\x07",
    # Content-Type (SPEC 2)
    "ct-json": b"application/json",
    "ct-json-charset": b"Application/JSON; charset=utf-8",
    "ct-json-spaces": b" \tapplication/json \t; q=1",
    "ct-merge-patch": b"application/merge-patch+json",
    "ct-plus-only": b"application/+json",
    "ct-vnd": b"APPLICATION/vnd.api+JSON ;x=y",
    "ct-text-json": b"text/json",
    "ct-json5": b"application/json5",
    "ct-slash-subtype": b"application/a/b+json",
    "ct-empty": b"",
}


def write(target, seeds):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("seed-*.bin"):
        old.unlink()
    for name, data in seeds.items():
        (folder / f"seed-{name}.bin").write_bytes(data)
    print(f"{folder.relative_to(HERE.parent.parent)}: {len(seeds)} seeds")


if __name__ == "__main__":
    os.umask(0o022)
    write("fuzz_body", BODY)
    write("fuzz_route", ROUTE)
    write("fuzz_headers", HEADERS)
