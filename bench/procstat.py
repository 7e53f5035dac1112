"""bench/procstat.py: the CPU time and memory of the stack's processes,
from /proc, for `make bench`'s CPU per request.

A group is a process and its children, alive or reaped: a process's
cutime/cstime hold the time of the children it has waited for (PostgreSQL's
backends that ended, nginx workers, a respawned chatpatch worker). So the
postmaster's group counts every backend once it has exited and been reaped;
bench/run.py waits for that after each pgbench run.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """/proc/PID/stat after the command name: fields 3.. as a list, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return s[s.rindex(")") + 2:].split()


def ticks(pid):
    """utime + stime + cutime + cstime of one process (0 when gone)."""
    f = _stat_fields(pid)
    if f is None:
        return 0
    # fields 14..17 of stat(5) are at 11..14 here (field 3, state, is at 0)
    return sum(int(x) for x in f[11:15])


def _children_by_parent():
    """{ppid: [pid, ...]} of every process now (zombies included: their time
    is not yet in their parent's cutime)."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            f = _stat_fields(name)
            if f is not None:
                out.setdefault(int(f[1]), []).append(int(name))
    return out


def children(pid):
    return _children_by_parent().get(pid, [])


def group_ticks(pid, by_parent=None):
    """Ticks of a process and its children, alive or reaped; 0 for no pid."""
    if not pid:
        return 0
    kids = (by_parent if by_parent is not None else _children_by_parent()).get(pid, [])
    return ticks(pid) + sum(ticks(c) for c in kids)


def machine_busy_ticks():
    """Busy ticks of the whole machine (user nice system irq softirq steal):
    the machine is shared, and what the bench did not use went to others."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                v = [int(x) for x in line.split()[1:]]
                return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    return 0


def rss_kb(pid):
    """VmRSS of a process in kB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def snapshot(groups):
    """{name: ticks} for {name: pid}, plus 'machine'."""
    by_parent = _children_by_parent()
    out = {name: group_ticks(pid, by_parent) for name, pid in groups.items()}
    out["machine"] = machine_busy_ticks()
    return out


def seconds(before, after):
    """CPU seconds per group between two snapshots."""
    return {k: (after[k] - before[k]) / CLK_TCK for k in after}
