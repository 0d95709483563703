"""End-to-end: rows of a partition that is still open (its hour plus settle
has not passed) become queryable by appends, exactly once at every moment:
while objects keep arriving, when an object of the open hour is rewritten,
when the hour closes and the usual replace finalizes it, and across SIGKILLs
at random moments, including between an append and its ledger record.

The hour under test is the previous UTC hour, kept open by a settle that
ends about a minute into the test, so the test sees the partition both open
and closed without a fake clock. Expected numbers come from lf.count_source.
"""

import datetime as dt
import os
import random
import time
import unittest

import lf

UTC = dt.timezone.utc


def records(hour_start, n, seed, marker):
    rng = random.Random(seed)
    return [lf.out_file_line(hour_start + dt.timedelta(seconds=rng.randrange(3600)),
                             {"host": "10.0.0.%d" % (i % 256), "path": "/open/%d" % i, "size": marker, "code": 200})
            for i in range(n)]


class OpenPartitionTest(unittest.TestCase):
    maxDiff = None

    def workspace(self, settle_left_s, **overrides):
        """A workspace whose previous UTC hour stays open for settle_left_s more seconds."""
        ws = lf.Workspace(self)
        now = dt.datetime.now(UTC)
        self.hour = (now - dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
        hour_end = self.hour + dt.timedelta(hours=1)
        self.due_at = now + dt.timedelta(seconds=settle_left_s)
        settle = int((self.due_at - hour_end).total_seconds())
        ws.write_config(timezone="+00:00", settle="%ds" % settle, **overrides)
        self.slice = self.hour.strftime("%Y%m%d%H")
        self.label = self.hour.strftime("%Y-%m-%dT%H")
        return ws

    def put(self, ws, index, n, seed, marker):
        lf.write_object(os.path.join(ws.source_dir, "%s_%d.gz" % (self.slice, index)),
                        records(self.hour, n, seed, marker))

    def assert_exact(self, ws):
        src = lf.count_source(ws.source_dir, default_offset="+00:00", sum_field="size")
        self.assertEqual(src.bad, 0)
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertEqual(ws.warehouse_hour_sums("size"), src.sums)
        return src

    def history(self, ws):
        rows = ws.query_csv("SELECT kind, count(*) n FROM _logferry_loads GROUP BY kind")
        return {r["kind"]: int(r["n"]) for r in rows}

    def test_appends_rewrites_and_the_final_replace_are_exact(self):
        ws = self.workspace(settle_left_s=3600)
        self.put(ws, 0, 500, 1, 1)
        ws.run_once(expect_rc=0)
        self.assert_exact(ws)
        self.put(ws, 1, 300, 2, 2)
        ws.run_once(expect_rc=0)
        self.assert_exact(ws)
        self.assertEqual(self.history(ws), {"append": 2}, "two appends, no replace while open")
        self.assertEqual(ws.ledger("SELECT appends, appended_parts, loaded_revision FROM partitions"), [(2, 2, 0)])

        self.put(ws, 0, 200, 3, 3)  # rewritten: its 500 rows give way to 200
        ws.run_once(expect_rc=0)
        src = self.assert_exact(ws)
        self.assertEqual(src.total, 500)
        self.assertEqual(self.history(ws), {"append": 2, "replace": 1})
        r = ws.verify()
        self.assertEqual(r.rc, 0, r)

        # Lineage of loads in SQL: each append names its id, parts and rows.
        rows = ws.query_csv("SELECT kind, load_id, parts, rows FROM _logferry_loads ORDER BY finished_at, kind")
        self.assertEqual([(r["kind"], r["parts"], r["rows"]) for r in rows],
                         [("append", "1", "500"), ("append", "1", "300"), ("replace", "2", "500")])
        self.assertEqual(len({r["load_id"] for r in rows}), 3)

    def test_fresh_interval_off_waits_for_the_load(self):
        ws = self.workspace(settle_left_s=3600, fresh_interval="off")
        self.put(ws, 0, 100, 1, 1)
        ws.run_once(expect_rc=0)
        r = ws.cli("query", "SELECT count(*) FROM access")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("nothing has been loaded", r.stderr)
        self.assertEqual(ws.ledger("SELECT appends, loaded_revision FROM partitions"), [(0, 0)])

    def test_sigkills_while_objects_arrive_are_rewritten_and_the_hour_closes(self):
        ws = self.workspace(settle_left_s=30)
        rng = random.Random(20161203)
        kills, iterations, next_index, checked_open = 0, 0, 0, False
        t_start = time.monotonic()
        while iterations < 600 and time.monotonic() - t_start < 240:
            iterations += 1
            for _ in range(rng.randint(1, 2)):  # new objects keep landing in the open hour
                self.put(ws, next_index, rng.randint(500, 3000), rng.randrange(10**6), rng.randint(1, 9))
                next_index += 1
            if next_index > 2 and rng.random() < 0.3:  # and some are rewritten
                self.put(ws, rng.randrange(next_index), rng.randint(0, 3000), rng.randrange(10**6), 7)
            p = ws.start("run", "--once")
            time.sleep(rng.uniform(0.01, 0.3))
            kills += lf.kill_hard(p)
            closed = dt.datetime.now(UTC) > self.due_at + dt.timedelta(seconds=2)
            if not checked_open and kills >= 10:
                # Mid-way, while the hour is open: a clean pass leaves it exact.
                ws.run_once(expect_rc=0)
                self.assert_exact(ws)
                checked_open = not closed
            if kills >= 20 and closed:
                break
        print("\nopen partitions: %d kills in %d iterations (%.1fs), %d objects"
              % (kills, iterations, time.monotonic() - t_start, next_index))
        self.assertGreaterEqual(kills, 20, "the harness did not manage to interrupt enough runs")
        self.assertTrue(checked_open, "the open hour was never checked while open")
        self.assertGreater(dt.datetime.now(UTC), self.due_at, "the hour never closed")

        ws.run_once(expect_rc=0)
        self.assert_exact(ws)
        r = ws.verify()
        self.assertEqual(r.rc, 0, r)
        history = self.history(ws)
        self.assertGreater(history.get("append", 0), 0)
        self.assertGreater(history.get("replace", 0), 0, "the closed hour was finalized by a replace")
        self.assertEqual(ws.ledger("SELECT revision = loaded_revision FROM partitions"), [(1,)])
        # No append is left in flight, and no load id was applied twice.
        self.assertEqual(ws.ledger_scalar("SELECT count(*) FROM loads WHERE kind='append' AND outcome IS NULL"), 0)
        ids = ws.query_csv("SELECT load_id, count(*) n FROM _logferry_loads GROUP BY load_id HAVING n > 1")
        self.assertEqual(ids, [])


if __name__ == "__main__":
    unittest.main()
