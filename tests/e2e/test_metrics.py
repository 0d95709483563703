"""End-to-end: the daemon's Prometheus endpoint and health checks
(`metrics_listen`), scraped over HTTP on 127.0.0.1 and linted with
`promtool check metrics`; and `--version`.

The expected numbers come from reading the source objects (lf.count_source),
never from logferry.
"""

import datetime
import os
import re
import shutil
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.request

import lf

DAEMON = dict(interval="1s", settle="0s", timezone="+00:00")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    """(status, body) of GET http://127.0.0.1:port/path; a 503 is an answer, not an error."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    """{'name{labels}': value} of an exposition's sample lines."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


class MetricsTest(unittest.TestCase):
    maxDiff = None

    def wait_for_scrape(self, p, port, ready, timeout=90):
        """Scrapes until ready(samples) holds (bounded); returns the last text."""
        deadline = time.monotonic() + timeout
        text = ""
        while time.monotonic() < deadline:
            self.assertIsNone(p.poll(), "daemon exited early")
            try:
                status, text = get(port, "/metrics")
                if status == 200 and ready(samples(text)):
                    return text
            except OSError:
                pass  # not listening yet
            time.sleep(0.25)
        self.fail("timed out waiting for the metrics; last scrape:\n" + text)

    def test_scrape_counts_the_fixture_and_passes_promtool(self):
        ws = lf.Workspace(self)
        ws.gen(hours=3, rows_per_hour=400, timezone="+00:00", seed=5)
        # One object of our own with two unparseable lines.
        at = datetime.datetime(2016, 8, 1, 5, 10, tzinfo=datetime.timezone.utc)
        good = [lf.out_file_line(at, {"n": i}) for i in range(3)]
        lf.write_object(os.path.join(ws.source_dir, "2016080105_0.gz"), good + ["not a record\n", "nor this\n"])
        src = lf.count_source(ws.source_dir, default_offset="+00:00")
        source_bytes = sum(len(lf.read_object_bytes(os.path.join(ws.source_dir, k))) for k in src.objects)
        port = free_port()
        ws.write_config(top={"metrics_listen": "127.0.0.1:%d" % port}, **DAEMON)
        p = ws.start("run")

        text = self.wait_for_scrape(p, port, lambda s: s.get("logferry_last_success_timestamp_seconds", 0) > 0)
        m = samples(text)
        t = '{table="access"}'
        self.assertEqual(m["logferry_objects_discovered_total" + t], len(src.objects))
        self.assertEqual(m["logferry_objects_staged_total" + t], len(src.objects))
        self.assertEqual(m["logferry_objects_failed_total" + t], 0)
        self.assertEqual(m["logferry_rows_staged_total" + t], src.total)
        self.assertEqual(m["logferry_bad_records_total" + t], src.bad)
        self.assertEqual(src.bad, 2)
        self.assertEqual(m["logferry_source_read_bytes_total" + t], source_bytes)
        self.assertEqual(m["logferry_partitions_loaded_total" + t], len(src.per_hour))
        self.assertEqual(m["logferry_partitions_failed_total" + t], 0)
        self.assertEqual(m['logferry_objects{state="staged",table="access"}'], len(src.objects))
        self.assertEqual(m['logferry_partitions{state="loaded",table="access"}'], len(src.per_hour))
        self.assertEqual(m["logferry_warehouse_rows" + t], src.total)
        self.assertEqual(m["logferry_oldest_pending_object_age_seconds" + t], 0)
        # 2016 data: the warehouse is years behind now.
        self.assertGreater(m["logferry_lag_seconds" + t], 365 * 86400)
        self.assertGreaterEqual(m['logferry_passes_total{outcome="ok"}'], 1)
        self.assertGreaterEqual(m["logferry_pass_duration_seconds_count"], 1)
        self.assertLessEqual(abs(m["logferry_last_success_timestamp_seconds"] - time.time()), 120)
        self.assertIn('logferry_build_info{version="', text)
        # No queue configured: no SQS series.
        self.assertNotIn("logferry_sqs_", text)

        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool (Debian's prometheus package) is needed: scripts/setup.sh")
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)

        self.assertEqual(get(port, "/healthz")[0], 200)
        status, body = get(port, "/readyz")
        self.assertEqual((status, body.strip()), (200, "ready"))
        self.assertEqual(get(port, "/nothing-here")[0], 404)

        p.send_signal(15)
        self.assertEqual(p.wait(timeout=30), 0)
        with open(os.path.join(ws.root, "run.log"), errors="replace") as f:
            self.assertIn("serving metrics at http://127.0.0.1:%d/metrics" % port, f.read())

    def test_counters_grow_with_new_objects(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=50, timezone="+00:00", seed=6)
        port = free_port()
        ws.write_config(top={"metrics_listen": "127.0.0.1:%d" % port}, **DAEMON)
        p = ws.start("run")
        first = lf.count_source(ws.source_dir, default_offset="+00:00").total
        self.wait_for_scrape(p, port, lambda s: s.get('logferry_rows_staged_total{table="access"}') == first)
        ws.gen(hours=1, rows_per_hour=70, timezone="+00:00", seed=7, start="2016-08-02T00")
        both = lf.count_source(ws.source_dir, default_offset="+00:00").total
        self.assertGreater(both, first)
        self.wait_for_scrape(p, port, lambda s: s.get('logferry_rows_staged_total{table="access"}') == both)

    def test_a_taken_port_is_a_clear_configuration_error(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            ws.write_config(top={"metrics_listen": "127.0.0.1:%d" % port}, **DAEMON)
            p = ws.start("run")
            rc = p.wait(timeout=60)
        self.assertEqual(rc, 2)
        with open(os.path.join(ws.root, "run.log"), errors="replace") as f:
            self.assertIn("metrics_listen 127.0.0.1:%d" % port, f.read())

    def test_run_once_serves_nothing(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10)
        port = free_port()
        ws.write_config(top={"metrics_listen": "127.0.0.1:%d" % port})
        r = ws.run_once(expect_rc=0)
        self.assertNotIn("serving metrics", r.output)

    def test_bad_listen_address_names_the_key(self):
        ws = lf.Workspace(self)
        ws.write_config(top={"metrics_listen": "localhost:9464"})
        r = ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("metrics_listen", r.output)


class SystemdNotifyTest(unittest.TestCase):
    """The daemon as systemd's Type=notify sees it: messages on NOTIFY_SOCKET."""

    def test_ready_watchdog_status_and_stopping(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=20, timezone="+00:00")
        ws.write_config(**DAEMON)
        path = os.path.join(ws.root, "notify.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
            systemd.bind(path)
            systemd.settimeout(60)
            ws.env = dict(os.environ, NOTIFY_SOCKET=path)
            p = ws.start("run")
            seen = []
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(m.startswith("STATUS=last pass") for m in seen):
                seen.append(systemd.recv(4096).decode())
            self.assertTrue(seen[0].startswith("READY=1\n"), seen)
            self.assertIn("WATCHDOG=1", seen)
            self.assertTrue(any(re.match(r"STATUS=last pass \S+: 1 objects staged, 0 failed; 1 partitions loaded", m)
                                for m in seen), seen)
            p.send_signal(15)
            self.assertEqual(p.wait(timeout=30), 0)
            rest = []
            systemd.settimeout(0.5)
            for _ in range(1000):  # whatever is queued, then the socket runs dry
                try:
                    rest.append(systemd.recv(4096).decode())
                except socket.timeout:
                    break
            self.assertEqual(rest[-1:], ["STOPPING=1"], rest)


class VersionTest(unittest.TestCase):
    def test_version_flag(self):
        r = lf.run(["--version"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stdout.strip(), r"^logferry \d+\.\d+\.\d+( \(git \S+\))?$")
        # The version CMakeLists.txt's project() declares.
        with open(os.path.join(lf.SOURCE_DIR, "CMakeLists.txt")) as f:
            version = re.search(r"project\(logferry VERSION (\S+)", f.read()).group(1)
        self.assertTrue(r.stdout.startswith("logferry %s" % version), r)


if __name__ == "__main__":
    unittest.main()
