"""End-to-end: `status` tells the truth and silent mistakes become visible (issue 12, items 3 and 4).

- whether a `run` process is alive, since when, and how its last pass went;
- a warehouse that cannot be opened: its partitions fail with that error, and back off;
- keys that do not match key_format, counted with examples; long lists capped with counts;
- the lag line's time and its measure agree;
- `status --check [--max-lag]` for cron and Nagios;
- read-only commands never create a ledger; `check` leaves nothing behind;
- a missing source directory fails `check` and makes `run` warn;
- an object whose every line is bad names the likely setting;
- operations.md's request-file example works as written.
"""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

UTC = dt.timezone.utc


def iso(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def status_json(ws):
    r = ws.cli("status", "--json")
    if r.rc != 0:
        raise AssertionError("status --json failed: %r" % r)
    return json.loads(r.stdout)[0]


def wait_for(predicate, timeout, what, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def tree(root):
    """Every path under root (directories with a trailing '/')."""
    out = set()
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for name in dirs:
            out.add(os.path.join(rel, name) + "/")
        for name in files:
            out.add(os.path.join(rel, name))
    return out


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class LivenessTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=2, rows_per_hour=50)
        self.ws.write_config(interval="1s")

    def test_never_run_once_and_daemon(self):
        ws = self.ws
        ws.run_once(expect_rc=0)
        d = status_json(ws)["daemon"]
        self.assertEqual(d["state"], "stopped", d)
        self.assertEqual(d["mode"], "once")
        self.assertEqual(d["last_pass_outcome"], "ok")
        self.assertLessEqual(iso(d["started"]), iso(d["last_pass_ended"]))
        text = ws.cli("status").stdout
        self.assertRegex(text, r"(?m)^daemon +not running; last seen \S+Z \(.* ago; pid \d+ on .*run --once, stopped\)$")
        self.assertRegex(text, r"(?m)^last pass +ended \S+Z \(.* ago\): ok$")

        p = ws.start("run")
        d = wait_for(lambda: (lambda d: d if d["state"] == "running" and d["pid"] == p.pid
                              and d.get("last_pass_outcome") else None)(status_json(ws)["daemon"]),
                     60, "the daemon to show as running with a finished pass")
        self.assertEqual(d["mode"], "daemon")
        self.assertEqual(d["running"], 1)
        self.assertEqual(d["last_pass_outcome"], "ok")
        text = ws.cli("status").stdout
        self.assertRegex(text, r"(?m)^daemon +running since \S+Z \(.* ago; pid %d on " % p.pid)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        d = status_json(ws)["daemon"]
        self.assertEqual(d["state"], "gone", d)
        self.assertEqual(d["pid"], p.pid)
        self.assertIn("did not stop cleanly", ws.cli("status").stdout)


class WarehouseCannotOpenTest(unittest.TestCase):
    def test_partitions_fail_with_the_error_and_back_off(self):
        ws = lf.Workspace(self)
        ws.gen(hours=3, rows_per_hour=50)
        blocker = os.path.join(ws.root, "not-a-dir")
        write(blocker, b"x")
        ws.write_config(warehouse="duckdb://%s/logs.duckdb" % blocker, retry_base="1h")
        r = ws.run_once(expect_rc=3)
        self.assertNotIn("pass failed", r.stderr)
        self.assertEqual(len(re.findall(r"cannot load", r.stderr)), 1, r)
        st = status_json(ws)
        self.assertEqual(st["partitions"]["failing"], 3, st)
        self.assertEqual(st["failing_partitions_total"], 3)
        for f in st["failing_partitions"]:
            self.assertIn(blocker, f["error"])
            self.assertEqual(f["attempts"], 1)
            self.assertIn("next_attempt", f)
        self.assertEqual(st["partitions"]["pending"], 3, "a failed load stays pending")
        text = ws.cli("status").stdout
        self.assertRegex(text, r"(?m)^  FAILING partition .*%s" % re.escape(blocker))
        c = ws.cli("status", "--check")
        self.assertEqual(c.rc, 1, c)
        self.assertRegex(c.stdout, r"(?m)^FAILING access: 3 partition\(s\) failing, e\.g\. .*%s" % re.escape(blocker))
        # Backing off: the next pass leaves them alone instead of failing again at once.
        r = ws.run_once(expect_rc=3)
        self.assertNotIn("cannot load", r.stderr)
        self.assertEqual([f["attempts"] for f in status_json(ws)["failing_partitions"]], [1, 1, 1])


class IgnoredKeysAndListsTest(unittest.TestCase):
    def test_ignored_keys_capped_lists_check_and_lag(self):
        ws = lf.Workspace(self)
        ws.gen(hours=2, rows_per_hour=50)
        write(os.path.join(ws.source_dir, "README.txt"), b"not a log\n")
        write(os.path.join(ws.source_dir, "other/app.json"), b"{}\n")
        for i in range(13):  # corrupt gzip: each fails to stage
            write(os.path.join(ws.source_dir, "2016080100_%d.gz" % (10 + i)), b"\x1f\x8b\x08\x00garbage")
        ws.write_config(timezone="+00:00", retry_base="1h")
        c = ws.cli("check")
        self.assertEqual(c.rc, 0, c)
        self.assertRegex(c.stdout, r"(?m)^  WARNING: 2 of \d+ keys listed do not match key_format .*'README.txt'")
        ws.run_once(expect_rc=3)
        st = status_json(ws)
        self.assertEqual(st["ignored_keys"]["count"], 2)
        self.assertEqual(sorted(st["ignored_keys"]["examples"]), ["README.txt", "other/app.json"])
        self.assertEqual(st["objects"]["failed"], 13)
        self.assertEqual(st["failed_objects_total"], 13)
        self.assertEqual(len(st["failed_objects"]), 10)
        text = ws.cli("status").stdout
        self.assertRegex(text, r"(?m)^  ignored +2 key\(s\) under the source do not match key_format, e\.g\. '")
        self.assertEqual(len(re.findall(r"(?m)^  FAILED object ", text)), 10, text)
        self.assertRegex(text, r"(?m)^  \.\.\. and 3 more failed object\(s\)$")

        # The lag line prints the instant it measures from: the newest partition's end.
        self.assertEqual(iso(st["newest_loaded_partition"]), dt.datetime(2016, 8, 1, 1, tzinfo=UTC))
        self.assertEqual(iso(st["loaded_through"]), dt.datetime(2016, 8, 1, 2, tzinfo=UTC))
        measured = dt.datetime.now(UTC) - dt.timedelta(seconds=st["lag_seconds"])
        self.assertLess(abs((measured - iso(st["loaded_through"])).total_seconds()), 3600)
        self.assertRegex(text, r"(?m)^  lag +\S+: loaded through %s " % re.escape(st["loaded_through"]))

        c = ws.cli("status", "--check")
        self.assertEqual(c.rc, 1, c)
        lines = c.stdout.splitlines()
        self.assertEqual(len(lines), 1, c)
        self.assertRegex(lines[0], r"^FAILING access: 13 object\(s\) failing, e\.g\. file://")
        c = ws.cli("status", "--check", "--max-lag", "2h")
        self.assertEqual(c.rc, 1, c)
        self.assertRegex(c.stdout, r"(?m)^FAILING access: lag .* exceeds --max-lag 2h")
        j = ws.cli("status", "--check", "--json")
        self.assertEqual(j.rc, 1, j)
        self.assertEqual(json.loads(j.stdout)[0]["failed_objects_total"], 13)

    def test_check_passes_when_healthy_and_fails_only_on_lag(self):
        ws = lf.Workspace(self)
        ws.gen(hours=2, rows_per_hour=50)
        ws.write_config()
        ws.run_once(expect_rc=0)
        c = ws.cli("status", "--check")
        self.assertEqual(c.rc, 0, c)
        self.assertRegex(c.stdout, r"^OK: 1 table\(s\), nothing failing\n$")
        c = ws.cli("status", "--check", "--max-lag", "800000h")
        self.assertEqual(c.rc, 0, c)
        c = ws.cli("status", "--max-lag", "1h")
        self.assertEqual(c.rc, 1, c)
        self.assertEqual(len(c.stdout.splitlines()), 1, c)
        c = ws.cli("status", "--check", "--max-lag", "soon")
        self.assertNotIn(c.rc, (0, 1), c)
        # A request object refused today fails the check too.
        write(os.path.join(ws.staging, "_requests", "junk.json"), b"not json")
        ws.run_once()
        c = ws.cli("status", "--check")
        self.assertEqual(c.rc, 1, c)
        self.assertRegex(c.stdout, r"^FAILING access: 1 request\(s\) refused in the last 24 hours, e\.g\. file://.*junk")

    def test_a_source_where_nothing_matches_fails_check(self):
        ws = lf.Workspace(self)
        write(os.path.join(ws.source_dir, "app-2016-08-01.log"), b"x\n")
        ws.write_config()
        c = ws.cli("check")
        self.assertEqual(c.rc, 1, c)
        self.assertRegex(c.stdout, r"(?m)^  source .*FAILED: none of the 1 keys listed match key_format")


class NoLedgerTest(unittest.TestCase):
    def test_readers_say_there_is_no_ledger_and_create_nothing(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10)
        ws.write_config()
        for args in (["status"], ["status", "--json"], ["status", "--check"], ["verify"], ["bad-records"],
                     ["schema"], ["reload", "--from", "2016-08-01T00"]):
            r = ws.cli(*args)
            self.assertNotEqual(r.rc, 0, r)
            self.assertIn("no ledger at %s" % ws.ledger_path, r.stderr, r)
            self.assertFalse(os.path.exists(ws.state), "%s created the state_dir" % args)
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.cli("status").rc, 0)


class CheckLeavesNothingTest(unittest.TestCase):
    def test_check_creates_nothing_on_a_fresh_config(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10)
        ws.write_config()
        before = tree(ws.root)
        c = ws.cli("check")
        self.assertEqual(c.rc, 0, c)
        self.assertEqual(tree(ws.root), before)
        for what in ("state_dir", "ledger", "staging", "warehouse"):
            self.assertRegex(c.stdout, r"(?m)^\s*%s .*does not exist yet; run creates it\) *OK$" % what, c)

    def test_check_leaves_nothing_in_existing_stores(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10)
        ws.write_config()
        ws.run_once(expect_rc=0)
        before = tree(ws.root)
        c = ws.cli("check")
        self.assertEqual(c.rc, 0, c)
        self.assertRegex(c.stdout, r"(?m)^\s*staging .*\(write, delete\) *OK$")
        self.assertRegex(c.stdout, r"(?m)^\s*warehouse .*\(open, query\) *OK$")
        self.assertEqual(tree(ws.root), before)


class SilentMistakesTest(unittest.TestCase):
    def test_missing_source_directory_fails_check_and_run_warns(self):
        ws = lf.Workspace(self)
        ws.write_config(source="file://%s/typo/" % ws.bucket)
        c = ws.cli("check")
        self.assertEqual(c.rc, 1, c)
        self.assertRegex(c.stdout, r"(?m)^  source .*FAILED: the directory %s/typo does not exist" % re.escape(ws.bucket))
        r = ws.run_once(expect_rc=0)
        self.assertRegex(r.stderr, r"warn.*the source directory %s/typo does not exist" % re.escape(ws.bucket))

    def test_empty_source_directory_passes_check_with_a_warning(self):
        ws = lf.Workspace(self)
        os.makedirs(ws.source_dir)
        ws.write_config()
        c = ws.cli("check")
        self.assertEqual(c.rc, 0, c)
        self.assertIn("WARNING: the source holds no objects yet", c.stdout)
        r = ws.run_once(expect_rc=0)
        self.assertIn("holds no objects at all", r.stderr)

    def test_every_line_bad_names_time_format(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=20, format="json")
        ws.write_config(format="json", time_format="%d/%b/%Y:%H:%M:%S %z")
        r = ws.run_once(expect_rc=0)
        self.assertRegex(r.stderr, r"every line \(20\) is a bad record; check `time_format`")

    def test_every_line_bad_names_format(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=20)  # out_file lines read as JSON
        ws.write_config(format="json")
        r = ws.run_once(expect_rc=0)
        self.assertRegex(r.stderr, r"every line \(20\) is a bad record; check `format`")

    def test_good_objects_draw_no_such_warning(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=20)
        ws.write_config()
        r = ws.run_once(expect_rc=0)
        self.assertNotIn("every line", r.stderr)


class DocumentedRequestFileTest(unittest.TestCase):
    def test_operations_md_request_example_works_as_written(self):
        ws = lf.Workspace(self)
        ws.gen(hours=2, rows_per_hour=10, timezone="+00:00")
        ws.write_config(timezone="+00:00")
        ws.run_once(expect_rc=0)
        with open(os.path.join(lf.SOURCE_DIR, "docs", "operations.md")) as f:
            doc = f.read()
        blocks = [b for b in re.findall(r"```sh\n(.*?)```", doc, re.S) if "_requests/reload-" in b]
        self.assertEqual(len(blocks), 1, "the request-file example in operations.md")
        script = blocks[0].replace("/data/staging", ws.staging).replace("2016-08-02T00", "2016-08-01T02")
        self.assertFalse(os.path.exists(os.path.join(ws.staging, "_requests")))
        subprocess.run(["bash", "-euo", "pipefail", "-c", script], check=True, timeout=60)
        ws.run_once(expect_rc=0)
        rows = ws.ledger("SELECT state, detail FROM requests")
        self.assertEqual(rows, [("done", "2 partition(s) loaded")])


if __name__ == "__main__":
    unittest.main()
