#!/usr/bin/env python3
"""Per-object cost of small Fluentd objects, end to end: `logferry run --once`
staging and loading many tiny objects into the default DuckDB warehouse.

    bench/small_objects.py [--build build] [--objects 20000] [--hours 200]
                           [--lines 50] [--repeat 1] [--keep] [--perf]

The data is `logferry gen` output (out_file, gzip, +00:00, seed 13): `hours`
hours, each written as objects/hours objects of `lines` records (about
3 KB gzip each at 50 lines). It is generated once under
BUILD/small-objects/ (or --work) and reused. Keep it off a file system
where many files are created and deleted all the time (see bench/README.md:
on this machine's /tmp, creating a file costs 25x the CPU it costs on /work).

Figures (CPU = user + system of the logferry process, from wait4):
- the whole first pass (discover, stage, load into DuckDB), per object;
- the same in two processes: staging alone (settle far away, no appends),
  then loading alone, as the breakdown;
- the pass log's per-step timings (`-v`: "pass step" lines, when present);
- a second pass with nothing new;
- peers: the same bytes as a few large objects (one per hour), so the
  per-object part of the cost is the difference.
--perf records the staging-alone run with `perf record -g` into
perf.data in the work directory and prints the top of `perf report`.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(args, env=None):
    """Runs args; returns (cpu seconds, wall seconds, stderr)."""
    c0, w0 = children_cpu(), time.monotonic()
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if r.returncode != 0:
        sys.exit("%s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr[-3000:]))
    return children_cpu() - c0, time.monotonic() - w0, r.stderr


def write_config(path, root, src, settle, **extra):
    lines = ['state_dir = "%s/state"' % root, "", "[[table]]", 'name = "access"',
             'source = "file://%s/"' % src, 'format = "out_file"', 'timezone = "+00:00"',
             'staging = "file://%s/staging/"' % root, 'warehouse = "duckdb://%s/wh.duckdb"' % root,
             'settle = "%s"' % settle]
    lines += ['%s = "%s"' % kv for kv in extra.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def generate(lf, data, hours, per_hour, rows_per_hour):
    marker = os.path.join(data, ".complete-%d-%d-%d" % (hours, per_hour, rows_per_hour))
    if os.path.exists(marker):
        return
    shutil.rmtree(data, ignore_errors=True)
    subprocess.run([lf, "gen", "--out", data, "--hours", str(hours), "--rows-per-hour", str(rows_per_hour),
                    "--objects-per-hour", str(per_hour), "--split-every", "0", "--timezone", "+00:00",
                    "--seed", "13", "--start", "2016-08-01T00"], check=True, stdout=subprocess.DEVNULL)
    open(marker, "w").close()


def source_stats(src):
    names = os.listdir(src)
    return len(names), sum(os.path.getsize(os.path.join(src, n)) for n in names)


RUNS = [0]


def fresh(work):
    """A new run directory. Nothing is deleted before the end: on ext4
    without a journal (this machine), creating files where many were just
    deleted costs up to 1 ms of CPU each (the kernel's recently_deleted
    scan), which would be charged to logferry."""
    RUNS[0] += 1
    root = os.path.join(work, "run-%d" % RUNS[0])
    os.makedirs(root)
    return root


def step_lines(stderr):
    return [line for line in stderr.splitlines() if "pass step" in line or "took" in line][:20]


def measure(lf, work, src, perf=False):
    """{label: (cpu, wall)} for one data set, plus the per-step log lines."""
    out = {}
    run = fresh(work)
    cfg = os.path.join(run, "all.toml")
    write_config(cfg, run, src, "0s")
    cpu, wall, err = timed([lf, "run", "-c", cfg, "--once", "-v"])
    out["first pass (stage + load)"] = (cpu, wall)
    steps = step_lines(err)
    out["second pass, nothing new"] = timed([lf, "run", "-c", cfg, "--once"])[:2]

    run = fresh(work)
    stage_cfg = os.path.join(run, "stage.toml")
    write_config(stage_cfg, run, src, "100000h", fresh_interval="off")  # stage only: no appends either
    write_config(cfg, run, src, "0s")
    stage = [lf, "run", "-c", stage_cfg, "--once"]
    if perf:
        stage = ["perf", "record", "-g", "-o", os.path.join(work, "perf.data"), "--"] + stage
    out["  staging alone (discover + stage)"] = timed(stage)[:2]
    out["  loading alone (DuckDB)"] = timed([lf, "run", "-c", cfg, "--once"])[:2]
    return out, steps


def report(title, n, nbytes, results):
    print("\n%s: %d objects, %.1f MB gzip" % (title, n, nbytes / 1e6))
    print("%-38s %8s %8s %14s" % ("", "cpu s", "wall s", "cpu ms/object"))
    for label, (cpu, wall) in results.items():
        print("%-38s %8.2f %8.2f %14.3f" % (label, cpu, wall, cpu * 1000 / n))


def best(runs):
    """Per label, the run with the least CPU (other load only adds)."""
    out = {}
    for r in runs:
        for k, v in r.items():
            if k not in out or v[0] < out[k][0]:
                out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--hours", type=int, default=200)
    ap.add_argument("--lines", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--work", help="data and run directory (default: BUILD/small-objects; see README: not /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the run directory")
    a = ap.parse_args()
    lf = os.path.abspath(os.path.join(a.build, "logferry"))
    per_hour = max(1, a.objects // a.hours)
    rows_per_hour = per_hour * a.lines
    base = os.path.abspath(a.work or os.path.join(a.build, "small-objects"))
    small = os.path.join(base, "small")
    generate(lf, small, a.hours, per_hour, rows_per_hour)
    # Left by an interrupted run: deleted at the end, not before measuring.
    stale = [os.path.join(base, n) for n in os.listdir(base) if n.startswith("work-")]
    work = os.path.join(base, "work-%d" % os.getpid())
    os.makedirs(work)
    src = os.path.join(small, "logs")
    n, nbytes = source_stats(src)
    runs, steps = [], []
    for _ in range(a.repeat):
        r, steps = measure(lf, work, src, perf=a.perf)
        runs.append(r)
    report("small objects (%d lines each)" % a.lines, n, nbytes, best(runs))
    if steps:
        print("\npass log of the first pass:\n  " + "\n  ".join(steps))
    if a.perf:
        rep = subprocess.run(["perf", "report", "-i", os.path.join(work, "perf.data"), "--no-children",
                              "--percent-limit", "1", "--stdio", "-g", "none"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        print("\nperf (staging alone, self time >= 1%):\n" + "\n".join(rep.stdout.splitlines()[:60]))
    if not a.skip_peers:
        large = os.path.join(base, "large")
        generate(lf, large, a.hours, 1, rows_per_hour)
        lsrc = os.path.join(large, "logs")
        ln, lbytes = source_stats(lsrc)
        r, _ = measure(lf, work, lsrc)
        report("peer: the same rows as one object an hour", ln, lbytes, r)
        print("  (per-object figures above are per large object; per small object: %.3f ms of first-pass CPU)"
              % (r["first pass (stage + load)"][0] * 1000 / n))
    for d in stale + ([] if a.keep else [work]):
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
