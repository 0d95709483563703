"""End-to-end: what one object may cost in staging, whatever it holds.

* An object whose records spread over 2,000 hours stages and loads exactly
  under `prlimit --nofile=200` (open parts are bounded, not one per hour),
  and its parts, written as many gzip members each, load into DuckDB.
* A few garbage timestamps cannot open a partition each: past
  max_partitions_per_object records are bad records naming the bound; the
  object's own hour always loads.
* Running out of file descriptors fails the object as RESOURCE_EXHAUSTED
  (not transient), the pass goes on, and the object stages once the limit
  is gone.
* 12,000 bad lines in one object: status and verify count all of them.
"""

import datetime as dt
import json
import os
import random
import shutil
import subprocess
import time
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

UTC = dt.timezone.utc
T0 = dt.datetime(2016, 8, 1, 0, 0, 0, tzinfo=UTC)
TIME = shutil.which("time") and "/usr/bin/time"


def scattered_lines(hours, per_hour, seed=5):
    """per_hour out_file lines in each of `hours` hours from T0, shuffled so
    that nearly every line goes to another hour than the one before."""
    lines = [lf.out_file_line(T0 + dt.timedelta(hours=h, seconds=k), {"hr": h, "seq": k})
             for h in range(hours) for k in range(per_hour)]
    random.Random(seed).shuffle(lines)
    return lines


def run_limited(ws, nofile, *args, timeout=600):
    """`logferry ARGS -c CONFIG` under a descriptor limit; returns (rc, output, peak RSS in KiB or None)."""
    cmd = ["prlimit", "--nofile=%d" % nofile, lf.BIN] + list(args) + ["-c", ws.config_path]
    rss_file = os.path.join(ws.root, "rss.txt")
    if TIME:
        cmd = [TIME, "-f", "%M", "-o", rss_file] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, errors="replace")
    rss = None
    if TIME:
        with open(rss_file) as f:
            rss = int(f.read().split()[-1])
    return p.returncode, p.stdout + p.stderr, rss


class StagingBoundsTest(unittest.TestCase):
    maxDiff = None

    def status(self, ws):
        r = ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)[0]

    def test_an_object_over_two_thousand_hours_loads_under_a_low_descriptor_limit(self):
        ws = lf.Workspace(self)
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), scattered_lines(2000, 5))
        ws.write_config(timezone="+00:00", partition="day", max_partitions_per_object=100)
        expected = lf.count_source(ws.source_dir, default_offset="+00:00")
        rc, out, rss = run_limited(ws, 200, "run", "--once")
        self.assertEqual(rc, 0, out)
        self.assertEqual(ws.warehouse_hour_counts(), expected.per_hour)
        self.assertEqual(len(ws.staged_parts()), 2000)
        # One part per hour, each written as several gzip members (its hour
        # was closed and reopened), read back as one stream.
        self.assertEqual(ws.verify().rc, 0)
        if rss is not None:
            # Before the part writers were bounded this object took about
            # 230 MB (one encoder per hour); now it is the same as one hour's.
            self.assertLess(rss, 200 * 1024, "peak RSS %d KiB" % rss)

    def test_garbage_times_cannot_open_a_partition_each(self):
        ws = lf.Workspace(self)
        garbage = [lf.out_file_line(dt.datetime(1995, 1, 1, tzinfo=UTC) + dt.timedelta(days=i), {"g": i})
                   for i in range(100)]
        own = [lf.out_file_line(T0 + dt.timedelta(minutes=i), {"i": i}) for i in range(10)]
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), garbage + own)
        ws.write_config(timezone="+00:00")
        ws.run_once(expect_rc=0)
        counts = ws.warehouse_hour_counts()
        self.assertEqual(counts.get("2016-08-01T00"), 10, "the object's own hour always loads")
        self.assertEqual(len(counts), 48)
        self.assertEqual(sum(counts.values()), 57)
        st = self.status(ws)
        self.assertEqual(st["rows"]["bad_records"], 53)
        lines, rows, bad = ws.ledger("SELECT lines_read, rows_staged, bad_records FROM objects")[0]
        self.assertEqual((lines, rows, bad), (110, 57, 53))
        r = ws.cli("bad-records")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("max_partitions_per_object (48)", r.stdout)
        self.assertEqual(ws.verify().rc, 0)

    def test_running_out_of_descriptors_fails_the_object_and_the_pass_goes_on(self):
        ws = lf.Workspace(self)
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), scattered_lines(300, 1))
        lf.write_object(os.path.join(ws.source_dir, "2016080200_0.gz"),
                        [lf.out_file_line(T0 + dt.timedelta(days=1), {"small": 1})])
        ws.write_config(timezone="+00:00", partition="day", retry_base="1s", retry_max="1s")
        # Enough for the ledger, the warehouse and a few parts, not for 64.
        rc, out, _ = run_limited(ws, 40, "run", "--once")
        self.assertEqual(rc, 3, out)
        self.assertNotIn("UNAVAILABLE", out)
        failed = self.status(ws)["failed_objects"]
        self.assertEqual(len(failed), 1, failed)
        self.assertIn("2016080100_0.gz", failed[0]["object"])
        self.assertIn("RESOURCE_EXHAUSTED", failed[0]["error"])
        self.assertIn("Too many open files", failed[0]["error"])
        self.assertEqual(ws.ledger("SELECT attempts FROM objects WHERE key='2016080100_0.gz'")[0][0], 1,
                         "not retried within the pass")
        self.assertEqual(ws.warehouse_hour_counts(), {"2016-08-02T00": 1}, "the other object loaded")
        # Without the limit, once its backoff has passed, it stages and loads.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(1.2)
            ws.run_once()
            if not self.status(ws)["failed_objects"]:
                break
        self.assertEqual(self.status(ws)["failed_objects"], [])
        self.assertEqual(sum(ws.warehouse_hour_counts().values()), 301)

    def test_twelve_thousand_bad_lines_are_all_counted(self):
        ws = lf.Workspace(self)
        good = [lf.out_file_line(T0 + dt.timedelta(seconds=i), {"i": i}) for i in range(10)]
        bad = ["not a log line %d\n" % i for i in range(12000)]
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), good + bad)
        ws.write_config(timezone="+00:00")
        ws.run_once(expect_rc=0)
        st = self.status(ws)
        self.assertEqual(st["rows"]["bad_records"], 12000)
        self.assertEqual(st["rows"]["loaded"], 10)
        r = ws.verify()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(ws.ledger_scalar("SELECT COUNT(*) FROM bad_records"), 10000, "the first 10,000 are kept")


if __name__ == "__main__":
    unittest.main()
