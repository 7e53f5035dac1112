"""Opening a database connection never holds up the worker (cgi/db.c).

A worker opens its PostgreSQL connections as it needs them, without
blocking: while one connects, the requests it has in hand go on the
connections already open. These tests put a TCP proxy between one worker
and the stack's PostgreSQL that passes connections through until it is
told to hold them: from then on it takes each new connection and never
answers, as a server whose kernel accepts but whose postmaster is hung.

  - test_hung_connect_holds_up_no_request: the worker has one connection
    open (through the proxy) when the proxy starts holding. Bursts of
    concurrent PATCHes make it open its second, which hangs: every request
    is answered 200 with its row updated, none after more than a second
    (a worker that connected in its loop answered none for the 2 s of
    connect_timeout); the worker gives the hung connection up at that
    timeout (it closes it, and logs so). Once the proxy passes connections
    again, the worker opens its second connection for the next bursts.
  - test_first_connect_hung_answers_503: the worker's first connection
    hangs: its first request is answered 503 with Retry-After once the
    connect timeout is up, never later; with the proxy passing again, the
    next request is answered 200.
  - test_hung_first_host_next_host_serves: DATABASE_URL names two hosts,
    the proxy holding (a primary that hangs) and then PostgreSQL itself:
    after the connect timeout on the first the worker tries the second, as
    libpq's own connect does, and the request is answered 200.
"""

import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, quote, unquote, urlparse

import pytest

from conftest import fetch_recoup_chat, recoup_new_chat
from fcgi_client import KeptConnection
from helpers import recoup_error
from test_faults import wait_for
from workers import check_recoup_200, recoup_patch, worker_env

CONNECT_TIMEOUT_S = 2.0  # cgi/main.c's connect_timeout_s
# A request on an open connection takes milliseconds; one held up by a
# connect in the worker's loop took the whole connect timeout.
PROMPT_S = 1.0
BURST = 8


class HoldingProxy:
    """127.0.0.1:port -> the PostgreSQL unix socket `upstream`. Passes every
    connection through until hold(); from then on accepts them and never
    answers (pass_again() ends that). Counts the held ones, and those the
    client closed."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.holding = False
        self.held = 0
        self.held_closed = 0
        self.passed = 0
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self):
        self.holding = True

    def pass_again(self):
        self.holding = False

    def close(self):
        """Ends every connection: shut down first, which wakes the threads
        blocked on them (a close alone would leave PostgreSQL's side open)."""
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.sockets.append(client)
            if self.holding:
                with self.lock:
                    self.held += 1
                threading.Thread(target=self._hold, args=(client,), daemon=True).start()
                continue
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            server.connect(self.upstream)
            self.sockets.append(server)
            with self.lock:
                self.passed += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _hold(self, client):
        """Reads and drops what the client sends until it closes."""
        try:
            while client.recv(4096):
                pass
        except OSError:
            return
        with self.lock:
            self.held_closed += 1

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def proxy(stack):
    p = HoldingProxy(f"{socket_folder(stack)}/.s.PGSQL.{stack['PGPORT']}")
    yield p
    p.close()


def socket_folder(stack):
    return unquote(parse_qs(urlparse(stack["DATABASE_URL"]).query)["host"][0])


def proxied_url(stack, proxy):
    url = urlparse(stack["DATABASE_URL"])
    return (f"postgresql://{url.username}@127.0.0.1:{proxy.port}{url.path}"
            "?sslmode=disable&gssencmode=disable")


def start_worker(spawn, short_dir, stack, database_url, *args):
    """One worker on a socket of its own, with database_url; returned once
    it listens (it connects when a request needs it)."""
    sock = short_dir / "w.sock"
    w = spawn(["--listen", str(sock), "--workers", "1", *args], address=str(sock),
              env=worker_env(stack, DATABASE_URL=database_url))
    deadline = time.monotonic() + 20
    while not sock.exists():
        assert w.proc.poll() is None, f"exited early: {w.describe()}"
        assert time.monotonic() < deadline, f"not listening: {w.describe()}"
        time.sleep(0.05)
    return w


def timed(fn):
    t0 = time.monotonic()
    resp = fn()
    return resp, time.monotonic() - t0


def test_hung_connect_holds_up_no_request(spawn, short_dir, stack, db, proxy, recoup_world):
    w_ = recoup_world
    chats = [recoup_new_chat(db, w_.session_id) for _ in range(BURST)]
    w = start_worker(spawn, short_dir, stack, proxied_url(stack, proxy), "--db-connections", "2")
    # Kept connections, as nginx keeps them: a worker serves the requests
    # of those it holds side by side (new connections go to idle workers).
    # Each opened as its first request goes, as nginx does (a worker reads
    # a connection's request as it accepts it), one after the other, so
    # all on one database connection.
    kept = []
    for c in chats:
        kept.append(KeptConnection(w.address))
        w.keep.append(kept[-1])
        check_recoup_200(recoup_patch(kept[-1], w_, "warm", chat_id=c), db, w_, "warm",
                         chat_id=c)
    assert proxy.passed == 1, proxy.passed

    def burst(tag):
        titles = {c: f"{tag}-{uuid.uuid4().hex[:8]}" for c in chats}
        with ThreadPoolExecutor(BURST) as pool:
            got = list(pool.map(lambda kc: (kc[1], *timed(
                lambda: recoup_patch(kc[0], w_, titles[kc[1]], chat_id=kc[1]))),
                zip(kept, chats)))
        for c, resp, _ in got:
            check_recoup_200(resp, db, w_, titles[c], chat_id=c)
        return [s for _, _, s in got]

    proxy.hold()
    slowest, rounds = 0.0, 0
    # Past the connect timeout, short of the worker's next try (1 s later).
    t_end = time.monotonic() + CONNECT_TIMEOUT_S + 0.3
    while time.monotonic() < t_end or not proxy.held:
        slowest = max(slowest, *burst(f"held{rounds}"))
        rounds += 1
        assert rounds < 200, "the worker never opened a second connection"
    assert slowest < PROMPT_S, (
        f"a request took {slowest:.2f} s while the second connection hung: "
        f"the worker waited for it\n{w.describe()}")
    assert wait_for(lambda: proxy.held_closed == proxy.held, CONNECT_TIMEOUT_S + 2.0), (
        f"the hung connection was not closed\n{w.describe()}")
    assert "not set up within 2 s" in w.log(), w.describe()

    # Passing again: after its wait (1 s), the worker opens its second.
    proxy.pass_again()
    deadline = time.monotonic() + 10
    while proxy.passed < 2:
        burst("again")
        assert time.monotonic() < deadline, f"no second connection: {w.describe()}"
    assert fetch_recoup_chat(db, chats[0])["title"].startswith("again-")
    for conn in kept:  # the stopping worker waits for them (SIGTERM)
        conn.close()


def test_first_connect_hung_answers_503(spawn, short_dir, stack, db, proxy, recoup_world):
    w_ = recoup_world
    proxy.hold()
    w = start_worker(spawn, short_dir, stack, proxied_url(stack, proxy), "--db-connections", "2")
    before = fetch_recoup_chat(db, w_.chat_id)
    resp, took = timed(lambda: recoup_patch(w.address, w_, "never"))
    assert resp.status == 503, resp
    assert resp.headers.get("retry-after") == "1", resp.headers
    assert resp.json() == recoup_error("Service Unavailable"), resp.body
    assert CONNECT_TIMEOUT_S - 0.2 <= took < CONNECT_TIMEOUT_S + 2.0, took
    assert fetch_recoup_chat(db, w_.chat_id) == before
    assert proxy.held == 1 and proxy.passed == 0, (proxy.held, proxy.passed)

    proxy.pass_again()
    resp = recoup_patch(w.address, w_, "then")
    check_recoup_200(resp, db, w_, "then")


def test_hung_first_host_next_host_serves(spawn, short_dir, stack, db, proxy, recoup_world):
    w_ = recoup_world
    proxy.hold()
    url = urlparse(stack["DATABASE_URL"])
    two_hosts = (f"postgresql://{url.username}@{url.path}?host=127.0.0.1,"
                 f"{quote(socket_folder(stack), safe='')}&port={proxy.port},{stack['PGPORT']}"
                 "&sslmode=disable&gssencmode=disable&target_session_attrs=read-write")
    w = start_worker(spawn, short_dir, stack, two_hosts)
    resp, took = timed(lambda: recoup_patch(w.address, w_, "second host"))
    check_recoup_200(resp, db, w_, "second host")
    assert CONNECT_TIMEOUT_S - 0.2 <= took, took
    assert proxy.held == 1, proxy.held
    assert "not set up within 2 s (host 127.0.0.1)" in w.log(), w.describe()
