"""What the hosts that run from a shipped recipe share (host_lighttpd.py,
host_fcgiwrap.py): setting a recipe's EDIT lines, letting an unprivileged
host user reach the work folder, the environment a host passes on, and
waiting for a host's process group to end."""

import os
import re
import subprocess
import time

from hosts import group_members

# What a host hands on to the workers from ours: the sanitizers' settings.
PASSED_ENV = ("PATH", "LANG", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")


def passed_env(**extra):
    env = {k: v for k, v in os.environ.items() if k in PASSED_ENV}
    env.update(extra)
    return env


def set_lines(text, pattern, value, count=1):
    """`text` with the quoted value of each line matching `pattern` (a
    regular expression for what precedes the opening quote) replaced by
    `value`; fails unless exactly `count` lines match, so a shipped file
    that changed shape fails the test run instead of being half set."""
    new, n = re.subn(r'^(' + pattern + r')"[^"\n]*"', lambda m: f'{m.group(1)}"{value}"',
                     text, flags=re.M)
    if n != count:
        raise RuntimeError(f"{pattern!r}: {n} lines, expected {count}")
    return new


def open_parents(path):
    """The search bit on the parents of `path` that lack it, so that the
    host's user (nobody) reaches the binary and the sockets under it, as
    stack.sh's open_path does for the stack."""
    d = path.resolve()
    while d != d.parent:
        d = d.parent
        if not d.stat().st_mode & 0o001:
            d.chmod(d.stat().st_mode | 0o001)


def wait_group_gone(pgid, timeout):
    """Waits until process group pgid has no live process; raises
    subprocess.TimeoutExpired after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(f"process group {pgid}", timeout)
        time.sleep(0.02)
