"""What the bench sends: params.py's values, the pgbench scripts built from
them, the wrk spec files, the hostile bodies."""

import json
import os
import subprocess
import tempfile
import unittest

import ceiling
import hostile
import params
import wrkrun

SQLTEXT = os.path.join(os.path.dirname(__file__), "..", "..", "build", "bench", "sqltext")


def depth(v):
    if isinstance(v, dict):
        return 1 + max((depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((depth(x) for x in v), default=0)
    return 0


class SeqTest(unittest.TestCase):
    def test_integer_id(self):
        s = params.Seq(offset=1000000)
        self.assertEqual(s.text(7), "1000007")
        self.assertEqual(s.pgbench_expr(), "1000000 + :i")
        self.assertEqual(s.lua_spec(), "seq - 1000000 0")

    def test_uuid_id(self):
        s = params.Seq(prefix="00000000-0000-4000-8000-", width=12)
        self.assertEqual(s.text(42), "00000000-0000-4000-8000-000000000042")
        self.assertFalse(s.is_integer())
        self.assertEqual(s.sql_expr(), "'00000000-0000-4000-8000-' || lpad((0 + :i)::text, 12, '0')")

    def test_hash_text(self):
        self.assertEqual(params.hash_text("abc"),
                         "\\xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")


@unittest.skipUnless(os.access(SQLTEXT, os.X_OK), "build/bench/sqltext not built")
class ProfilesTest(unittest.TestCase):
    """params.py against the profiles the worker is built from."""

    def test_values_cover_every_parameter(self):
        for line in subprocess.run([SQLTEXT], capture_output=True, text=True, check=True).stdout.splitlines():
            name, count = line.split()
            self.assertEqual(sorted(params.statement_values(name, SQLTEXT)), list(range(1, int(count) + 1)), name)

    def test_values_are_what_the_engine_binds(self):
        values = params.statement_values("recoup", SQLTEXT)
        self.assertEqual(values[1], params.Const(params.hash_text("bench-recoup-key")))
        self.assertEqual((values[2], values[3]), (params.PathParam(0), params.PathParam(1)))
        self.assertEqual(values[6], params.Const(params.TITLE))
        # no If-Match: the engine binds NULL for the versions it would name
        self.assertEqual(values[9], params.Null())
        self.assertIsInstance(values[10], params.Const)  # the request id

    def test_routes_take_the_path_ids(self):
        for name, api in params.APIS.items():
            route = subprocess.run([SQLTEXT, "--route", name], capture_output=True, text=True,
                                   check=True).stdout
            self.assertEqual(route.count("{}"), len(api.path), name)


class PgbenchScriptTest(unittest.TestCase):
    SQL = "SELECT $1::bytea, $2::text, $3::text, $2::text, $4::boolean"

    def test_placeholders(self):
        self.assertEqual(ceiling.pgbench_statement(self.SQL + ";\n"),
                         "SELECT :p1::bytea, :p2::text, :p3::text, :p2::text, :p4::boolean")
        self.assertEqual(ceiling.param_count(self.SQL), 4)
        with self.assertRaises(ValueError):
            ceiling.pgbench_statement("SELECT ':p1', $1")

    def test_null_literals_typed_as_cast(self):
        sql = "SELECT $1::bytea WHERE $12::bigint[] IS NULL OR 1 = ANY ($12::bigint[]) AND $1 <> $2::text"
        self.assertEqual(
            ceiling.pgbench_statement(sql, nulls=[12]),
            "SELECT :p1::bytea WHERE NULL::bigint[] IS NULL OR 1 = ANY "
            "(NULL::bigint[]) AND :p1 <> :p2::text")
        self.assertEqual(ceiling.cast_of(sql, 1), "bytea")
        # an occurrence without a cast gets the statement's cast of that parameter
        self.assertEqual(ceiling.pgbench_statement("SELECT $1 IS NULL, $1::jsonb", nulls=[1]),
                         "SELECT NULL::jsonb IS NULL, NULL::jsonb")
        self.assertEqual(ceiling.pgbench_statement("SELECT $1 IS NULL", nulls=[1]),
                         "SELECT NULL IS NULL")
        with self.assertRaises(ValueError):
            ceiling.pgbench_statement("SELECT $1, $1::int, $1::text", nulls=[1])

    def test_nulls_are_literals_not_variables(self):
        values = {1: params.Const("\\xab"), 2: params.PathParam(0), 3: params.Null()}
        path = (params.Seq(offset=1000),)
        sql = "SELECT $1::bytea, $2::text, $3::bigint[]"
        text = ceiling.script(sql, values, path)
        self.assertTrue(text.endswith("SELECT :p1::bytea, :p2::text, NULL::bigint[]\n"))
        args = ceiling.args(values, path, "s.sql", 8, 2, 1000)
        self.assertFalse([a for a in args if a.startswith("p3=")])
        self.assertEqual(ceiling.nulls_of(values), [3])

    def test_explain_binds_nulls_as_null(self):
        import explain
        values = {1: params.Const("it's"), 2: params.PathParam(0), 3: params.Null()}
        script = explain.explain(lambda s: s, "x", "SELECT $1::text, $2::text, $3::bigint[]",
                                 values, ["7"])
        self.assertIn("EXECUTE s('it''s', '7', NULL);", script)

    def test_rotating_ids(self):
        values = {1: params.Const("\\xab"), 2: params.PathParam(0), 3: params.PathParam(1),
                  4: params.Const("true")}
        path = (params.Const("1000000"), params.Seq(offset=2000000))
        text = ceiling.script(self.SQL, values, path)
        self.assertIn("\\set i 1 + (:client_id * :stride + :k) % :n\n", text)
        self.assertIn("\\set p3 2000000 + :i\n", text)
        self.assertNotIn("\\set p2", text)
        self.assertTrue(text.endswith(":p4::boolean\n"))
        args = ceiling.args(values, path, "s.sql", 8, 2, 1000)
        for d in ("p1=\\xab", "p2=1000000", "p4=true", "stride=125", "n=1000"):
            self.assertIn(d, args)
        self.assertEqual(args[args.index("-j") + 1], "2")
        self.assertFalse(ceiling.fixed_per_client(values, path))
        self.assertNotIn("-U", args)  # libpq's default user
        worker = ceiling.args(values, path, "s.sql", 8, 2, 1000, "chatpatch_worker")
        self.assertEqual(worker[:2], ["-U", "chatpatch_worker"])
        self.assertEqual(worker[2:], args)

    @unittest.skipUnless(os.access(SQLTEXT, os.X_OK), "build/bench/sqltext not built")
    def test_string_ids_are_read_once_per_client(self):
        values = params.statement_values("leanmcp", SQLTEXT)
        path = params.APIS["leanmcp"].path
        text = ceiling.script("SELECT $2::uuid", values, path)
        self.assertIn("AS p2 \\gset", text)
        self.assertIn("\\if :ready = 0", text)
        self.assertTrue(ceiling.fixed_per_client(values, path))

    @unittest.skipUnless(os.access(SQLTEXT, os.X_OK), "build/bench/sqltext not built")
    def test_every_api_has_a_script(self):
        for name, api in params.APIS.items():
            values = params.statement_values(name, SQLTEXT)
            sql = "SELECT " + ", ".join(f"${n}" for n in values)
            ceiling.script(sql, values, api.path)


class SessionSettingsTest(unittest.TestCase):
    def test_the_workers_settings(self):
        out = subprocess.run([SQLTEXT, "--settings"], check=True, capture_output=True,
                             text=True).stdout
        settings = dict(ceiling.session_settings(out))
        self.assertEqual(settings["default_transaction_isolation"], "repeatable read")
        self.assertIn("random_page_cost", settings)

    def test_pgoptions_escape_spaces(self):
        self.assertEqual(ceiling.pgoptions([("a", "repeatable read"), ("b", "1.1")]),
                         "-c a=repeatable\\ read -c b=1.1")

    def test_not_a_setting(self):
        with self.assertRaises(ValueError):
            ceiling.session_settings("random_page_cost 1.1\n")


class PgbenchOutputTest(unittest.TestCase):
    OUTPUT = """pgbench (15.18 (Debian 15.18-0+deb12u1))
number of clients: 8
number of transactions actually processed: 3911
number of failed transactions: 0 (0.000%)
latency average = 3.740 ms
initial connection time = 195.973 ms
tps = 2139.192456 (without initial connection time)
"""

    def test_parse(self):
        r = ceiling.parse_output(self.OUTPUT)
        self.assertEqual((r["tps"], r["processed"], r["failed"], r["connect_ms"]),
                         (2139.192456, 3911, 0, 195.973))

    def test_latency_logs(self):
        with tempfile.TemporaryDirectory() as d:
            prefix = os.path.join(d, "pglog")
            with open(prefix + ".123", "w") as f:
                f.write("0 1 1500 0 1700000000 1\n0 2 2500 0 1700000000 2\n")
            with open(prefix + ".123.1", "w") as f:
                f.write("1 1 500 0 1700000000 1\n1 2 failed 0 1700000000 2\n")
            self.assertEqual(sorted(ceiling.read_latencies(prefix)), [500, 1500, 2500])
            self.assertEqual(os.listdir(d), [])

    def test_percentile(self):
        xs = list(range(1, 101))
        self.assertEqual(ceiling.percentile(xs, 50), 50)
        self.assertEqual(ceiling.percentile(xs, 99), 99)
        self.assertEqual(ceiling.percentile([7], 99), 7)
        self.assertIsNone(ceiling.percentile([], 50))


class WrkSpecTest(unittest.TestCase):
    def test_spec(self):
        api = params.APIS["neptun"]
        text = wrkrun.spec(api, "/api/users/{}/chats/{}", 100, "/b.json", 200, api.ok_prefix)
        self.assertIn("param const 1000000\nparam seq - 1000000 0\n", text)
        self.assertIn("header Cookie: neptun-session=bench-neptun-session\n", text)
        self.assertIn('prefix {"chat":{"id":\n', text)
        bad = wrkrun.spec(api, "/api/users/{}/chats/{}", 1, "/b", 401, "", credential="nope")
        self.assertIn("neptun-session=nope", bad)
        with self.assertRaises(ValueError):
            wrkrun.spec(api, "/api/chats/{}", 1, "/b", 200, "")

    def test_example_path(self):
        self.assertEqual(wrkrun.example_path("/api/sessions/{}/chats/{}", params.APIS["recoup"], 3),
                         "/api/sessions/1000003/chats/2000003")

    def test_clock_jump(self):
        self.assertAlmostEqual(wrkrun.clock_jump_s(10_050_000, 10.1), -0.05)
        self.assertAlmostEqual(wrkrun.clock_jump_s(22_540_000, 10.1), 12.44)
        self.assertEqual(wrkrun.clock_jump_s(None, 10.1), 0.0)  # wrk printed no result

    def test_a_run_the_clock_jumped_in_is_measured_again(self):
        import run
        from unittest import mock

        cfg = mock.Mock(base_url="http://x", threads=2, timeout=5, root="/r", raw="/tmp")
        results = [{"duration_us": 22_540_000, "wall_s": 10.1, "timeout": 128},
                   {"duration_us": 10_040_000, "wall_s": 10.1}]
        measured = []

        def measure(cfg, r, cmd, path, requests_of, table):
            measured.append(r)
            r.update(results[len(measured) - 1])
            return r

        one = {"kind": "main", "api": "neptun", "target": "chatpatch", "conc": 128, "round": 1,
               "seconds": 10}
        with mock.patch.object(run, "measure", measure), mock.patch.object(run, "log"):
            done = run.run_wrk(cfg, dict(one), "/spec")
        self.assertEqual(len(measured), 2)
        self.assertEqual(done["attempts"], 2)
        self.assertNotIn("timeout", done)
        results[1] = results[0]  # it keeps jumping: the last try stands, as measured
        measured.clear()
        results.append(results[0])
        with mock.patch.object(run, "measure", measure), mock.patch.object(run, "log"):
            done = run.run_wrk(cfg, dict(one), "/spec")
        self.assertEqual((len(measured), done["attempts"], done["timeout"]), (3, 3, 128))

    def test_parse(self):
        line = ("noise\nBENCH requests=10 duration_us=2000000 non2xx=1 connect=0 read=0 write=0 "
                "timeout=2 p50_us=1000 p99_us=3000 max_us=4000 checked=10 bad_status=1 bad_body=0 "
                "statuses=404:1,503:2\n")
        r = wrkrun.parse(line)
        self.assertEqual(r["requests"], 10)
        self.assertEqual(r["statuses"], {404: 1, 503: 2})
        self.assertEqual(wrkrun.parse("BENCH requests=1 statuses=-")["statuses"], {})
        self.assertIsNone(wrkrun.parse("wrk: connection refused"))


class HostileBodyTest(unittest.TestCase):
    def test_keys(self):
        body = hostile.many_keys()
        self.assertEqual(len(body.encode()), 65535)
        keys = list(json.loads(body))
        self.assertEqual(len(keys), 8191)
        self.assertEqual(len(set(keys)), 8191)
        self.assertFalse(any(k.isdigit() for k in keys))
        self.assertEqual(keys[:2], ["k00", "k01"])

    def test_deep(self):
        body = hostile.deep_arrays()
        self.assertEqual(len(body.encode()), 65535)
        value = json.loads(body)
        self.assertEqual(depth(value), hostile.MAX_DEPTH)
        self.assertEqual(list(value), ["k"])


if __name__ == "__main__":
    unittest.main()
