"""lighttpd in front of chatpatch, as deploy/lighttpd/ ships it (issue 10).

lighttpd spawns the binary itself (mod_fastcgi "bin-path") with the
workers' database URL through "bin-environment"; its own errors become
JSON through deploy/lighttpd/chatpatch-errors.lua and the documents
`chatpatch --print-errors` writes. The shipped files are used as they are,
with only their EDIT lines set for this instance: its port, its folder
(socket, logs, the error documents) and the binary under test. As root,
lighttpd and the workers it spawns run as nobody (server.username).
"""

import re
import shutil

from host_common import open_parents, passed_env, set_lines
from hosts import DEPLOY, Host, print_errors, run_as_user

LIGHTTPD = "/usr/sbin/lighttpd"


def pool_variant(snippet, socket):
    """The recipe with its commented fastcgi.server (to a pool of one's own
    on `socket`) in place of the one that spawns the binary."""
    spawning = re.search(r'^    fastcgi\.server = \( "/" => \(\(\n.*?^    \)\)\)\n', snippet,
                         re.M | re.S)
    variant = re.search(r'^    # fastcgi\.server = \( "/" => \(\(\n.*?^    # \)\)\)\n', snippet,
                        re.M | re.S)
    if not spawning or not variant:
        raise RuntimeError("deploy/lighttpd/chatpatch.conf: no fastcgi.server to swap")
    pool = re.sub(r"^    # ?", "    ", variant.group(0), flags=re.M)
    pool = set_lines(pool, r'\s*"socket"\s*=>\s*', socket)
    return snippet.replace(variant.group(0), "").replace(spawning.group(0), pool)


class Lighttpd(Host):
    """lighttpd 1.4 with deploy/lighttpd/chatpatch.conf included, spawning
    a pool of two workers (bin-path) on a socket of its own."""

    name = "lighttpd"
    workers = 2
    # The recipe's other fastcgi.server: to the stack's pool, spawning none.
    to_pool = False

    def paths(self):
        w = self.work_dir
        return {
            "conf": w / "lighttpd.conf",
            "snippet": w / "chatpatch.conf",
            "lua": w / "chatpatch-errors.lua",
            "errors": w / "errors",
            "run": w / "run",
            "log": w / "log",
            "upload": w / "upload",
            "docroot": w / "htdocs",
            "bin": w / "bin" / "chatpatch",
        }

    def config(self):
        """(the main lighttpd.conf, the snippet, the Lua script) as text."""
        p = self.paths()
        user = run_as_user()
        snippet = (DEPLOY / "lighttpd" / "chatpatch.conf").read_text()
        snippet = set_lines(snippet, r'\$SERVER\["socket"\] == ', f"127.0.0.1:{self.port}")
        for var, value in (("bin", p["bin"]), ("lua", p["lua"]),
                           ("socket", p["run"] / "chatpatch.sock"),
                           ("log", p["log"] / "chatpatch.log"),
                           ("database", self.stack["WORKER_DATABASE_URL"]),
                           ("workers", self.workers)):
            snippet = set_lines(snippet, rf"\s*var\.chatpatch_{var}\s*=\s*", value)
        if self.to_pool:
            snippet = pool_variant(snippet, self.stack["CHATPATCH_SOCKET"])
        lua = set_lines((DEPLOY / "lighttpd" / "chatpatch-errors.lua").read_text(),
                        r"local ERRORS = ", p["errors"])
        main = "\n".join([
            f'server.port = {self.port}',
            'server.bind = "127.0.0.1"',
            f'server.document-root = "{p["docroot"]}"',
            f'server.pid-file = "{p["run"] / "lighttpd.pid"}"',
            f'server.errorlog = "{p["log"] / "error.log"}"',
            f'server.upload-dirs = ( "{p["upload"]}" )',
            *([f'server.username = "{user[0]}"', f'server.groupname = "{user[1]}"'] if user else []),
            f'include "{p["snippet"]}"',
            "",
        ])
        return main, snippet, lua

    def start(self, healthy=True):
        p = self.paths()
        for d in ("run", "log", "upload", "docroot"):
            p[d].mkdir(parents=True, exist_ok=True)
        p["bin"].parent.mkdir(parents=True, exist_ok=True)
        # A copy the workers' user may run wherever the checkout lives.
        shutil.copy(self.stack["CHATPATCH_BIN"], p["bin"])
        print_errors(p["bin"], p["errors"])
        main, snippet, lua = self.config()
        p["conf"].write_text(main)
        p["snippet"].write_text(snippet)
        p["lua"].write_text(lua)
        self.readable_tree()
        p["bin"].chmod(0o755)
        user = run_as_user()
        if user:
            # lighttpd creates the workers' socket, and they write their
            # log, after it dropped root.
            for d in ("run", "log", "upload"):
                shutil.chown(p[d], user[0], user[1])
            open_parents(self.work_dir)
        env = passed_env()
        if not self.to_pool:
            self.stack["WORKER_LOG"] = str(self.worker_log())
        return self._spawn([LIGHTTPD, "-D", "-f", str(p["conf"])], env, healthy)

    def log_files(self):
        p = self.paths()
        return [p["log"] / "error.log", p["log"] / "chatpatch.log",
                self.work_dir / f"{self.name}.out"]

    def access_log(self):
        """lighttpd passes no request id: the workers make one and log it in
        their access lines (rid=...)."""
        return self.worker_log()

    def worker_log(self):
        """The workers' own log (--log-file): their access lines, and any
        sanitizer report, since lighttpd sends their stderr to /dev/null."""
        return self.paths()["log"] / "chatpatch.log"
