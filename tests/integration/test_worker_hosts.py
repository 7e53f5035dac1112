"""Several worker hosts behind one nginx (issue 12).

Two worker pools, each in a network namespace of its own (`ip netns add`,
iproute2) joined to the host by a veth pair, stand for two worker hosts:

    host side 10.N.1.1/24 <-veth-> 10.N.1.2/24  pool A: --listen 10.N.1.2:9000
    host side 10.N.2.1/24 <-veth-> 10.N.2.2/24  pool B: --listen 10.N.2.2:9000

(10.N: a /16 no interface of this machine uses.) PostgreSQL (scripts/stack.sh
up: the stack's cluster, migrations, the workers' least-privilege role and
sql/grants.sql) listens on its unix socket as usual and also on TCP on the
host side of both pairs (listen_addresses). pg_hba.conf lets only the
workers' role in over TCP, only from 10.N.0.0/16, and only with a password
(scram-sha-256); the pools read it from a password file (PGPASSFILE), not
from DATABASE_URL.

nginx (the stack's, reloaded) gets a second server, in the stack's
nginx/conf.d/ (the folder nginx.conf.in includes for such extra servers),
that includes the ops snippet nginx/chatpatch.conf with its one EDIT line
naming an upstream group of the two pools:

    upstream chatpatch_hosts {
        server 10.N.1.2:9000 max_fails=1 fail_timeout=3s;
        server 10.N.2.2:9000 max_fails=1 fail_timeout=3s;
    }
    fastcgi_next_upstream error timeout;

and an access log with $upstream_addr and $upstream_status, so the test
sees which pool each request (by $request_id) went to.

test_pool_killed_under_load: under load from three clients, pool A's parent
and children are SIGKILLed. The service keeps answering (pool B); the only
failures are requests nginx had already sent to pool A, answered with the
snippet's JSON 503 and Retry-After: 1, none past the bound; requests that
could not connect to A went to B (nginx's `error`). Pool A is started
again: nginx sends requests to it again (its own access lines hold their
request ids). Pool B's processes are the same throughout; the rows hold
what the last 200s said.

Where network namespaces cannot be made (no iproute2, no CAP_SYS_ADMIN),
the module is skipped and says why.
"""

import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row

from conftest import (
    PG_EXTRA_CONF,
    _free_port,
    _tail,
    child_pids,
    make_stack_dir,
    stack_env,
    start_stack,
    stop_stack,
)
from hosts import alive
from test_faults import (
    Load,
    assert_rows_match_last_ok,
    fmt_problems,
    form_of,
    new_targets,
    problem,
    raw_request,
    wait_for,
)

POOL_WORKERS = 2
POOL_PORT = 9000  # each pool in its own namespace: the same port twice
STATEMENT_TIMEOUT_S = 2.0
ANSWER_BOUND_S = STATEMENT_TIMEOUT_S + 1.0 + 2.0  # a hang would be nginx's 15 s read timeout
FAIL_TIMEOUT_S = 3  # nginx's fail_timeout for each upstream server
WORKER_ROLE = "chatpatch_worker"
ACCESS_RE = re.compile(r"info: access rid=([0-9a-f]+) method=(\S+) route=(\S+) status=(\d+)")


# ---- network namespaces --------------------------------------------------------------------


def ip(*args, check=True):
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def namespaces_or_skip():
    """Skips the module, saying why, where a network namespace cannot be made."""
    if shutil.which("ip") is None:
        pytest.skip("network namespaces: `ip` (Debian's iproute2) is not installed; "
                    "scripts/deps.sh test installs it", allow_module_level=True)
    probe = f"chatpatch-probe-{uuid.uuid4().hex[:8]}"
    r = ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        pytest.skip(f"network namespaces cannot be made here (`ip netns add` needs root with "
                    f"CAP_SYS_ADMIN): {r.stderr.strip()}", allow_module_level=True)
    ip("netns", "del", probe, check=False)


def free_subnet():
    """A second octet N such that no address or route of this machine is in 10.N/16."""
    used = ip("-4", "-o", "addr").stdout + ip("-4", "route", "show", "table", "all").stdout
    for _ in range(200):
        n = secrets.randbelow(150) + 100
        if not re.search(rf"\b10\.{n}\.", used):
            return n
    raise RuntimeError("no free 10.N.0.0/16 for the veth pairs")


class Host:
    """One worker host: a network namespace, a veth pair to it, and a pool
    (`chatpatch --listen ADDR:9000 --workers 2`) run inside it."""

    def __init__(self, name, ns, host_if, ns_if, host_addr, addr, log):
        self.name, self.ns, self.host_if, self.ns_if = name, ns, host_if, ns_if
        self.host_addr, self.addr, self.log = host_addr, addr, log
        self.proc = None
        self.env = None  # the pool's environment (DATABASE_URL, PGPASSFILE)

    @property
    def upstream(self):
        return f"{self.addr}:{POOL_PORT}"

    def create(self):
        ip("netns", "add", self.ns)
        ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
           "netns", self.ns)
        ip("addr", "add", f"{self.host_addr}/24", "dev", self.host_if)
        ip("link", "set", self.host_if, "up")
        ip("-n", self.ns, "addr", "add", f"{self.addr}/24", "dev", self.ns_if)
        ip("-n", self.ns, "link", "set", self.ns_if, "up")
        ip("-n", self.ns, "link", "set", "lo", "up")

    def destroy(self):
        # Deleting the namespace deletes its end of the pair, and so the pair.
        ip("netns", "del", self.ns, check=False)
        ip("link", "del", self.host_if, check=False)

    def start_pool(self, binary, env):
        """The pool's parent runs in the namespace (`ip netns exec` execs the
        command, so the pid is the pool parent's) in a session of its own."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, binary, "--listen", self.upstream,
                 "--workers", str(POOL_WORKERS),
                 "--statement-timeout", str(int(STATEMENT_TIMEOUT_S * 1000))],
                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def wait_started(self):
        """Whether the pool listens within 10 s: its workers run (it opens
        its socket before it starts them)."""
        return wait_for(lambda: len(self.children()) == POOL_WORKERS, 10)

    @property
    def pid(self):
        return self.proc.pid

    def children(self):
        return child_pids(self.pid)

    def kill_pool(self):
        """SIGKILL to the pool's parent and children (its process group);
        returns once none of them runs."""
        pids = {self.pid} | self.children()
        os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        assert wait_for(lambda: not any(alive(p) for p in pids), 10, interval=0.005), \
            f"pool {self.name} still runs after SIGKILL"

    def stop_pool(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait(10)

    def access(self, offset=0):
        """{request id: status} of the pool's access lines from byte `offset` on."""
        try:
            with open(self.log, "rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return {}
        return {m.group(1): int(m.group(4)) for m in ACCESS_RE.finditer(text)}

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0


# ---- the module's stack --------------------------------------------------------------------

HOSTS_CONF = """\
# The worker hosts of test_worker_hosts.py: one upstream group, and a server
# that includes the ops snippet with its EDIT line naming the group.
upstream chatpatch_hosts {{
    server {a} max_fails=1 fail_timeout={fail}s;
    server {b} max_fails=1 fail_timeout={fail}s;
}}

log_format chatpatch_hosts '$remote_addr [$time_local] "$request" $status '
                           'id=$request_id upstream="$upstream_addr" '
                           'ustatus="$upstream_status"';

server {{
    listen 127.0.0.1:{port};
    server_name _;
    client_max_body_size 64k;
    client_body_buffer_size 64k;
    access_log {log} chatpatch_hosts;

    # A pool that refuses the connection (or does not accept it in time):
    # the request goes to the next one. nginx never passes a PATCH it has
    # already sent on (non_idempotent is not set): that one gets the
    # snippet's JSON 503.
    fastcgi_next_upstream error timeout;

    include {snippet};
}}
"""

UPSTREAM_LINE_RE = re.compile(r'id=([0-9a-f]+) upstream="([^"]*)" ustatus="([^"]*)"')


def nginx_cmd(stack, *args):
    nginx_dir = Path(stack["STACK_DIR"]) / "nginx"
    return subprocess.run(["nginx", "-p", str(nginx_dir), "-c", str(nginx_dir / "nginx.conf"),
                           *args], capture_output=True, text=True, timeout=30)


def hosts_access(stack):
    """{request id: (upstream addresses, upstream statuses)} from the hosts server's log."""
    try:
        text = Path(stack["HOSTS_ACCESS_LOG"]).read_text(errors="replace")
    except OSError:
        return {}
    return {m.group(1): (m.group(2), m.group(3)) for m in UPSTREAM_LINE_RE.finditer(text)}


@pytest.fixture(scope="module")
def stack():
    namespaces_or_skip()
    stack_dir = make_stack_dir("chatpatch-hosts-")
    n = free_subnet()
    tag = uuid.uuid4().hex[:6]
    log_dir = Path(stack_dir) / "log"
    hosts = [Host(name, f"chatpatch-{tag}-{name.lower()}", f"cph{tag}{name.lower()}",
                  f"cpn{tag}{name.lower()}", f"10.{n}.{i}.1", f"10.{n}.{i}.2",
                  log_dir / f"pool-{name.lower()}.log")
             for i, name in ((1, "A"), (2, "B"))]
    listen = ",".join(h.host_addr for h in hosts)
    env = stack_env(stack_dir, 1, PG_EXTRA_CONF=PG_EXTRA_CONF + f"\nlisten_addresses = '{listen}'")
    started = False
    try:
        for h in hosts:
            h.create()
        values = start_stack(stack_dir, env)
        values.update(HOSTS=hosts,
                      HOSTS_ACCESS_LOG=str(log_dir / "nginx-hosts-access.log"))

        # PostgreSQL: the workers' role, with a password, over TCP from the
        # hosts' subnet only.
        password = secrets.token_hex(16)
        with psycopg.connect(values["DATABASE_URL"], autocommit=True) as db:
            db.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(WORKER_ROLE), sql.Literal(password)))
            hba = db.execute("SHOW hba_file").fetchone()[0]
            with open(hba, "a") as f:
                f.write(f"host {values['PGDATABASE']} {WORKER_ROLE} 10.{n}.0.0/16 "
                        "scram-sha-256\n")
            db.execute("SELECT pg_reload_conf()")
            errors = db.execute("SELECT count(*) FROM pg_hba_file_rules "
                                "WHERE error IS NOT NULL").fetchone()[0]
            assert errors == 0, "pg_hba.conf has errors"
        pgpass = Path(stack_dir) / "run" / "workers.pgpass"
        pgpass.write_text("".join(f"{h.host_addr}:{values['PGPORT']}:{values['PGDATABASE']}:"
                                  f"{WORKER_ROLE}:{password}\n" for h in hosts))
        pgpass.chmod(0o600)

        # The pools, each reaching PostgreSQL on its own side of its pair.
        for h in hosts:
            pool_env = dict(os.environ)
            pool_env.update(
                DATABASE_URL=(f"postgresql://{WORKER_ROLE}@{h.host_addr}:{values['PGPORT']}/"
                              f"{values['PGDATABASE']}"),
                PGPASSFILE=str(pgpass))
            pool_env.pop("PGPASSWORD", None)
            h.env = pool_env
            h.start_pool(values["CHATPATCH_BIN"], pool_env)
        # Both listen before nginx sends them anything: a server nginx could
        # not connect to stays failed for fail_timeout in that nginx worker
        # process alone, so a health check answered by the other would leave
        # this one with no live upstream (503s at the test's start).
        for h in hosts:
            assert h.wait_started(), f"pool {h.name} did not start\n{_tail(h.log)}"

        # nginx: the snippet as stack.sh rendered it (the stack's limits),
        # with the EDIT line naming the upstream group; then a reload.
        nginx_dir = Path(stack_dir) / "nginx"
        snippet = (nginx_dir / "chatpatch.conf").read_text()
        snippet, count = re.subn(r"^set \$chatpatch_upstream .*$",
                                 "set $chatpatch_upstream chatpatch_hosts;", snippet,
                                 flags=re.M)
        assert count == 1, "nginx/chatpatch.conf: no EDIT line to point at the upstream"
        (nginx_dir / "chatpatch-hosts.conf").write_text(snippet)
        hosts_port = _free_port()
        (nginx_dir / "conf.d").mkdir(exist_ok=True)
        (nginx_dir / "conf.d" / "worker-hosts.conf").write_text(HOSTS_CONF.format(
            a=hosts[0].upstream, b=hosts[1].upstream, fail=FAIL_TIMEOUT_S, port=hosts_port,
            log=values["HOSTS_ACCESS_LOG"], snippet=nginx_dir / "chatpatch-hosts.conf"))
        t = nginx_cmd(values, "-t")
        assert t.returncode == 0, f"nginx -t: {t.stderr}"
        r = nginx_cmd(values, "-s", "reload")
        assert r.returncode == 0, f"nginx -s reload: {r.stderr}"
        values["HOSTS_PORT"] = hosts_port
        def healthy():
            resp = raw_request(hosts_port, "GET", "/healthz", timeout=5).resp
            return resp is not None and resp.status_code == 200

        assert wait_for(healthy, 30, 0.2), "no 200 from the hosts' server\n" + "\n".join(
            f"---- {h.log} ----\n{_tail(h.log)}" for h in hosts)
        started = True
        yield values
    finally:
        for h in hosts:
            h.stop_pool()
        try:
            stop_stack(stack_dir, env, started,
                       logs=["chatpatch.log"] + [h.log for h in hosts])
        finally:
            for h in hosts:
                h.destroy()


@pytest.fixture
def db(stack):
    conn = psycopg.connect(stack["DATABASE_URL"], autocommit=True, row_factory=dict_row,
                           application_name="chatpatch-hosts-tests")
    yield conn
    conn.close()


def rid(result):
    resp = result.answer.resp
    return resp.headers.get("x-request-id") if resp is not None else None


def after_restart(stack, results, t_restart):
    """What the clients sent after pool A's restart, and where nginx sent it."""
    late = [r for r in results if r.t0 >= t_restart]
    if not late:
        return f"the clients sent nothing after the restart ({len(results)} requests in all)"
    upstream, where = hosts_access(stack), {}
    for r in late:
        addrs = upstream.get(rid(r) or "", ("not in nginx's log",))[0]
        where[addrs] = where.get(addrs, 0) + 1
    return f"{len(late)} requests sent after it, over {late[-1].t0 - t_restart:.2f}s: {where}"


# ---- the test ----------------------------------------------------------------------------


def test_pool_killed_under_load(stack, db):
    """Pool A SIGKILLed (parent and children) under load from three clients
    through nginx's upstream of two pools: pool B answers everything else;
    only requests already sent to A fail, as the JSON 503 with Retry-After:
    1, within the bound; after A is started again, nginx sends it requests
    (A's access lines hold their ids)."""
    port = stack["HOSTS_PORT"]
    a, b = stack["HOSTS"]
    b_pids = {b.pid} | b.children()
    assert len(b_pids) == POOL_WORKERS + 1, b_pids
    assert len(a.children()) == POOL_WORKERS
    loads = [Load(port, new_targets(db), f"hosts-{n}", max_seconds=60) for n in range(3)]
    origin = time.monotonic()
    a_offset, b_offset = a.log_size(), b.log_size()
    for load in loads:
        load.start()
    try:
        assert wait_for(lambda: sum(l.ok_count() for l in loads) >= 60, 20), \
            "load never got going"
        # Both pools serve: their own access lines hold our requests' ids.
        ours = lambda: {rid(r) for l in loads for r in list(l.results)}  # noqa: E731
        assert wait_for(lambda: set(a.access(a_offset)) & ours()
                        and set(b.access(b_offset)) & ours(), 5), \
            "not both pools served requests before the kill"
        t_kill = time.monotonic()
        a.kill_pool()
        t_dead = time.monotonic()
        oks_at_dead = sum(l.ok_count() for l in loads)
        # Past nginx's fail_timeout, so that it tries the dead pool again
        # with live requests (each nginx worker process keeps its own count).
        wait_for(lambda: time.monotonic() - t_dead >= FAIL_TIMEOUT_S + 2.0
                 and sum(l.ok_count() for l in loads) >= oks_at_dead + 60, 20)
        t_restart = time.monotonic()
        a_restart_offset = a.log_size()
        a.start_pool(stack["CHATPATCH_BIN"], a.env)
        assert a.wait_started(), "pool A did not start"

        def reached_a():
            late = {rid(r) for l in loads for r in list(l.results) if r.t0 >= t_restart}
            return late & set(a.access(a_restart_offset))

        back = wait_for(lambda: len(reached_a()) >= 10, FAIL_TIMEOUT_S + 15)
        t_back = time.monotonic()
    finally:
        results = sorted((r for l in loads for r in l.finish()), key=lambda r: r.t0)
    assert back, (f"after the restart nginx sent pool A only {len(reached_a())} requests; "
                  f"{after_restart(stack, results, t_restart)}\n---- {a.log} ----\n{_tail(a.log)}")

    upstream = hosts_access(stack)
    problems, failed = [], []
    for r in results:
        why = problem(r.target, r.answer, ["ok"], r.value)
        if why is None and r.elapsed > ANSWER_BOUND_S:
            why = f"answered after {r.elapsed:.2f}s > {ANSWER_BOUND_S}s"
        if why is None:
            continue
        # Only a request on pool A between the kill and its death may fail,
        # only as the snippet's 503, and only one nginx had sent to A alone:
        # one in flight at the kill, or one sent on another of A's kept
        # connections before the kernel closed them (nginx does not send a
        # PATCH twice). The window bounds how many (test_faults.py, SIGKILL).
        in_flight = r.t0 <= t_dead and r.t1 >= t_kill
        sent_to = upstream.get(rid(r) or "", ("?", "?"))
        if (in_flight and r.elapsed <= ANSWER_BOUND_S
                and problem(r.target, r.answer, ["nginx503"]) is None
                and sent_to[0] == a.upstream):
            failed.append((r, sent_to))
            continue
        problems.append(f"{r.describe(origin)} (nginx sent it to {sent_to}): {why}")
    assert not problems, (f"kill at +{t_kill - origin:.3f}s, dead at +{t_dead - origin:.3f}s, "
                          f"restart at +{t_restart - origin:.3f}s; " + fmt_problems(problems))

    # While A was dead, B answered: 200s, and some that nginx tried on A first.
    dead = [r for r in results if t_dead <= r.t0 < t_restart]
    assert len(dead) >= 30 and all(form_of(r.target, r.answer, r.value) == "ok" for r in dead)
    b_lines = b.access(b_offset)
    assert all(rid(r) in b_lines for r in dead), "a 200 while A was dead that B did not log"
    # Requests nginx tried on A (refused: nothing sent) went on to B.
    passed_on = [r for r in dead if upstream.get(rid(r), ("",))[0] == f"{a.upstream}, {b.upstream}"]
    assert passed_on, "nginx never tried the dead pool, or did not pass a refused request on"
    # After the restart: requests reached A again, and A answered them 200.
    a_lines = a.access(a_restart_offset)
    back_rids = reached_a()
    assert all(a_lines[x] == 200 for x in back_rids)
    assert all(upstream.get(x, ("",))[0].endswith(a.upstream) for x in back_rids)

    assert b_pids == {b.pid} | b.children(), "pool B's processes changed"
    assert_rows_match_last_ok(db, results, [t for l in loads for t in l.targets])
    counts = {}
    for r in results:
        counts[r.answer.resp.status_code] = counts.get(r.answer.resp.status_code, 0) + 1
    print(f"\nworker hosts: {len(results)} requests {counts}; pool A SIGKILLed, dead after "
          f"{t_dead - t_kill:.3f}s; {len(failed)} failed while A died (nginx 503, sent to A: "
          f"{[s for _, s in failed]}); {len(dead)} while A was dead, all 200 from B "
          f"({len(passed_on)} tried on A first); A restarted, {len(back_rids)} requests "
          f"reached it within {t_back - t_restart:.2f}s")
