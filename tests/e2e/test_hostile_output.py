"""End-to-end: what a bucket writer sends cannot forge output, and what
logferry keeps or runs is locked down.

* Object keys and field names holding a newline and a terminal escape
  ("\\n[info] pass: all good\\x1b[2J") come out escaped in the log, `status`,
  `bad-records`, `schema` and `verify`, and exact in --json.
* `state_dir` and the ledger are owner-only; a looser existing directory is
  warned about and left alone.
* `query` cannot read or write files, ATTACH or load extensions through SQL.
* `log_level` and `verify --table` refuse what they do not know; plain http
  to a non-loopback host is a config error naming the key.
"""

import datetime as dt
import gzip
import json
import os
import stat
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

UTC = dt.timezone.utc
T0 = dt.datetime(2016, 8, 1, 0, 0, 0, tzinfo=UTC)
FORGED = "\n[info] pass: all good\x1b[2J"
SHOWN = "\\n[info] pass: all good\\x1b[2J"   # how it must be printed
HOSTILE_DIR = "h" + FORGED                   # a directory (key segment) of the source bucket


def assert_clean(test, text, what):
    """No raw escape or C1 control, and no line that starts with the forged text."""
    test.assertNotIn("\x1b", text, what)
    test.assertNotIn("\u009b", text, what)
    for line in text.splitlines():
        test.assertFalse(line.startswith("[info] pass"), "%s has a forged line: %r" % (what, line))


class ForgedOutputTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.ws = lf.Workspace()
        ws = cls.ws
        ws.gen(hours=2, rows_per_hour=200)
        hostile = os.path.join(ws.source_dir, HOSTILE_DIR)
        # A good line with a hostile field name, and a line that is not JSON.
        lines = [lf.out_file_line(T0, {"f" + FORGED: 1, "n": 1}),
                 "%s\tx\t{not json \x1b[2J\x9b\n" % T0.isoformat()]
        lf.write_object(os.path.join(hostile, "2016080100_0.log"), lines, compress=False)
        # A truncated gzip: the object fails, and status and the log name it.
        data = gzip.compress(lf.out_file_line(T0, {"n": 2}).encode() * 50)
        os.makedirs(hostile, exist_ok=True)
        with open(os.path.join(hostile, "2016080101_0.gz"), "wb") as f:
            f.write(data[:len(data) // 2])
        ws.write_config()
        cls.first_pass = ws.run_once()

    @classmethod
    def tearDownClass(cls):
        cls.ws.cleanup()

    def test_log_lines_are_escaped(self):
        self.assertEqual(self.first_pass.rc, 3, self.first_pass)   # the truncated object is failing
        assert_clean(self, self.first_pass.stderr, "run log")
        self.assertIn(SHOWN, self.first_pass.stderr, self.first_pass)

    def test_status_text_is_escaped_and_json_exact(self):
        r = self.ws.cli("status")
        self.assertEqual(r.rc, 0, r)
        assert_clean(self, r.stdout, "status")
        self.assertIn("FAILED object", r.stdout)
        self.assertIn(SHOWN, r.stdout)
        r = self.ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("\x1b", r.stdout)   # the JSON encoder escapes it as \u001b
        failed = json.loads(r.stdout)[0]["failed_objects"]
        self.assertEqual(len(failed), 1, failed)
        self.assertIn(HOSTILE_DIR + "/2016080101_0.gz", failed[0]["object"])

    def test_bad_records_text_is_escaped_and_json_exact(self):
        r = self.ws.cli("bad-records")
        self.assertEqual(r.rc, 0, r)
        assert_clean(self, r.stdout, "bad-records")
        self.assertIn(SHOWN + "/2016080100_0.log line 2", r.stdout)
        r = self.ws.cli("bad-records", "--json")
        self.assertEqual(r.rc, 0, r)
        rows = json.loads(r.stdout)
        self.assertEqual([x["object"] for x in rows], [HOSTILE_DIR + "/2016080100_0.log"])

    def test_schema_shows_field_names_escaped(self):
        r = self.ws.cli("schema")
        self.assertEqual(r.rc, 0, r)
        assert_clean(self, r.stdout, "schema")
        self.assertIn("f" + SHOWN + " -> ", r.stdout)
        r = self.ws.cli("schema", "--duckdb")
        self.assertEqual(r.rc, 0, r)
        assert_clean(self, r.stdout, "schema --duckdb")

    def test_verify_output_is_escaped(self):
        r = self.ws.verify()
        assert_clean(self, r.stdout + r.stderr, "verify")

    def test_query_table_escapes_c1_and_bidi_controls(self):
        r = self.ws.cli("query", "SELECT 'a' || chr(155) || '2J' || chr(8238) || 'b' AS v")
        self.assertEqual(r.rc, 0, r)
        assert_clean(self, r.stdout, "query")
        self.assertNotIn("\u202e", r.stdout)
        self.assertIn("a\\u009b2J\\u202eb", r.stdout)


class LockedDownStateTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=1, rows_per_hour=100)
        self.ws.write_config()

    def test_state_dir_and_ledger_are_owner_only(self):
        old = os.umask(0o022)
        try:
            self.ws.run_once(expect_rc=0)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.stat(self.ws.state).st_mode), 0o700)
        for name in os.listdir(self.ws.state):
            if name.startswith("ledger.db"):
                path = os.path.join(self.ws.state, name)
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, name)

    def test_looser_existing_state_dir_is_warned_about_not_changed(self):
        os.makedirs(self.ws.state)
        os.chmod(self.ws.state, 0o755)
        r = self.ws.run_once(expect_rc=0)
        self.assertIn("accessible to other users", r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(self.ws.state).st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(self.ws.ledger_path).st_mode), 0o600)

    def test_query_cannot_reach_files_attach_or_extensions(self):
        self.ws.run_once(expect_rc=0)
        secret = os.path.join(self.ws.root, "secret.csv")
        with open(secret, "w") as f:
            f.write("user,password\nroot,hunter2\n")
        written = os.path.join(self.ws.root, "written.csv")
        for sql in ["SELECT * FROM read_csv('%s')" % secret,
                    "SELECT * FROM '%s'" % secret,
                    "COPY (SELECT 1) TO '%s'" % written,
                    "ATTACH '%s' AS other" % os.path.join(self.ws.root, "other.duckdb"),
                    "INSTALL httpfs",
                    "LOAD httpfs",
                    "SET enable_external_access = true"]:
            r = self.ws.cli("query", sql)
            self.assertNotEqual(r.rc, 0, "allowed: %s\n%r" % (sql, r))
            self.assertNotIn("hunter2", r.stdout)
        self.assertFalse(os.path.exists(written))
        self.assertFalse(os.path.exists(os.path.join(self.ws.root, "other.duckdb")))
        rows = self.ws.query_csv("SELECT count(*) AS n FROM access")
        self.assertEqual(rows, [{"n": "100"}])


class RefusedSettingsTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)

    def test_unknown_log_level_is_a_config_error(self):
        self.ws.write_config(top={"log_level": "verbose"})
        r = self.ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("log_level", r.stderr)
        self.assertIn("debug, info, warn, error or off", r.stderr)

    def test_verify_of_an_unknown_table_is_a_usage_error(self):
        self.ws.gen(hours=1, rows_per_hour=10)
        self.ws.write_config()
        self.ws.run_once(expect_rc=0)
        r = self.ws.cli("verify", "--table", "nope")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("'nope'", r.stderr)
        self.assertIn("tables: access", r.stderr)
        self.assertEqual(self.ws.cli("verify", "--table", "access").rc, 0)

    def test_plain_http_to_a_far_host_is_a_config_error_naming_the_key(self):
        self.ws.write_config(source="s3://bucket/logs/", endpoint="http://minio.internal:9000")
        r = self.ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("'endpoint'", r.stderr)
        self.assertIn("allow_insecure_http", r.stderr)
        self.assertNotIn("OK", r.stdout)

    def test_storage_emulator_host_far_away_is_refused(self):
        self.ws.write_config(source="gs://bucket/logs/")
        env = dict(os.environ)
        env["STORAGE_EMULATOR_HOST"] = "gcs-emulator:4443"
        r = lf.run(["check", "-c", self.ws.config_path], env=env)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("STORAGE_EMULATOR_HOST", r.stderr)


if __name__ == "__main__":
    unittest.main()
