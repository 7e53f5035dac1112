"""The web servers the integration tests can run behind (issue 10).

The tests talk HTTP to BASE_URL. By default that is the stack's own nginx
(scripts/stack.sh), unchanged. With CHATPATCH_HOST=<name> the `stack`
fixture (conftest.py) starts one of the hosts below beside the running
stack, on a port of its own, with the same PostgreSQL, and points BASE_URL
at it; the same tests then run behind that host, as pgbouncer's
test/utils.py runs one suite against several setups.

Every host has one interface:

    host = HOSTS[name](stack, work_dir)   stack: stack.env as a dict
    base_url = host.start()               http://127.0.0.1:PORT, answering
    host.logs()                           tails of its logs, for failures
    host.stop()

A host either passes requests to the stack's worker pool (its socket,
stack["CHATPATCH_SOCKET"]) or spawns the binary itself (CHATPATCH_BIN, or
stack["SPAWN_BIN"] when a test sets it, with the workers' database URL,
stack["WORKER_DATABASE_URL"], given through the host's own mechanism).

Where a host answers a request itself and cannot be made to answer as the
workers do, the test is marked with host_decides(); the README lists those
answers ("What the server answers itself").

alive() and group_members() read /proc for the processes hosts and pools
leave behind (zombies do not count: nothing may reap them here).

Helpers only; fixtures live in conftest.py.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

# The host the tests run behind (make test-hosts sets it).
CURRENT = os.environ.get("CHATPATCH_HOST", "nginx")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, lines=60):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as e:
        return f"<{path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


def wait_healthy(base_url, proc=None, timeout=30, healthy=True):
    """Waits until GET /healthz through the host answers 200 (the host is up
    and reaches a worker that reaches PostgreSQL), or with healthy=False
    anything (the host is up). Returns the last error or None."""
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            resp = httpx.get(base_url + "/healthz", timeout=5)
            if resp.status_code == 200 or not healthy:
                return None
            last = f"{resp.status_code} {resp.text[:200]!r}"
        except httpx.HTTPError as e:
            last = repr(e)
        time.sleep(0.1)
    return last


def run_as_user():
    """The user and group a host's children run as when we are root (they
    may not stay root); None when we are not root (they cannot switch)."""
    return ("nobody", "nogroup") if os.geteuid() == 0 else None


def print_errors(binary, out_dir):
    """The JSON bodies of the answers a host gives itself, as the binary
    writes them from its API profiles (chatpatch --print-errors)."""
    proc = subprocess.run([str(binary), "--print-errors", str(out_dir)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"{binary} --print-errors {out_dir}: exit {proc.returncode}\n"
                           f"{proc.stderr[-2000:]}")


class Host:
    """One web server in front of chatpatch (see the module's comment)."""

    name = ""
    # A regular expression every X-Request-Id behind this host matches.
    request_id_re = re.compile(r"^[0-9a-f]{32}$")

    def __init__(self, stack, work_dir, log_level="warn"):
        self.stack = stack
        self.log_level = log_level  # the host's own log, where it has levels
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self, healthy=True):
        """Starts the host; returns its base URL once /healthz answers 200
        through it (healthy=False: once it answers at all, for a host whose
        workers are meant to be missing)."""
        raise NotImplementedError

    def stop(self):
        """Stops the server process started by start() (SIGTERM, then
        SIGKILL to its process group after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_files(self):
        return []

    def access_log(self):
        """The log in which each request's id appears as id=<X-Request-Id>."""
        raise NotImplementedError

    def logs(self):
        return "\n".join(f"---- {p} (tail) ----\n{tail(p)}" for p in self.log_files())

    def _spawn(self, argv, env=None, healthy=True):
        """Starts the server in a session of its own, waits for /healthz."""
        out = open(self.work_dir / f"{self.name}.out", "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        out.close()
        problem = wait_healthy(self.base_url, self.proc, healthy=healthy)
        if problem:
            logs = self.logs()
            self.stop()
            raise RuntimeError(f"{self.name} did not become healthy: {problem}\n{logs}")
        return self.base_url

    def readable_tree(self):
        """The work folder, readable and traversable by the host's own user."""
        for path in [self.work_dir, *self.work_dir.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o755 if path.is_dir() else
                       path.stat().st_mode | 0o644)


class Nginx(Host):
    """The stack's own nginx (scripts/stack.sh): nothing to start."""

    name = "nginx"

    def start(self, healthy=True):
        return self.stack["BASE_URL"]

    def stop(self):
        pass

    def access_log(self):
        return Path(self.stack["STACK_DIR"]) / "log" / "nginx-access.log"


# ---- Apache --------------------------------------------------------------------------

APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"


class Apache(Host):
    """Apache 2.4 as a test instance of its own: its own ServerRoot, pid
    file, port and logs under work_dir, in the foreground; as root its
    children run as nobody. Subclasses add the part that reaches chatpatch."""

    modules = ["mpm_event", "authz_core", "mime", "dir", "rewrite", "headers", "unique_id", "alias"]
    # mod_unique_id's UNIQUE_ID (27 characters of [A-Za-z0-9@-]), which the
    # workers echo and log as their request id.
    request_id_re = re.compile(r"^[A-Za-z0-9@_-]{20,64}$")

    def site(self):
        """The config lines that serve chatpatch."""
        raise NotImplementedError

    def prepare(self):
        """Files the site needs, before the config is written."""

    def config(self):
        w = self.work_dir
        user = run_as_user()
        lines = [f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in self.modules]
        lines += [
            f"ServerRoot {w}",
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{self.port}",
            f"PidFile {w}/run/apache.pid",
            f"DefaultRuntimeDir {w}/run",
            f"Mutex file:{w}/run default",
            f"ErrorLog {w}/log/error.log",
            f"LogLevel {self.log_level}",
            'LogFormat "%h \\"%r\\" %>s %b id=%{UNIQUE_ID}e" chatpatch',
            f"CustomLog {w}/log/access.log chatpatch",
            "TypesConfig /etc/mime.types",
            # The tests send many requests on few connections, fast.
            "MaxRequestWorkers 64",
            "ThreadsPerChild 32",
        ]
        if user:
            lines += [f"User {user[0]}", f"Group {user[1]}"]
        return "\n".join(lines + [self.site()]) + "\n"

    def log_files(self):
        return [self.work_dir / "log" / "error.log", self.access_log(),
                self.work_dir / f"{self.name}.out"]

    def access_log(self):
        return self.work_dir / "log" / "access.log"

    def start(self, healthy=True):
        for d in ("run", "log"):
            (self.work_dir / d).mkdir(parents=True, exist_ok=True)
        self.prepare()
        conf = self.work_dir / "apache.conf"
        conf.write_text(self.config())
        self.readable_tree()
        user = run_as_user()
        if user:
            shutil.chown(self.work_dir / "log", user[0], user[1])
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"}
        return self._spawn([APACHE, "-f", str(conf), "-DFOREGROUND"], env, healthy)


def _apache_errors(work_dir, binary):
    """The generated JSON bodies, under work_dir/htdocs/chatpatch-errors
    where the recipes' ErrorDocument lines find them."""
    out = work_dir / "htdocs" / "chatpatch-errors"
    out.mkdir(parents=True, exist_ok=True)
    print_errors(binary, out)
    return out


class ApacheFcgid(Apache):
    """A shared-hosting account: mod_fcgid and mod_rewrite loaded, the
    account's folder with AllowOverride All, and in it what the README tells
    the customer to upload: the binary as chatpatch.fcgi (here a wrapper
    that sets DATABASE_URL, the shared-hosting way), the generated error
    bodies and deploy/apache/chatpatch.htaccess as .htaccess."""

    name = "apache-fcgid"
    modules = Apache.modules + ["fcgid"]

    def prepare(self):
        w = self.work_dir
        htdocs = w / "htdocs"
        htdocs.mkdir(parents=True, exist_ok=True)
        (w / "fcgid").mkdir(exist_ok=True)
        (w / "worker-log").mkdir(exist_ok=True)
        binary = Path(self.stack["CHATPATCH_BIN"])
        _apache_errors(w, binary)
        # What the host spawns: a copy of the binary, which the workers' user
        # may run wherever the checkout lives (as the lighttpd and fcgiwrap
        # hosts do), unless a test names another (one that cannot start: the
        # host's own 503).
        if "SPAWN_BIN" in self.stack:
            spawned = Path(self.stack["SPAWN_BIN"])
        else:
            spawned = w / "bin" / "chatpatch"
            spawned.parent.mkdir(exist_ok=True)
            shutil.copy(binary, spawned)

        shutil.copy(DEPLOY / "apache" / "chatpatch.htaccess", htdocs / ".htaccess")
        wrapper = htdocs / "chatpatch.fcgi"
        wrapper.write_text(
            (DEPLOY / "apache" / "chatpatch.fcgi.sh").read_text()
            .replace("/home/ACCOUNT/chatpatch", str(spawned))
            .replace("postgresql://ACCOUNT@/ACCOUNT", self.stack["WORKER_DATABASE_URL"])
            .replace("/home/ACCOUNT/logs", str(w / "worker-log"))
        )
        wrapper.chmod(0o755)
        user = run_as_user()
        if user:
            for d in ("fcgid", "worker-log"):
                shutil.chown(w / d, user[0], user[1])

    def site(self):
        w = self.work_dir
        # A worker that dies at once (SPAWN_BIN) fails every spawn: past a
        # few failures in a second (mod_fcgid's spawn score: +1 a spawn, +2
        # an exit, 10 at most, -1 a second) mod_fcgid stops spawning and
        # holds the next requests up to a minute before a 503 of its own, so
        # whether a test saw the 500 depended on how fast the ones before it
        # ran.
        throttle = "FcgidSpawnScoreUpLimit 1000" if "SPAWN_BIN" in self.stack else ""
        return f"""
FcgidIPCDir {w}/fcgid
FcgidProcessTableFile {w}/fcgid/table
{throttle}
# A shared host's usual handler line, and what its accounts may override.
AddHandler fcgid-script .fcgi
DocumentRoot {w}/htdocs
<Directory {w}/htdocs>
    Options +ExecCGI +FollowSymLinks
    AllowOverride All
    Require all granted
</Directory>
"""

    def log_files(self):
        return super().log_files() + [self.work_dir / "worker-log" / "chatpatch.log"]


class ApacheProxyFcgi(Apache):
    """A vhost of one's own: deploy/apache/chatpatch.conf, mod_proxy_fcgi to
    the stack's worker pool socket."""

    name = "apache-proxy-fcgi"
    modules = Apache.modules + ["proxy", "proxy_fcgi"]

    def prepare(self):
        _apache_errors(self.work_dir, Path(self.stack["CHATPATCH_BIN"]))

    def site(self):
        w = self.work_dir
        return (
            (DEPLOY / "apache" / "chatpatch.conf").read_text()
            .replace("/run/chatpatch/chatpatch.sock", self.stack["CHATPATCH_SOCKET"])
            .replace("/usr/local/share/chatpatch/errors", f"{w}/htdocs/chatpatch-errors")
            .replace("<VirtualHost *:80>", f"<VirtualHost 127.0.0.1:{self.port}>")
            .replace("${APACHE_LOG_DIR}", f"{w}/log")
        )

    def access_log(self):
        return self.work_dir / "log" / "chatpatch-access.log"

    def log_files(self):
        return super().log_files() + [self.work_dir / "log" / "chatpatch-error.log"]


# Every host name make test-hosts knows, registered here or not yet
# (issue 10 part B adds lighttpd and nginx-fcgiwrap).
# ---- processes ---------------------------------------------------------------


def alive(pid):
    """A live (non-zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_leftovers(pids, grace_s=10):
    """Waits up to grace_s for pids to exit, then SIGKILLs those still
    running; returns them, sorted (a test's own processes only)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    leftover = sorted(p for p in pids if alive(p))
    for pid in leftover:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return leftover


def group_members(pgid):
    """Live processes of process group `pgid`."""
    members = set()
    for st in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = st.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.add(int(st.parent.name))
    return members


ALL_HOST_NAMES = {"nginx", "apache-fcgid", "apache-proxy-fcgi", "lighttpd", "nginx-fcgiwrap"}

# The registry: CHATPATCH_HOST names one of these.
HOSTS = {cls.name: cls for cls in (Nginx, ApacheFcgid, ApacheProxyFcgi)}

# Hosts in files of their own; imported here, after Host, which they subclass.
from host_fcgiwrap import NginxFcgiwrap  # noqa: E402
from host_lighttpd import Lighttpd  # noqa: E402

HOSTS.update({cls.name: cls for cls in (Lighttpd, NginxFcgiwrap)})


def request_id_re():
    """What an X-Request-Id looks like behind the current host."""
    return HOSTS[CURRENT].request_id_re if CURRENT in HOSTS else Host.request_id_re


def only_behind(*names):
    """Runs a test only behind the named hosts (what one host answers
    itself); elsewhere it is skipped, saying so."""
    return pytest.mark.skipif(CURRENT not in names,
                              reason=f"about {', '.join(names)}, not {CURRENT}")


def host_decides(*names, reason):
    """Marks a test whose answer the named hosts give themselves and cannot be
    made to give as the workers do (README, "What the server answers
    itself"): behind those hosts it must fail (strict xfail), so a host that
    starts to pass it shows up, and the README's list stays true."""
    unknown = [n for n in names if n not in ALL_HOST_NAMES]
    if unknown:
        raise ValueError(f"host_decides: unknown hosts {unknown}")
    return pytest.mark.xfail(CURRENT in names, reason=f"{CURRENT}: {reason}", strict=True)


# The answers hosts give themselves that no recipe can change, each stated
# once, for the tests they decide (README, "What the server answers itself").
APACHE_PATH_REFUSED = host_decides(
    "apache-fcgid",
    reason="Apache refuses %2F and %00 in a path with its HTML 404 before any "
    ".htaccess is read (AllowEncodedSlashes is server config only)")
