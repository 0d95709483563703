"""End-to-end: the shared ledger on PostgreSQL 15 (`ledger = "postgresql://..."`).

Every command works against it as against the SQLite ledger (run, status,
verify, reload, restage, skip, unskip); `logferry ledger migrate --to` moves
a SQLite ledger there; a daemon whose PostgreSQL goes away for a while says
so, keeps running and carries on exactly once when it is back. The password
in the URI never shows in any output.
"""

import datetime as dt
import hashlib
import json
import os
import re
import signal
import time
import unittest

import lf
import pg

# Every output of every command, checked for the password at the end of each test.
OUTPUTS = []


def cli(ws, *args, expect=None, timeout=120):
    r = ws.cli(*args, timeout=timeout)
    OUTPUTS.append(r.stdout + r.stderr)
    if expect is not None and r.rc != expect:
        raise AssertionError("%s exited %d, expected %d: %r" % (" ".join(args), r.rc, expect, r))
    return r


def status_json(ws):
    return json.loads(cli(ws, "status", "--json", expect=0).stdout)[0]


def loaded_rows(ws):
    """Rows loaded as status reports them; None while status cannot say (no ledger yet)."""
    r = ws.cli("status", "--json")
    OUTPUTS.append(r.stdout + r.stderr)
    return json.loads(r.stdout)[0]["rows"]["loaded"] if r.rc == 0 else None


def wait_for(predicate, timeout, what, step=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class PostgresLedger(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        OUTPUTS.clear()
        self.server = pg.Server(self)
        self.uri = self.server.new_database()
        self.shown = self.server.uri("ledger1", password=False)
        self.ws = lf.Workspace(self)

    def tearDown(self):
        for text in OUTPUTS:
            self.assertNotIn(pg.PASSWORD, text)

    def database(self):
        return "ledger%d" % self.server._databases

    def test_every_command_works_on_the_shared_ledger(self):
        ws = self.ws
        ws.gen(hours=6, rows_per_hour=400, split_every=3, timezone="+09:00", seed=5)
        ws.write_config(top={"ledger": self.uri})
        src = lf.count_source(ws.source_dir)
        r = cli(ws, "run", "--once", expect=0)
        self.assertIn("ledger %s," % self.shown, r.stderr)
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertFalse(os.path.exists(ws.ledger_path), "no SQLite ledger beside a shared one")
        objects = int(self.server.query(self.database(), "SELECT COUNT(*) FROM objects WHERE state='staged'")[0][0])
        self.assertEqual(objects, len(os.listdir(ws.source_dir)))

        text = cli(ws, "status", expect=0).stdout
        self.assertIn("ledger      %s\n" % self.shown, text)
        s = status_json(ws)
        self.assertEqual(s["ledger"], self.shown)
        self.assertEqual(s["objects"]["staged"], objects)
        self.assertEqual(s["rows"]["loaded"], src.total)
        self.assertIn("verify: OK", cli(ws, "verify", expect=0).stdout)
        self.assertIn("OK", cli(ws, "check", expect=0).stdout)

        # reload: the partition loads again, a new generation.
        hour = sorted(src.per_hour)[1]
        before = self.server.query(self.database(), "SELECT generation FROM partitions ORDER BY partition_us")
        cli(ws, "reload", "--from", hour, expect=0)
        after = self.server.query(self.database(), "SELECT generation FROM partitions ORDER BY partition_us")
        self.assertEqual(sum(a != b for a, b in zip(before, after)), 1)
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)

        # restage: staged again with the current config, rows exactly once.
        key = sorted(os.listdir(ws.source_dir))[0]
        self.assertIn("1 object(s)", cli(ws, "restage", "--key", key, expect=0).stdout)
        cli(ws, "run", "--once", expect=0)
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)

        # skip / unskip: a truncated upload fails, is acknowledged, comes back.
        broken = os.path.join(ws.source_dir, "2016080115_0.gz")
        with open(os.path.join(ws.source_dir, key), "rb") as f:
            data = f.read()
        with open(broken, "wb") as f:
            f.write(data[: len(data) // 2])
        cli(ws, "run", "--once", expect=3)
        self.assertEqual(status_json(ws)["objects"]["failed"], 1)
        cli(ws, "skip", "--key", "2016080115_0.gz", "--reason", "truncated upload", expect=0)
        cli(ws, "run", "--once", expect=0)
        s = status_json(ws)
        self.assertEqual((s["objects"]["failed"], s["objects"]["skipped"]), (0, 1))
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertEqual(cli(ws, "verify").rc, 0)
        cli(ws, "unskip", "--key", "2016080115_0.gz", expect=0)
        self.assertEqual(status_json(ws)["objects"]["pending"], 1)

    def test_migrate_copies_a_sqlite_ledger_which_stays_unchanged(self):
        ws = self.ws
        ws.gen(hours=4, rows_per_hour=300, split_every=2, timezone="+09:00", seed=6)
        ws.write_config()
        src = lf.count_source(ws.source_dir)
        cli(ws, "run", "--once", expect=0)
        tables = ["objects", "parts", "partitions", "loads", "load_jobs", "processes"]
        counts = {t: ws.ledger_scalar("SELECT COUNT(*) FROM %s" % t) for t in tables}
        digest = sha256(ws.ledger_path)

        r = cli(ws, "ledger", "migrate", "--to", "mysql://user:%s@db/x" % pg.PASSWORD, expect=2)
        self.assertIn("postgresql://", r.stderr)
        self.assertEqual(cli(ws, "ledger", "migrate", "--to", self.server.uri("nosuchdb"), expect=1).rc, 1)
        r = cli(ws, "ledger", "migrate", "--to", self.uri, expect=0)
        for t in tables:
            self.assertRegex(r.stdout, r"\n  %s\s+%d\n" % (t, counts[t]))
            pg_count = int(self.server.query(self.database(), "SELECT COUNT(*) FROM %s" % t)[0][0])
            self.assertEqual(pg_count, counts[t], t)
        self.assertIn('ledger = "%s"' % self.shown, r.stdout)
        self.assertEqual(sha256(ws.ledger_path), digest, "the SQLite ledger is untouched")
        r = cli(ws, "ledger", "migrate", "--to", self.uri, expect=1)
        self.assertIn("not empty", r.stderr)

        ws.write_config(top={"ledger": self.uri})
        v = cli(ws, "verify", expect=0)
        self.assertIn("%d rows in the warehouse" % src.total, v.stdout)
        s = status_json(ws)
        self.assertEqual(s["objects"]["staged"], counts["objects"])
        self.assertEqual(s["rows"]["loaded"], src.total)
        # The next pass on PostgreSQL finds nothing new and changes nothing.
        cli(ws, "run", "--once", expect=0)
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertEqual(sha256(ws.ledger_path), digest)

    def test_errors_about_the_ledger_never_show_its_password(self):
        ws = self.ws
        ws.gen(hours=1, rows_per_hour=10, seed=1)
        ws.write_config(top={"ledger": self.uri.replace(pg.PASSWORD, pg.PASSWORD + "x")})
        r = cli(ws, "status", expect=1)
        self.assertIn("password authentication failed", r.stderr)
        self.assertIn(self.shown, r.stderr)
        cli(ws, "run", "--once", expect=1)
        cli(ws, "check", expect=1)
        ws.write_config(top={"ledger": "mysql://user:%s@db/x" % pg.PASSWORD})
        self.assertIn("postgresql://", cli(ws, "status", expect=2).stderr)
        ws.write_config(top={"ledger": self.server.uri("nosuchdb")})
        self.assertIn('database "nosuchdb" does not exist', cli(ws, "status", expect=1).stderr)

    def test_migrate_refuses_while_a_daemon_runs_on_the_sqlite_ledger(self):
        ws = self.ws
        ws.gen(hours=2, rows_per_hour=100, timezone="+00:00", seed=7)
        ws.write_config(interval="1s", timezone="+00:00")
        p = ws.start("run")
        wait_for(lambda: os.path.exists(ws.ledger_path) and status_json(ws)["objects"]["staged"] > 0, 60,
                 "the daemon's first pass")
        r = cli(ws, "ledger", "migrate", "--to", self.uri, expect=1)
        self.assertIn("stop it", r.stderr)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), 0)
        cli(ws, "ledger", "migrate", "--to", self.uri, expect=0)

    def test_a_daemon_pauses_while_postgres_is_down_and_resumes_exactly_once(self):
        ws = self.ws
        ws.gen(hours=3, rows_per_hour=300, timezone="+00:00", seed=8)
        ws.write_config(top={"ledger": self.uri}, interval="1s", timezone="+00:00", retry_base="1s")
        p = ws.start("run")
        first = lf.count_source(ws.source_dir, default_offset="+00:00")
        wait_for(lambda: loaded_rows(ws) == first.total, 90, "the first objects loaded")

        self.server.stop()
        ws.gen(hours=3, start="2016-08-01T05", rows_per_hour=300, timezone="+00:00", seed=9)
        log = os.path.join(ws.root, "run.log")

        def complained():
            with open(log, errors="replace") as f:
                return "UNAVAILABLE" in f.read()
        wait_for(complained, 60, "the daemon to log that the ledger is unavailable")
        time.sleep(3)  # a few passes without a ledger
        self.assertIsNone(p.poll(), "the daemon keeps running while PostgreSQL is down")
        self.server.start()

        everything = lf.count_source(ws.source_dir, default_offset="+00:00")
        wait_for(lambda: loaded_rows(ws) == everything.total, 120, "every object loaded")
        self.assertIsNone(p.poll())
        self.assertEqual(ws.warehouse_hour_counts(), everything.per_hour)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), 0)
        self.assertIn("verify: OK", cli(ws, "verify", expect=0).stdout)
        with open(log, errors="replace") as f:
            text = f.read()
        OUTPUTS.append(text)
        lines = [line for line in text.splitlines() if "UNAVAILABLE" in line]
        self.assertTrue(any(self.shown in line for line in lines), lines[:3])


if __name__ == "__main__":
    unittest.main()
