#!/usr/bin/env python3
"""What a pass with nothing new costs over a source of 1,000,000 old objects:
a full listing against a windowed one (`lookback`), measured through the
binary.

For each layout (flat: every object of the path in one directory, key
web/YYYYMMDDHH_N.gz; dirs: time_slice_format %Y/%m/%d/%H, a directory per
hour) it builds a file:// source of N empty objects, 120 an hour, in the
hours before now - 48h (reused on later runs), and a ledger that already
knows every one of them (rows written straight into SQLite as `skipped`, so
that no pass stages anything: staging a million objects is another bench).
Then it runs `logferry run` twice, with metrics on:

  full:     lookback = "0"   (the whole source listed every pass)
  windowed: lookback = "3h", reconcile_every = "1h"

and, after the start-up pass (windowed: after the first window too, which
on file:// reads the directories that later windows answer from while they
are unchanged), reads the daemon's CPU time (utime + stime from
/proc/PID/stat) and logferry_list_requests_total over K passes. It prints
CPU ms and LIST requests per pass, and the ratio.

    bench/list_window.py [--bin build/logferry] [--objects 1000000]
                         [--layout flat,dirs] [--dir /tmp/logferry-bench-list]
                         [--passes 20] [--full-passes 3]
    bench/list_window.py --store moto --objects 50000 --full-passes 1 --passes 5

--store moto holds the objects in moto's in-process S3 backend (moto
ThreadedMotoServer on 127.0.0.1, keys put straight into its backend, not
over HTTP) and lists them over HTTP as S3. moto answers each ListObjectsV2
in time proportional to the whole bucket (about 1 s per page at 50,000
keys, 4 KB of memory per key), so a million keys there is out of reach:
the LIST counts it shows are what S3 would bill.
"""

import argparse
import datetime
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

PER_HOUR = 120
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def key_of(layout, i, newest):
    t = newest - datetime.timedelta(hours=i // PER_HOUR)
    if layout == "flat":
        return "web/%s_%d.gz" % (t.strftime("%Y%m%d%H"), i % PER_HOUR)
    return "web/%s_%d.gz" % (t.strftime("%Y/%m/%d/%H"), i % PER_HOUR)


MOTO_ENV = {"AWS_ACCESS_KEY_ID": "AKIDMOTOTEST", "AWS_SECRET_ACCESS_KEY": "moto-secret", "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def start_moto(n):
    """moto in this process with n empty objects under s3://src/logs/; returns (server, endpoint, keys)."""
    from moto.server import ThreadedMotoServer
    from moto.s3.models import s3_backends
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    backend = s3_backends["123456789012"]["aws"]
    backend.create_bucket("src", "us-east-1")
    newest = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    newest -= datetime.timedelta(hours=48)
    keys = [key_of("flat", i, newest) for i in range(n)]
    t0 = time.monotonic()
    for k in keys:
        backend.put_object("src", "logs/" + k, b"")
    print("  moto: put %d objects in %.0f s" % (n, time.monotonic() - t0), flush=True)
    return server, "http://%s:%d" % (host, port), keys


def build_source(root, layout, n):
    source = os.path.join(root, "bucket", "logs")
    marker = os.path.join(root, "built-%d" % n)
    if os.path.exists(marker):
        return source, False
    shutil.rmtree(root, ignore_errors=True)
    newest = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
    newest -= datetime.timedelta(hours=48)
    made = set()
    t0 = time.monotonic()
    for i in range(n):
        path = os.path.join(source, key_of(layout, i, newest))
        d = os.path.dirname(path)
        if d not in made:
            os.makedirs(d, exist_ok=True)
            made.add(d)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))
    print("  %s: created %d objects in %.0f s" % (layout, n, time.monotonic() - t0), flush=True)
    open(marker, "w").close()
    return source, True


def write_config(root, source, layout, port, **table):
    t = dict(name="access", source=source if "://" in source else "file://%s/" % source, staging="file://%s/staging/" % root,
             warehouse="duckdb://%s/logs.duckdb" % root, format="out_file", timezone="+00:00", settle="0s",
             interval="200ms", time_slice_format="%Y/%m/%d/%H" if layout == "dirs" else "%Y%m%d%H")
    t.update(table)
    path = os.path.join(root, "logferry.toml")
    with open(path, "w") as f:
        f.write('state_dir = "%s/state"\nmetrics_listen = "127.0.0.1:%d"\nworkers = 1\nlog_level = "warn"\n\n'
                '[[table]]\n' % (root, port))
        for k, v in t.items():
            f.write('%s = "%s"\n' % (k, v))
    return path


def build_ledger(binary, root, source, layout, fresh, keys=None):
    """A ledger that knows every object of the source (state skipped);
    keys: the objects of a moto source (empty, so all of one etag)."""
    db = os.path.join(root, "state", "ledger.db")
    if os.path.exists(db) and not fresh:
        return
    shutil.rmtree(os.path.join(root, "state"), ignore_errors=True)
    empty = os.path.join(root, "empty")
    os.makedirs(empty, exist_ok=True)
    cfg = write_config(root, empty, layout, free_port())
    subprocess.run([binary, "run", "--once", "-c", cfg], check=True, capture_output=True, timeout=600)
    t0 = time.monotonic()
    now_us = int(time.time() * 1e6)
    con = sqlite3.connect(db)

    def rows():
        if keys is not None:
            for key in keys:
                yield ("access", key, EMPTY_MD5, 0, 0, "bench-" + key, "skipped", "listing", now_us)
            return
        for dirpath, _, names in os.walk(source):
            for name in names:
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                key = os.path.relpath(path, source)
                etag = "%x-%x-%x" % (st.st_mtime_ns, st.st_size, st.st_ino)
                yield ("access", key, etag, st.st_size, st.st_mtime_ns // 1000, "bench-" + key, "skipped",
                       "listing", now_us)

    con.executemany("INSERT INTO objects(table_name, key, etag, size, mtime_us, version_id, state, found_by, "
                    "discovered_us) VALUES(?,?,?,?,?,?,?,?,?)", rows())
    con.commit()
    con.close()
    print("  %s: ledger written in %.0f s" % (layout, time.monotonic() - t0), flush=True)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        out = {}
        for line in r.read().decode().splitlines():
            if line and not line.startswith("#"):
                k, v = line.rsplit(" ", 1)
                out[k] = float(v)
        return out


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_passes(p, port, at_least, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("logferry run exited with %d" % p.returncode)
        try:
            m = scrape(port)
            if m.get('logferry_passes_total{outcome="ok"}', 0) >= at_least:
                return m
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for %d passes" % at_least)


def measure(binary, root, source, layout, passes, env=None, skip=1, **table):
    port = free_port()
    cfg = write_config(root, source, layout, port, **table)
    p = subprocess.Popen([binary, "run", "-c", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_passes(p, port, 1, 3600)
        c0 = cpu_seconds(p.pid)
        m1 = wait_passes(p, port, skip, 3600)
        c1 = cpu_seconds(p.pid)
        m2 = wait_passes(p, port, skip + passes, 3600)
        c2 = cpu_seconds(p.pid)
    finally:
        p.terminate()
        p.wait(timeout=120)
    done = m2['logferry_passes_total{outcome="ok"}'] - m1['logferry_passes_total{outcome="ok"}']
    lists = m2['logferry_list_requests_total{table="access"}'] - m1['logferry_list_requests_total{table="access"}']
    new = m2['logferry_objects_discovered_total{table="access"}']
    kinds = {k: m2['logferry_source_listings_total{kind="%s",table="access"}' % k] -
             m1['logferry_source_listings_total{kind="%s",table="access"}' % k] for k in ("full", "window")}
    return dict(cpu_ms=(c2 - c1) * 1000 / done, lists=lists / done, passes=done, new=new, kinds=kinds,
                first_ms=(c1 - c0) * 1000 / max(skip - 1, 1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "build", "logferry"))
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--layout", default="flat,dirs")
    ap.add_argument("--dir", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "logferry-bench-list"))
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--full-passes", type=int, default=3)
    ap.add_argument("--store", choices=("file", "moto"), default="file")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    results = []
    if a.store == "moto":
        root = os.path.join(a.dir, "moto")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        server, endpoint, keys = start_moto(a.objects)
        env = dict(os.environ, **MOTO_ENV)
        try:
            build_ledger(binary, root, os.path.join(root, "empty"), "flat", True, keys=keys)
            s3 = dict(env=env, endpoint=endpoint)
            full = measure(binary, root, "s3://src/logs/", "flat", a.full_passes, lookback="0", **s3)
            windowed = measure(binary, root, "s3://src/logs/", "flat", a.passes, lookback="3h", reconcile_every="1h",
                               **s3)
        finally:
            server.stop()
        results.append(("moto S3, flat", full, windowed))
    for layout in a.layout.split(",") if a.store == "file" else []:
        root = os.path.join(a.dir, layout)
        source, fresh = build_source(root, layout, a.objects)
        build_ledger(binary, root, source, layout, fresh)
        full = measure(binary, root, source, layout, a.full_passes, lookback="0")
        windowed = measure(binary, root, source, layout, a.passes, skip=2, lookback="3h", reconcile_every="1h")
        for name, r in (("full", full), ("windowed", windowed)):
            if r["new"] != 0:
                print("warning: %s discovered %d objects: the ledger did not know them all" % (name, r["new"]))
        results.append((layout, full, windowed))
    print()
    print("%d old objects, %s, %s; CPU per pass after the start-up pass" % (a.objects, a.store, binary))
    print("| layout | listing | passes | CPU ms / pass | LIST requests / pass | listings |")
    print("| --- | --- | --- | --- | --- | --- |")
    for layout, full, windowed in results:
        for name, r in (("full", full), ("windowed", windowed)):
            print("| %s | %s | %d | %.1f | %.1f | %s |" % (layout, name, r["passes"], r["cpu_ms"], r["lists"],
                                                         ", ".join("%s %d" % kv for kv in r["kinds"].items())))
        if windowed["first_ms"] > 0:
            print("| %s | first window (skipped above) | 1 | %.1f | | |" % (layout, windowed["first_ms"]))
        print("| %s | ratio full / windowed CPU | | %.0f× | | |" % (layout, full["cpu_ms"] / max(windowed["cpu_ms"], 0.01)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
