"""bench/run.py: the measurements of `make bench`, on the stack that
scripts/bench.sh has started (PostgreSQL, the chatpatch pool, nginx, the
Node peer), described by the environment (see Config).

  1. loads bench/data.sql (BENCH_CHATS chats per API);
  2. checks that the ceiling's values make each statement update, and that
     the peer answers as chatpatch does (bench/peercheck.py);
  3. for each round, for each concurrency, for each API: the ceiling
     (pgbench -M prepared, the worker's statement), chatpatch (wrk through
     nginx), the peer (wrk through nginx; Recoup only), back to back, so that
     machine drift hits all alike; then the hostile-body rows;
  4. writes every run to var/bench/runs.json, then result.txt and
     result.png (bench/report.py, bench/plot.py).

Exit status 1 on a real error (a non-2xx answer, an unexpected status or
body, a socket error or timeout, a pgbench error, a run that updated
nothing, a peer that answers differently); never on a number.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import time

import ceiling
import explain
import hostile
import params
import peercheck
import plot
import procstat
import report
import wrkrun


def env_int(name, default, minimum=1):
    v = os.environ.get(name, str(default))
    if not v.isdigit() or int(v) < minimum:
        raise SystemExit(f"bench: bad {name}: {v!r} (an integer, at least {minimum})")
    return int(v)


class Config:
    def __init__(self):
        e = os.environ
        self.root = e["ROOT"]
        self.out = e["BENCH_OUT"]
        self.raw = os.path.join(self.out, "raw")
        self.seconds = env_int("BENCH_SECONDS", 10)
        self.chats = env_int("BENCH_CHATS", 100000)
        self.rounds = env_int("BENCH_ROUNDS", 1)
        self.threads = env_int("BENCH_THREADS", os.cpu_count() or 1)
        self.workers = env_int("WORKERS", 4)
        self.db_connections = env_int("DB_CONNECTIONS", 8)
        self.nginx_workers = e.get("NGINX_WORKERS") or "auto"
        self.hostile_conc = env_int("BENCH_HOSTILE_CONCURRENCY", 8)
        self.timeout = env_int("BENCH_TIMEOUT", 5)
        self.warmup = env_int("BENCH_WARMUP", 3, minimum=0)
        conc = e.get("BENCH_CONCURRENCY", "1 8 32 128").split()
        if not conc or not all(c.isdigit() and int(c) > 0 for c in conc):
            raise SystemExit(f"bench: bad BENCH_CONCURRENCY: {e.get('BENCH_CONCURRENCY')!r}")
        self.concurrency = [int(c) for c in conc]
        self.apis = e.get("BENCH_APIS", "recoup neptun leanmcp").split()
        self.hostile = e.get("BENCH_HOSTILE", "1") == "1"
        self.base_url = e["BASE_URL"]
        self.peer_url = e["PEER_URL"]
        self.bouncer_url = e["BOUNCER_URL"]
        self.floor_url = e["FLOOR_URL"]
        self.worker_role = e["WORKER_ROLE"]
        self.sqltext = e["SQLTEXT"]
        self.pgbin = e.get("PGBIN", "/usr/lib/postgresql/15/bin")
        self.pids = {
            "nginx": int(e["NGINX_PID"]),
            "worker": int(e["POOL_PID"]),
            "peer": int(e["PEER_PID"]),
            "bouncer_pool": int(e["BOUNCER_POOL_PID"]),
            "pgbouncer": int(e["PGBOUNCER_PID"]),
            "postgres": int(e["POSTMASTER_PID"]),
        }


# ---- processes -----------------------------------------------------------------

_client = None


def _stop_client(signum, frame):
    """SIGTERM/SIGINT: the client (its own session) goes too, then we exit."""
    if _client is not None and _client.poll() is None:
        try:
            os.killpg(_client.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def run_client(cmd, out_path, limit):
    """Runs a client (wrk, pgbench) in its own session, so that a Ctrl-C
    reaches this script only, and returns (exit status, its output, its CPU
    seconds): the rusage of children reaped while it ran, which is the client
    alone since nothing else is started meanwhile."""
    global _client
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(out_path, "w") as out:
        _client = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = _client.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(_client.pid, signal.SIGKILL)
            _client.wait()
            rc = "timeout"
        _client = None
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    with open(out_path) as f:
        return rc, f.read(), cpu


def psql(cfg, sql, *args):
    """One psql call as the stack's superuser; its output, stripped."""
    cmd = [os.path.join(cfg.pgbin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", *args]
    if sql is not None:
        cmd += ["-c", sql]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def psql_script(cfg, script):
    """A psql script on stdin as the stack's superuser; its output."""
    cmd = [os.path.join(cfg.pgbin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA", "-f", "-"]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, input=script).stdout


def explain_all(cfg, facts):
    """Each statement's plan, written to explain.txt; the plans by API."""
    plans = {}
    for name, f in facts.items():
        ids = [seq.text(1) for seq in params.APIS[name].path]
        plans[name] = explain.explain(lambda s: psql_script(cfg, s), name, f["sql"],
                                      f["values"], ids)
    write(os.path.join(cfg.out, "explain.txt"),
          "".join(f"== {name} (generic plan, {cfg.chats:,} chats)\n{plan}\n"
                  for name, plan in plans.items()))
    return plans


def pg_children(cfg):
    return len(procstat.children(cfg.pids["postgres"]))


def wait_pg_children(cfg, count):
    """The backends of a pgbench run end after it: wait until the postmaster
    has reaped them, so that their time is in its cutime."""
    for _ in range(100):
        if pg_children(cfg) <= count:
            return
        time.sleep(0.05)


def max_worker_rss(cfg, pool="worker"):
    return max((procstat.rss_kb(p) for p in procstat.children(cfg.pids[pool])), default=0)


# ---- the facts of each API ------------------------------------------------------------


def sqltext(cfg, *args):
    return subprocess.run([cfg.sqltext, *args], check=True, capture_output=True, text=True).stdout


def api_facts(cfg):
    """{api: {sql, route}} from the profiles, checked against params.py."""
    counts = dict(line.split() for line in sqltext(cfg).splitlines())
    facts = {}
    for name in cfg.apis:
        if name not in counts:
            raise SystemExit(f"bench: the worker serves no API named {name} (it serves {', '.join(counts)})")
        if name not in params.APIS:
            raise SystemExit(f"bench: bench/params.py knows no API {name}")
        sql = sqltext(cfg, name)
        values = params.statement_values(name, cfg.sqltext)
        want = ceiling.param_count(sql)
        if sorted(values) != list(range(1, want + 1)):
            raise SystemExit(
                f"bench: {name}'s statement has {want} parameters; bench/params.py "
                f"statement_values() gives {sorted(values)}: update it")
        ops = [line.split() for line in sqltext(cfg, "--ops", name).splitlines()]
        facts[name] = {"sql": sql, "route": sqltext(cfg, "--route", name), "values": values,
                       "ops": [{"method": m, "status": int(st), "statement": sm != "-"}
                               for m, st, sm in ops]}
    return facts


# ---- setup ----------------------------------------------------------------------------


def load_data(cfg):
    t0 = time.monotonic()
    psql(cfg, None, *params.data_sql_args(cfg.chats))
    return time.monotonic() - t0


def autovacuum_off(cfg):
    """The bench's cluster vacuums only between runs (vacuum())."""
    psql(cfg, None, "-c", "ALTER SYSTEM SET autovacuum = off", "-c", "SELECT pg_reload_conf()")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def prepare_files(cfg, facts, floor_request):
    """pgbench scripts, bodies and wrk spec files; returns their paths.
    floor_request: no_database_request(facts)."""
    files = {}
    for name, f in facts.items():
        api = params.APIS[name]
        path = api.path
        files[name, "pgbench"] = write(os.path.join(cfg.raw, f"pgbench-{name}.sql"),
                                       ceiling.script(f["sql"], f["values"], path))
        body = write(os.path.join(cfg.raw, f"body-{name}.json"), api.body)
        files[name, "wrk"] = write(os.path.join(cfg.raw, f"wrk-{name}.spec"), wrkrun.spec(
            api, f["route"], cfg.chats, body, 200, api.ok_prefix))
        for kind, make in hostile.BODIES.items():
            hbody = write(os.path.join(cfg.raw, f"body-{name}-{kind}.json"), make())
            files[name, kind, "unknown"] = write(
                os.path.join(cfg.raw, f"wrk-{name}-{kind}-unknown.spec"),
                wrkrun.spec(api, f["route"], cfg.chats, hbody, 401, api.error_401,
                            credential=params.UNKNOWN_CREDENTIAL))
            files[name, kind, "good"] = write(
                os.path.join(cfg.raw, f"wrk-{name}-{kind}-good.spec"),
                wrkrun.spec(api, f["route"], cfg.chats, hbody, 400, api.hostile_400_prefix))
    files["bare"] = write(os.path.join(cfg.raw, "wrk-bare.spec"),
                          wrkrun.get_spec(params.HEALTH_PATH, 200, params.HEALTH_OK))
    # The floors: (name, target, spec file, expected status).
    files["floors"] = [("nginx", "nginx", write(os.path.join(cfg.raw, "wrk-floor-nginx.spec"),
                                                wrkrun.get_spec("/", 204, "")), 204)]
    if floor_request:
        method, path, status = floor_request
        files["floors"].append(("worker", "chatpatch",
                                write(os.path.join(cfg.raw, "wrk-floor-worker.spec"),
                                      wrkrun.get_spec(path, status, "", method=method)), status))
    return files


def no_database_request(facts):
    """(method, path, status) of an operation the worker answers without a
    statement (Recoup's CORS preflight), or None when no API has one."""
    for name, f in facts.items():
        for op in f["ops"]:
            if not op["statement"]:
                path = wrkrun.example_path(f["route"], params.APIS[name])
                return op["method"], path, op["status"]
    return None


def updated_since(cfg, table, t0):
    return int(psql(cfg, f"SELECT count(*) FROM {table} WHERE updated_at >= '{t0}'"))


def check_ceiling(cfg, facts, files):
    """The values must make each statement update: one client going over
    min(chats, 1000) chats updates each once; clients that keep one chat each
    update one each."""
    for name, f in facts.items():
        api = params.APIS[name]
        fixed = ceiling.fixed_per_client(f["values"], api.path)
        clients = min(max(cfg.concurrency), cfg.chats) if fixed else 1
        count = 1 if fixed else min(cfg.chats, 1000)
        args = ceiling.args(f["values"], api.path, files[name, "pgbench"], clients, cfg.threads, cfg.chats,
                            cfg.worker_role)
        t0 = psql(cfg, "SELECT now()")
        out = os.path.join(cfg.raw, f"pgbench-{name}-check.txt")
        rc, text, _ = run_client([os.path.join(cfg.pgbin, "pgbench"), *args, "-t", str(count)], out, 600)
        if rc != 0:
            raise SystemExit(f"bench: pgbench check run of {name} failed:\n{text[-2000:]}")
        want = clients * count
        got = updated_since(cfg, api.table, t0)
        if got != want:
            raise SystemExit(f"bench: pgbench check of {name}: {got} chats updated, {want} expected "
                             "(the values of bench/params.py do not make the statement update)")


# ---- one run ----------------------------------------------------------------------------


# What PostgreSQL did besides the statements, as counters: its CPU in a run
# includes checkpoints, which come when they come, and the WAL a statement
# writes grows with the pages it dirties first after a checkpoint (full-page
# images); autovacuum, off here (vacuum()), would show as well. Read before
# and after each run (runs.json "pg"), to tell a run that met them from one
# that did not.
PG_ACTIVITY = """
SELECT now(),
       (SELECT sum(autovacuum_count) FROM pg_stat_all_tables),
       (SELECT sum(autoanalyze_count) FROM pg_stat_all_tables),
       (SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter),
       wal_records, wal_fpi, wal_bytes, wal_sync
  FROM pg_stat_wal"""
PG_COUNTERS = ("autovacuum", "autoanalyze", "checkpoints", "wal_records", "wal_fpi",
               "wal_bytes", "wal_sync")


def pg_activity(cfg):
    """now() (text) and PostgreSQL's activity counters (PG_COUNTERS)."""
    now, *values = psql(cfg, PG_ACTIVITY, "-F", "\t").split("\t")
    return now, [int(v) for v in values]


def vacuum(cfg):
    """VACUUM of the whole database, before a run and outside its CPU window.
    Autovacuum is off on the bench's cluster (autovacuum_off()): an
    autovacuum and autoanalyze of the tables a run has updated cost
    PostgreSQL 2 to 4 s of CPU, and landed in whichever 10 s run the
    launcher's minute fell on (2026-12-07, Recoup at 32: chatpatch at 0.58
    of the ceiling in the round where chatpatch's run met one, 0.80 where
    the ceiling's did, 0.66 where neither did). Its cost per update is the
    same for every target; here no target pays it, and each starts from a
    vacuumed table."""
    kids = pg_children(cfg)
    psql(cfg, "VACUUM")
    wait_pg_children(cfg, kids)


def measure(cfg, run, cmd, out_path, requests_of, table=None):
    """Runs one client between two CPU snapshots and completes `run` (a dict)."""
    vacuum(cfg)
    t0, counters0 = pg_activity(cfg)
    kids = pg_children(cfg)
    before = procstat.snapshot(cfg.pids)
    wall0 = time.monotonic()
    rc, text, client_cpu = run_client(cmd, out_path, run["seconds"] + 60)
    if run["target"] == "ceiling":
        wait_pg_children(cfg, kids)
    after = procstat.snapshot(cfg.pids)
    run["wall_s"] = time.monotonic() - wall0
    run["cpu_s"] = {"client": client_cpu, **procstat.seconds(before, after)}
    _, counters1 = pg_activity(cfg)
    run["pg"] = {k: b - a for k, a, b in zip(PG_COUNTERS, counters0, counters1)}
    run["exit"] = rc
    requests_of(run, text)
    if run["target"] == "chatpatch":
        run["rss_kb"] = max_worker_rss(cfg)
    elif run["target"] == "bouncer":
        run["rss_kb"] = max_worker_rss(cfg, "bouncer_pool")
    elif run["target"] == "peer":
        run["rss_kb"] = procstat.rss_kb(cfg.pids["peer"])
    if table:
        run["updated"] = updated_since(cfg, table, t0)
    return run


def pgbench_result(prefix):
    def fill(run, text):
        run.update(ceiling.parse_output(text))
        lat = sorted(ceiling.read_latencies(prefix))
        run["requests"] = int(run.get("processed") or 0)
        run["rps"] = run.get("tps")
        if lat:
            run["p50_ms"] = ceiling.percentile(lat, 50) / 1000
            run["p99_ms"] = ceiling.percentile(lat, 99) / 1000
            run["max_ms"] = lat[-1] / 1000
        if run["exit"] != 0 or run["failed"]:
            run["errors"] = [f"pgbench exited {run['exit']}, {int(run['failed'])} failed transactions"]
        elif not run["requests"]:
            run["errors"] = [f"pgbench processed no transaction (connecting took {run['connect_ms']} ms)"]
    return fill


def wrk_result(run, text):
    r = wrkrun.parse(text)
    if run["exit"] != 0 or r is None:
        run["errors"] = [f"wrk exited {run['exit']}: {text.strip()[-300:]}"]
        return
    run["requests"] = r["requests"]
    run["rps"] = r["requests"] * 1e6 / r["duration_us"] if r["duration_us"] else 0
    run["p50_ms"], run["p99_ms"], run["max_ms"] = r["p50_us"] / 1000, r["p99_us"] / 1000, r["max_us"] / 1000
    run["non2xx"] = r["non2xx"]
    run["duration_us"] = r["duration_us"]
    run["socket_errors"] = {k: r[k] for k in ("connect", "read", "write", "timeout") if r[k]}
    run["unexpected_statuses"] = r["statuses"]
    run["bad_bodies"] = r["bad_body"]
    run["unchecked"] = r["requests"] - r["checked"]


def run_ceiling(cfg, run, files, facts):
    name, conc = run["api"], run["conc"]
    api = params.APIS[name]
    tag = f"ceiling-{name}-c{conc}-r{run['round']}"
    prefix = os.path.join(cfg.raw, f"pglog-{tag}")
    args = ceiling.args(facts[name]["values"], api.path, files[name, "pgbench"], conc, cfg.threads, cfg.chats,
                        cfg.worker_role)
    cmd = [os.path.join(cfg.pgbin, "pgbench"), *args, "-T", str(run["seconds"]), "-l",
           f"--log-prefix={prefix}"]
    return measure(cfg, run, cmd, os.path.join(cfg.raw, f"{tag}.txt"), pgbench_result(prefix), api.table)


CLOCK_JUMP_S = 1.0  # wrk's duration beyond the monotonic wall time that is a jump
CLOCK_ATTEMPTS = 3


def run_wrk(cfg, run, spec_file, table=None):
    conc = run["conc"]
    tag = {"bare": "bare", "floor": f"floor-{run['api']}"}.get(
        run["kind"], "-".join(str(run[k]) for k in ("target", "api")))
    tag += "".join(f"-{run[k]}" for k in ("body", "credential") if k in run)
    tag += f"-c{conc}-r{run['round']}"
    url = {"chatpatch": cfg.base_url, "peer": cfg.peer_url, "bouncer": cfg.bouncer_url,
           "nginx": cfg.floor_url}[run["target"]]
    cmd = wrkrun.command(url, spec_file, conc, cfg.threads, run["seconds"], cfg.timeout,
                         os.path.join(cfg.root, "bench", "bench.lua"))
    # A run during which the clock was stepped is measured again: wrk's
    # timeouts and req/s would be the step's (seen once: 128 timeouts and
    # 22.5 s of a 10 s run, as the machine was snapshotted).
    for attempt in range(1, CLOCK_ATTEMPTS + 1):
        done = measure(cfg, dict(run), cmd, os.path.join(cfg.raw, f"{tag}.txt"), wrk_result, table)
        jump = wrkrun.clock_jump_s(done.get("duration_us"), done["wall_s"])
        if jump < CLOCK_JUMP_S or attempt == CLOCK_ATTEMPTS:
            break
        log(f"{report.run_name(done)}: the wall clock jumped {jump:.1f} s during the run; measuring it again")
    done["attempts"] = attempt
    return done


def targets(name):
    """What runs after the ceiling: chatpatch, the Node peer where there is
    one, and chatpatch through pgbouncer (transaction mode)."""
    return ["chatpatch", *(["peer"] if params.APIS[name].peer else []), "bouncer"]


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def progress(run):
    bits = [f"{run['target']:9} {run['api']:7}"]
    if run["kind"] == "hostile":
        bits.append(f"{run['body']}/{run['credential']}")
    bits.append(f"c={run['conc']:<3} " + (f"round {run['round']}:" if run["round"] else "warm-up:"))
    if run.get("rps") is not None:
        bits.append(f"{run['rps']:9.1f} req/s")
    if run.get("p99_ms") is not None:
        bits.append(f"p50 {run['p50_ms']:.2f} ms p99 {run['p99_ms']:.2f} ms max {run['max_ms']:.1f} ms")
    problems = report.run_problems(run)
    if problems:
        bits.append("FAIL: " + "; ".join(problems))
    log(" ".join(bits))


def versions(cfg):
    """What was measured, in one line: PostgreSQL, nginx, Node and the peer's packages."""
    def package(name):
        with open(os.path.join(cfg.root, "bench", "peer", "node_modules", name, "package.json")) as f:
            return json.load(f)["version"]

    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"PostgreSQL {psql(cfg, 'SHOW server_version')}, {nginx.split(': ')[-1]}, Node {node}, "
            f"fastify {package('fastify')}, pg {package('pg')}")


def main():
    signal.signal(signal.SIGTERM, _stop_client)
    signal.signal(signal.SIGINT, _stop_client)
    cfg = Config()
    os.makedirs(cfg.raw, exist_ok=True)
    facts = api_facts(cfg)
    # The ceiling's and the plans' sessions run as the workers' do; clients
    # started from here inherit it.
    settings = ceiling.session_settings(sqltext(cfg, "--settings"))
    os.environ["PGOPTIONS"] = ceiling.pgoptions(settings)

    log(f"loading {cfg.chats} chats per API")
    load_s = load_data(cfg)
    autovacuum_off(cfg)
    log(f"  loaded in {load_s:.1f} s")
    request = no_database_request(facts)
    files = prepare_files(cfg, facts, request)
    plans = explain_all(cfg, facts)
    check_ceiling(cfg, facts, files)
    peer_apis = [n for n in cfg.apis if params.APIS[n].peer]
    if peer_apis:
        bad = peercheck.check(cfg.base_url, cfg.peer_url)
        for case, diff in bad:
            log(f"peer check: {case}: " + "; ".join(diff))
        if bad:
            raise SystemExit("bench: the Node peer does not answer as chatpatch does (above)")
        log(f"peer check: the peer answers {len(peercheck.cases())} requests as chatpatch does")

    meta = {
        "seconds": cfg.seconds, "chats": cfg.chats, "rounds": cfg.rounds, "workers": cfg.workers,
        "db_connections": cfg.db_connections, "nginx_workers": cfg.nginx_workers,
        "threads": cfg.threads, "concurrency": cfg.concurrency, "apis": cfg.apis,
        "hostile_concurrency": cfg.hostile_conc, "timeout_s": cfg.timeout, "cpus": os.cpu_count(),
        "warmup_s": cfg.warmup, "settings": dict(settings), "vacuum_before_each_run": True,
        "load_s": load_s, "routes": {n: f["route"] for n, f in facts.items()},
        "fixed_per_client": [n for n, f in facts.items()
                             if ceiling.fixed_per_client(f["values"], params.APIS[n].path)],
        "versions": versions(cfg), "bare_path": params.HEALTH_PATH,
        "floor_request": " ".join(request[:2]) if request else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    runs = []
    results = os.path.join(cfg.out, "runs.json")

    def keep(run):
        runs.append(run)
        progress(run)
        with open(results, "w") as f:
            json.dump({"meta": meta, "runs": runs}, f, indent=1)

    # Round 0 warms every target up, unmeasured: the peer's JIT, the
    # pools' prepared statements, PostgreSQL's caches. At the highest
    # concurrency, so that every database connection a pool opens only
    # when that many statements are in flight is open before the runs:
    # warmed at 8, chatpatch's workers opened most of theirs inside the
    # first API's runs at 32, a connect each holding up the requests their
    # worker had in hand: with 4 workers of 8 connections, Recoup's p99 at
    # 32 was 3.4 to 4.0 times the ceiling's in four runs, and 1.28 and 1.41
    # in two warmed at 128.
    for rnd in range(0 if cfg.warmup else 1, cfg.rounds + 1):
        seconds = cfg.seconds if rnd else cfg.warmup
        kind = "main" if rnd else "warmup"
        for conc in cfg.concurrency if rnd else [max(cfg.concurrency)]:
            for name in cfg.apis:
                api = params.APIS[name]
                for target in ["ceiling", *targets(name)]:
                    run = {"kind": kind, "api": name, "target": target, "conc": conc, "round": rnd,
                           "seconds": seconds}
                    keep(run_ceiling(cfg, run, files, facts) if target == "ceiling"
                         else run_wrk(cfg, run, files[name, "wrk"], api.table))
            if rnd and conc == report.bare_concurrency(cfg.concurrency):
                keep(run_wrk(cfg, {"kind": "bare", "api": "healthz", "target": "chatpatch",
                                   "conc": conc, "round": rnd, "seconds": seconds}, files["bare"]))
                # What this machine charges before any API's work, to judge
                # the bare path's µs by: nginx answering by itself, then
                # through a worker that runs no statement.
                for floor, target, spec, status in files["floors"]:
                    keep(run_wrk(cfg, {"kind": "floor", "api": floor, "target": target,
                                       "conc": conc, "round": rnd, "seconds": seconds,
                                       "expected_status": status}, spec))
        if not cfg.hostile or not rnd:
            continue
        for name in [n for n in cfg.apis if n in ("recoup", "leanmcp")]:
            for body in hostile.BODIES:
                for cred in ("unknown", "good"):
                    for target in [t for t in targets(name) if t != "bouncer"]:
                        run = {"kind": "hostile", "api": name, "target": target, "body": body,
                               "credential": cred, "conc": cfg.hostile_conc, "round": rnd,
                               "seconds": seconds, "expected_status": 401 if cred == "unknown" else 400}
                        keep(run_wrk(cfg, run, files[name, body, cred]))

    meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with open(results, "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    text, failed = report.render(meta, runs)
    text += "\nPlans (var/bench/explain.txt):\n" + "\n".join(explain.report(plans)) + "\n"

    write(os.path.join(cfg.out, "result.txt"), text)
    print(text, end="")
    try:
        plot.draw(meta, runs, cfg.out)
    except (OSError, subprocess.CalledProcessError) as err:
        log(f"result.png not drawn: {err}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
