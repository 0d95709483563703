#!/usr/bin/env python3
"""Two `logferry run --once` workers against one, on the same backlog (issue 13).

Each case starts from an empty ledger, staging and DuckDB warehouse over the
same generated file:// source, and times the wall clock until every worker
has exited; the rows loaded are checked against the source. Printed: the
seconds of each case and the speed-up of two workers over one.

  bench/workers_bench.py [--bin build/logferry] [--hours 24] [--rows-per-hour 40000]
                         [--threads 1] [--repeat 3]

--threads is `workers` (staging threads) in each process: 1 compares two
single-threaded processes with one, which is what a second machine adds; 0
gives each process one thread per core, so one process alone already uses
both cores of a 2-core machine. Not a test: no assertions on timings.
"""

import argparse
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))


# A settle no generated hour reaches, and no appends: the pass only stages.
NEVER_DUE = '"400000h"\nfresh_interval = "off"'


def write_config(root, source, threads, settle):
    path = os.path.join(root, "logferry.toml")
    with open(path, "w") as f:
        f.write('state_dir = "%s/state"\nworkers = %d\nlog_level = "warn"\n\n[[table]]\nname = "access"\n'
                'source = "file://%s/"\nstaging = "file://%s/staging/"\nwarehouse = "duckdb://%s/logs.duckdb"\n'
                'format = "out_file"\ntimezone = "+09:00"\nsettle = %s\n' % (root, threads, source, root, root,
                                                                                settle))
    return path


def rows_staged(root):
    con = sqlite3.connect("file:%s/state/ledger.db?mode=ro" % root, uri=True)
    try:
        return con.execute("SELECT coalesce(sum(rows_staged), 0) FROM objects WHERE state='staged'").fetchone()[0]
    finally:
        con.close()


def run_case(binary, source, workers, threads, stage_only):
    """(wall seconds, CPU seconds of the workers, rows staged or loaded)"""
    root = tempfile.mkdtemp(prefix="logferry-workers-bench-")
    try:
        config = write_config(root, source, threads, NEVER_DUE if stage_only else '"0s"')
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        procs = [subprocess.Popen([binary, "run", "--once", "-c", config], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(workers)]
        errors = [p.communicate(timeout=1800)[1] for p in procs]
        seconds = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
        for p, err in zip(procs, errors):
            if p.returncode != 0:
                raise SystemExit("run --once exited %d: %s" % (p.returncode, err.decode(errors="replace")[-2000:]))
        if stage_only:
            return seconds, cpu, rows_staged(root)
        rows = subprocess.run([binary, "query", "--csv", "-c", config, "SELECT count(*) AS n FROM access"],
                              capture_output=True, text=True, timeout=600, check=True).stdout.split()[-1]
        return seconds, cpu, int(rows)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "logferry"))
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--rows-per-hour", type=int, default=40000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import lf  # tests/e2e/lf.py: counts the source's rows on its own

    data = tempfile.mkdtemp(prefix="logferry-workers-bench-data-")
    try:
        subprocess.run([args.bin, "gen", "--out", data, "--hours", str(args.hours), "--rows-per-hour",
                        str(args.rows_per_hour), "--split-every", "1"], check=True, capture_output=True)
        source = os.path.join(data, "logs")
        expected = lf.count_source(source).total
        objects = len(os.listdir(source))
        print("backlog: %d objects, %d rows; %d staging thread(s) per process; load average %.1f on %d cores" %
              (objects, expected, args.threads, os.getloadavg()[0], os.cpu_count()))
        for stage_only in (False, True):
            what = "stage only" if stage_only else "stage and load"
            best = {}
            for n in (1, 2):
                for _ in range(args.repeat):
                    seconds, cpu, rows = run_case(args.bin, source, n, args.threads, stage_only)
                    if rows != expected:
                        raise SystemExit("%d worker(s) did %d rows, the source holds %d" % (n, rows, expected))
                    if seconds < best.get(n, (1e9, 0))[0]:
                        best[n] = (seconds, cpu)
                print("%s, %d worker(s): %.2f s wall, %.2f CPU-s (best of %d), %.0f rows/s" %
                      (what, n, best[n][0], best[n][1], args.repeat, expected / best[n][0]))
            print("%s: speed-up of 2 workers over 1: %.2fx" % (what, best[1][0] / best[2][0]))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
