"""End-to-end: the daemon's log through the binary. `log_format = "json"`
writes one JSON object per stderr line (time, level, message; table and
object when the line concerns them); a startup line names the version, the
config and each table's stores; an idle daemon says it is alive."""

import gzip
import json
import os
import signal
import time
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

DAEMON = dict(interval="1s", settle="0s", timezone="+00:00")
LEVELS = {"debug", "info", "warn", "error"}


def json_lines(test, text):
    """Every line parsed; each must be a JSON object with the required fields."""
    out = []
    for line in text.splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            test.fail("not a JSON line: %r" % line)
        test.assertIsInstance(j, dict, line)
        test.assertRegex(j.get("time", ""), r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", line)
        test.assertIn(j.get("level"), LEVELS, line)
        test.assertIsInstance(j.get("message"), str, line)
        out.append(j)
    return out


def wait_for(predicate, timeout, what, step=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class JsonLogTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)

    def log(self):
        with open(os.path.join(self.ws.root, "run.log"), errors="replace") as f:
            return f.read()

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), 0)

    def test_daemon_writes_json_lines_with_startup_heartbeat_and_pass(self):
        os.makedirs(self.ws.source_dir)
        self.ws.write_config(top={"log_format": "json"}, **DAEMON)
        p = self.ws.start("run")
        wait_for(lambda: "idle: " in self.log(), 60, "the idle heartbeat")
        self.ws.gen(hours=1, rows_per_hour=20, timezone="+00:00")
        wait_for(lambda: "pass: " in self.log(), 60, "a pass line")
        self.stop(p)
        lines = json_lines(self, self.log())
        start = lines[0]
        self.assertEqual(start["level"], "info")
        self.assertRegex(start["message"], r"^logferry \d+\.\d+\.\d+ starting: config ")
        self.assertIn(self.ws.config_path, start["message"])
        for uri in ("file://%s/" % self.ws.source_dir, "file://%s/" % self.ws.staging,
                    "duckdb://%s" % self.ws.warehouse):
            self.assertIn(uri, start["message"])
        idle = [j for j in lines if j["message"].startswith("idle: ")]
        self.assertTrue(idle)
        self.assertEqual(idle[0]["level"], "info")
        self.assertIn("0 new objects", idle[0]["message"])
        self.assertTrue(any(j["message"].startswith("pass: 1 new objects") for j in lines), lines)

    def test_a_failing_object_is_named_in_the_object_field(self):
        self.ws.gen(hours=1, rows_per_hour=20)
        bad = os.path.join(self.ws.source_dir, "2016080105_0.gz")
        with open(bad, "wb") as f:  # a truncated gzip stream: the object fails
            f.write(gzip.compress(b"2016-08-01T05:00:00+00:00\tx\t{\"q\":\"\x1b[2J\"}\n" * 1000)[:-40])
        self.ws.write_config(top={"log_format": "json"})
        r = self.ws.run_once(expect_rc=3)
        lines = json_lines(self, r.stderr)
        failed = [j for j in lines if j["level"] == "warn" and "staging failed" in j["message"]]
        self.assertEqual(len(failed), 1, lines)
        self.assertEqual(failed[0]["table"], "access")
        self.assertEqual(failed[0]["object"], "file://" + bad)
        self.assertTrue(any(j["message"].startswith("pass: ") and j.get("table") is None for j in lines), lines)

    def test_unknown_log_format_is_a_config_error(self):
        self.ws.write_config(top={"log_format": "xml"})
        r = self.ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("log_format", r.stderr)
        self.assertIn("text or json", r.stderr)


if __name__ == "__main__":
    unittest.main()
