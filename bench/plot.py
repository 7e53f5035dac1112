"""bench/plot.py: result.png of `make bench`: for each API, req/s and p99
latency against concurrency for the ceiling, chatpatch and the peer,
drawn by gnuplot from the pooled runs (bench/report.py).

  /usr/bin/python3 bench/plot.py var/bench/runs.json var/bench   # again
"""

import json
import os
import subprocess
import sys

import report

STYLE = {"ceiling": "lw 2 dt 2 lc rgb '#777777' pt 6",
         "chatpatch": "lw 2 lc rgb '#1f77b4' pt 7",
         "peer": "lw 2 lc rgb '#d62728' pt 5"}


def data_files(meta, m, out_dir):
    """One data file per API and target ("conc rps p99_ms" lines);
    {(api, target): path} of those with any point."""
    files = {}
    for api in meta["apis"]:
        for t in report.TARGETS:
            rows = [(c, m[api, t, c]) for c in meta["concurrency"] if (api, t, c) in m]
            rows = [(c, g) for c, g in rows if g["rps"] is not None and g["p99_ms"] is not None]
            if not rows:
                continue
            path = os.path.join(out_dir, f"plot-{api}-{t}.dat")
            with open(path, "w") as f:
                f.writelines(f"{c} {g['rps']:.1f} {g['p99_ms']:.3f}\n" for c, g in rows)
            files[api, t] = path
    return files


def script(meta, files, png):
    apis = meta["apis"]
    lines = [
        "set terminal pngcairo size 1500,850 font 'sans,10'",
        f"set output '{png}'",
        f"set multiplot layout 2,{len(apis)} title 'make bench {meta['started']}: against concurrency, "
        f"{meta['chats']:,} chats per API, {meta['workers']} workers x {report.db_connections(meta)}"
        f" connections, {meta['seconds']} s per run'",
        "set logscale x 2",
        "set grid",
        "set key below horizontal",
        f"set xtics ({', '.join(str(c) for c in meta['concurrency'])})",
        f"set xrange [{min(meta['concurrency']) / 1.5}:{max(meta['concurrency']) * 1.5}]",
    ]
    for column, label in ((2, "req/s"), (3, "p99 ms")):
        # latencies span milliseconds to seconds: a log scale shows them all
        lines += (["unset logscale y", "set yrange [0:*]"] if column == 2 else
                  ["set logscale y 10", "set yrange [*:*]"])
        for api in apis:
            plots = [f"'{files[api, t]}' using 1:{column} with linespoints {STYLE[t]} title '{t}'"
                     for t in report.TARGETS if (api, t) in files]
            lines.append(f"set title '{report.TITLES.get(api, api)}: {label}'")
            lines.append(f"set ylabel '{label}'")
            lines.append("plot " + ", ".join(plots) if plots else "plot 0 notitle")
    lines.append("unset multiplot")
    return "\n".join(lines) + "\n"


def draw(meta, runs, out_dir):
    """Writes result.png (and its gnuplot script and data) in out_dir."""
    m = report.pooled(meta, runs)
    files = data_files(meta, m, out_dir)
    gp = os.path.join(out_dir, "result.gp")
    with open(gp, "w") as f:
        f.write(script(meta, files, os.path.join(out_dir, "result.png")))
    subprocess.run(["gnuplot", gp], check=True)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        data = json.load(f)
    draw(data["meta"], data["runs"], argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
