"""Integration fixtures and helpers shared by every API's tests.

One stack per test session (PostgreSQL, migrations, demo data, the worker
pool, nginx; all on ports found at run time, in a fresh temp dir), started by
scripts/stack.sh exactly as ops start it, and stopped at the end even when
tests fail. Every test makes its own rows (uuid-based ids), so tests never
depend on each other or on their order.

Helpers other test files import (`from conftest import ...`):
  assert_json_response  status, exact JSON body and the common headers
  assert_json_headers   the common headers alone
  run_cgi               one request through the worker in CGI mode
  pg_log_window         statements the worker ran between two log markers
  non_postgres_logs     the worker's and nginx's logs, to search for secrets
  fetch_one, fetch_all  query results as dicts
  fetch_recoup_chat     a recoup.chats row as a dict
  child_pids            children of a process (the worker pool)
  printed_body          one body `chatpatch --print-errors` wrote
  make_stack_dir, stack_env, run_stack, remove_stack_dir
                        the steps of a stack of one's own (test_faults.py)
Tables and helpers without fixtures are in helpers.py. The fixtures
`short_dir` and `spawn` start a test's own chatpatch processes; the helpers
to talk to them are in workers.py.
"""

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import hosts
import psycopg
import pytest
from psycopg.rows import dict_row

import openapi_check

REPO = Path(__file__).resolve().parents[2]
STACK_SH = REPO / "scripts" / "stack.sh"
DEFAULT_BIN = REPO / "build" / "asan" / "chatpatch"
WORKERS = 2

# log_line_prefix carries the application name so the worker's statements
# (application_name=chatpatch) can be told apart from the tests' own.
PG_EXTRA_CONF = "\n".join(
    [
        "log_min_duration_statement = 0",
        "log_statement = 'none'",
        "log_duration = off",
        "log_line_prefix = '%m [%p] app=%a '",
    ]
)
TEST_APP_NAME = "chatpatch-tests"

# nginx's $request_id; behind another host, that host's id (hosts.py).
REQUEST_ID_RE = hosts.request_id_re()
TIMESTAMP_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer"
)


# ---- the stack ---------------------------------------------------------------


_free_port = hosts.free_port
_tail = hosts.tail


def _parse_stack_env(path):
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :]
        for word in shlex.split(line):
            key, sep, value = word.partition("=")
            if sep:
                env[key] = value
    return env


def _stack_logs(stack_dir):
    log = Path(stack_dir) / "log"
    return "\n".join(
        f"---- {p} (tail) ----\n{_tail(p)}"
        for p in (log / "postgres.log", log / "chatpatch.log", log / "nginx-error.log")
        if p.exists()
    ) or f"<no logs under {log}>"


def make_stack_dir(prefix):
    """A fresh temp folder for a stack's STACK_DIR."""
    stack_dir = tempfile.mkdtemp(prefix=prefix)
    # PostgreSQL runs as the postgres user and must be able to enter the dir.
    os.chmod(stack_dir, 0o755)
    return stack_dir


# nginx's per-client request rate for the tests' stacks. The tests are one
# address acting as many clients, as fast as the machine goes (the fault
# tests' load reaches hundreds of requests per second on 2 cores), which no
# rate fit for one real client allows. The other limits keep stack.sh's
# defaults; test_client_limits.py runs a stack with all of them.
TEST_STACK_LIMITS = {"LIMIT_REQ_RATE": "100000", "LIMIT_REQ_BURST": "100000"}


def stack_env(stack_dir, workers, **extra):
    """The environment for stack.sh: ours, plus the stack's folder, free ports,
    `workers`, the binary under test, our PostgreSQL settings, the tests'
    request rate (TEST_STACK_LIMITS) and `extra`."""
    env = dict(os.environ)
    env.update(
        STACK_DIR=stack_dir,
        PORT=str(_free_port()),
        PGPORT=str(_free_port()),
        PGBOUNCER_PORT=str(_free_port()),  # used when PGBOUNCER=1 (make test-pgbouncer)
        WORKERS=str(workers),

        CHATPATCH_BIN=os.environ.get("CHATPATCH_BIN", str(DEFAULT_BIN)),
        PG_EXTRA_CONF=PG_EXTRA_CONF,
    )
    env.update(TEST_STACK_LIMITS)
    env.update(extra)
    return env


def run_stack(cmd, env, timeout):
    """scripts/stack.sh `cmd` (up, down) with `env`; the CompletedProcess (text)."""
    return subprocess.run(["bash", str(STACK_SH), cmd], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def remove_stack_dir(stack_dir):
    """Removes a stopped stack's folder, unless CHATPATCH_KEEP_STACK is set."""
    if os.environ.get("CHATPATCH_KEEP_STACK"):
        print(f"\nkeeping {stack_dir}")
    else:
        shutil.rmtree(stack_dir, ignore_errors=True)


def start_stack(stack_dir, env):
    """stack.sh up with `env` (stack_env()) for a module's own stack: stack.env
    as a dict, plus STACK_DIR, CHATPATCH_BIN, WORKERS, PORT and _ENV (the
    knobs, for stack.sh up again). Fails the test, with the stack's logs,
    when it does not come up."""
    up = run_stack("up", env, 300)
    env_file = Path(stack_dir) / "stack.env"
    if up.returncode != 0 or not env_file.exists():
        pytest.fail(f"stack.sh up failed (exit {up.returncode})\n{up.stderr[-4000:]}\n"
                    f"{_stack_logs(stack_dir)}", pytrace=False)
    values = _parse_stack_env(env_file)
    values.update(STACK_DIR=stack_dir, CHATPATCH_BIN=env["CHATPATCH_BIN"],
                  WORKERS=env["WORKERS"], PORT=int(env["PORT"]), _ENV=env)
    return values


def pidfile_pid(path):
    """The pid a pid file names, or None."""
    try:
        text = Path(path).read_text().split()
        return int(text[0]) if text else None
    except (OSError, ValueError):
        return None


def stack_pids(stack_dir):
    """Every process of the stack that we know of: nginx, the pool and its
    children, the postmaster (and PostgreSQL's own children)."""
    run = Path(stack_dir) / "run"
    pids = set()
    for pid in (pidfile_pid(run / "nginx.pid"), pidfile_pid(run / "chatpatch.pid"),
                pidfile_pid(Path(stack_dir) / "pg" / "postmaster.pid")):
        if pid and hosts.alive(pid):
            pids.add(pid)
            pids |= child_pids(pid)
    return pids


def stop_stack(stack_dir, env, started, also=(), logs=("chatpatch.log",)):
    """stack.sh down for a module's own stack; SIGKILLs what of it (and of
    the pids `also`) still runs, and removes its folder. When it had
    started, fails the test on a failed down, on processes left running,
    or on a sanitizer report in `logs` (paths under STACK_DIR/log, or
    absolute)."""
    before_down = stack_pids(stack_dir) | set(also)
    down = run_stack("down", env, 120)
    leftover = hosts.kill_leftovers(before_down)  # ours: started by this stack's up
    log_dir = Path(stack_dir) / "log"
    reports = "".join(sanitizer_reports(log_dir / name) for name in logs)
    details = _stack_logs(stack_dir) if (down.returncode or leftover or reports) else ""
    remove_stack_dir(stack_dir)
    if started and down.returncode != 0:
        pytest.fail(f"stack.sh down failed ({down.returncode}): {down.stderr[-2000:]}\n{details}")
    if started and leftover:
        pytest.fail(f"processes still running after stack.sh down (SIGKILLed): {leftover}")
    if started and reports:
        pytest.fail(f"sanitizer reports in the workers' logs:\n{reports[-4000:]}")


@pytest.fixture(scope="session")
def stack():
    """The running stack: stack.env as a dict (BASE_URL, DATABASE_URL, ...)."""
    if not STACK_SH.exists():
        pytest.fail(f"{STACK_SH} does not exist")
    stack_dir = make_stack_dir("chatpatch-test-")
    env = stack_env(stack_dir, WORKERS)
    started = False
    try:
        up = run_stack("up", env, 300)
        env_file = Path(stack_dir) / "stack.env"
        if up.returncode != 0 or not env_file.exists():
            pytest.fail(
                f"stack.sh up failed (exit {up.returncode}, stack.env "
                f"{'present' if env_file.exists() else 'missing'})\n"
                f"---- stdout ----\n{up.stdout[-4000:]}\n---- stderr ----\n{up.stderr[-4000:]}\n"
                f"{_stack_logs(stack_dir)}",
                pytrace=False,
            )
        values = _parse_stack_env(env_file)
        values.setdefault("STACK_DIR", stack_dir)
        values["CHATPATCH_BIN"] = env["CHATPATCH_BIN"]
        values["WORKERS"] = str(WORKERS)
        values["_ENV"] = env
        missing = [
            k
            for k in ("BASE_URL", "PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "DATABASE_URL",
                      "STACK_DIR", "CHATPATCH_PIDFILE")
            if k not in values
        ]
        if missing:
            pytest.fail(f"stack.env lacks {missing}: {values}", pytrace=False)
        started = True
        with behind_host(values, stack_dir):
            yield values
    finally:
        down = run_stack("down", env, 120)
        reports = sanitizer_reports(Path(stack_dir) / "log" / "chatpatch.log")
        remove_stack_dir(stack_dir)
        if started and down.returncode != 0:
            pytest.fail(f"stack.sh down failed ({down.returncode}): {down.stderr[-2000:]}")
        if started and reports:
            pytest.fail(f"sanitizer reports in chatpatch.log at shutdown:\n{reports[-4000:]}")


@contextlib.contextmanager
def behind_host(values, stack_dir):
    """Starts the host CHATPATCH_HOST names (hosts.py) beside the stack and
    points values["BASE_URL"] at it; nothing for the stack's own nginx."""
    values["HOST"] = hosts.CURRENT
    if hosts.CURRENT not in hosts.HOSTS:
        pytest.fail(f"CHATPATCH_HOST={hosts.CURRENT}: not one of {sorted(hosts.HOSTS)}",
                    pytrace=False)
    host = hosts.HOSTS[hosts.CURRENT](values, Path(stack_dir) / "host")
    try:
        values["BASE_URL"] = host.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    # The log where each request's id shows as id=<X-Request-Id>.
    values["ACCESS_LOG"] = str(host.access_log())
    try:
        yield
    finally:
        host.stop()


def sanitizer_reports(path, offset=0):
    """Text from `offset` on of a log if it holds an ASan/UBSan/LSan report, else ''."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return text if SANITIZER_RE.search(text) else ""


@pytest.fixture(autouse=True)
def _no_sanitizer_reports(stack):
    """Fails the test during which the worker logged a sanitizer report: the
    pool's log, and the log of the workers a host spawns itself (WORKER_LOG,
    set by such a host: lighttpd, fcgiwrap)."""
    logs = [Path(stack["STACK_DIR"]) / "log" / "chatpatch.log"]
    if stack.get("WORKER_LOG"):
        logs.append(Path(stack["WORKER_LOG"]))
    starts = [log.stat().st_size if log.exists() else 0 for log in logs]
    yield
    for log, start in zip(logs, starts):
        reports = sanitizer_reports(log, start)
        if reports:
            pytest.fail(f"sanitizer report in {log.name} during this test:\n{reports[-4000:]}")


@pytest.fixture(scope="session")
def printed_errors(stack, tmp_path_factory):
    """What `chatpatch --print-errors DIR` wrote: (DIR, {api name: (path
    prefix, Allow, CORS origin or "-")}) from DIR/routes.tsv."""
    out = tmp_path_factory.mktemp("errors")
    subprocess.run([stack["CHATPATCH_BIN"], "--print-errors", str(out)], check=True, timeout=30)
    routes = {}
    for line in (out / "routes.tsv").read_text().splitlines():
        name, prefix, allow, origin = line.split("\t")
        routes[name] = (prefix, allow, origin)
    return out, routes


def printed_body(out, prefix, status):
    """The printed body for status under prefix, parsed; None when absent."""
    path = out / prefix.strip("/") / f"{status}.json" if prefix else out / f"{status}.json"
    return json.loads(path.read_text()) if path.exists() else None


@pytest.fixture(scope="session")
def printed_error_bodies(printed_errors):
    """([(prefix, CORS origin or None)] of each API, body(prefix, status):
    the printed document, parsed; prefix "" is the generic one)."""
    out, apis = printed_errors
    routes = [(prefix, None if origin == "-" else origin) for prefix, _, origin in apis.values()]
    return routes, lambda prefix, status: printed_body(out, prefix, status)


@pytest.fixture(scope="session")
def base_url(stack):
    return stack["BASE_URL"]


@pytest.fixture(scope="session")
def http(base_url):
    """The tests' client; every answer it gets is checked against
    docs/openapi.yaml (openapi_check.py)."""
    with httpx.Client(base_url=base_url, timeout=15, event_hooks=openapi_check.EVENT_HOOKS) as client:
        yield client


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "hosts_own_answers: the test checks answers a web server other than "
        "nginx gives itself, which docs/openapi.yaml does not describe: not checked against it")


@pytest.fixture(autouse=True)
def _answers_as_documented(request):
    """Fails the test that received an answer docs/openapi.yaml does not
    describe, also when a thread of the test received it."""
    openapi_check.set_checking(request.node.get_closest_marker("hosts_own_answers") is None)
    openapi_check.take_mismatches()
    yield
    openapi_check.set_checking(True)

    mismatches = openapi_check.take_mismatches()
    if mismatches:
        pytest.fail("answers not as docs/openapi.yaml says:\n" + "\n".join(mismatches[:20]))


@pytest.fixture(scope="session")
def db(stack):
    """Autocommit connection as the cluster's superuser (stack.env PGUSER)."""
    conn = psycopg.connect(
        stack["DATABASE_URL"], autocommit=True, application_name=TEST_APP_NAME, row_factory=dict_row
    )
    yield conn
    conn.close()


# ---- responses ----------------------------------------------------------------


def assert_json_response(resp, status, body, *, request_id=True):
    """Exact status and parsed JSON body, plus the headers every answer carries.

    `resp` is an httpx.Response. `body` is compared with == after parsing, so
    key order is not checked here (check list(resp.json()...keys()) for that).
    """
    assert resp.status_code == status, (
        f"{resp.request.method} {resp.request.url.raw_path.decode()}: "
        f"status {resp.status_code} != {status}; body {resp.content[:500]!r}"
    )
    assert_json_headers(resp, request_id=request_id)
    try:
        got = json.loads(resp.content)
    except ValueError:
        raise AssertionError(f"body is not JSON: {resp.content[:500]!r}") from None
    assert got == body, f"body {got!r} != {body!r}"
    return got


def assert_json_headers(resp, request_id=True):
    """The headers every JSON answer carries: exactly one Content-Type
    (application/json; charset=utf-8), Cache-Control: no-store and, unless
    request_id is false, exactly one X-Request-Id of 32 hex digits."""
    assert resp.headers.get_list("content-type") == ["application/json; charset=utf-8"], resp.headers
    assert resp.headers.get_list("cache-control") == ["no-store"], resp.headers
    if request_id:
        ids = resp.headers.get_list("x-request-id")
        assert len(ids) == 1 and REQUEST_ID_RE.match(ids[0]), f"X-Request-Id: {ids}"


def assert_json_shape(resp, status):
    """Status, common headers, and a JSON object body whose content is unspecified."""
    assert resp.status_code == status, f"status {resp.status_code} != {status}; {resp.content[:500]!r}"
    assert_json_headers(resp)
    got = json.loads(resp.content)
    assert isinstance(got, dict), got
    return got


def json_body(value, ensure_ascii=True):
    """Request body bytes: bytes and str pass through, anything else is JSON-encoded."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=ensure_ascii).encode()


# ---- CGI mode -------------------------------------------------------------------


def run_cgi(stack, method, path, headers=None, body=b"", content_type="application/json",
            query="", timeout=60):
    """Runs CHATPATCH_BIN once as a CGI program; returns (status, headers, body).

    The body goes in through a pipe (not a socket), as a CGI host gives it.
    Headers come back as a dict with lower-cased names. A sanitizer report on
    stderr, or an answer docs/openapi.yaml does not describe, fails the
    calling test.
    """
    env = {k: os.environ[k] for k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
                                      "LANG", "LC_ALL") if k in os.environ}
    env.update(
        GATEWAY_INTERFACE="CGI/1.1",
        SERVER_PROTOCOL="HTTP/1.1",
        SERVER_SOFTWARE="pytest",
        REQUEST_METHOD=method,
        PATH_INFO=path,
        SCRIPT_NAME="",
        REQUEST_URI=path + ("?" + query if query else ""),
        QUERY_STRING=query,
        DATABASE_URL=stack["DATABASE_URL"],
    )
    if content_type is not None:
        env["CONTENT_TYPE"] = content_type
    if body or method not in ("GET", "HEAD"):
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[key] = value
        else:
            env["HTTP_" + key] = value
    proc = subprocess.run(
        [stack["CHATPATCH_BIN"]], env=env, input=body, capture_output=True, timeout=timeout
    )
    err = proc.stderr.decode(errors="replace")
    assert not SANITIZER_RE.search(err), f"sanitizer report from CGI run:\n{err[-4000:]}"
    assert proc.returncode == 0, f"CGI run exited {proc.returncode}; stderr:\n{err[-2000:]}"
    status, headers, out = parse_cgi_response(proc.stdout)
    openapi_check.check_cgi(method, path + ("?" + query if query else ""), status, headers, out)
    return status, headers, out


def parse_cgi_response(out):
    """Splits a CGI response into (status, lower-cased header dict, body)."""
    crlf, lf = out.find(b"\r\n\r\n"), out.find(b"\n\n")
    if crlf != -1 and (lf == -1 or crlf < lf):
        head, body = out[:crlf], out[crlf + 4 :]
    elif lf != -1:
        head, body = out[:lf], out[lf + 2 :]
    else:
        raise AssertionError(f"no header/body separator in CGI output: {out[:500]!r}")
    headers = {}
    for line in head.decode("latin-1").splitlines():
        name, sep, value = line.partition(":")
        assert sep, f"malformed CGI header line {line!r}"
        headers[name.strip().lower()] = value.strip()
    status = int(headers.get("status", "200").split()[0])
    return status, headers, body


# ---- PostgreSQL log ----------------------------------------------------------------

STATEMENT_RE = re.compile(r"LOG:\s+(?:duration: [0-9.]+ ms\s+)?(statement: |execute [^:]*: )(.*)")


def postgres_log(stack):
    return Path(stack["STACK_DIR"]) / "log" / "postgres.log"


def non_postgres_logs(stack):
    """(name, bytes) of every log of the stack but postgres.log: the worker's and nginx's."""
    log_dir = os.path.join(stack["STACK_DIR"], "log")
    for name in os.listdir(log_dir):
        if name == "postgres.log":
            continue
        with open(os.path.join(log_dir, name), "rb") as f:
            yield name, f.read()


def worker_log_lines_with(stack, text):
    """The postgres.log lines of the worker's backends (app=chatpatch) that hold `text`."""
    log = postgres_log(stack).read_text(errors="replace")
    return [line for line in log.splitlines() if " app=chatpatch " in line and text in line]


def count_statements(stack, begin_marker, end_marker, app="chatpatch"):
    """Statements (simple `statement:` or extended `execute`) logged by backends
    whose application_name is `app` between the two marker statements.
    Returns the list of their first log lines."""
    text = postgres_log(stack).read_text(errors="replace")
    begin = text.find(begin_marker)
    end = text.find(end_marker, begin + 1)
    assert begin != -1 and end != -1, "markers not found in postgres.log"
    window = text[text.find("\n", begin) + 1 : text.rfind("\n", 0, end) + 1]
    return [
        line
        for line in window.splitlines()
        if f" app={app} " in line and STATEMENT_RE.search(line)
    ]


@contextlib.contextmanager
def pg_log_window(db, stack, app="chatpatch"):
    """with pg_log_window(db, stack) as w: ...; then w.statements lists what the
    backends of `app` ran inside the block (see count_statements)."""

    class Window:
        statements = None

    window = Window()
    tag = uuid.uuid4().hex
    begin, end = f"marker-begin-{tag}", f"marker-end-{tag}"
    db.execute(f"SELECT '{begin}'")
    yield window
    db.execute(f"SELECT '{end}'")
    log = postgres_log(stack)
    deadline = time.monotonic() + 10
    while end not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"end marker never reached {log}"
        time.sleep(0.05)
    window.statements = count_statements(stack, begin, end, app)


# ---- processes ------------------------------------------------------------------------


def child_pids(pid):
    """Live (non-zombie) children of `pid`, from /proc."""
    children = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            pass
    if not children:  # kernels without CONFIG_PROC_CHILDREN
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                children.add(int(stat.parent.name))
    live = set()
    for child in children:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            live.add(child)
    return live


def pool_parent_pid(stack):
    return int(Path(stack["CHATPATCH_PIDFILE"]).read_text().split()[0])


# ---- rows ----------------------------------------------------------------------------------


def fetch_one(db, query, params=()):
    """The first row of `query` as a dict, or None."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchone()


def fetch_all(db, query, params=()):
    """Every row of `query`, as dicts."""
    with db.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return cur.fetchall()


# ---- Recoup data ------------------------------------------------------------------------


def fetch_recoup_chat(db, chat_id):
    """The recoup.chats row `chat_id` with every column, as a dict; None if absent."""
    return fetch_one(db, "SELECT * FROM recoup.chats WHERE id = %s", (chat_id,))


def _uid(prefix):
    return f"{prefix}_{uuid.uuid4().hex}"


def recoup_new_account(db):
    """A new account with one API key; returns (account_id, plaintext key)."""
    account = _uid("acct")
    db.execute("INSERT INTO recoup.accounts (id) VALUES (%s)", (account,))
    key = db.execute("SELECT recoup.issue_api_key(%s) AS k", (account,)).fetchone()["k"]
    return account, key


def recoup_new_session(db, account_id, session_id=None):
    session_id = session_id or _uid("sess")
    db.execute("INSERT INTO recoup.sessions (id, account_id) VALUES (%s, %s)", (session_id, account_id))
    return session_id


def recoup_new_chat(db, session_id, chat_id=None, title="New chat", model_id="openai/gpt-5.4",
                    **columns):
    """Inserts a chat; extra keyword arguments are further recoup.chats columns."""
    chat_id = chat_id or _uid("chat")
    cols = {"id": chat_id, "session_id": session_id, "title": title, "model_id": model_id, **columns}
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    db.execute(f"INSERT INTO recoup.chats ({names}) VALUES ({marks})", tuple(cols.values()))
    return chat_id


def recoup_revoke_key(db, key, when="now()"):
    db.execute(
        f"UPDATE recoup.api_keys SET revoked_at = {when} "
        "WHERE key_hash = sha256(convert_to(%s, 'UTF8'))",
        (key,),
    )


@dataclass
class RecoupWorld:
    """Account A (key, session with chat, second session with chat2) and
    account B (other_key, other_session with other_chat)."""

    account_id: str
    key: str
    session_id: str
    chat_id: str
    session2_id: str
    chat2_id: str
    other_account_id: str
    other_key: str
    other_session_id: str
    other_chat_id: str
    chat_ids: list = field(default_factory=list)

    @property
    def path(self):
        return recoup_path(self.session_id, self.chat_id)

    def snapshot(self, db):
        """Every chat row of this world, to compare before/after a request."""
        return fetch_all(db, "SELECT * FROM recoup.chats WHERE id = ANY(%s) ORDER BY id", (self.chat_ids,))

    def new_chat(self, db, session_id=None, **columns):
        chat_id = recoup_new_chat(db, session_id or self.session_id, **columns)
        self.chat_ids.append(chat_id)
        return chat_id


def recoup_path(session_id, chat_id):
    from urllib.parse import quote

    return f"/api/sessions/{quote(session_id, safe='')}/chats/{quote(chat_id, safe='')}"


def make_recoup_world(db):
    account, key = recoup_new_account(db)
    session = recoup_new_session(db, account)
    chat = recoup_new_chat(db, session)
    session2 = recoup_new_session(db, account)
    chat2 = recoup_new_chat(db, session2)
    other_account, other_key = recoup_new_account(db)
    other_session = recoup_new_session(db, other_account)
    other_chat = recoup_new_chat(db, other_session)
    return RecoupWorld(
        account, key, session, chat, session2, chat2,
        other_account, other_key, other_session, other_chat,
        chat_ids=[chat, chat2, other_chat],
    )


@pytest.fixture
def recoup_world(db):
    return make_recoup_world(db)


# ---- processes of a test's own (helpers in workers.py) ----------------------------


@pytest.fixture
def short_dir():
    """A short folder under /tmp for unix sockets (sun_path has 108 bytes)."""
    d = tempfile.mkdtemp(prefix="cpmodes-", dir="/tmp")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def spawn(stack, tmp_path):
    """spawn(args, stdin=..., address=..., env=..., binary=...) starts
    CHATPATCH_BIN (or binary) in its
    own session with stderr to a file; everything started is stopped at the
    end (SIGTERM, then SIGKILL to its process group) and its stderr checked
    for sanitizer reports."""
    # Imported here, not at the top: workers.py imports conftest.
    from workers import KILL_TIMEOUT_S, Worker, _kill_group, chatpatch_bin, worker_env

    started = []

    def start(args, stdin=subprocess.DEVNULL, address=None, env=None, umask=-1, keep=(),
              binary=None):
        log_path = tmp_path / f"worker-{len(started)}.stderr"
        with open(log_path, "wb") as err:
            proc = subprocess.Popen(
                [str(binary or chatpatch_bin(stack)), *args],
                stdin=stdin,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env if env is not None else worker_env(stack),
                start_new_session=True,
                umask=umask,
                close_fds=True,
            )
        w = Worker(proc, log_path, address, list(keep))
        started.append(w)
        return w

    yield start

    problems = []
    for w in started:
        if w.proc.poll() is None:
            try:
                os.kill(w.pid, signal.SIGTERM)
                w.proc.wait(timeout=KILL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                problems.append(f"worker {w.pid} ignored SIGTERM for {KILL_TIMEOUT_S} s")
            except ProcessLookupError:
                pass
        if hosts.group_members(w.pid):
            _kill_group(w.pid)
        if w.proc.poll() is None:
            w.proc.kill()
            w.proc.wait(timeout=KILL_TIMEOUT_S)
        for obj in w.keep:
            obj.close()
        text = w.log_path.read_text(errors="replace") if w.log_path.exists() else ""
        if SANITIZER_RE.search(text):
            problems.append(f"sanitizer report from worker {w.pid}:\n{text[-4000:]}")
    if problems:
        pytest.fail("\n".join(problems))
