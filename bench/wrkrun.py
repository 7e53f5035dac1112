"""bench/wrkrun.py: wrk through nginx for `make bench`: the spec file that
bench/bench.lua reads, wrk's command line, and its result line."""

import re


def spec(api, pattern, chats, body_file, status, prefix, credential=None):
    """The text of bench.lua's spec file for PATCHes of api (a params.Api)
    on its route pattern ("/api/sessions/{}/chats/{}")."""
    lines = ["method PATCH", f"pattern {pattern}"]
    if pattern.count("{}") != len(api.path):
        raise ValueError(f"{api.name}: the route {pattern} has {pattern.count('{}')} "
                         f"parameters, params.py gives {len(api.path)}")
    lines += [f"param {p.lua_spec()}" for p in api.path]
    lines += [f"header {k}: {v}" for k, v in api.request_headers(credential)]
    lines += [f"body_file {body_file}", f"chats {chats}", f"status {status}",
              f"prefix {prefix}"]
    return "\n".join(lines) + "\n"


def get_spec(path, status, prefix, method="GET"):
    """The text of bench.lua's spec file for bodiless requests (GETs) of one
    fixed path."""
    return "\n".join([f"method {method}", f"pattern {path}", "chats 1", f"status {status}",
                      f"prefix {prefix}"]) + "\n"


def command(url, spec_file, connections, threads, seconds, timeout, script):
    return ["wrk", "-t", str(min(threads, connections)), "-c", str(connections),
            "-d", f"{seconds}s", "--timeout", f"{timeout}s", "--latency",
            "-s", script, url, "--", spec_file, str(min(threads, connections))]


def parse(output):
    """bench.lua's BENCH line as a dict, or None when wrk printed none."""
    m = re.search(r"^BENCH (.*)$", output, re.M)
    if not m:
        return None
    out = {}
    for item in m.group(1).split():
        k, v = item.split("=", 1)
        if k == "statuses":
            out[k] = {} if v == "-" else {int(c): int(n) for c, n in
                                          (s.split(":") for s in v.split(","))}
        else:
            out[k] = int(v)
    return out


def clock_jump_s(duration_us, wall_s):
    """How far the wall clock jumped during a run, in seconds: how much
    longer wrk says it ran than the run's monotonic wall time. wrk times
    with gettimeofday, so when the clock is stepped (a virtual machine
    paused, then set right) its duration grows by the step and every
    request in flight counts as a timeout."""
    return duration_us / 1e6 - wall_s if duration_us is not None else 0.0


def example_path(pattern, api, i=1):
    """The path of chat i, as bench.lua builds it (for checks and docs)."""
    out = pattern
    for p in api.path:
        out = out.replace("{}", p.text(i), 1)
    return out

