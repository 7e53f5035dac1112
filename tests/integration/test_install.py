"""`make install` as a package build runs it (issue 10; README "Install
layout"), and what an ops person checks afterwards: the tree is the one
the README documents, the man page renders without a warning, --help and
--version follow GNU, the systemd units pass systemd-analyze verify, the
error bodies the hosts' recipes read are the installed binary's, and the
installed migration runner finds its SQL.
"""

import os
import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

README_TREE = re.compile(r"<!-- install-tree -->\s*```text\n(.*?)```", re.S)


def make_install(dest, *args):
    proc = subprocess.run(["make", "-s", "install", f"DESTDIR={dest}", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def documented_tree():
    """The files README lists under "Install layout", relative to PREFIX; a
    name ending in / is a folder, whose files are checked on their own."""
    m = README_TREE.search((REPO / "README.md").read_text())
    assert m, "README has no <!-- install-tree --> block"
    return sorted(line.split("#")[0].strip() for line in m.group(1).splitlines()
                  if line.split("#")[0].strip())


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def staged(tmp_path_factory):
    dest = tmp_path_factory.mktemp("destdir")
    make_install(dest)
    return dest


def test_tree_is_the_documented_one(staged):
    prefix = staged / "usr" / "local"
    documented = documented_tree()
    folders = [d for d in documented if d.endswith("/")]
    got = sorted({next((d for d in folders if f.startswith(d)), f) for f in files_under(prefix)})
    assert not [p for p in staged.rglob("*") if p.is_file()
                and not str(p).startswith(str(prefix))], "files outside PREFIX"
    assert got == documented
    assert os.access(prefix / "sbin" / "chatpatch", os.X_OK)


def test_error_bodies_are_the_installed_binarys(staged, tmp_path):
    """The hosts' recipes read their JSON error bodies from
    share/chatpatch/errors: make install wrote there exactly what the
    installed binary's --print-errors writes, readable by the web server."""
    installed = staged / "usr/local/share/chatpatch/errors"
    proc = subprocess.run([staged / "usr/local/sbin/chatpatch", "--print-errors",
                           tmp_path / "errors"], capture_output=True, text=True, timeout=15)
    assert proc.returncode == 0, proc.stderr
    want = files_under(tmp_path / "errors")
    assert "413.json" in want and "api/sessions/413.json" in want, want
    assert files_under(installed) == want
    for name in want:
        assert (installed / name).read_bytes() == (tmp_path / "errors" / name).read_bytes(), name
        assert (installed / name).stat().st_mode & 0o444 == 0o444, name


def test_upgrade_drops_error_bodies_of_a_route_gone(tmp_path):
    """An install over an older one whose binary served a route this one
    does not: the hosts' recipes would still map that route's errors to
    the old bodies, so the folder is the new binary's and nothing else."""
    errors = tmp_path / "usr/local/share/chatpatch/errors"
    (errors / "api/retired").mkdir(parents=True)
    (errors / "api/retired/413.json").write_text('{"error":"old"}\n')
    (errors / "routes.tsv").write_text("retired\t/api/retired/\tPATCH\t-\n")
    make_install(tmp_path)
    assert not (errors / "api/retired").exists(), files_under(errors)
    assert "retired" not in (errors / "routes.tsv").read_text()
    assert "api/sessions/413.json" in files_under(errors)


def test_man_page_renders_without_warnings(staged):
    page = staged / "usr/local/share/man/man8/chatpatch.8"
    proc = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "MANWIDTH": "80",
                                                      "MAN_KEEP_FORMATTING": "0"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    text = re.sub(r".\x08", "", proc.stdout)  # grotty's overstrikes (bold, underline)
    assert re.search(r"^CHATPATCH\(8\)", text, re.M), text[:300]
    assert "chatpatch 1." in text or re.search(r"chatpatch \d+\.\d+\.\d+", text), text[-300:]
    for word in ("--listen", "--workers", "--log-file", "--statement-timeout",
                 "--db-connections", "SIGHUP",
                 "SIGTERM", "SIGUSR1", "LISTEN_FDS", "DATABASE_URL",
                 "/usr/local/share/chatpatch/"):
        assert word in text, f"{word} missing from the man page"


def test_help_and_version_follow_gnu(staged):
    binary = staged / "usr/local/sbin/chatpatch"
    help_ = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=15)
    assert help_.returncode == 0 and help_.stderr == "", help_
    assert help_.stdout.startswith("Usage: chatpatch [OPTION]...\n"), help_.stdout
    for opt in ("--listen=", "--workers=", "--log-file=", "--help", "--version"):
        assert re.search(rf"^\s+{re.escape(opt)}", help_.stdout, re.M), opt
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=15)
    assert version.returncode == 0 and version.stderr == "", version
    lines = version.stdout.splitlines()
    assert re.fullmatch(r"chatpatch \d+\.\d+\.\d+", lines[0]), lines
    assert lines[1].startswith("Copyright (C) "), lines
    assert any(line.startswith("License") for line in lines[2:]), lines


def test_prefix_usr_rewrites_paths(tmp_path):
    make_install(tmp_path, "PREFIX=/usr")
    unit = (tmp_path / "usr/lib/systemd/system/chatpatch.service").read_text()
    assert re.search(r"^ExecStart=/usr/sbin/chatpatch ", unit, re.M), unit
    page = (tmp_path / "usr/share/man/man8/chatpatch.8").read_text()
    assert "/usr/share/chatpatch/" in page and "/usr/local" not in page
    assert (tmp_path / "usr/share/chatpatch/deploy/systemd/chatpatch.socket").is_file()


def test_systemd_units_verify(tmp_path):
    """Installed with a real PREFIX (no DESTDIR), so that ExecStart names a
    file that exists, the units pass systemd-analyze verify cleanly."""
    subprocess.run(["make", "-s", "install", f"PREFIX={tmp_path}"], cwd=REPO, check=True,
                   capture_output=True, timeout=600)
    units = tmp_path / "lib/systemd/system"
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no",
                           str(units / "chatpatch.socket"), str(units / "chatpatch.service")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    service = (units / "chatpatch.service").read_text()
    for line in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "PrivateTmp=yes", "ExecReload=/bin/kill -HUP $MAINPID"):
        assert re.search(rf"^{re.escape(line)}$", service, re.M), line
    socket_unit = (units / "chatpatch.socket").read_text()
    assert re.search(r"^ListenStream=/run/chatpatch/chatpatch.sock$", socket_unit, re.M)


def test_installed_migrate_finds_its_sql(staged, stack):
    """The installed runner applies the installed migrations: against the
    test stack's database, all are already there."""
    script = staged / "usr/local/share/chatpatch/scripts/migrate.sh"
    proc = subprocess.run(["bash", str(script), stack["DATABASE_URL"]], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"0 applied, \d+ already up to date", proc.stdout + proc.stderr), \
        proc.stdout + proc.stderr
