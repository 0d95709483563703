#!/usr/bin/env python3
"""Files -> queryable in DuckDB: logferry against DuckDB's own read_json on
the same gzip JSON objects, in one run, with the same libduckdb; and the
freshness of rows of an open partition with the daemon running.

    bench/load_bench.py [--build build] [--hours 16] [--rows-per-hour 168000]
                        [--objects-per-hour 6] [--freshness-objects 20] [--skip-freshness]

The default shape is the issue's: about 100 objects (16 hours x 6) of 2.69 M
rows. DuckDB's multi-threaded read_json costs much less CPU on many mid-sized
files than on a few large ones (--objects-per-hour 1), so both shapes are
worth a run.

CPU seconds are user + system of every process and thread involved
(getrusage of the children). The headline ratio is DuckDB's CPU over
logferry's (> 1: logferry costs less), against DuckDB with its default
threads and with threads=1 (its cheapest setting). logferry also writes the
durable staging copy that reloads come from; DuckDB does not.
"""

import argparse
import datetime as dt
import gzip
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(args, **kw):
    """Runs args; returns (cpu seconds, wall seconds, stdout)."""
    c0, w0 = children_cpu(), time.monotonic()
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.exit("%s failed (%d): %s" % (args[0], r.returncode, r.stderr[-2000:]))
    return children_cpu() - c0, time.monotonic() - w0, r.stdout


def write_config(path, root, src, settle, fmt="json", **extra):
    lines = ['state_dir = "%s/state"' % root, "", "[[table]]", 'name = "access"',
             'source = "file://%s/"' % src, 'format = "%s"' % fmt, 'time_key = "time"', 'timezone = "+00:00"',
             'staging = "file://%s/staging/"' % root, 'warehouse = "duckdb://%s/wh.duckdb"' % root,
             'settle = "%s"' % settle]
    lines += ['%s = "%s"' % kv for kv in extra.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def cost(build, work, hours, rows, per_hour):
    data = os.path.join(work, "data-%dx%dx%d" % (hours, rows, per_hour))
    if not os.path.exists(os.path.join(data, ".complete")):
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run([os.path.join(build, "logferry"), "gen", "--out", data, "--hours", str(hours),
                        "--rows-per-hour", str(rows), "--objects-per-hour", str(per_hour), "--split-every", "0",
                        "--format", "json", "--timezone", "+00:00", "--seed", "7"],
                       check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(data, ".complete"), "w").close()
    src = os.path.join(data, "logs")
    objects = len(os.listdir(src))
    mb = sum(len(gzip.open(os.path.join(src, n)).read()) for n in os.listdir(src)) / 1e6
    lf = os.path.join(build, "logferry")
    results = {}

    run = os.path.join(work, "run")
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(run)
    cfg = os.path.join(run, "all.toml")
    write_config(cfg, run, src, "0s")
    results["logferry run --once"] = timed([lf, "run", "-c", cfg, "--once"])[:2]
    # The same again, in two steps: staging alone, then loading alone.
    shutil.rmtree(run)
    os.makedirs(run)
    stage_cfg = os.path.join(run, "stage.toml")
    write_config(stage_cfg, run, src, "100000h", fresh_interval="off")  # stage only: no appends either
    write_config(cfg, run, src, "0s")
    results["  staging (parse, normalize, gzip NDJSON parts)"] = timed([lf, "run", "-c", stage_cfg, "--once"])[:2]
    results["  loading (parts -> DuckDB INSERT, parsed once)"] = timed([lf, "run", "-c", cfg, "--once"])[:2]
    staged_mb = sum(os.path.getsize(os.path.join(d, n)) for d, _, ns in os.walk(os.path.join(run, "staging"))
                    for n in ns) / 1e6

    sql = os.path.join(build, "logferry_duckdb_sql")
    files = os.path.join(src, "*.gz")
    for threads in ("default", "1"):
        db = os.path.join(work, "duckdb-%s.duckdb" % threads)
        for p in (db, db + ".wal"):
            if os.path.exists(p):
                os.remove(p)
        stmts = ([] if threads == "default" else ["SET threads=%s" % threads]) + [
            "CREATE TABLE t AS SELECT * FROM read_json('%s')" % files]
        cpu, wall, out = timed([sql, db] + stmts)
        results["DuckDB read_json, threads=%s" % threads] = (cpu, wall)
    return objects, mb, staged_mb, results


def freshness(build, work, n_objects):
    """Median seconds from an object landing to its rows being queryable,
    with the daemon running at interval = 1s on an open hour."""
    root = os.path.join(work, "fresh")
    shutil.rmtree(root, ignore_errors=True)
    src = os.path.join(root, "logs")
    os.makedirs(src)
    cfg = os.path.join(root, "fresh.toml")
    write_config(cfg, root, src, "10m", fmt="out_file", interval="1s")
    lf = os.path.join(build, "logferry")
    daemon = subprocess.Popen([lf, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lags, expected = [], 0
    try:
        hour = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        for i in range(n_objects):
            lines = "".join("%s\tbench\t%s\n" % ((hour + dt.timedelta(seconds=j)).isoformat(),
                                                 json.dumps({"i": j, "object": i})) for j in range(100))
            tmp = os.path.join(root, ".tmp.gz")
            with gzip.open(tmp, "wt") as f:
                f.write(lines)
            expected += 100
            landed = time.monotonic()
            os.replace(tmp, os.path.join(src, "%s_%d.gz" % (hour.strftime("%Y%m%d%H"), i)))
            deadline = landed + 60
            while time.monotonic() < deadline:
                r = subprocess.run([lf, "query", "-c", cfg, "--csv", "SELECT count(*) n FROM access"],
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                if r.returncode == 0 and r.stdout.split()[-1] == str(expected):
                    lags.append(time.monotonic() - landed)
                    break
                time.sleep(0.1)
            else:
                sys.exit("object %d was not queryable within 60 s" % i)
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    return lags


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--hours", type=int, default=16)
    ap.add_argument("--rows-per-hour", type=int, default=168000)
    ap.add_argument("--objects-per-hour", type=int, default=6)
    ap.add_argument("--freshness-objects", type=int, default=20)
    ap.add_argument("--skip-freshness", action="store_true")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "logferry-load-bench"))
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    objects, mb, staged_mb, results = cost(a.build, a.work, a.hours, a.rows_per_hour, a.objects_per_hour)
    print("files -> queryable: %d gzip JSON objects, %.1f MB uncompressed, %d hours x %d rows; staged parts %.1f MB"
          % (objects, mb, a.hours, a.rows_per_hour, staged_mb))
    print("%-52s %8s %8s %10s" % ("", "cpu s", "wall s", "MB/s/core"))
    for name, (cpu, wall) in results.items():
        print("%-52s %8.2f %8.2f %10.1f" % (name, cpu, wall, mb / cpu if cpu else 0))
    ours = results["logferry run --once"][0]
    for threads in ("default", "1"):
        theirs = results["DuckDB read_json, threads=%s" % threads][0]
        print("ratio DuckDB(threads=%s) / logferry CPU: %.2fx (target >= 1.5x)" % (threads, theirs / ours))
    if not a.skip_freshness:
        lags = freshness(a.build, a.work, a.freshness_objects)
        print("freshness (interval = 1s, open hour): median %.2f s, max %.2f s over %d objects (target median <= 2 s)"
              % (statistics.median(lags), max(lags), len(lags)))


if __name__ == "__main__":
    main()
