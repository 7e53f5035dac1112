"""The stack's worker socket is nginx's alone (issue 8): mode 0660, owned by
the group nginx's worker processes run as (scripts/stack.sh: `user nobody
nogroup` in nginx.conf when run as root, `--socket-mode 0660 --socket-group`
for the workers), not 0666 for any local user. Requests still go through,
and a local user outside that group cannot connect to the workers directly.
Runs on the shared stack.
"""

import grp
import os
import pwd
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import child_pids, fetch_recoup_chat
from helpers import send


def socket_path(stack):
    return Path(stack["STACK_DIR"]) / "run" / "chatpatch.sock"


def nginx_worker_ids(stack):
    """{pid: (uid, gid)} (effective ids) of the nginx master's children."""
    master = int((Path(stack["STACK_DIR"]) / "run" / "nginx.pid").read_text().split()[0])
    ids = {}
    for pid in child_pids(master):
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if "nginx: worker process" not in Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " "):
            continue  # e.g. the cache manager, if one ran
        ids[pid] = (int(fields["Uid"].split()[1]), int(fields["Gid"].split()[1]))
    return ids


def test_socket_is_0660_owned_by_nginx_workers_group(stack):
    st = os.stat(socket_path(stack))
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(stat.S_IMODE(st.st_mode))
    workers = nginx_worker_ids(stack)
    assert workers, "no nginx worker process found"
    assert {gid for _, gid in workers.values()} == {st.st_gid}, (workers, st.st_gid)
    if os.geteuid() == 0:
        # As root, stack.sh names nginx's user and group: nobody/nogroup.
        assert {uid for uid, _ in workers.values()} == {pwd.getpwnam("nobody").pw_uid}
        assert st.st_gid == grp.getgrnam("nogroup").gr_gid
    else:
        assert st.st_gid == os.getegid()


def test_requests_still_reach_the_workers(http, db, recoup_world):
    w = recoup_world
    resp = send(http, w.path, {"title": "through the 0660 socket"}, {"x-api-key": w.key})
    assert resp.status_code == 200, resp.text
    assert resp.json()["chat"]["title"] == "through the 0660 socket"
    assert fetch_recoup_chat(db, w.chat_id)["title"] == "through the 0660 socket"
    assert http.get("/healthz").json() == {"status": "ok"}


CONNECT = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    print("EACCES")
else:
    print("connected")
"""


def test_other_local_user_cannot_connect(stack):
    """`postgres` (the stack's PostgreSQL user, not in nginx's group) may enter
    run/ (mode 755, its own) but not connect to the socket; nginx's worker
    user may."""
    if os.geteuid() != 0:
        pytest.skip("needs root to act as other users")
    path = str(socket_path(stack))
    nogroup = grp.getgrnam("nogroup")
    postgres = pwd.getpwnam("postgres")
    assert postgres.pw_gid != nogroup.gr_gid and "postgres" not in nogroup.gr_mem

    def connect_as(user):
        out = subprocess.run(["runuser", "-u", user, "--", sys.executable, "-c", CONNECT, path],
                             capture_output=True, text=True, timeout=30, cwd="/")
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert connect_as("postgres") == "EACCES"
    assert connect_as("nobody") == "connected"
