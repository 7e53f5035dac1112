"""bench/bench.lua under wrk, against a small HTTP server on the loopback
that records what it gets: the paths, headers and body it sends, and its
counts of unexpected statuses and bodies."""

import os
import shutil
import subprocess
import tempfile
import threading
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import params
import wrkrun

LUA = os.path.join(os.path.dirname(__file__), "..", "bench.lua")


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def do_PATCH(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Recorder.seen.append((self.path, self.headers.get("x-api-key"), body))
        # every 10th chat answers 404, chat 7 a wrong body
        chat = int(self.path.rsplit("/", 1)[1]) - 2000000
        status, out = (404, b"{}") if chat % 10 == 0 else (200, b'{"chat":{"id":"x"}}')
        if chat == 7:
            out = b'{"oops":1}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def do_GET(self):
        # the health check: right on /healthz, a wrong body anywhere else
        Recorder.seen.append((self.path, self.headers.get("Content-Length"), b""))
        out = params.HEALTH_OK.encode() if self.path == params.HEALTH_PATH else b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@unittest.skipUnless(shutil.which("wrk"), "wrk is not installed")
class BenchLuaTest(unittest.TestCase):
    def test_requests_and_checks(self):
        Recorder.seen = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with tempfile.TemporaryDirectory() as d:
                api = params.APIS["recoup"]
                body = os.path.join(d, "body.json")
                with open(body, "w") as f:
                    f.write(api.body)
                spec = os.path.join(d, "spec")
                with open(spec, "w") as f:
                    f.write(wrkrun.spec(api, "/api/sessions/{}/chats/{}", 20, body, 200, api.ok_prefix))
                cmd = wrkrun.command(f"http://127.0.0.1:{server.server_port}", spec, 2, 2, 1, 5, LUA)
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        finally:
            server.shutdown()
            server.server_close()
        r = wrkrun.parse(out)
        self.assertIsNotNone(r, out)
        self.assertGreater(r["requests"], 20)
        self.assertEqual(r["checked"], r["requests"])
        paths = {p for p, _, _ in Recorder.seen}
        self.assertEqual(paths, {f"/api/sessions/{1000000 + i}/chats/{2000000 + i}" for i in range(1, 21)})
        self.assertEqual({k for _, k, _ in Recorder.seen}, {api.credential})
        self.assertEqual({b for _, _, b in Recorder.seen}, {api.body.encode()})
        # 2 chats in 20 answer 404; wrk's count and ours agree
        self.assertEqual(r["bad_status"], r["statuses"][404])
        self.assertEqual(r["non2xx"], r["bad_status"])
        self.assertGreater(r["bad_status"], 0)
        self.assertGreater(r["bad_body"], 0)

    def run_get(self, path):
        Recorder.seen = []
        server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with tempfile.TemporaryDirectory() as d:
                spec = os.path.join(d, "spec")
                with open(spec, "w") as f:
                    f.write(wrkrun.get_spec(path, 200, params.HEALTH_OK))
                cmd = wrkrun.command(f"http://127.0.0.1:{server.server_port}", spec, 2, 2, 1, 5, LUA)
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        finally:
            server.shutdown()
            server.server_close()
        r = wrkrun.parse(out)
        self.assertIsNotNone(r, out)
        self.assertGreater(r["requests"], 20)
        self.assertEqual(r["checked"], r["requests"])
        return r

    def test_bare_path(self):
        r = self.run_get(params.HEALTH_PATH)
        self.assertEqual({p for p, _, _ in Recorder.seen}, {params.HEALTH_PATH})
        self.assertEqual({n for _, n, _ in Recorder.seen}, {None}, "a GET without a body")
        self.assertEqual((r["bad_status"], r["bad_body"]), (0, 0))
        # the check can fail: another path answers another body
        other = self.run_get("/elsewhere")
        self.assertEqual(other["bad_body"], other["requests"])


if __name__ == "__main__":
    unittest.main()
