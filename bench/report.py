"""bench/report.py: result.txt of `make bench` from its runs (runs.json,
written by bench/run.py): a table per API, the CPU per request, the hostile
bodies, and the issue's acceptance points. Rounds of the same measurement
are pooled: req/s and percentiles are the mean over rounds, the max latency
the max, counts summed, CPU per request = CPU time / requests of all rounds.

  /usr/bin/python3 bench/report.py var/bench/runs.json    # prints it again
"""

import json
import sys
from collections import defaultdict

TARGETS = ("ceiling", "chatpatch", "peer")
SERVER_SIDE = {"ceiling": ("postgres",), "chatpatch": ("nginx", "worker", "postgres"),
               "peer": ("nginx", "peer", "postgres"),
               "bouncer": ("nginx", "bouncer_pool", "pgbouncer", "postgres")}
SLOW_MS = 1000  # issue 9: no request answered after more than one second
ACCEPT_CONC = 32  # the concurrency whose ratios the issue asks for
TITLES = {"recoup": "Recoup", "neptun": "Neptun", "leanmcp": "LeanMCP"}


# ---- what is wrong with a run ------------------------------------------------------


def db_connections(meta):
    """Each worker's database connections in the run; a runs.json written
    before meta had the key is from when the default was 2."""
    return meta.get("db_connections", 2)


def run_problems(run):
    """Real errors of one run, as text (empty: none). Never a number's size."""
    out = list(run.get("errors", []))
    if out:
        return out
    statuses = run.get("unexpected_statuses") or {}
    listed = ", ".join(f"{n} x {code}" for code, n in sorted(statuses.items(), key=lambda kv: int(kv[0])))
    if run["kind"] == "main" and run.get("non2xx"):
        out.append(f"{run['non2xx']} non-2xx answers ({listed})")
    elif statuses:
        out.append(f"{sum(statuses.values())} answers not {run.get('expected_status', 200)} ({listed})")
    if run.get("bad_bodies"):
        out.append(f"{run['bad_bodies']} answers with an unexpected body")
    if run.get("socket_errors"):
        out.append("socket errors/timeouts: " + ", ".join(f"{k} {v}" for k, v in run["socket_errors"].items()))
    if run.get("unchecked"):
        out.append(f"{run['unchecked']} answers not checked")
    if not run.get("requests"):
        out.append("no request completed")
    if run["kind"] == "main" and run.get("updated") == 0:
        out.append("no chat was updated")
    return out


def run_name(run):
    name = f"{run['target']} {run['api']}"
    if run["kind"] == "hostile":
        name += f" {run['body']}/{run['credential']} key"
    return name + f" c={run['conc']} " + (f"round {run['round']}" if run["round"] else "warm-up")


# ---- pooling rounds ---------------------------------------------------------------------


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def pool(runs, cpus):
    """One measurement from its rounds."""
    requests = sum(r.get("requests") or 0 for r in runs)
    cpu = defaultdict(float)
    for r in runs:
        for k, v in r.get("cpu_s", {}).items():
            cpu[k] += v
    wall = sum(r.get("wall_s", 0) for r in runs)
    return {
        "rps": mean(r.get("rps") for r in runs),
        "p50_ms": mean(r.get("p50_ms") for r in runs),
        "p99_ms": mean(r.get("p99_ms") for r in runs),
        "max_ms": max((r.get("max_ms") or 0 for r in runs), default=None),
        "non2xx": sum(r.get("non2xx") or 0 for r in runs),
        "requests": requests,
        "us": {k: 1e6 * v / requests for k, v in cpu.items()} if requests else {},
        "busy_pct": 100 * cpu["machine"] / (wall * cpus) if wall and cpus else None,
        "rss_kb": max((r.get("rss_kb") or 0 for r in runs), default=0) or None,
        "problems": [p for r in runs for p in run_problems(r)],
    }


def bare_concurrency(concurrency):
    """The one concurrency at which the bare path is measured."""
    return ACCEPT_CONC if ACCEPT_CONC in concurrency else max(concurrency)


def pooled(meta, runs):
    """{key: pooled measurement}; key (api, target, conc) for main runs, the
    bare path (api "healthz") and the floors (api "nginx", "worker"), (api,
    body, credential, target) for hostile ones."""
    groups = defaultdict(list)
    for r in runs:
        if r["kind"] in ("main", "bare", "floor"):
            groups[r["api"], r["target"], r["conc"]].append(r)
        elif r["kind"] == "hostile":
            groups[r["api"], r["body"], r["credential"], r["target"]].append(r)
    return {k: pool(v, meta.get("cpus") or 1) for k, v in groups.items()}


# ---- formatting ---------------------------------------------------------------------------


def fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def ratio(a, b):
    return a / b if a is not None and b else None


def api_table(meta, m, api):
    """Throughput and latency of the three targets per concurrency."""
    out = [f"{TITLES.get(api, api)}  PATCH {meta['routes'].get(api, '?')}   (cp = chatpatch, ceil = pgbench ceiling)",
           "       ---------- req/s ---------  --- cp ratio ---  ------- p50 ms -------  ------- p99 ms -------"
           "  cp p99  --- max ms ----  non-2xx",
           "  conc      ceil        cp      peer   to ceil  to peer     ceil      cp    peer     ceil      cp    peer"
           "  /ceil       cp    peer   cp peer"]
    for c in meta["concurrency"]:
        g = {t: m.get((api, t, c), {}) for t in TARGETS}
        v = {t: g[t].get for t in TARGETS}
        out.append(
            f"  {c:4d} {fmt(v['ceiling']('rps'), '9.0f'):>9} {fmt(v['chatpatch']('rps'), '9.0f'):>9}"
            f" {fmt(v['peer']('rps'), '9.0f'):>9}"
            f"   {fmt(ratio(v['chatpatch']('rps'), v['ceiling']('rps')), '6.2f'):>6}"
            f"   {fmt(ratio(v['chatpatch']('rps'), v['peer']('rps')), '6.2f'):>6}"
            f"   {fmt(v['ceiling']('p50_ms')):>6}  {fmt(v['chatpatch']('p50_ms')):>6}  {fmt(v['peer']('p50_ms')):>6}"
            f"   {fmt(v['ceiling']('p99_ms')):>6}  {fmt(v['chatpatch']('p99_ms')):>6}  {fmt(v['peer']('p99_ms')):>6}"
            f"  {fmt(ratio(v['chatpatch']('p99_ms'), v['ceiling']('p99_ms'))):>5}"
            f"  {fmt(v['chatpatch']('max_ms'), '7.1f'):>7} {fmt(v['peer']('max_ms'), '7.1f'):>7}"
            f"  {fmt(v['chatpatch']('non2xx'), 'd'):>3} {fmt(v['peer']('non2xx'), 'd'):>4}")
    if api in meta.get("fixed_per_client", []):
        out.append("  (ceiling: each pgbench client updates one chat of its own; pgbench cannot build"
                   " this API's ids per transaction)")
    return out


def cpu_table(meta, m, api):
    out = ["  CPU us per request: the client, then the server side (nginx, the worker pool or the peer,",
           "  PostgreSQL); RSS: chatpatch's largest worker / the peer process; busy: the whole machine",
           "  conc  target      client   nginx  worker  postgres  server    RSS kB  busy %"]
    for c in meta["concurrency"]:
        for t in TARGETS:
            g = m.get((api, t, c))
            if not g:
                continue
            us = g["us"]
            worker = us.get("peer") if t == "peer" else us.get("worker")
            server = sum(us.get(k, 0) for k in SERVER_SIDE[t])
            show = (lambda x: x) if t != "ceiling" else (lambda x: None)
            out.append(
                f"  {c:4d}  {t:10} {fmt(us.get('client'), '6.0f'):>6}  {fmt(show(us.get('nginx')), '6.0f'):>6}"
                f"  {fmt(show(worker), '6.0f'):>6}  {fmt(us.get('postgres'), '8.0f'):>8}  {fmt(server, '6.0f'):>6}"
                f"  {fmt(g['rss_kb'], ',d'):>8}  {fmt(g['busy_pct'], '6.0f'):>6}")
    return out


def hostile_table(meta, m, runs):
    keys = list(dict.fromkeys((r["api"], r["body"], r["credential"], r["target"])
                              for r in runs if r["kind"] == "hostile"))
    if not keys:
        return []
    out = [f"Hostile bodies (issue 8): 65,535 bytes, concurrency {meta['hostile_concurrency']}; the expected"
           " status is checked instead of 2xx",
           "  keys: 8,191 unknown keys; deep: arrays nested to the 32-level limit. us per request:",
           "  api      body  key      status  target        req/s  worker us  nginx us  postgres us   p99 ms"
           "    RSS kB  problems"]
    for k in keys:
        api, body, cred, target = k
        g = m[k]
        worker = g["us"].get("peer" if target == "peer" else "worker")
        out.append(
            f"  {api:8} {body:5} {cred:8} {401 if cred == 'unknown' else 400:6}  {target:10}"
            f" {fmt(g['rps'], '8.0f'):>8}  {fmt(worker, '9.0f'):>9}  {fmt(g['us'].get('nginx'), '8.0f'):>8}"
            f"  {fmt(g['us'].get('postgres'), '11.0f'):>11}  {fmt(g['p99_ms'], '7.2f'):>7}"
            f"  {fmt(g['rss_kb'], ',d'):>8}  {len(g['problems'])}")
    return out


def bare_table(meta, m):
    """GET /healthz, what nginx and the worker cost with no API work, below
    the floors under it: nginx answering by itself, and through a worker
    that runs no statement. With pgbench's own CPU per statement, what no
    worker could go under on this machine."""
    c = bare_concurrency(meta["concurrency"])
    rows = [("nginx", "nginx", "nginx answering by itself (204)"),
            ("worker", "chatpatch", "nginx and a worker, no statement"),
            ("healthz", "chatpatch", "nginx, a worker, one SELECT 1: the bare path")]
    rows = [(target, label, m[api, target, c]) for api, target, label in rows if m.get((api, target, c))]
    if not rows:
        return []
    out = [f"Bare path and its floors, concurrency {c}: CPU us per request",
           "                                                     req/s  p99 ms   nginx  worker    both  postgres"]
    for target, label, g in rows:
        us = g["us"]
        worker = us.get("worker") if target == "chatpatch" else None
        both = us.get("nginx", 0) + (worker or 0)
        out.append(f"  {label:47} {fmt(g['rps'], '9.0f'):>9}  {fmt(g['p99_ms'], '6.2f'):>6}"
                   f"  {fmt(us.get('nginx'), '6.0f'):>6}  {fmt(worker, '6.0f'):>6}  {fmt(both, '6.0f'):>6}"
                   f"  {fmt(us.get('postgres'), '8.0f'):>8}")
    if meta.get("floor_request"):
        out.append(f"  (no statement: {meta['floor_request']}; the bare path: GET {meta.get('bare_path', '?')})")
    client = [f"{api} {fmt(m[api, 'ceiling', c]['us'].get('client'), '.0f')}"
              for api in meta["apis"] if m.get((api, "ceiling", c))]
    if client:
        out.append("  pgbench's own CPU per statement (the ceiling's client; one statement a round trip,"
                   " no HTTP): " + ", ".join(client))
    return out


def bouncer_table(meta, m):
    """chatpatch through pgbouncer against going direct, same run (issue 12)."""
    rows = [(api, c) for api in meta["apis"] for c in meta["concurrency"]
            if m.get((api, "bouncer", c)) and m.get((api, "chatpatch", c))]
    if not rows:
        return []
    out = ["Through pgbouncer (transaction mode, DATABASE_STATEMENTS=unnamed) against direct, same run:",
           "  CPU us per request: the worker pool, pgbouncer, PostgreSQL, and the server side in all",
           "  api      conc  direct req/s  bouncer req/s  ratio |  direct: worker postgres server"
           " | bouncer: worker pgbouncer postgres server"]
    for api, c in rows:
        d, b = m[(api, "chatpatch", c)], m[(api, "bouncer", c)]
        ds = sum(d["us"].get(k, 0) for k in SERVER_SIDE["chatpatch"])
        bs = sum(b["us"].get(k, 0) for k in SERVER_SIDE["bouncer"])
        out.append(
            f"  {api:8} {c:4d}  {fmt(d['rps'], '12.0f'):>12}  {fmt(b['rps'], '13.0f'):>13}"
            f"  {fmt(ratio(b['rps'], d['rps'])):>5} |  {fmt(d['us'].get('worker'), '6.0f'):>14}"
            f" {fmt(d['us'].get('postgres'), '8.0f'):>8} {fmt(ds, '6.0f'):>6}"
            f" | {fmt(b['us'].get('bouncer_pool'), '6.0f'):>15} {fmt(b['us'].get('pgbouncer'), '9.0f'):>9}"
            f" {fmt(b['us'].get('postgres'), '8.0f'):>8} {fmt(bs, '6.0f'):>6}")
    return out


def acceptance(meta, m, runs):
    """The issue's acceptance points; returns (lines, failed)."""
    problems = [(run_name(r), p) for r in runs for p in run_problems(r)]
    out = ["Acceptance (issue 9)"]
    main_runs = [r for r in runs if r["kind"] == "main"]
    non2xx = sum(r.get("non2xx") or 0 for r in main_runs)
    out.append(f"  non-2xx answers: {non2xx} in {len(main_runs)} runs" + ("" if non2xx else "  ok"))

    # Judged on chatpatch; the others' maxima are there to compare with (the
    # ceiling's include its 128 clients connecting on 2 cores).
    top = max(meta["concurrency"])
    slow = []
    lines = []
    for api in meta["apis"]:
        bits = []
        for t in TARGETS:
            for r in (r for r in main_runs if (r["api"], r["target"], r["conc"]) == (api, t, top)):
                if r.get("max_ms") is not None:
                    bits.append(f"{t} {r['max_ms']:.0f}")
                    if r["max_ms"] > SLOW_MS and t == "chatpatch":
                        slow.append(run_name(r))
        lines.append(f"    {api}: " + ", ".join(bits))
    stuck = [run_name(r) for r in main_runs if r["conc"] == top and r.get("socket_errors")]
    if stuck:
        out.append(f"  every request answered at concurrency {top}: NO, socket errors or timeouts in "
                   + ", ".join(stuck))
    else:
        out.append(f"  every request answered at concurrency {top} (no socket error or timeout)  ok")
    out.append("    max latency (ms):")
    out += lines
    out.append(f"    FLAG: chatpatch slower than {SLOW_MS} ms: " + ", ".join(slow) if slow
               else f"    chatpatch: none over {SLOW_MS} ms  ok")

    c = ACCEPT_CONC if ACCEPT_CONC in meta["concurrency"] else None
    if c:
        out.append(f"  at concurrency {c}: chatpatch req/s to the ceiling's, to the peer's; p99 to the ceiling's p99:")
        for api in meta["apis"]:
            g = {t: m.get((api, t, c), {}) for t in TARGETS}
            line = (f"    {api:8} to ceiling {fmt(ratio(g['chatpatch'].get('rps'), g['ceiling'].get('rps')))}"
                    f"  to peer {fmt(ratio(g['chatpatch'].get('rps'), g['peer'].get('rps')))}"
                    f"  p99 {fmt(ratio(g['chatpatch'].get('p99_ms'), g['ceiling'].get('p99_ms')))} x ceiling's")
            if g["peer"]:
                line += f" (peer {fmt(ratio(g['peer'].get('p99_ms'), g['ceiling'].get('p99_ms')))} x)"
            out.append(line)
    else:
        out.append(f"  concurrency {ACCEPT_CONC} was not measured (BENCH_CONCURRENCY)")

    again = [run_name(r) for r in runs if (r.get("attempts") or 1) > 1]
    if again:
        out.append(f"  measured again after the wall clock jumped during the run: {', '.join(again)}")
    rss = [r.get("rss_kb") or 0 for r in runs if r["target"] == "chatpatch"]
    peer_rss = [r.get("rss_kb") or 0 for r in runs if r["target"] == "peer"]
    line = f"  workers' RSS, max over workers and runs: {max(rss, default=0):,} kB"
    if peer_rss:
        line += f" (the peer process: {max(peer_rss):,} kB)"
    out.append(line)
    bare = m.get(("healthz", "chatpatch", bare_concurrency(meta["concurrency"])))
    if bare:
        us = bare["us"]
        out.append(f"  bare path ({meta.get('bare_path', '?')}): nginx + worker"
                   f" {fmt(us.get('nginx', 0) + us.get('worker', 0), '.0f')} us per request"
                   f" at concurrency {bare_concurrency(meta['concurrency'])}")
    hostile = [r for r in runs if r["kind"] == "hostile"]
    if hostile:
        bad = sum(1 for r in hostile if run_problems(r))
        out.append(f"  hostile bodies: {len(hostile)} runs, {bad} with an unexpected status, body or error"
                   + ("" if bad else "  ok"))
    if problems:
        out.append("  FAILED:")
        out += [f"    {name}: {p}" for name, p in problems]
    out.append("Result: " + (f"FAIL ({len(problems)} problems)" if problems else "PASS")
               + (f"; FLAG: {len(slow)} runs with a request slower than {SLOW_MS} ms" if slow else ""))
    return out, bool(problems)


def render(meta, runs):
    """(result.txt's text, whether the run failed)."""
    m = pooled(meta, runs)
    head = [
        f"make bench: {meta['started']}, {meta['cpus']} CPUs (shared: compare ratios and CPU us per request,"
        " not req/s across runs)",
        f"  {meta['seconds']} s per run, {meta['rounds']} round(s), concurrency {' '.join(map(str, meta['concurrency']))},"
        f" {meta['chats']:,} chats per API (loaded in {meta['load_s']:.0f} s), {meta['workers']} workers x"
        f" {db_connections(meta)} database connections = the peer's pool size, {meta['threads']} client"
        f" threads, {meta.get('warmup_s', 0)} s warm-up, nginx worker_processes"
        f" {meta.get('nginx_workers', 'auto')}",
        f"  {meta.get('versions', '')}",
        "  ceiling: pgbench -M prepared, the worker's own statement and values; chatpatch and the peer (Node,",
        "  Fastify + node-postgres; Recoup only): wrk through the same nginx, every answer's status and body checked",
    ]
    if meta.get("vacuum_before_each_run"):
        head.append("  autovacuum off; a VACUUM before each run, outside its CPU window (bench/run.py, vacuum())")
    head.append("")
    body = []
    for api in meta["apis"]:
        body += api_table(meta, m, api) + [""] + cpu_table(meta, m, api) + [""]
    hostile = hostile_table(meta, m, runs)
    if hostile:
        body += hostile + [""]
    bare = bare_table(meta, m)
    if bare:
        body += bare + [""]
    bouncer = bouncer_table(meta, m)
    if bouncer:
        body += bouncer + [""]
    acc, failed = acceptance(meta, m, runs)
    return "\n".join(head + body + acc) + "\n", failed


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        data = json.load(f)
    text, failed = render(data["meta"], data["runs"])
    print(text, end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
