"""A tiny FastCGI 1.0 client, to talk to chatpatch workers directly (no
nginx), and the access line's documented format.

  fcgi_request   one RESPONDER request with the given params and body
  fcgi_http      the same with the params nginx's fastcgi_params sets, an
                 optional REQUEST_ID, each header as HTTP_*, extra params
  KeptConnection a connection kept for several requests (FCGI_KEEP_CONN)
  FcgiResponse   the parsed CGI answer (status, lower-cased headers, body)
  ACCESS_RE      the access line (README "Configuration")

Used through workers.py by the tests that start workers of their own
(test_process_modes.py, test_lifecycle.py, test_db_connect.py), and by
test_security.py and test_status.py on the shared stack's socket
($STACK_DIR/run/chatpatch.sock).
"""

import json
import re
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import openapi_check
from conftest import parse_cgi_response

REQUEST_TIMEOUT_S = 15.0

ACCESS_RE = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) \[(?P<pid>\d+)\] (?P<level>[a-z]+): "
    r"access rid=(?P<rid>\S+) method=(?P<method>\S+) route=(?P<route>\S+) "
    r"status=(?P<status>\d{3}) total_us=(?P<total>\d+) db_us=(?P<db>\d+)$"
)

FCGI_VERSION_1 = 1
FCGI_BEGIN_REQUEST = 1
FCGI_END_REQUEST = 3
FCGI_PARAMS = 4
FCGI_STDIN = 5
FCGI_STDOUT = 6
FCGI_STDERR = 7
FCGI_RESPONDER = 1
FCGI_REQUEST_COMPLETE = 0


def _fcgi_record(rtype, request_id, content=b""):
    """One or more records of `rtype` carrying `content` (an empty content
    gives the one empty record that ends a stream)."""
    out = b""
    chunks = [content[i : i + 65535] for i in range(0, len(content), 65535)] or [b""]
    for chunk in chunks:
        padding = -len(chunk) % 8
        out += struct.pack(">BBHHBx", FCGI_VERSION_1, rtype, request_id, len(chunk), padding)
        out += chunk + b"\0" * padding
    return out


def _fcgi_length(n):
    return bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)


def fcgi_params(params):
    out = b""
    for name, value in params.items():
        name = name.encode() if isinstance(name, str) else name
        value = value.encode() if isinstance(value, str) else value
        out += _fcgi_length(len(name)) + _fcgi_length(len(value)) + name + value
    return out


@dataclass
class FcgiResponse:
    status: int
    headers: dict
    body: bytes
    app_status: int
    protocol_status: int
    stderr: bytes = b""

    def json(self):
        return json.loads(self.body)


def _connect(address, timeout):
    if isinstance(address, (str, Path)):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target = str(address)
    else:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        target = tuple(address)
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def _recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("FastCGI response not complete in time")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _exchange(sock, params, body, deadline, request_id=1, keep=False):
    """One RESPONDER request on sock; the parsed CGI response. keep: the
    FCGI_KEEP_CONN flag (the worker leaves the connection open)."""
    begin = struct.pack(">HB5x", FCGI_RESPONDER, 1 if keep else 0)
    data = _fcgi_record(FCGI_BEGIN_REQUEST, request_id, begin)
    encoded = fcgi_params(params)
    if encoded:
        data += _fcgi_record(FCGI_PARAMS, request_id, encoded)
    data += _fcgi_record(FCGI_PARAMS, request_id)
    if body:
        data += _fcgi_record(FCGI_STDIN, request_id, body)
    data += _fcgi_record(FCGI_STDIN, request_id)
    sock.sendall(data)

    stdout, stderr = b"", b""
    while True:
        header = _recv_exact(sock, 8, deadline)
        version, rtype, rid, length, padding = struct.unpack(">BBHHBx", header)
        assert version == FCGI_VERSION_1, f"FastCGI version {version}"
        content = _recv_exact(sock, length + padding, deadline)[:length]
        assert rid == request_id, f"record for request {rid}, not {request_id}"
        if rtype == FCGI_STDOUT:
            stdout += content
        elif rtype == FCGI_STDERR:
            stderr += content
        elif rtype == FCGI_END_REQUEST:
            app_status, protocol_status = struct.unpack(">IB3x", content)
            break
        else:
            raise AssertionError(f"unexpected FastCGI record type {rtype}")
    status, headers, resp_body = parse_cgi_response(stdout)
    assert "status" in headers, f"no Status: line in {stdout[:300]!r}"
    return FcgiResponse(status, headers, resp_body, app_status, protocol_status, stderr)


def fcgi_request(address, params, body=b"", timeout=REQUEST_TIMEOUT_S, request_id=1):
    """Sends one FastCGI RESPONDER request (keep-conn off) and returns the
    parsed CGI response. `address`: a unix socket path or (host, port), or
    a KeptConnection to send it on."""
    deadline = time.monotonic() + timeout
    if isinstance(address, KeptConnection):
        return _exchange(address.sock, params, body, deadline, request_id, keep=True)
    sock = _connect(address, timeout)
    try:
        return _exchange(sock, params, body, deadline, request_id)
    finally:
        sock.close()


class KeptConnection:
    """A connection whose requests go with FCGI_KEEP_CONN, as nginx's with
    fastcgi_keep_conn on: the worker keeps it for the next one. Pass it
    where an address goes."""

    def __init__(self, address, timeout=REQUEST_TIMEOUT_S):
        self.sock = _connect(address, timeout)

    def close(self):
        self.sock.close()


def fcgi_http(address, method, path, body=b"", headers=None, request_id=None,
              content_type="application/json", timeout=REQUEST_TIMEOUT_S, extra_params=None):
    """An HTTP-like request as nginx would pass it: the params nginx's
    fastcgi_params sets, REQUEST_ID, each header as HTTP_*, then
    `extra_params` (which may replace any of them). Values may be bytes.
    The answer is checked against docs/openapi.yaml (openapi_check.py)."""
    params = {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "pytest",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_METHOD": method,
        "REQUEST_URI": path,
        "DOCUMENT_URI": path.split("?")[0],
        "SCRIPT_NAME": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "CONTENT_TYPE": content_type or "",
        "REMOTE_ADDR": "127.0.0.1",
    }
    if request_id is not None:
        params["REQUEST_ID"] = request_id
    for name, value in (headers or {}).items():
        params["HTTP_" + name.upper().replace("-", "_")] = value
    params.update(extra_params or {})
    resp = fcgi_request(address, params, body, timeout)
    # What the worker was given, extra_params included.
    verb = params.get("REQUEST_METHOD") or ""
    target = params.get("REQUEST_URI") or params.get("PATH_INFO") or ""
    verb, target = (v.decode("latin-1") if isinstance(v, bytes) else v for v in (verb, target))
    openapi_check.check_cgi(verb, target, resp.status, resp.headers, resp.body)
    return resp
