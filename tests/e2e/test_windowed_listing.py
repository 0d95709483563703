"""End-to-end: windowed listing (`lookback`, operations.md "Windowed listing")
through the binary, over file:// and moto S3.

Objects are named after time slices around the real clock (the daemon's), so
that some land in the window and some in slices far older. The daemon's
/metrics tells full listings from windows (logferry_source_listings_total)
and counts LIST requests (logferry_list_requests_total); the ledger tells
what was found. Loops are bounded by pass counts and deadlines, never timed.
"""

import datetime
import os
import shutil
import subprocess
import time
import unittest

import lf
import moto
from test_metrics import free_port, get, samples

T = '{table="access"}'
FULL = 'logferry_source_listings_total{kind="full",table="access"}'
WINDOW = 'logferry_source_listings_total{kind="window",table="access"}'


def slice_of(hours_ago):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=hours_ago)
    return t, t.strftime("%Y%m%d%H")


def lines_at(t, n, tag):
    return [lf.out_file_line(t, {"n": i, "tag": tag}) for i in range(n)]


class WindowCase:
    """The scenario, over a source that subclasses fill (put)."""

    def put(self, key, lines):
        raise NotImplementedError

    def table(self, **overrides):
        raise NotImplementedError

    def setUp(self):
        self.ws = lf.Workspace(self)
        self.port = free_port()

    def config(self, **overrides):
        t = self.table(**dict(dict(interval="500ms", settle="0s", timezone="+00:00", lookback="3h"), **overrides))
        self.ws.write_config(tables=[t], top={"metrics_listen": "127.0.0.1:%d" % self.port, "workers": 1})

    def scrape(self, p, ready, what, timeout=120):
        deadline = time.monotonic() + timeout
        last = {}
        while time.monotonic() < deadline:
            self.assertIsNone(p.poll(), "daemon exited early")
            try:
                status, text = get(self.port, "/metrics")
                if status == 200:
                    last = samples(text)
                    if ready(last):
                        return last, text
            except OSError:
                pass
            time.sleep(0.2)
        self.fail("timed out waiting for %s; last scrape: %r" % (what, last))

    def known(self):
        return {k for (k,) in self.ws.ledger("SELECT key FROM objects WHERE table_name='access'")}

    def stop(self, p):
        p.send_signal(15)
        self.assertEqual(p.wait(timeout=60), 0)

    def test_windows_find_new_objects_and_full_listings_the_late_ones(self):
        # 40 objects in slices of 2 to 6 days ago, under two paths.
        old = []
        for i in range(40):
            t, s = slice_of(48 + i * 2)
            key = "%s/%s_%d.gz" % ("web" if i % 4 else "app", s, i)
            self.put(key, lines_at(t, 3, "old"))
            old.append(key)
        self.config(reconcile_every="1h")
        p = self.ws.start("run")
        m, _ = self.scrape(p, lambda m: m.get("logferry_last_success_timestamp_seconds", 0) > 0, "the first pass")
        self.assertEqual(m[FULL], 1)
        self.assertEqual(self.known(), set(old))

        # One new object in the current slice, one late one in a slice 5 days old.
        now, s_now = slice_of(0)
        new_key, late_key = "web/%s_100.gz" % s_now, "web/%s_101.gz" % slice_of(120)[1]
        self.put(new_key, lines_at(now, 5, "new"))
        self.put(late_key, lines_at(slice_of(120)[0], 5, "late"))
        m0, _ = self.scrape(p, lambda m: True, "a scrape")
        m1, text = self.scrape(p, lambda m: m[WINDOW] >= m0[WINDOW] + 3 and new_key in self.known(),
                               "windows to find the new object")
        # Found by windows: no full listing ran since start-up; the late
        # object in its old slice is left to the next full listing.
        self.assertEqual(m1[FULL], 1)
        self.assertIn(new_key, self.known())
        self.assertNotIn(late_key, self.known())
        # A window is one LIST per path, plus staging's request listing.
        m2, text = self.scrape(p, lambda m: m[WINDOW] >= m1[WINDOW] + 4, "four more windows")
        # Both counters move together at the end of each table's pass; a
        # scrape may fall between the two, hence the one pass of slack.
        windows = m2[WINDOW] - m1[WINDOW]
        lists = m2["logferry_list_requests_total" + T] - m1["logferry_list_requests_total" + T]
        self.assertEqual(m2[FULL], 1)
        self.assertGreaterEqual(lists, 3 * (windows - 1), "two paths and staging's requests each pass")
        self.assertLessEqual(lists, 3 * (windows + 1), "LIST requests per windowed pass")
        self.assertNotIn(late_key, self.known())
        promtool = shutil.which("promtool")
        if promtool:
            lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                                  timeout=60)
            self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
        self.stop(p)

        # The safety net: full listings every reconcile_every find what
        # windows skip, while the daemon runs.
        self.config(reconcile_every="3s")
        p = self.ws.start("run")
        m, _ = self.scrape(p, lambda m: m[FULL] >= 1, "the start-up listing")
        self.assertIn(late_key, self.known())
        later = "web/%s_102.gz" % slice_of(100)[1]
        self.put(later, lines_at(slice_of(100)[0], 2, "later"))
        # Counters move at the end of a pass, the ledger during it.
        self.scrape(p, lambda m: later in self.known() and m[FULL] >= 2, "a full listing to find the late object")
        self.scrape(p, lambda m: self.ws.ledger_scalar(
            "SELECT count(*) FROM objects WHERE state='staged'") == len(old) + 3, "every object to be staged")
        self.stop(p)
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)

    def test_check_says_which_case_a_table_is_in(self):
        self.put("web/%s_0.gz" % slice_of(0)[1], lines_at(slice_of(0)[0], 1, "x"))
        self.config(reconcile_every="1h")
        r = self.ws.cli("check")
        self.assertIn("discovery: windowed listing: lookback 3h, full listing every 1h", r.stdout, r)
        self.config(reconcile_every="1h", key_format="%{path}%{index}_%{time_slice}.%{file_extension}")
        r = self.ws.cli("check")
        self.assertIn("discovery: full listing every pass: %{index} comes before the time slice", r.stdout, r)
        self.config(reconcile_every="1h", time_slice_format="%d%m%Y%H")
        r = self.ws.cli("check")
        self.assertIn("discovery: full listing every pass: time_slice_format '%d%m%Y%H'", r.stdout, r)
        self.config(reconcile_every="1h", lookback="0")
        self.assertIn("discovery: full listing every pass: lookback = 0", self.ws.cli("check").stdout)


class FileSource(WindowCase, unittest.TestCase):
    def put(self, key, lines):
        lf.write_object(os.path.join(self.ws.source_dir, key), lines)

    def table(self, **overrides):
        return self.ws.table_config(**overrides)


class S3Source(WindowCase, unittest.TestCase):
    def setUp(self):
        super().setUp()
        self.moto = moto.Moto(self)
        self.ws.env = self.moto.env()
        self.moto.make_bucket("src")
        self.scratch = os.path.join(self.ws.root, "upload")

    def put(self, key, lines):
        path = os.path.join(self.scratch, key)
        lf.write_object(path, lines)
        self.moto.aws("s3", "cp", "--quiet", path, "s3://src/logs/%s" % key)

    def table(self, **overrides):
        return self.ws.table_config(source="s3://src/logs/", endpoint=self.moto.endpoint, **overrides)


if __name__ == "__main__":
    unittest.main()
