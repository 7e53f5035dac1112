"""What the bench makes of its runs: problems, pooled rounds, result.txt,
the CPU accounting from /proc, the peer comparison."""

import os
import subprocess
import sys
import time
import unittest

import peercheck
import procstat
import report

META = {"started": "2026-11-28T00:00:00Z", "cpus": 2, "seconds": 10, "rounds": 2, "chats": 1000,
        "load_s": 1.0, "workers": 4, "threads": 2, "concurrency": [8, 32, 128], "apis": ["recoup"],
        "hostile_concurrency": 8, "routes": {"recoup": "/api/sessions/{}/chats/{}"}}


def run(target, conc, rnd=1, rps=1000.0, **kw):
    r = {"kind": "main", "api": "recoup", "target": target, "conc": conc, "round": rnd,
         "rps": rps, "requests": int(rps * 10), "p50_ms": 2.0, "p99_ms": 8.0, "max_ms": 20.0,
         "non2xx": 0, "updated": 100, "wall_s": 10.0,
         "cpu_s": {"client": 0.5, "nginx": 1.0, "worker": 2.0, "peer": 0.0, "postgres": 3.0,
                   "machine": 18.0}}
    r.update(kw)
    return r


def series(changes=None):
    runs = []
    for rnd in (1, 2):
        for c in META["concurrency"]:
            runs += [run("ceiling", c, rnd, rps=4000.0), run("chatpatch", c, rnd, rps=2000.0),
                     run("peer", c, rnd, rps=1000.0 * rnd)]
    for r in runs:
        for (target, conc), kw in (changes or {}).items():
            if (r["target"], r["conc"], r["round"]) == (target, conc, 1):
                r.update(kw)
    return runs


class ProblemsTest(unittest.TestCase):
    def test_clean_run(self):
        self.assertEqual(report.run_problems(run("chatpatch", 8)), [])

    def test_real_errors(self):
        r = run("chatpatch", 8, non2xx=3, unexpected_statuses={"503": 3}, bad_bodies=1,
                socket_errors={"timeout": 2}, updated=0)
        text = " | ".join(report.run_problems(r))
        for part in ("3 non-2xx answers (3 x 503)", "1 answers with an unexpected body",
                     "timeout 2", "no chat was updated"):
            self.assertIn(part, text)

    def test_hostile_expects_its_status(self):
        r = run("chatpatch", 8, kind="hostile", body="keys", credential="good", expected_status=400,
                non2xx=80, unexpected_statuses={})
        self.assertEqual(report.run_problems(r), [])
        r["unexpected_statuses"] = {"401": 5}
        self.assertEqual(report.run_problems(r), ["5 answers not 400 (5 x 401)"])

    def test_numbers_never_fail(self):
        self.assertEqual(report.run_problems(run("chatpatch", 128, rps=0.5, max_ms=5000.0)), [])


class PoolTest(unittest.TestCase):
    def test_rounds(self):
        m = report.pooled(META, series())
        peer = m["recoup", "peer", 32]
        self.assertEqual(peer["rps"], 1500.0)
        # 2 s of worker CPU per round over 10,000 and 20,000 requests
        chatpatch = m["recoup", "chatpatch", 32]
        self.assertAlmostEqual(chatpatch["us"]["worker"], 1e6 * 4.0 / 40000)
        self.assertAlmostEqual(chatpatch["busy_pct"], 100 * 36.0 / (20.0 * 2))


class RenderTest(unittest.TestCase):
    def test_pass(self):
        text, failed = report.render(META, series())
        self.assertFalse(failed)
        self.assertIn("Result: PASS", text)
        self.assertIn("recoup   to ceiling 0.50  to peer 1.33  p99 1.00 x ceiling's", text)
        self.assertIn("chatpatch: none over 1000 ms  ok", text)

    def test_fail_names_the_run(self):
        text, failed = report.render(META, series({("chatpatch", 32): {
            "non2xx": 4, "unexpected_statuses": {"502": 4}}}))
        self.assertTrue(failed)
        self.assertIn("chatpatch recoup c=32 round 1: 4 non-2xx answers (4 x 502)", text)
        self.assertIn("Result: FAIL (1 problems)", text)

    def test_slow_is_flagged_not_failed(self):
        text, failed = report.render(META, series({("chatpatch", 128): {"max_ms": 1500.0},
                                                   ("ceiling", 128): {"max_ms": 2500.0}}))
        self.assertFalse(failed)
        self.assertIn("FLAG: chatpatch slower than 1000 ms: chatpatch recoup c=128 round 1\n", text)

    def test_bare_path(self):
        meta = dict(META, bare_path="/healthz")
        bare = [run("chatpatch", 32, rnd, rps=5000.0, kind="bare", api="healthz",
                    cpu_s={"nginx": 2.5, "worker": 1.5, "postgres": 1.0, "machine": 18.0})
                for rnd in (1, 2)]
        text, failed = report.render(meta, series() + bare)
        self.assertFalse(failed)
        # 2.5 s of nginx and 1.5 s of worker over 50,000 requests a round
        self.assertIn("Bare path and its floors, concurrency 32: CPU us per request", text)
        self.assertRegex(text, r"\n  nginx, a worker, one SELECT 1: the bare path +5000 +8\.00 +50 +30 +80 +20\n")
        self.assertIn("bare path (/healthz): nginx + worker 80 us per request at concurrency 32", text)
        self.assertNotIn("healthz", report.api_table(meta, report.pooled(meta, series() + bare),
                                                     "recoup")[0])
        bare[0].update(bad_bodies=3)
        text, failed = report.render(meta, series() + bare)
        self.assertTrue(failed)
        self.assertIn("chatpatch healthz c=32 round 1: 3 answers with an unexpected body", text)

    def test_floors_under_the_bare_path(self):
        meta = dict(META, bare_path="/healthz", floor_request="OPTIONS /api/sessions/s_1/chats/c_1")
        cpu = {"nginx": 1.0, "worker": 0.5, "postgres": 0.0, "machine": 18.0}
        floors = [run(target, 32, rnd, rps=10000.0, kind="floor", api=api, expected_status=204,
                      cpu_s=cpu)
                  for rnd in (1, 2) for api, target in (("nginx", "nginx"), ("worker", "chatpatch"))]
        text, failed = report.render(meta, series() + floors)
        self.assertFalse(failed)
        # 1 s of nginx over 100,000 requests a round; an idle pool's CPU is not nginx's floor's
        self.assertRegex(text, r"\n  nginx answering by itself \(204\) +10000 +8\.00 +10 +- +10 +0\n")
        self.assertRegex(text, r"\n  nginx and a worker, no statement +10000 +8\.00 +10 +5 +15 +0\n")
        self.assertIn("(no statement: OPTIONS /api/sessions/s_1/chats/c_1; the bare path: GET /healthz)",
                      text)
        # pgbench's client: 0.5 s over 40,000 transactions a round
        self.assertIn("(the ceiling's client; one statement a round trip, no HTTP): recoup 12", text)
        floors[1].update(unexpected_statuses={"404": 7})
        text, failed = report.render(meta, series() + floors)
        self.assertTrue(failed)
        self.assertIn("chatpatch worker c=32 round 1: 7 answers not 204 (7 x 404)", text)

    def test_runs_measured_again_are_named(self):
        runs = series()
        self.assertNotIn("measured again", report.render(META, runs)[0])
        runs[4]["attempts"] = 2
        self.assertIn("  measured again after the wall clock jumped during the run: chatpatch recoup c=32"
                      " round 1\n", report.render(META, runs)[0])

    def test_header_says_how_vacuum_ran(self):
        line = "  autovacuum off; a VACUUM before each run"
        self.assertNotIn(line, report.render(META, series())[0])  # runs.json of before
        text, _ = report.render(dict(META, vacuum_before_each_run=True), series())
        self.assertIn(line, text.split("\n\n")[0])

    def test_warmup_counts_only_its_errors(self):
        warm = run("peer", 8, 0, rps=1.0, kind="warmup", max_ms=9000.0)
        text, failed = report.render(META, series() + [warm])
        self.assertFalse(failed)
        warm.update(non2xx=2, unexpected_statuses={"503": 2})
        text, failed = report.render(META, series() + [warm])
        self.assertIn("peer recoup c=8 warm-up: 2 answers not 200 (2 x 503)", text)


class ProcstatTest(unittest.TestCase):
    def test_reaped_children_count(self):
        burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
        before = procstat.group_ticks(os.getpid())
        subprocess.run([sys.executable, "-c", burn], check=True)
        after = procstat.group_ticks(os.getpid())
        self.assertGreaterEqual((after - before) / procstat.CLK_TCK, 0.25)

    def test_live_children_count(self):
        child = subprocess.Popen([sys.executable, "-c", "import time\nt = time.process_time()\n"
                                  "while time.process_time() - t < 0.3: pass\ntime.sleep(5)"])
        try:
            time.sleep(1)
            self.assertIn(child.pid, procstat.children(os.getpid()))
            self.assertGreaterEqual(procstat.ticks(child.pid) / procstat.CLK_TCK, 0.25)
            self.assertGreater(procstat.rss_kb(child.pid), 0)
        finally:
            child.kill()
            child.wait()

    def test_snapshot(self):
        s = procstat.snapshot({"self": os.getpid(), "none": 0})
        self.assertEqual(s["none"], 0)
        self.assertGreater(s["machine"], 0)
        self.assertEqual(procstat.seconds(s, s)["self"], 0)


class PeercheckTest(unittest.TestCase):
    HEADERS = {"content-type": "application/json; charset=utf-8", "cache-control": "no-store",
               "access-control-allow-origin": "*", "x-request-id": "ab"}

    def test_timestamps_compare_by_form(self):
        a = (200, self.HEADERS, b'{"chat":{"updatedAt":"2026-11-28T00:00:00.123Z"}}')
        b = (200, self.HEADERS, b'{"chat":{"updatedAt":"2026-11-28T00:00:01.999Z"}}')
        self.assertEqual(peercheck.differences(a, b), [])

    def test_differences(self):
        a = (401, self.HEADERS, b'{"status":"error","error":"Unauthorized"}')
        b = (403, {**self.HEADERS, "x-request-id": "", "cache-control": "max-age=1"},
             b'{"status":"error","error":"Forbidden"}')
        diff = " | ".join(peercheck.differences(a, b))
        for part in ("status 401 != 403", "cache-control", "peer: no X-Request-Id", "body"):
            self.assertIn(part, diff)

    def test_cases_are_distinct(self):
        names = [c[0] for c in peercheck.cases()]
        self.assertEqual(len(names), len(set(names)))


if __name__ == "__main__":
    unittest.main()
