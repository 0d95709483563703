"""End-to-end: the daemon (`run` without --once), one daemon per state
directory, config errors, and `check`.

Readers (status, query, verify, bad-records) must work while the daemon runs:
the daemon holds DuckDB only while loading and readers wait for it.
"""

import datetime as dt
import json
import os
import signal
import time
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

UTC = dt.timezone.utc
DAEMON = dict(interval="1s", settle="0s", timezone="+00:00")


def status(ws):
    r = ws.cli("status", "--json")
    if r.rc != 0:
        raise AssertionError("status failed while the daemon runs: %r" % r)
    return json.loads(r.stdout)[0]


def wait_for(predicate, timeout, what, step=0.25):
    """Polls predicate() (returns a truthy value when done) at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def log_text(ws, name="run.log"):
    with open(os.path.join(ws.root, name), errors="replace") as f:
        return f.read()


def stop(testcase, p, timeout=30):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=timeout)
    except Exception:
        p.kill()
        raise
    testcase.assertEqual(rc, 0, "daemon exit code after SIGTERM")


class DaemonTest(unittest.TestCase):
    maxDiff = None

    def test_readers_work_while_daemon_runs_and_new_objects_load(self):
        ws = lf.Workspace(self)
        ws.gen(hours=12, rows_per_hour=8000, split_every=3, timezone="+00:00", seed=3)
        ws.write_config(**DAEMON)
        src = lf.count_source(ws.source_dir, default_offset="+00:00")
        p = ws.start("run")
        # Readers need the ledger the daemon creates at start-up (they never create one).
        started = time.monotonic()
        while not os.path.exists(ws.ledger_path) and time.monotonic() - started < 30:
            self.assertIsNone(p.poll(), "daemon exited early:\n" + log_text(ws))
            time.sleep(0.05)

        # Readers interleave with the first pass (discover, stage, load) and the idle loop after it.
        readers = 0
        deadline = time.monotonic() + 90
        while True:
            self.assertIsNone(p.poll(), "daemon exited early:\n" + log_text(ws))
            st = status(ws)
            self.assertEqual(ws.cli("bad-records", "--json").rc, 0)
            v = ws.verify()
            # Mid-pass, verify may rightly report work not done yet (exit 1); it must still finish its report.
            self.assertIn(v.rc, (0, 1), v)
            self.assertRegex(v.stdout, r"verify: (OK|FAILED)", v)
            if st["rows"]["loaded"] > 0:   # the table exists from the first load on
                q = ws.cli("query", "--csv", "SELECT count(*) n FROM access")
                self.assertEqual(q.rc, 0, q)
                self.assertLessEqual(int(q.stdout.splitlines()[1]), src.total)
            readers += 1
            if st["rows"]["loaded"] == src.total and st["partitions"]["pending"] == 0:
                break
            self.assertLess(time.monotonic(), deadline, "first pass did not finish: %r\n%s" % (st, log_text(ws)))
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)

        # A new object (a new hour and a late one for an hour already loaded) is picked up by the running daemon.
        base = dt.datetime(2016, 8, 1, 12, tzinfo=UTC)
        new = [lf.out_file_line(base + dt.timedelta(seconds=7 * i), {"path": "/new/%d" % i, "size": i})
               for i in range(500)]
        late = [lf.out_file_line(base - dt.timedelta(hours=3, seconds=i), {"path": "/late/%d" % i, "size": i})
                for i in range(50)]
        lf.write_object(os.path.join(ws.source_dir, "2016080112_0.gz"), new + late)
        src2 = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertEqual(src2.total, src.total + 550)
        wait_for(lambda: status(ws)["rows"]["loaded"] == src2.total and status(ws)["partitions"]["pending"] == 0,
                 30, "the new object to load")
        self.assertEqual(ws.warehouse_hour_counts(), src2.per_hour)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)
        st = status(ws)
        self.assertEqual(st["failed_objects"], [])
        self.assertEqual(st["failing_partitions"], [])
        # Readers never made a load fail (they wait for the daemon, and it for them).
        self.assertEqual(ws.ledger("SELECT outcome, error FROM loads WHERE outcome IS NOT 'loaded'"), [])

        stop(self, p)
        self.assertIn("stopped by signal", log_text(ws))
        self.assertGreater(readers, 0)

    def test_a_second_run_on_the_same_state_dir_shares_the_work(self):
        # Several `run` processes may share a ledger (issue 13): each claims
        # what it works on, so a second one neither fails nor doubles rows.
        ws = lf.Workspace(self)
        ws.gen(hours=2, rows_per_hour=500, timezone="+00:00")
        ws.write_config(**DAEMON)
        p = ws.start("run")
        wait_for(lambda: "pass:" in log_text(ws) or p.poll() is not None, 30, "the first pass")
        self.assertIsNone(p.poll(), log_text(ws))
        r = ws.cli("run", "--once", timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertIsNone(p.poll(), "the first daemon is unaffected")
        src = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        stop(self, p)


class ConfigErrorTest(unittest.TestCase):
    """Bad configs exit 2 naming the key and the line."""

    def setUp(self):
        self.ws = lf.Workspace(self)

    def body(self, table_extra="", top_extra="", source=True):
        d = self.ws.root
        lines = ['state_dir = "%s/state"' % d] + ([top_extra] if top_extra else []) + [
            "",
            "[[table]]",
            'name = "access"',
        ]
        if source:
            lines.append('source = "file://%s/bucket/logs/"' % d)
        lines += ['staging = "file://%s/staging/"' % d, 'warehouse = "duckdb://%s/logs.duckdb"' % d]
        if table_extra:
            lines.append(table_extra)
        return "\n".join(lines) + "\n"

    def write(self, text):
        with open(self.ws.config_path, "w") as f:
            f.write(text)
        return text

    @staticmethod
    def line_of(text, needle):
        for n, l in enumerate(text.splitlines(), start=1):
            if needle in l:
                return n
        raise AssertionError("%r not in config" % needle)

    def assert_config_error(self, text, key, needle, *more):
        """Every command that reads the config exits 2 with file:line and the key."""
        self.write(text)
        where = "%s:%d:" % (self.ws.config_path, self.line_of(text, needle))
        for cmd in (["check"], ["run", "--once"], ["status"]):
            r = lf.run(cmd + ["-c", self.ws.config_path], timeout=60)
            with self.subTest(cmd=cmd, key=key):
                self.assertEqual(r.rc, 2, r)
                self.assertIn(where, r.stderr)
                self.assertIn("'%s'" % key, r.stderr)
                for m in more:
                    self.assertIn(m, r.stderr)
        # Nothing was started on a config that does not load.
        self.assertFalse(os.path.exists(os.path.join(self.ws.root, "state", "ledger.db")))

    def test_good_config_loads(self):
        os.makedirs(self.ws.source_dir)  # check fails on a missing source directory
        self.write(self.body())
        r = lf.run(["check", "-c", self.ws.config_path], timeout=60)
        self.assertEqual(r.rc, 0, r)

    def test_unknown_key_in_table(self):
        self.assert_config_error(self.body(table_extra="bogus_key = 1"), "bogus_key", "bogus_key", "unknown key")

    def test_unknown_top_level_key(self):
        self.assert_config_error(self.body(top_extra='nonsense = "x"'), "nonsense", "nonsense", "unknown key")

    def test_missing_required_key(self):
        text = self.body(source=False)
        # The error points at the [[table]] that lacks it.
        self.assert_config_error(text, "source", "[[table]]", "missing")

    def test_bad_partition(self):
        self.assert_config_error(self.body(table_extra='partition = "week"'), "partition", "partition =", "week")

    def test_bad_duration(self):
        self.assert_config_error(self.body(table_extra='settle = "ten"'), "settle", "settle =", "ten")

    def test_bad_duration_at_top_level(self):
        self.assert_config_error(self.body(top_extra='retry_base = "soon"'), "retry_base", "retry_base =", "soon")

    def test_env_expansion(self):
        d = self.ws.root
        text = self.body().replace('"%s/state"' % d, '"${LF_E2E_STATE_ROOT}/state-from-env"')
        self.write(text)
        env = dict(os.environ, LF_E2E_STATE_ROOT=d)
        os.makedirs(self.ws.source_dir)
        r = lf.run(["check", "-c", self.ws.config_path], env=env, timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state_dir %s/state-from-env" % d, r.stdout)
        self.assertFalse(os.path.exists(os.path.join(d, "state-from-env")), "check creates nothing")
        r = lf.run(["run", "--once", "-c", self.ws.config_path], env=env, timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(os.path.exists(os.path.join(d, "state-from-env", "ledger.db")))

    def test_unset_env_var_is_an_error_naming_it(self):
        text = self.write(self.body().replace('"%s/state"' % self.ws.root, '"${LF_E2E_SURELY_UNSET}/state"'))
        env = {k: v for k, v in os.environ.items() if k != "LF_E2E_SURELY_UNSET"}
        r = lf.run(["check", "-c", self.ws.config_path], env=env, timeout=60)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("LF_E2E_SURELY_UNSET", r.stderr)
        self.assertIn("%s:%d:" % (self.ws.config_path, self.line_of(text, "state_dir")), r.stderr)


class CheckTest(unittest.TestCase):
    def test_check_good_config(self):
        ws = lf.Workspace(self)
        os.makedirs(ws.source_dir)
        ws.write_config()
        r = ws.cli("check")
        self.assertEqual(r.rc, 0, r)
        for what in ("state_dir", "ledger", "source", "staging", "warehouse"):
            self.assertRegex(r.stdout, r"(?m)^\s*%s .*\bOK$" % what, r)
        self.assertNotIn("FAILED", r.stdout)

    def test_check_names_unwritable_staging(self):
        ws = lf.Workspace(self)
        os.makedirs(ws.source_dir)
        # Tests run as root, so permissions cannot make a directory unwritable: a regular file as parent does.
        blocker = os.path.join(ws.root, "not-a-dir")
        with open(blocker, "w") as f:
            f.write("x")
        staging = "file://%s/staging/" % blocker
        ws.write_config(staging=staging)
        r = ws.cli("check")
        self.assertEqual(r.rc, 1, r)
        failed = [l for l in r.stdout.splitlines() if "FAILED" in l]
        self.assertEqual(len(failed), 1, r)
        self.assertIn("staging " + staging, failed[0])
        for what in ("state_dir", "ledger", "source", "warehouse"):
            self.assertRegex(r.stdout, r"(?m)^\s*%s .*\bOK$" % what, r)


if __name__ == "__main__":
    unittest.main()
