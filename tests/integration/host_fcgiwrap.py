"""nginx + fcgiwrap in front of chatpatch in CGI mode (issue 10).

fcgiwrap forks the binary once per request (CGI: GATEWAY_INTERFACE, the
request in the environment and on stdin), with the workers' database URL in
fcgiwrap's own environment, which it passes on. nginx runs the stack's own
config (nginx/nginx.conf.in) with the snippet included through
deploy/fcgiwrap/chatpatch-fcgiwrap.conf, as the README tells ops to, so the
snippet's locations, limits and JSON errors are the ones under test. Only
the EDIT lines are set for this instance; the limits are the test stacks'
(conftest.TEST_STACK_LIMITS), as stack.sh sets them. As root, fcgiwrap (and
so every chatpatch process) and nginx's workers run as nobody.
"""

import os
import re
import shutil
import signal
import subprocess

from host_common import open_parents, passed_env, set_lines, wait_group_gone

from hosts import DEPLOY, REPO, Host, run_as_user

FCGIWRAP = "/usr/sbin/fcgiwrap"
NGINX = "/usr/sbin/nginx"
MAX_BODY = 65536


def with_limits(text):
    """The lines marked LIMIT in nginx/ with the test stacks' request rate
    (stack.sh's sed_limits does the same for the stack's own nginx)."""
    from conftest import TEST_STACK_LIMITS  # here: conftest imports this module

    text, n1 = re.subn(r"burst=\d+ ", f"burst={TEST_STACK_LIMITS['LIMIT_REQ_BURST']} ", text)
    text, n2 = re.subn(r"rate=\d+r/s;", f"rate={TEST_STACK_LIMITS['LIMIT_REQ_RATE']}r/s;", text)
    return text, n1 + n2


class NginxFcgiwrap(Host):
    """nginx on a port of its own, passing to fcgiwrap (-c 4) on a socket of
    its own, which runs the binary under test per request."""

    name = "nginx-fcgiwrap"
    children = 4

    def paths(self):
        w = self.work_dir
        return {
            "nginx": w / "nginx",
            "run": w / "run",
            "log": w / "log",
            "bin": w / "bin" / "chatpatch",
            "socket": w / "run" / "fcgiwrap.sock",
        }

    def render(self):
        """Writes nginx.conf, the snippet and the fcgiwrap include under
        work_dir/nginx."""
        p = self.paths()
        user = run_as_user()
        ndir = p["nginx"]
        (ndir / "tmp").mkdir(parents=True, exist_ok=True)
        (ndir / "conf.d").mkdir(exist_ok=True)
        shutil.copy("/etc/nginx/fastcgi_params", ndir / "fastcgi_params")
        snippet, n = with_limits((REPO / "nginx" / "chatpatch.conf").read_text())
        http, m = with_limits((REPO / "nginx" / "chatpatch-http.conf").read_text())
        if n == 0 or m == 0:
            raise RuntimeError("nginx/: no LIMIT line found to set")
        (ndir / "chatpatch-snippet.conf").write_text(snippet)
        (ndir / "chatpatch-http.conf").write_text(http)
        include = (DEPLOY / "fcgiwrap" / "chatpatch-fcgiwrap.conf").read_text()
        include = re.sub(r"^include \S+;", f"include {ndir / 'chatpatch-snippet.conf'};",
                         include, count=1, flags=re.M)
        include = set_lines(include, r"set \$chatpatch_upstream ", f"unix:{p['socket']}")
        include = set_lines(include, r"set \$chatpatch_cgi_program ", str(p["bin"]))
        if str(p["bin"]) not in include or str(ndir) not in include:
            raise RuntimeError("deploy/fcgiwrap/chatpatch-fcgiwrap.conf changed shape")
        # nginx.conf.in includes chatpatch.conf: here, the fcgiwrap include.
        (ndir / "chatpatch.conf").write_text(include)
        conf = (REPO / "nginx" / "nginx.conf.in").read_text()
        for key, value in {
            "@STACK_DIR@": str(self.work_dir),
            "@SOCKET@": str(p["socket"]),
            "@PORT@": str(self.port),
            "@MAX_BODY@": str(MAX_BODY),
            "@NGINX_USER@": f"user {user[0]} {user[1]};" if user else "# not root",
            "@NGINX_RLIMIT_NOFILE@": "8192",
            "@NGINX_WORKERS@": "auto",
            "@NGINX_WORKER_CONNECTIONS@": "4096",
        }.items():
            conf = conf.replace(key, value)
        conf, n = with_limits(conf)
        # In the foreground, so stop() and _spawn() hold nginx itself.
        conf = conf.replace("daemon on;", "daemon off;")
        if "@" in re.sub(r"#.*", "", conf) or "daemon off;" not in conf:
            raise RuntimeError("nginx/nginx.conf.in has a placeholder this host does not set")
        (ndir / "nginx.conf").write_text(conf)

    def start(self, healthy=True):
        p = self.paths()
        for d in ("run", "log"):
            p[d].mkdir(parents=True, exist_ok=True)
        p["bin"].parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.stack["CHATPATCH_BIN"], p["bin"])
        self.render()
        self.readable_tree()
        p["bin"].chmod(0o755)
        user = run_as_user()
        if user:
            shutil.chown(p["run"], user[0], user[1])
            open_parents(self.work_dir)
        # The workers' database reaches every chatpatch process through
        # fcgiwrap's environment (it passes its own on, but for HTTP_*).
        env = passed_env(DATABASE_URL=self.stack["WORKER_DATABASE_URL"])
        with open(p["log"] / "fcgiwrap.log", "ab") as log:
            self.fcgiwrap = subprocess.Popen(
                [FCGIWRAP, "-c", str(self.children), "-s", f"unix:{p['socket']}",
                 "-p", str(p["bin"])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                start_new_session=True, cwd="/",
                **({"user": user[0], "group": user[1], "extra_groups": []} if user else {}))
        nginx_env = passed_env()
        self.stack["WORKER_LOG"] = str(self.worker_log())
        try:
            return self._spawn([NGINX, "-p", str(p["nginx"]), "-c", str(p["nginx"] / "nginx.conf")],
                               nginx_env, healthy)
        except RuntimeError:
            self.stop_fcgiwrap()
            raise

    def stop_fcgiwrap(self):
        proc = getattr(self, "fcgiwrap", None)
        if proc is None or proc.poll() is not None:
            return
        # fcgiwrap's preforked children are in its process group, and one
        # still alive after the parent has exited would accept the next
        # request: wait for the whole group.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
            wait_group_gone(proc.pid, timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            wait_group_gone(proc.pid, timeout=10)


    def stop(self):
        super().stop()
        self.stop_fcgiwrap()

    def log_files(self):
        p = self.paths()
        return [p["log"] / "nginx-error.log", p["log"] / "fcgiwrap.log",
                self.work_dir / f"{self.name}.out"]

    def access_log(self):
        """nginx's, with id=$request_id (nginx/nginx.conf.in)."""
        return self.paths()["log"] / "nginx-access.log"

    def worker_log(self):
        """What the chatpatch processes wrote to stderr (fcgiwrap's log): their
        access lines and any sanitizer report."""
        return self.paths()["log"] / "fcgiwrap.log"
