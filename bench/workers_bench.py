#!/usr/bin/env python3
"""Two `logferry run --once` workers against one, on the same backlog (issue 13 §5).

Each run starts from an empty ledger, staging and warehouse over the same
generated file:// source and times the wall clock until every worker has
exited; the rows staged or loaded are checked against the source. Cases
(--cases, comma-separated):

  stage        file:// staging, SQLite ledger, nothing due to load (staging alone)
  duckdb       the same, staged and loaded into DuckDB (one writer process: loads take turns)
  bigquery     gs:// staging on the Cloud Storage emulator, loads as jobs on the
               BigQuery stand-in (tests/e2e: gcs.py, bq_standin.py, count_only)
  pg-stage     `stage` with the ledger on PostgreSQL 15 (tests/e2e/pg.py)
  pg-bigquery  `bigquery` with the ledger on PostgreSQL 15

  bench/workers_bench.py --quick                 # every case once, 12 hours: < 3 minutes
  bench/workers_bench.py [--cases stage,duckdb] [--hours 24] [--rows-per-hour 40000]
                         [--threads 1] [--repeat 3] [--bin build/logferry]

--threads is `workers` (staging threads) in each process: 1 compares two
single-threaded processes with one, which is what a second machine adds.

Printed per case and worker count: the best wall time, the CPU-s of the
workers (user + system), and where the workers' main threads spent the wall
clock (from /proc/PID/task/PID/schedstat, sampled every 10 ms): on a core,
runnable but waiting for a core (the machine is busy), or blocked (I/O,
fsync, locks, sleeps). With workers = 1 the main thread does the staging, so
"blocked" is what waiting on the ledger or the disk costs and "waiting" is
what other processes on the machine cost. The load average is printed with
each case. Not a test: no assertions on timings.
"""

import argparse
import os
import re
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
CASES = ("stage", "duckdb", "bigquery", "pg-stage", "pg-bigquery")
PROJECT = "logferry-bench"  # + the run number: job ids repeat across runs


class Services:
    """The emulators and PostgreSQL, started once on first use and stopped at exit."""

    def __init__(self):
        self.gcs = self.bq = self.pg = None
        self.runs = 0
        self.gcloud = tempfile.mkdtemp(prefix="logferry-workers-bench-gcloud-")

    def bigquery(self):
        if self.bq is None:
            import bq_standin
            import gcs
            self.gcs = gcs.GcsEmulator()
            self.bq = bq_standin.BigQueryStandin(gcs_endpoint=self.gcs.endpoint, polls_until_done=1,
                                                 count_only=True)
        return self.bq

    def postgres(self):
        if self.pg is None:
            import pg
            self.pg = pg.Server()
        return self.pg

    def cpu(self):
        """CPU-s so far of the services this machine runs for the case: the GCS
        emulator, PostgreSQL (its ended backends count in the postmaster's
        children) and this process (the BigQuery stand-in, the sampling)."""
        cpu = {"bench": sum(resource.getrusage(resource.RUSAGE_SELF)[:2])}
        pids = {"gcs": self.gcs.proc.pid} if self.gcs is not None else {}
        if self.pg is not None:
            with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
                pids["pg"] = int(f.readline())
        for name, pid in pids.items():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                cpu[name] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
            except OSError:
                pass
        return cpu

    def env(self):
        env = dict(os.environ)
        if self.gcs is not None:
            for k in list(env):
                if k.startswith("GOOGLE_") or k.startswith("CLOUDSDK_"):
                    del env[k]
            env.update(self.gcs.env())
            env.update({"GOOGLE_OAUTH_ACCESS_TOKEN": "bench-access-token", "CLOUDSDK_CONFIG": self.gcloud,
                        "GCE_METADATA_HOST": "127.0.0.1:1"})
        return env

    def stop(self):
        if self.bq is not None:
            self.bq.stop()
        if self.gcs is not None:
            self.gcs.stop()
        if self.pg is not None:
            self.pg.cleanup()
        shutil.rmtree(self.gcloud, ignore_errors=True)


class Run:
    """One run's directories, config and how to count what it did."""

    def __init__(self, services, case, source, threads):
        services.runs += 1
        self.case, self.services = case, services
        self.root = tempfile.mkdtemp(prefix="logferry-workers-bench-")
        self.stage_only = case.endswith("stage")
        self.pg_db = None
        lines = ['state_dir = "%s/state"' % self.root, "workers = %d" % threads, 'log_level = "info"']
        if case.startswith("pg-"):
            self.pg_db = "ledger%d" % services.runs
            services.postgres().psql("CREATE DATABASE %s OWNER logferry" % self.pg_db)
            lines.append('ledger = "%s"' % services.pg.uri(self.pg_db))
        if case.endswith("bigquery"):
            bq = services.bigquery()
            self.dataset = "bench%d" % services.runs
            staging = "gs://bench-staging-%d/parts/" % services.runs
            self.project = "%s-%d" % (PROJECT, services.runs)
            warehouse = "bigquery://%s/%s" % (self.project, self.dataset)
            lines.append('bigquery_endpoint = "%s"' % bq.endpoint)
        else:
            staging = "file://%s/staging/" % self.root
            warehouse = "duckdb://%s/logs.duckdb" % self.root
        lines += ["", "[[table]]", 'name = "access"', 'source = "file://%s/"' % source,
                  'staging = "%s"' % staging, 'warehouse = "%s"' % warehouse, 'format = "out_file"',
                  'timezone = "+09:00"', "settle = %s" % (NEVER_DUE if self.stage_only else '"0s"')]
        self.config = os.path.join(self.root, "logferry.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

    def rows(self, binary):
        if self.stage_only:
            sql = "SELECT coalesce(sum(rows_staged), 0) FROM objects WHERE state='staged'"
            if self.pg_db:
                return int(self.services.pg.query(self.pg_db, sql)[0][0])
            con = sqlite3.connect("file:%s/state/ledger.db?mode=ro" % self.root, uri=True)
            try:
                return con.execute(sql).fetchone()[0]
            finally:
                con.close()
        if self.case.endswith("bigquery"):
            return sum(self.services.bq.partition_counts(self.project, self.dataset, "access").values())
        out = subprocess.run([binary, "query", "--csv", "-c", self.config, "SELECT count(*) AS n FROM access"],
                             capture_output=True, text=True, timeout=600, check=True).stdout
        return int(out.split()[-1])

    def cleanup(self):
        shutil.rmtree(self.root, ignore_errors=True)


def schedstat(pid):
    """(ns on a core, ns runnable waiting for one) of a process's main thread."""
    try:
        with open("/proc/%d/task/%d/schedstat" % (pid, pid)) as f:
            on, wait = f.read().split()[:2]
            return int(on), int(wait)
    except (OSError, ValueError):
        return None


def run_workers(binary, run, workers, services):
    """(wall s, CPU-s, services' CPU-s, [(on-core s, waiting s, blocked s) per worker], [objects per worker])"""
    env = services.env()
    services_cpu0 = services.cpu()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    procs = [subprocess.Popen([binary, "run", "--once", "-c", run.config], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env) for _ in range(workers)]
    last = [(0, 0)] * workers
    ended = [None] * workers
    deadline = t0 + 1800
    while None in ended and time.monotonic() < deadline:
        for i, p in enumerate(procs):
            if ended[i] is None:
                last[i] = schedstat(p.pid) or last[i]
                if p.poll() is not None:
                    ended[i] = time.monotonic()
        time.sleep(0.01)
    errors = [p.communicate(timeout=60)[1] for p in procs]
    seconds = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
    services_cpu = {k: v - services_cpu0.get(k, 0) for k, v in services.cpu().items()}
    for p, err in zip(procs, errors):
        if p.returncode != 0:
            raise SystemExit("run --once exited %d: %s" % (p.returncode, err.decode(errors="replace")[-2000:]))
        warnings = [line for line in err.decode(errors="replace").splitlines() if " warning " in line]
        for line in warnings[:3]:
            print("  (worker %d) %s" % (p.pid, line[:300]), flush=True)
    split = [(on / 1e9, wait / 1e9, max(0.0, end - t0 - (on + wait) / 1e9)) for (on, wait), end in zip(last, ended)]
    return seconds, cpu, services_cpu, split, [staged_by(err) for err in errors]


def staged_by(stderr):
    """Objects one worker staged, from its pass summary ("pass: 0 new objects, 24 staged (...")."""
    found = re.findall(r"pass: \d+ new objects?, (\d+) staged", stderr.decode(errors="replace"))
    return int(found[-1]) if found else -1


def bench_case(args, services, case, source, expected):
    best = {}
    for n in (1, 2):
        for _ in range(args.repeat):
            run = Run(services, case, source, args.threads)
            try:
                seconds, cpu, services_cpu, split, objects = run_workers(args.bin, run, n, services)
                rows = run.rows(args.bin)
            finally:
                run.cleanup()
            if rows != expected:
                raise SystemExit("%s: %d worker(s) did %d rows, the source holds %d" % (case, n, rows, expected))
            if seconds < best.get(n, (1e9,))[0]:
                best[n] = (seconds, cpu, split, os.getloadavg()[0], objects, services_cpu)
        seconds, cpu, split, load, objects, services_cpu = best[n]
        where = "; ".join("%.2f on a core, %.2f waiting, %.2f blocked" % s for s in split)
        others = ", ".join("%s %.2f" % kv for kv in sorted(services_cpu.items()))
        print("%-11s %d worker(s): %6.2f s wall, %5.2f CPU-s (%s), load %4.1f, objects staged %s  "
              "[main thread s: %s]" % (case, n, seconds, cpu, others, load, "/".join(map(str, objects)), where),
              flush=True)
    # Each worker's wall clock had it never waited for a core: what an idle
    # machine would give, if the time on a core did not change with the load.
    alone = {n: max(on + blocked for on, _, blocked in best[n][2]) for n in best}
    print("%-11s speed-up of 2 workers over 1: %.2fx wall, %.2fx without waiting for a core (CPU-s %.2fx)" %
          (case, best[1][0] / best[2][0], alone[1] / alone[2], best[2][1] / best[1][1]), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "logferry"))
    ap.add_argument("--hours", type=int, default=24)
    ap.add_argument("--rows-per-hour", type=int, default=40000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--quick", action="store_true", help="every case once over 12 hours (< 3 minutes)")
    args = ap.parse_args()
    if args.quick:
        args.hours, args.repeat = 12, 1
    cases = [c for c in args.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            raise SystemExit("unknown case %r (cases: %s)" % (c, ", ".join(CASES)))
    args.bin = os.path.abspath(args.bin)
    import lf  # tests/e2e/lf.py: counts the source's rows on its own

    data = tempfile.mkdtemp(prefix="logferry-workers-bench-data-")
    services = Services()
    try:
        subprocess.run([args.bin, "gen", "--out", data, "--hours", str(args.hours), "--rows-per-hour",
                        str(args.rows_per_hour), "--split-every", "1"], check=True, capture_output=True)
        source = os.path.join(data, "logs")
        expected = lf.count_source(source).total
        print("backlog: %d objects, %d rows; %d staging thread(s) per process; best of %d; load average %s "
              "on %d cores" % (len(os.listdir(source)), expected, args.threads, args.repeat,
                              " ".join("%.1f" % x for x in os.getloadavg()), os.cpu_count()), flush=True)
        for case in cases:
            bench_case(args, services, case, source, expected)
    finally:
        services.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
