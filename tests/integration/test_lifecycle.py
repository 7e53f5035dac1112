"""How the worker processes start, log, reload and stop (issue 10; README
"Running under systemd", "Reload and stop"), talking FastCGI to them
directly with fcgi_client.py's client (workers.py): no nginx.

Cases:
  SIGTERM with connections queued      unix and TCP pools: every queued
                                       request answered; a unix path is gone
                                       at once; exit 0
  SIGHUP                               a new generation (re-executed binary,
                                       same pid), old workers gone, served
  --log-file and SIGUSR1               lines in the file, none on stderr;
                                       after a move, the new file gets them
  as mod_fcgid starts it               socket on fd 0, stderr to /dev/null:
                                       serves, stays up while idle, exit 0 on
                                       SIGTERM
  systemd socket activation            systemd-socket-activate: the three
                                       APIs answer (rows checked); LISTEN_*
                                       gone after a reload; the socket stays
  LISTEN_PID of another process        ignored
"""

import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from conftest import SANITIZER_RE, _free_port, child_pids
from fcgi_client import fcgi_http
from helpers import lock_waiters
from hosts import alive, group_members
from test_faults import new_target
from workers import (
    START_TIMEOUT_S,
    chatpatch_bin,
    check_recoup_200,
    listening_unix_socket,
    new_rid,
    recoup_patch,
    wait_access_line,
    worker_env,
)

LOCK_WAIT_S = 10.0
QUEUED = 10  # requests left waiting in the backlog behind busy workers


def backlog(address):
    """Connections waiting in the accept queue of a listening socket (ss's
    Recv-Q), or None when ss does not list it."""
    if isinstance(address, (str, Path)):
        cmd = ["ss", "-xlnH", "src", str(address)]
    else:
        cmd = ["ss", "-tlnH", "sport", f"= :{address[1]}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split()
    if isinstance(address, (str, Path)):
        return int(out[2]) if len(out) > 2 else None
    return int(out[1]) if len(out) > 1 else None


def wait_until(predicate, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def exe_inode(pid):
    return os.stat(f"/proc/{pid}/exe").st_ino


def environ_of(pid):
    return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")


class Call(threading.Thread):
    """One request on a thread; .resp or .error once joined."""

    def __init__(self, fn, *args, **kwargs):
        super().__init__(daemon=True)
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.resp = self.error = None
        self.start()

    def run(self):
        try:
            self.resp = self.fn(*self.args, **self.kwargs)
        except Exception as e:  # reported by the test
            self.error = e


# ---- SIGTERM: every connection queued at the signal is answered -----------------------


@pytest.mark.parametrize("family", ["unix", "tcp"])
def test_sigterm_answers_every_queued_connection(spawn, short_dir, stack, db, recoup_world,
                                                 family):
    """Both workers blocked on a row lock, QUEUED more connections in the
    backlog, then SIGTERM: a unix socket's path is removed at once (new
    connections are refused while the queue drains); every queued request
    gets its 200 and its row once the lock goes; the pool exits 0."""
    w_ = recoup_world
    if family == "unix":
        address = str(short_dir / "drain.sock")
        listen = address
    else:
        address = ("127.0.0.1", _free_port())
        listen = f"{address[0]}:{address[1]}"
    w = spawn(["--listen", listen, "--workers", "2", "--statement-timeout", "10000"],
              address=address)
    w.wait_children(2)
    w.wait_serving()

    locker = psycopg.connect(stack["DATABASE_URL"], autocommit=False)
    try:
        locker.execute("SELECT 1 FROM recoup.chats WHERE id = %s FOR UPDATE", (w_.chat_id,))
        slow = [Call(recoup_patch, address, w_, f"slow {n}") for n in range(2)]
        assert wait_until(lambda: lock_waiters(db) >= 2, LOCK_WAIT_S), \
            "the two workers did not reach the lock"
        # A worker with no answer from the database for 20 ms takes no new
        # connection (serve.c, STUCK_US): from then on the queued ones stay
        # queued.
        time.sleep(0.1)
        chats = [w_.new_chat(db) for _ in range(QUEUED)]
        titles = [f"queued {n} {uuid.uuid4().hex[:6]}" for n in range(QUEUED)]
        queued = [Call(recoup_patch, address, w_, t, chat_id=c) for t, c in zip(titles, chats)]
        assert wait_until(lambda: backlog(address) == QUEUED, 10), \
            f"backlog {backlog(address)}, not {QUEUED}"

        os.kill(w.pid, signal.SIGTERM)
        if family == "unix":
            assert wait_until(lambda: not os.path.exists(address), 2), \
                "the socket path is still there 2 s after SIGTERM"
            with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
                fcgi_http(address, "GET", "/healthz", timeout=2)
            late = None
        else:
            # TCP has no path to remove: a connection made during the drain
            # is queued, and answered too.
            late_chat = w_.new_chat(db)
            late_title = f"late {uuid.uuid4().hex[:6]}"
            late = Call(recoup_patch, address, w_, late_title, chat_id=late_chat)
            assert wait_until(lambda: backlog(address) == QUEUED + 1, 5), backlog(address)
        time.sleep(0.3)
        assert w.proc.poll() is None, "the pool exited with requests in flight"
        locker.commit()  # the slow requests go on, then the queue
    finally:
        locker.close()

    for call in slow + queued + ([late] if late else []):
        call.join(30)
        assert not call.is_alive(), "a request was never answered"
        assert call.error is None, f"no answer: {call.error!r}"
    for n, call in enumerate(slow):
        assert call.resp.status == 200, call.resp
    for call, title, chat in zip(queued, titles, chats):
        check_recoup_200(call.resp, db, w_, title, chat_id=chat)
    if late:
        check_recoup_200(late.resp, db, w_, late_title, chat_id=late_chat)
    try:
        assert w.proc.wait(timeout=15) == 0, w.describe()
    except subprocess.TimeoutExpired:
        pytest.fail(f"the pool did not exit: {w.describe()}")
    assert not group_members(w.pid), group_members(w.pid)
    with pytest.raises((FileNotFoundError, ConnectionRefusedError)):
        fcgi_http(address, "GET", "/healthz", timeout=2)
    log = w.log()
    assert "removed" in log if family == "unix" else "removed" not in log, log


# ---- SIGHUP: a new generation -------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGUSR2], ids=["HUP", "USR2"])
def test_sighup_new_generation_same_pid(spawn, stack, short_dir, tmp_path, db, recoup_world,
                                        sig):
    """The binary at the path is replaced, then SIGHUP (or SIGUSR2, PHP-FPM's
    reload signal): the parent keeps its
    pid and runs the new file, as do two new workers; the old workers are
    gone; requests are answered throughout, on the same socket."""
    binary = tmp_path / "chatpatch"
    shutil.copy2(chatpatch_bin(stack), binary)
    sock = str(short_dir / "hup.sock")
    w = spawn(["--listen", sock, "--workers", "2"], address=sock, binary=binary)
    old = w.wait_children(2)
    w.wait_serving()
    sock_ino = os.stat(sock).st_ino
    first = exe_inode(w.pid)

    fresh = tmp_path / "chatpatch.new"
    shutil.copy2(chatpatch_bin(stack), fresh)
    os.replace(fresh, binary)  # as an install does: a new file at the path
    new_ino = os.stat(binary).st_ino
    assert new_ino != first
    os.kill(w.pid, sig)
    new = wait_until(lambda: (lambda k: k if len(k) == 2 and not k & old else None)(
        child_pids(w.pid)), START_TIMEOUT_S)
    assert new, f"no new generation: children {child_pids(w.pid)}, old {old}\n{w.describe()}"
    assert wait_until(lambda: not any(alive(p) for p in old), 10), \
        f"old workers still running: {[p for p in old if alive(p)]}"
    assert w.proc.poll() is None and exe_inode(w.pid) == new_ino, "the parent did not re-execute"
    assert all(exe_inode(p) == new_ino for p in new), "the new workers run the old binary"
    assert os.stat(sock).st_ino == sock_ino, "the socket was made anew"
    for i in range(4):
        title = f"after hup {i} {uuid.uuid4().hex[:6]}"
        rid = new_rid()
        check_recoup_200(recoup_patch(sock, recoup_world, title, rid), db, recoup_world, title,
                         rid)
    lines, text = wait_access_line(w, rid)
    assert len(lines) == 1 and any(f"[{p}]" in lines[0] for p in new), lines
    assert "re-executing" in text and "retire" in text, text
    assert w.terminate() == 0, w.describe()


def test_sighup_without_a_binary_keeps_serving(spawn, stack, short_dir, tmp_path, db,
                                               recoup_world):
    """SIGHUP when the binary's path holds nothing: the pool logs why and
    its workers go on."""
    binary = tmp_path / "chatpatch"
    shutil.copy2(chatpatch_bin(stack), binary)
    sock = str(short_dir / "nobin.sock")
    w = spawn(["--listen", sock, "--workers", "2"], address=sock, binary=binary)
    kids = w.wait_children(2)
    w.wait_serving()
    binary.unlink()
    os.kill(w.pid, signal.SIGHUP)
    assert wait_until(lambda: "cannot re-execute" in w.log(), 10), w.describe()
    time.sleep(0.3)
    assert w.proc.poll() is None and child_pids(w.pid) == kids, w.describe()
    title = f"no binary {uuid.uuid4().hex[:6]}"
    check_recoup_200(recoup_patch(sock, recoup_world, title), db, recoup_world, title)
    assert w.terminate() == 0, w.describe()


# ---- --log-file and SIGUSR1 ------------------------------------------------------------------


def test_log_file_reopened_on_sigusr1(spawn, short_dir, tmp_path, db, recoup_world):
    """--log-file: access lines (from the workers) and the pool's lines go to
    the file, nothing to stderr. After the file is moved (logrotate) and
    SIGUSR1, new lines go to a new file at the path, none to the old one."""
    sock = str(short_dir / "log.sock")
    path = tmp_path / "chatpatch.log"
    w = spawn(["--listen", sock, "--workers", "2", "--log-file", str(path)], address=sock)
    kids = w.wait_children(2)
    w.wait_serving()
    rid1 = new_rid()
    title = f"logfile {uuid.uuid4().hex[:6]}"
    check_recoup_200(recoup_patch(sock, recoup_world, title, rid1), db, recoup_world, title,
                     rid1)
    lines, _ = wait_access_line(path, rid1)
    assert len(lines) == 1, path.read_text()
    assert " info: pool: 2 workers" in path.read_text()

    rotated = tmp_path / "chatpatch.log.1"
    os.rename(path, rotated)
    os.kill(w.pid, signal.SIGUSR1)
    assert wait_until(path.exists, 5), "no new file after SIGUSR1"
    time.sleep(0.5)  # the workers reopen when they next look
    rids = []
    for i in range(6):  # both workers get some
        rid = new_rid()
        rids.append(rid)
        t = f"{title} {i}"
        check_recoup_200(recoup_patch(sock, recoup_world, t, rid), db, recoup_world, t, rid)
    for rid in rids:
        lines, text = wait_access_line(path, rid)
        assert len(lines) == 1, f"{rid} not in the new file:\n{text}"
    old_text = rotated.read_text()
    assert rid1 in old_text and not any(r in old_text for r in rids), old_text
    assert child_pids(w.pid) == kids, "SIGUSR1 replaced workers"
    assert w.terminate() == 0
    assert "pool: stopped" in path.read_text()
    assert w.log() == "", f"stderr not empty with --log-file: {w.log()[:2000]}"


def test_log_file_that_cannot_be_opened_exits_1(stack, short_dir):
    proc = subprocess.run(
        [chatpatch_bin(stack), "--listen", str(short_dir / "x.sock"), "--log-file",
         str(short_dir / "no" / "such" / "dir.log")],
        env=worker_env(stack), stdin=subprocess.DEVNULL, capture_output=True, timeout=15)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, (proc.returncode, err)
    assert "--log-file" in err and "No such file" in err, err
    assert not (short_dir / "x.sock").exists()


# ---- as mod_fcgid starts it --------------------------------------------------------------------


@pytest.mark.parametrize("workers", [None, 2], ids=["single-process", "workers-2"])
def test_mod_fcgid_style(stack, short_dir, tmp_path, db, recoup_world, workers):
    """mod_fcgid (and lighttpd) pass a listening socket on fd 0 and send
    stderr to /dev/null. With --log-file the lines are kept; the worker
    serves, stays up while idle and after many requests, and exits 0 on
    the host's SIGTERM."""
    sock = short_dir / "fcgid.sock"
    listener = listening_unix_socket(sock)
    path = tmp_path / "fcgid.log"
    args = ["--log-file", str(path)] + ([] if workers is None else ["--workers", str(workers)])
    proc = subprocess.Popen([chatpatch_bin(stack), *args], stdin=listener.fileno(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=worker_env(stack), start_new_session=True)
    listener.close()  # as the host does: only the worker holds it
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                assert fcgi_http(str(sock), "GET", "/healthz", timeout=5).status == 200
                break
            except (ConnectionError, OSError):
                assert proc.poll() is None and time.monotonic() < deadline, path.read_text()
                time.sleep(0.05)
        servers = child_pids(proc.pid) or {proc.pid}
        assert len(servers) == (workers or 1), servers
        rids = []
        for i in range(40):
            rid = new_rid()
            rids.append(rid)
            resp = fcgi_http(str(sock), "GET", "/healthz", request_id=rid)
            assert resp.status == 200, resp
        time.sleep(3)  # idle: no idle exit
        assert proc.poll() is None, f"exited by itself ({proc.returncode}): {path.read_text()}"
        assert (child_pids(proc.pid) or {proc.pid}) == servers, "a worker exited by itself"
        title = f"fcgid {uuid.uuid4().hex[:6]}"
        check_recoup_200(recoup_patch(str(sock), recoup_world, title), db, recoup_world, title)
        for rid in rids:
            lines, text = wait_access_line(path, rid)
            assert len(lines) == 1, text
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not group_members(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    text = path.read_text()
    assert not SANITIZER_RE.search(text), text
    assert sock.exists(), "the host's socket path was removed"


# ---- systemd socket activation -------------------------------------------------------------


def _fcgi_headers(target):
    return {k: v for k, v in target.headers if k != "content-type"}


def test_systemd_socket_activation(stack, short_dir, tmp_path, db):
    """systemd-socket-activate (from Debian's systemd) creates the socket,
    and on the first connection starts the pool with it as fd 3 and
    LISTEN_FDS/LISTEN_PID set. A PATCH of each API is answered and stored;
    after a reload the parent's environment holds no LISTEN_* variable and
    requests are still answered; SIGTERM exits 0 and leaves systemd's socket."""
    sock = short_dir / "sa.sock"
    path = tmp_path / "sa.log"
    proc = subprocess.Popen(
        ["systemd-socket-activate", "-l", str(sock), "-E", "DATABASE_URL",
         chatpatch_bin(stack), "--workers", "2", "--log-file", str(path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=worker_env(stack), start_new_session=True)
    try:
        assert wait_until(sock.exists, 10), proc.stderr.read1().decode() if proc.poll() else ""
        targets = [new_target(db, kind) for kind in ("recoup", "neptun", "leanmcp")]

        def patch_all(tag):
            for t in targets:
                value = f"{tag} {t.kind} {uuid.uuid4().hex[:6]}"
                resp = fcgi_http(str(sock), "PATCH", t.path, t.body(value), _fcgi_headers(t),
                                 request_id=new_rid(), timeout=START_TIMEOUT_S)
                assert resp.status == 200, (t.kind, resp)
                got = resp.json()
                assert got == t.expected_ok(value, got), (t.kind, got)
                assert t.stored_value(db) == value, t.kind

        patch_all("activated")
        # systemd-socket-activate execs the program: the pool is its pid.
        assert exe_inode(proc.pid) == os.stat(chatpatch_bin(stack)).st_ino
        kids = child_pids(proc.pid)
        assert len(kids) == 2, kids
        text = path.read_text()
        assert "socket passed by systemd" in text, text

        os.kill(proc.pid, signal.SIGHUP)
        assert wait_until(lambda: (lambda k: len(k) == 2 and not k & kids)(child_pids(proc.pid)),
                          START_TIMEOUT_S), path.read_text()
        env = environ_of(proc.pid)  # what the re-executed image was given
        assert not [e for e in env if e.startswith((b"LISTEN_FDS=", b"LISTEN_PID="))], env
        patch_all("reloaded")

        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, path.read_text()
        assert sock.exists(), "systemd's socket path was removed"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stderr.close()
    assert not SANITIZER_RE.search(path.read_text())


@pytest.mark.parametrize("listen_pid", ["own", "other"])
def test_listen_pid_decides_whose_socket_it_is(stack, short_dir, listen_pid):
    """A socket on fd 3 with LISTEN_FDS=1: served when LISTEN_PID is the
    worker's own pid (as systemd sets it), ignored when it names another
    process (with no other socket and no CGI request: usage, exit 2)."""
    sock = short_dir / "fd3.sock"
    listener = listening_unix_socket(sock)
    pid_value = "$$" if listen_pid == "own" else "1"
    # The shell puts the socket on fd 3 and /dev/null on fd 0, then becomes
    # the worker, keeping its pid.
    script = f'export LISTEN_PID={pid_value}; exec 3<&0 0</dev/null; exec "$0" "$@"'
    proc = subprocess.Popen(["sh", "-c", script, chatpatch_bin(stack)],
                            env=worker_env(stack, LISTEN_FDS="1"), stdin=listener.fileno(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    listener.close()
    try:
        if listen_pid == "other":
            out, err = proc.communicate(timeout=15)
            err = err.decode(errors="replace")
            assert proc.returncode == 2, (proc.returncode, err)
            assert "Usage: chatpatch" in err and out == b"", err
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                resp = fcgi_http(str(sock), "GET", "/healthz", timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)
        assert resp.status == 200 and resp.json() == {"status": "ok"}, resp
        assert child_pids(proc.pid) == set(), "no --workers: the process serves alone"
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert not SANITIZER_RE.search(proc.stderr.read().decode(errors="replace"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.stdout.close()
        proc.stderr.close()
