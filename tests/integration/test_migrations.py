"""The sql/ migrations, scripts/migrate.sh and sql/demo.sql (SPEC sections 6 and 7).

Self-contained: starts its own throwaway PostgreSQL (unix socket only, in a temp
folder, as the `postgres` user when run as root) for this module and stops it at
the end. Run with: /usr/bin/python3 -m pytest tests/integration/test_migrations.py
"""

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import REPO, _free_port

psycopg = pytest.importorskip("psycopg")

SQL_DIR = REPO / "sql"
MIGRATE = REPO / "scripts" / "migrate.sh"
DEMO = SQL_DIR / "demo.sql"
MIGRATION_FILES = sorted(
    (p for p in SQL_DIR.glob("*.sql") if re.match(r"^[0-9]+_.+\.sql$", p.name)),
    key=lambda p: int(p.name.split("_", 1)[0]),
)
VERSIONS = [p.name[: -len(".sql")] for p in MIGRATION_FILES]


# --- helpers -------------------------------------------------------------------------


def _pg_bindir():
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    return os.path.dirname(found[-1]) if found else None


def _sha256_file(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _sha256(text):
    return hashlib.sha256(text.encode("utf-8")).digest()


class Cluster:
    """A throwaway PostgreSQL cluster listening only on a unix socket in its own folder."""

    def __init__(self):
        self.bindir = _pg_bindir()
        if self.bindir is None:
            pytest.skip("PostgreSQL server binaries not found (set PG_BINDIR)")
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root but there is no postgres user")
        self.tmp = tempfile.mkdtemp(prefix="chatpatch-migtest-")
        os.chmod(self.tmp, 0o755)
        self.data = os.path.join(self.tmp, "data")
        self.sock = os.path.join(self.tmp, "sock")
        self.log = os.path.join(self.tmp, "postgres.log")
        os.mkdir(self.sock)
        self.port = _free_port()
        self.user = "postgres"
        self.started = False
        if self.as_root:
            shutil.chown(self.tmp, "postgres")
            shutil.chown(self.sock, "postgres")

    def _run_pg(self, *args):
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def start(self):
        r = self._run_pg(
            "initdb", "-D", self.data, "-U", self.user, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )
        assert r.returncode == 0, r.stdout + r.stderr
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses='' "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        r = self._run_pg("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                         "-o", opts, "start")
        if r.returncode != 0:
            log = Path(self.log).read_text() if os.path.exists(self.log) else ""
            raise AssertionError(f"pg_ctl start failed: {r.stdout}{r.stderr}\n{log}")
        self.started = True

    def stop(self):
        if self.started:
            self._run_pg("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            self.started = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    def dsn(self, dbname="postgres"):
        return f"host={self.sock} port={self.port} user={self.user} dbname={dbname}"

    def uri(self, dbname):
        return f"postgresql:///{dbname}?host={self.sock}&port={self.port}&user={self.user}"

    def connect(self, dbname="postgres"):
        return psycopg.connect(self.dsn(dbname), autocommit=True)

    def new_db(self):
        name = "t_" + uuid.uuid4().hex[:12]
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def run_migrate(database_url, sql_dir=None):
    cmd = ["bash", str(MIGRATE), database_url]
    if sql_dir is not None:
        cmd.append(str(sql_dir))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def run_psql_file(database_url, path):
    return subprocess.run(
        ["psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-d", database_url, "-f", str(path)],
        capture_output=True, text=True, timeout=120,
    )


def ledger(conn):
    return conn.execute(
        "SELECT version, checksum, applied_at FROM public.schema_migrations ORDER BY version"
    ).fetchall()


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_sanitizer_reports():
    """Overrides conftest.py's autouse fixture of this name, which needs the whole stack
    (nginx + the worker) to check the worker's sanitizer log: these tests start no worker,
    and must not need a built one."""
    yield


@pytest.fixture(scope="module")
def mig_pg():
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def migrated_db(mig_pg):
    """A database with every migration applied (shared by the read-mostly tests)."""
    db = mig_pg.new_db()
    r = run_migrate(mig_pg.dsn(db))
    assert r.returncode == 0, r.stdout + r.stderr
    return db


@pytest.fixture
def conn(mig_pg, migrated_db):
    with mig_pg.connect(migrated_db) as c:
        yield c


# --- the runner --------------------------------------------------------------------------


def test_there_are_migrations():
    assert VERSIONS[:4] == ["001_common", "002_recoup", "003_neptun", "004_leanmcp"]
    assert "demo.sql" not in [p.name for p in MIGRATION_FILES]


def test_migrations_have_no_transaction_control():
    for p in MIGRATION_FILES:
        text = re.sub(r"--[^\n]*", "", p.read_text())
        assert not re.search(r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION)\s*;", text,
                             re.I | re.M), p.name


def test_migrate_applies_all_and_records_them(mig_pg):
    db = mig_pg.new_db()
    r = run_migrate(mig_pg.dsn(db))  # SQL_DIR defaults to the repo's sql/
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines == [f"applied {v}" for v in VERSIONS] + [
        f"migrations: {len(VERSIONS)} applied, 0 already up to date"
    ]
    with mig_pg.connect(db) as c:
        rows = ledger(c)
        assert [(v, s) for v, s, _ in rows] == [
            (p.name[:-4], _sha256_file(p)) for p in MIGRATION_FILES
        ]
        assert all(at is not None for _, _, at in rows)
        for schema in ("recoup", "neptun", "leanmcp"):
            assert c.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                             (schema,)).fetchone()


def test_second_run_applies_nothing(mig_pg):
    db = mig_pg.new_db()
    url = mig_pg.uri(db)  # the URI form works too
    assert run_migrate(url).returncode == 0
    with mig_pg.connect(db) as c:
        before = ledger(c)
    r = run_migrate(url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        f"migrations: 0 applied, {len(VERSIONS)} already up to date"
    ]
    with mig_pg.connect(db) as c:
        assert ledger(c) == before


def test_changed_applied_migration_fails_and_changes_nothing(mig_pg, tmp_path):
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    db = mig_pg.new_db()
    assert run_migrate(mig_pg.dsn(db), sql).returncode == 0
    with mig_pg.connect(db) as c:
        before = ledger(c)

    with open(sql / "002_recoup.sql", "a") as f:
        f.write("\n-- an edit after it was applied\n")
    # a new migration after it must not be applied either
    (sql / "900_later.sql").write_text("CREATE TABLE public.later_table (a int);\n")

    r = run_migrate(mig_pg.dsn(db), sql)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "002_recoup.sql" in r.stderr
    assert "changed" in r.stderr
    assert "applied 900_later" not in r.stdout
    with mig_pg.connect(db) as c:
        assert ledger(c) == before
        assert c.execute("SELECT to_regclass('public.later_table')").fetchone()[0] is None


def test_failing_migration_is_rolled_back_whole(mig_pg, tmp_path):
    sql = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql)
    (sql / "900_bad.sql").write_text(
        "CREATE TABLE public.half_done (a int);\nSELECT 1/0;\n"
    )
    (sql / "901_after.sql").write_text("CREATE TABLE public.after_bad (a int);\n")
    db = mig_pg.new_db()
    r = run_migrate(mig_pg.dsn(db), sql)
    assert r.returncode != 0
    assert "900_bad" in r.stderr and "division by zero" in r.stderr
    with mig_pg.connect(db) as c:
        assert [v for v, _, _ in ledger(c)] == VERSIONS  # those before it are kept
        assert c.execute("SELECT to_regclass('public.half_done')").fetchone()[0] is None
        assert c.execute("SELECT to_regclass('public.after_bad')").fetchone()[0] is None

    # fixed, it applies, with the one after it
    (sql / "900_bad.sql").write_text("CREATE TABLE public.half_done (a int);\n")
    r = run_migrate(mig_pg.dsn(db), sql)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "applied 900_bad", "applied 901_after",
        f"migrations: 2 applied, {len(VERSIONS)} already up to date",
    ]


def test_numeric_order_and_unusual_paths(mig_pg, tmp_path):
    # numeric, not lexical, order; a folder name with a space, a quote and a backslash
    sql = tmp_path / "my sql's \\dir"
    sql.mkdir()
    (sql / "2_b.sql").write_text("CREATE TABLE public.b (a int PRIMARY KEY REFERENCES public.a);")
    (sql / "10_c.sql").write_text("CREATE TABLE public.c (a int REFERENCES public.b)\n-- no newline, no ;")
    (sql / "1_a.sql").write_text("CREATE TABLE public.a (a int PRIMARY KEY);\n")
    (sql / "demo.sql").write_text("SELECT 1/0;\n")  # not a migration
    (sql / "notes.txt").write_text("not sql\n")
    db = mig_pg.new_db()
    r = run_migrate(mig_pg.dsn(db), sql)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [
        "applied 1_a", "applied 2_b", "applied 10_c", "migrations: 3 applied, 0 already up to date"
    ]
    with mig_pg.connect(db) as c:
        assert c.execute("SELECT to_regclass('public.c')").fetchone()[0] is not None


def test_concurrent_runners_apply_each_migration_once(mig_pg):
    db = mig_pg.new_db()
    procs = [
        subprocess.Popen(["bash", str(MIGRATE), mig_pg.dsn(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for rc, out, err in results:
        assert rc == 0, out + err
    applied = [line for _, out, _ in results for line in out.splitlines()
               if line.startswith("applied ")]
    assert sorted(applied) == sorted(f"applied {v}" for v in VERSIONS)
    with mig_pg.connect(db) as c:
        assert [v for v, _, _ in ledger(c)] == VERSIONS


def test_unreachable_database_fails(mig_pg):
    r = run_migrate(f"host={mig_pg.sock} port={mig_pg.port} user=postgres dbname=no_such_db")
    assert r.returncode != 0
    assert "no_such_db" in r.stderr


def test_usage_error():
    r = subprocess.run(["bash", str(MIGRATE)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "usage" in r.stderr


# --- the schema (SPEC section 6) -------------------------------------------------------

# (type, not null, default or None); tables may have more columns
SPEC_COLUMNS = {
    "recoup.accounts": {"id": ("text", True, None)},
    "recoup.api_keys": {
        "account_id": ("text", True, None),
        "key_hash": ("bytea", True, None),
        "revoked_at": ("timestamp with time zone", False, None),
    },
    "recoup.sessions": {"id": ("text", True, None), "account_id": ("text", True, None)},
    "recoup.chats": {
        "id": ("text", True, None),
        "session_id": ("text", True, None),
        "title": ("text", True, "'New chat'::text"),
        "model_id": ("text", True, None),
        "active_stream_id": ("text", False, None),
        "last_assistant_message_at": ("timestamp with time zone", False, None),
        "created_at": ("timestamp with time zone", True, "now()"),
        "updated_at": ("timestamp with time zone", True, "now()"),
    },
    "neptun.users": {"id": ("bigint", True, None)},
    "neptun.sessions": {
        "token_hash": ("bytea", True, None),
        "user_id": ("bigint", True, None),
        "expires_at": ("timestamp with time zone", True, None),
    },
    "neptun.chat_conversations": {
        "id": ("bigint", True, None),
        "neptun_user_id": ("bigint", True, None),
        "name": ("text", True, None),
        "model": ("text", True, None),
        "created_at": ("timestamp with time zone", True, "now()"),
        "updated_at": ("timestamp with time zone", True, "now()"),
    },
    "leanmcp.users": {"id": ("text", True, None)},
    "leanmcp.api_keys": {
        "user_id": ("text", True, None),
        "key_hash": ("bytea", True, None),
        "scopes": ("text[]", True, "'{chat}'::text[]"),
        "revoked_at": ("timestamp with time zone", False, None),
    },
    "leanmcp.chats": {
        "id": ("uuid", True, "gen_random_uuid()"),
        "user_id": ("text", True, None),
        "title": ("text", True, None),
        "is_public": ("boolean", True, "false"),
        "status": ("text", True, "'active'::text"),
        "created_at": ("timestamp with time zone", True, "now()"),
        "updated_at": ("timestamp with time zone", True, "now()"),
        "message_count": ("integer", True, "0"),
        "showcased": ("boolean", True, "false"),
        "summary": ("text", False, None),
        "model_used": ("text", False, None),
        "system_message_id": ("text", False, None),
        "metadata": ("jsonb", True, "'{}'::jsonb"),
    },
}

SPEC_PRIMARY_KEYS = {
    "recoup.accounts": ["id"], "recoup.sessions": ["id"], "recoup.chats": ["id"],
    "neptun.users": ["id"], "neptun.sessions": ["token_hash"],
    "neptun.chat_conversations": ["id"], "leanmcp.users": ["id"], "leanmcp.chats": ["id"],
}

# (table, column) -> (referenced table, referenced column, on delete: a = no action, c = cascade)
SPEC_FOREIGN_KEYS = {
    ("recoup.api_keys", "account_id"): ("recoup.accounts", "id", "a"),
    ("recoup.sessions", "account_id"): ("recoup.accounts", "id", "a"),
    ("recoup.chats", "session_id"): ("recoup.sessions", "id", "c"),
    ("neptun.sessions", "user_id"): ("neptun.users", "id", "a"),
    ("neptun.chat_conversations", "neptun_user_id"): ("neptun.users", "id", "c"),
    ("leanmcp.api_keys", "user_id"): ("leanmcp.users", "id", "a"),
    ("leanmcp.chats", "user_id"): ("leanmcp.users", "id", "a"),
}


@pytest.mark.parametrize("table", sorted(SPEC_COLUMNS))
def test_columns_match_spec(conn, table):
    rows = conn.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                  pg_get_expr(d.adbin, d.adrelid)
             FROM pg_attribute a
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
        (table,),
    ).fetchall()
    have = {name: (typ, notnull, default) for name, typ, notnull, default in rows}
    for col, want in SPEC_COLUMNS[table].items():
        assert have.get(col) == want, f"{table}.{col}"


def test_primary_unique_and_identity(conn):
    for table, cols in SPEC_PRIMARY_KEYS.items():
        got = conn.execute(
            """SELECT array_agg(a.attname::text ORDER BY a.attnum)
                 FROM pg_constraint c JOIN pg_attribute a
                   ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
                WHERE c.conrelid = %s::regclass AND c.contype = 'p'""",
            (table,),
        ).fetchone()[0]
        assert got == cols, table
    for table in ("recoup.api_keys", "leanmcp.api_keys"):
        assert conn.execute(
            """SELECT count(*) FROM pg_constraint c JOIN pg_attribute a
                 ON a.attrelid = c.conrelid AND c.conkey = ARRAY[a.attnum]
                WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND a.attname = 'key_hash'""",
            (table,),
        ).fetchone()[0] == 1, table
    assert conn.execute(
        """SELECT attidentity FROM pg_attribute
            WHERE attrelid = 'neptun.chat_conversations'::regclass AND attname = 'id'"""
    ).fetchone()[0] == "d"  # generated by default as identity


def test_foreign_keys_match_spec(conn):
    rows = conn.execute(
        """SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text,
                  fa.attname, c.confdeltype
             FROM pg_constraint c
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
            WHERE c.contype = 'f'
              AND c.connamespace IN ('recoup'::regnamespace, 'neptun'::regnamespace,
                                     'leanmcp'::regnamespace)"""
    ).fetchall()
    have = {(t, col): (rt, rcol, on_delete) for t, col, rt, rcol, on_delete in rows}
    for key, want in SPEC_FOREIGN_KEYS.items():
        assert have.get(key) == want, key


def test_cascades(conn):
    conn.execute("INSERT INTO recoup.accounts VALUES ('acct_cascade')")
    conn.execute("INSERT INTO recoup.sessions VALUES ('sess_cascade', 'acct_cascade')")
    conn.execute("INSERT INTO recoup.chats (id, session_id, model_id) "
                 "VALUES ('chat_cascade', 'sess_cascade', 'm')")
    assert conn.execute("SELECT title FROM recoup.chats WHERE id = 'chat_cascade'"
                        ).fetchone()[0] == "New chat"
    conn.execute("DELETE FROM recoup.sessions WHERE id = 'sess_cascade'")
    assert conn.execute("SELECT count(*) FROM recoup.chats WHERE id = 'chat_cascade'"
                        ).fetchone()[0] == 0
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO recoup.sessions VALUES ('s_no_acct', 'no_such_account')")
    # accounts are not cascaded: an account with sessions cannot be deleted
    conn.execute("INSERT INTO recoup.sessions VALUES ('sess_cascade2', 'acct_cascade')")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("DELETE FROM recoup.accounts WHERE id = 'acct_cascade'")

    conn.execute("INSERT INTO neptun.users VALUES (424242)")
    cid = conn.execute("INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
                       "VALUES (424242, 'n', 'm') RETURNING id").fetchone()[0]
    conn.execute("DELETE FROM neptun.users WHERE id = 424242")
    assert conn.execute("SELECT count(*) FROM neptun.chat_conversations WHERE id = %s",
                        (cid,)).fetchone()[0] == 0


def test_leanmcp_status_check_rejects_bogus(conn):
    conn.execute("INSERT INTO leanmcp.users VALUES ('u_check') ON CONFLICT DO NOTHING")
    for status in ("active", "archived", "deleted"):
        conn.execute("INSERT INTO leanmcp.chats (user_id, title, status) VALUES ('u_check', 't', %s)",
                     (status,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO leanmcp.chats (user_id, title, status) "
                     "VALUES ('u_check', 't', 'bogus')")
    cid = conn.execute("INSERT INTO leanmcp.chats (user_id, title) VALUES ('u_check', 't') "
                       "RETURNING id").fetchone()[0]
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE leanmcp.chats SET status = 'bogus' WHERE id = %s", (cid,))
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("UPDATE leanmcp.chats SET message_count = -1 WHERE id = %s", (cid,))
    row = conn.execute("SELECT status, is_public, showcased, message_count, metadata "
                       "FROM leanmcp.chats WHERE id = %s", (cid,)).fetchone()
    assert row == ("active", False, False, 0, {})


# --- iso8601_ms ----------------------------------------------------------------------


@pytest.mark.parametrize("value, want", [
    ("2026-11-21 20:39:31.123+00", "2026-11-21T20:39:31.123Z"),
    ("2026-11-21 20:39:31.123456+00", "2026-11-21T20:39:31.123Z"),  # truncated, not rounded
    ("2026-11-21 20:39:31.9999+00", "2026-11-21T20:39:31.999Z"),
    ("2026-11-21 20:39:31+00", "2026-11-21T20:39:31.000Z"),
    ("2026-11-22 02:09:31.5+05:30", "2026-11-21T20:39:31.500Z"),
    ("2026-01-02 00:00:00.007-08", "2026-01-02T08:00:00.007Z"),
])
def test_iso8601_ms(conn, value, want):
    assert conn.execute("SELECT public.iso8601_ms(%s::timestamptz)", (value,)).fetchone()[0] == want


def test_iso8601_ms_ignores_session_time_zone_and_null(conn):
    conn.execute("SET TimeZone = 'America/St_Johns'")
    try:
        assert conn.execute(
            "SELECT public.iso8601_ms('2026-11-21 20:39:31.123+00')").fetchone()[0] \
            == "2026-11-21T20:39:31.123Z"
    finally:
        conn.execute("RESET TimeZone")
    assert conn.execute("SELECT public.iso8601_ms(NULL)").fetchone()[0] is None
    assert conn.execute(
        """SELECT provolatile, proparallel, proisstrict FROM pg_proc
            WHERE oid = 'public.iso8601_ms(timestamptz)'::regprocedure""").fetchone() \
        == ("i", "s", True)


# --- ops functions ---------------------------------------------------------------------


def _issue_twice(conn, sql, params):
    return [conn.execute(sql, params).fetchone()[0] for _ in range(2)]


def test_recoup_issue_api_key(conn):
    conn.execute("INSERT INTO recoup.accounts VALUES ('acct_fn') ON CONFLICT DO NOTHING")
    keys = _issue_twice(conn, "SELECT recoup.issue_api_key(%s)", ("acct_fn",))
    assert keys[0] != keys[1]
    for k in keys:
        assert re.fullmatch(r"rk_[0-9a-f]{64}", k)
        row = conn.execute("SELECT account_id, revoked_at FROM recoup.api_keys WHERE key_hash = %s",
                           (_sha256(k),)).fetchone()
        assert row == ("acct_fn", None)
    # the plaintext is stored nowhere
    assert conn.execute("SELECT count(*) FROM recoup.api_keys WHERE position(%s in key_hash::text) > 0",
                        (keys[0],)).fetchone()[0] == 0
    # named notation, as in the SPEC
    k = conn.execute("SELECT recoup.issue_api_key(account_id => 'acct_fn')").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM recoup.api_keys WHERE key_hash = %s",
                        (_sha256(k),)).fetchone()[0] == 1
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("SELECT recoup.issue_api_key('no_such_account')")


def test_leanmcp_issue_api_key(conn):
    conn.execute("INSERT INTO leanmcp.users VALUES ('user_fn') ON CONFLICT DO NOTHING")
    keys = _issue_twice(conn, "SELECT leanmcp.issue_api_key(%s)", ("user_fn",))
    assert keys[0] != keys[1]
    for k in keys:
        assert re.fullmatch(r"lm_[0-9a-f]{64}", k)
        row = conn.execute("SELECT user_id, scopes, revoked_at FROM leanmcp.api_keys "
                           "WHERE key_hash = %s", (_sha256(k),)).fetchone()
        assert row == ("user_fn", ["chat"], None)
    k = conn.execute("SELECT leanmcp.issue_api_key('user_fn', '{read,write}')").fetchone()[0]
    assert conn.execute("SELECT scopes FROM leanmcp.api_keys WHERE key_hash = %s",
                        (_sha256(k),)).fetchone()[0] == ["read", "write"]
    k = conn.execute("SELECT leanmcp.issue_api_key(user_id => 'user_fn', scopes => '{}')").fetchone()[0]
    assert conn.execute("SELECT scopes FROM leanmcp.api_keys WHERE key_hash = %s",
                        (_sha256(k),)).fetchone()[0] == []
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("SELECT leanmcp.issue_api_key('no_such_user')")


def test_neptun_issue_session(conn):
    conn.execute("INSERT INTO neptun.users VALUES (77) ON CONFLICT DO NOTHING")
    tokens = _issue_twice(conn, "SELECT neptun.issue_session(%s)", (77,))
    assert tokens[0] != tokens[1]
    for t in tokens:
        assert re.fullmatch(r"ns_[0-9a-f]{64}", t)
        row = conn.execute(
            "SELECT user_id, expires_at - now() BETWEEN interval '29 days 23 hours' "
            "AND interval '30 days' FROM neptun.sessions WHERE token_hash = %s",
            (_sha256(t),)).fetchone()
        assert row == (77, True)
    t = conn.execute("SELECT neptun.issue_session(77, interval '1 hour')").fetchone()[0]
    assert conn.execute(
        "SELECT expires_at - now() BETWEEN interval '59 minutes' AND interval '1 hour' "
        "FROM neptun.sessions WHERE token_hash = %s", (_sha256(t),)).fetchone()[0] is True
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        conn.execute("SELECT neptun.issue_session(77, interval '-1 day')")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("SELECT neptun.issue_session(987654321)")


# --- demo data -------------------------------------------------------------------------


def test_demo_runs_twice_and_is_idempotent(mig_pg):
    db = mig_pg.new_db()
    url = mig_pg.dsn(db)
    assert run_migrate(url).returncode == 0
    for _ in range(2):
        r = run_psql_file(url, DEMO)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ERROR" not in r.stderr

    with mig_pg.connect(db) as c:
        one = lambda sql, *p: c.execute(sql, p).fetchone()  # noqa: E731

        # Recoup
        assert one("SELECT key_hash FROM recoup.api_keys WHERE account_id = 'acct_demo'")[0] \
            == hashlib.sha256(b"demo-recoup-key").digest()
        assert one("SELECT count(*) FROM recoup.api_keys")[0] == 1
        assert one("SELECT account_id FROM recoup.sessions WHERE id = 'sess_demo'")[0] == "acct_demo"
        assert one("SELECT session_id, title, model_id FROM recoup.chats WHERE id = 'chat_demo'") \
            == ("sess_demo", "New chat", "openai/gpt-5.4")

        # Neptun
        assert one("SELECT user_id, expires_at > now() + interval '9 years' "
                   "FROM neptun.sessions WHERE token_hash = %s",
                   _sha256("demo-neptun-session")) == (1, True)
        assert one("SELECT count(*) FROM neptun.sessions")[0] == 1
        assert one("SELECT neptun_user_id, name, model FROM neptun.chat_conversations "
                   "WHERE id = 1") == (1, "Demo chat", "google/gemma-2-27b-it")
        # the identity was moved past the explicit id 1
        assert one("INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
                   "VALUES (1, 'x', 'y') RETURNING id")[0] > 1

        # LeanMCP
        assert one("SELECT user_id, scopes, revoked_at FROM leanmcp.api_keys WHERE key_hash = %s",
                   _sha256("demo-leanmcp-key")) == ("user_demo", ["chat"], None)
        assert one("SELECT count(*) FROM leanmcp.api_keys")[0] == 1
        assert one("SELECT user_id, title, status FROM leanmcp.chats "
                   "WHERE id = 'c1a83d84-7154-464c-bd19-a9f10e0a067f'") \
            == ("user_demo", "Demo chat", "active")

        # Edits through the APIs survive a re-run; credentials are re-enabled and refreshed.
        c.execute("UPDATE recoup.chats SET title = 'Edited' WHERE id = 'chat_demo'")
        c.execute("UPDATE neptun.chat_conversations SET name = 'Edited' WHERE id = 1")
        c.execute("UPDATE leanmcp.chats SET title = 'Edited' "
                  "WHERE id = 'c1a83d84-7154-464c-bd19-a9f10e0a067f'")
        c.execute("UPDATE recoup.api_keys SET revoked_at = now()")
        c.execute("UPDATE neptun.sessions SET expires_at = now() - interval '1 day'")
        last_id = one("SELECT max(id) FROM neptun.chat_conversations")[0]

    r = run_psql_file(url, DEMO)
    assert r.returncode == 0, r.stdout + r.stderr

    with mig_pg.connect(db) as c:
        one = lambda sql, *p: c.execute(sql, p).fetchone()  # noqa: E731
        assert one("SELECT title FROM recoup.chats WHERE id = 'chat_demo'")[0] == "Edited"
        assert one("SELECT name FROM neptun.chat_conversations WHERE id = 1")[0] == "Edited"
        assert one("SELECT title FROM leanmcp.chats "
                   "WHERE id = 'c1a83d84-7154-464c-bd19-a9f10e0a067f'")[0] == "Edited"
        assert one("SELECT revoked_at FROM recoup.api_keys")[0] is None
        assert one("SELECT expires_at > now() + interval '9 years' FROM neptun.sessions")[0]
        # the identity never moves backwards
        assert one("INSERT INTO neptun.chat_conversations (neptun_user_id, name, model) "
                   "VALUES (1, 'x', 'y') RETURNING id")[0] > last_id
