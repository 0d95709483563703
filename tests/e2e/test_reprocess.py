"""Re-processing through the binary: `restage` after a config mistake,
`skip`/`unskip` for a permanently broken object, and `preview`, which
writes nothing.

Expected numbers come from lf.count_source (an independent count of the
source), never from logferry."""

import datetime as dt
import gzip
import json
import os
import random
import re
import time
import unittest

import lf

UTC = dt.timezone.utc


def tree(root):
    """{relative path: (size, mtime_ns)} of everything under root (directories too)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


def key_re_for(names):
    return re.compile("^(%s)$" % "|".join(re.escape(n) for n in names))


def status_json(ws):
    r = ws.cli("status", "--json")
    assert r.rc == 0, r
    return json.loads(r.stdout)[0]


class RestageAfterAWrongTimeFormat(unittest.TestCase):
    """The scenario of issue 12: a wrong time_format makes every row a bad
    record; after fixing it, restage + run --once loads every row, exactly."""

    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=4, rows_per_hour=400, split_every=2, late_fraction=0.05, timezone="+09:00", seed=11)
        self.ws.write_config(time_format="unix")
        self.objects = sorted(os.listdir(self.ws.source_dir))

    def counts_of(self, names):
        return lf.count_source(self.ws.source_dir, key_re=key_re_for(names), sum_field="size")

    def test_restage_by_time_slice_then_run_loads_every_row_exactly(self):
        ws = self.ws
        total = self.counts_of(self.objects)
        ws.run_once(expect_rc=0)
        s = status_json(ws)
        self.assertEqual(s["rows"]["staged"], 0)
        self.assertEqual(s["rows"]["bad_records"], total.total, "every row a bad record")

        ws.write_config(time_format="iso8601")
        # The first two time slices only (keys are in the table's zone, +09:00).
        first = [n for n in self.objects if n.startswith(("2016080109", "2016080110"))]
        r = ws.cli("restage", "--from", "2016-08-01T09+09:00", "--to", "2016-08-01T11+09:00")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("%d object(s) of access sent back" % len(first), r.stdout)
        ws.run_once(expect_rc=0)
        part = self.counts_of(first)
        self.assertEqual(ws.warehouse_hour_counts(), part.per_hour)
        bad_left = dict(ws.ledger("SELECT key, bad_records FROM objects WHERE state='staged'"))
        for name in self.objects:
            self.assertEqual(bad_left[name] == 0, name in first, name)

        # The rest, by UTC bounds this time.
        r = ws.cli("restage", "--from", "2016-08-01T02", "--to", "2016-08-01T04")
        self.assertEqual(r.rc, 0, r)
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.warehouse_hour_counts(), total.per_hour)
        self.assertEqual(ws.warehouse_hour_sums("size"), total.sums)
        s = status_json(ws)
        self.assertEqual((s["rows"]["staged"], s["rows"]["loaded"], s["rows"]["bad_records"]),
                         (total.total, total.total, 0))
        self.assertEqual(ws.ledger_scalar("SELECT COUNT(*) FROM bad_records"), 0)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)
        # Same version, same part names: one part per (object, hour), no strays.
        live = sorted(k for (k,) in ws.ledger("SELECT key FROM parts WHERE state='live'"))
        self.assertEqual(ws.staged_parts(), live)

    def test_a_run_killed_while_restaging_is_finished_by_the_next(self):
        ws = self.ws
        total = self.counts_of(self.objects)
        ws.write_config(time_format="iso8601")
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.warehouse_hour_counts(), total.per_hour)
        generations = ws.generations()
        rng = random.Random(5)
        for _ in range(3):  # bounded: each restage is killed at a random moment
            r = ws.cli("restage", "--from", "2016-08-01T00", "--to", "2016-08-02T00")
            self.assertEqual(r.rc, 0, r)
            p = ws.start("run", "--once")
            time.sleep(rng.uniform(0.0, 0.6))
            lf.kill_hard(p)
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.warehouse_hour_counts(), total.per_hour)
        self.assertEqual(ws.warehouse_hour_sums("size"), total.sums)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)
        for hour, g in ws.generations().items():
            self.assertGreater(g, generations[hour], "partition %s was reloaded" % hour)


class RestageMovesRowsBetweenHours(unittest.TestCase):
    """A wrong timezone put every row 9 hours off. After restaging with the
    right one, the rows move: the old hours reload empty and their parts are
    collected; nothing is loaded twice."""

    def test_old_hours_empty_and_their_parts_collected(self):
        ws = lf.Workspace(self)
        rng = random.Random(3)
        for hour in range(3):
            lines = []
            for i in range(50 + hour):
                t = dt.datetime(2016, 8, 1, 10 + hour, rng.randrange(60), rng.randrange(60))
                # No offset in the line: the table's timezone decides.
                lines.append("%s\tapp\t%s\n" % (t.strftime("%Y-%m-%dT%H:%M:%S"),
                                                json.dumps({"i": i, "src": hour})))
            lf.write_object(os.path.join(ws.source_dir, "20160801%02d_0.gz" % (10 + hour)), lines)
        ws.write_config(timezone="+00:00")
        ws.run_once(expect_rc=0)
        wrong = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertEqual(ws.warehouse_hour_counts(), wrong.per_hour)

        ws.write_config(timezone="+09:00")
        r = ws.cli("restage", "--from", "2016-08-01T00", "--to", "2016-08-02T00")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("3 object(s)", r.stdout)
        ws.run_once(expect_rc=0)
        right = lf.count_source(ws.source_dir, default_offset="+09:00")
        self.assertTrue(set(right.per_hour).isdisjoint(wrong.per_hour))
        self.assertEqual(ws.warehouse_hour_counts(), right.per_hour)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)
        # The old hours' parts were obsolete, reloaded without, and collected.
        self.assertEqual(ws.ledger_scalar("SELECT COUNT(*) FROM parts WHERE state<>'live'"), 0)
        parts = ws.staged_parts()
        self.assertEqual(len(parts), 3)
        for hour in wrong.per_hour:
            self.assertFalse(any("hr=%s" % hour[11:13] in p and hour[:10] in p for p in parts), parts)


class SkipAndUnskip(unittest.TestCase):

    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=2, rows_per_hour=300, split_every=0, timezone="+09:00", seed=2)
        self.good = sorted(os.listdir(self.ws.source_dir))
        self.broken = "2016080111_0.gz"
        with open(os.path.join(self.ws.source_dir, self.good[0]), "rb") as f:
            data = f.read()
        lf.write_object(os.path.join(self.ws.source_dir, self.broken), [], compress=False)
        with open(os.path.join(self.ws.source_dir, self.broken), "wb") as f:
            f.write(data[: len(data) // 2])  # a truncated upload: never readable
        self.ws.write_config()

    def test_skip_acknowledges_a_broken_object_and_unskip_brings_it_back(self):
        ws = self.ws
        expected = lf.count_source(ws.source_dir, key_re=key_re_for(self.good))
        ws.run_once(expect_rc=3)
        self.assertEqual(ws.verify().rc, 1)

        r = ws.cli("skip", "--key", "2016080109_0.gz", "--reason", "x")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("is staged", r.stderr)
        r = ws.cli("skip", "--key", "no-such-key.gz", "--reason", "x")
        self.assertEqual(r.rc, 1, r)

        r = ws.cli("skip", "--key", self.broken, "--reason", "truncated upload, ticket OPS-7")
        self.assertEqual(r.rc, 0, r)
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.warehouse_hour_counts(), expected.per_hour)
        s = status_json(ws)
        self.assertEqual((s["objects"]["failed"], s["objects"]["skipped"]), (0, 1))
        self.assertEqual(s["skipped_objects"][0]["reason"], "truncated upload, ticket OPS-7")
        self.assertTrue(s["skipped_objects"][0]["object"].endswith(self.broken))
        text = ws.cli("status").stdout
        self.assertRegex(text, r"SKIPPED object \S+%s .*truncated upload, ticket OPS-7" % re.escape(self.broken))
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)
        self.assertIn("skipped", v.stdout)
        self.assertNotIn("DIFFERENCE", v.stdout)
        r = ws.cli("restage", "--key", self.broken)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("unskip", r.stderr)

        r = ws.cli("unskip", "--key", self.broken)
        self.assertEqual(r.rc, 0, r)
        ws.run_once(expect_rc=3)  # still broken: failing again
        self.assertEqual(status_json(ws)["objects"]["failed"], 1)
        self.assertEqual(ws.cli("unskip", "--key", self.broken).rc, 1, "not skipped any more")

        # Skipped again, then re-uploaded whole: the new version is staged.
        self.assertEqual(ws.cli("skip", "--key", self.broken, "--reason", "again").rc, 0)
        t = dt.datetime(2016, 8, 1, 11, 30, tzinfo=dt.timezone(dt.timedelta(hours=9)))
        lf.write_object(os.path.join(ws.source_dir, self.broken), [lf.out_file_line(t, {"n": i}) for i in range(7)])
        ws.run_once(expect_rc=0)
        everything = lf.count_source(ws.source_dir)
        self.assertEqual(ws.warehouse_hour_counts(), everything.per_hour)
        self.assertEqual(status_json(ws)["objects"]["skipped"], 0)
        self.assertEqual(ws.verify().rc, 0)


class Preview(unittest.TestCase):

    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=2, rows_per_hour=250, split_every=0, late_fraction=0.1, timezone="+09:00", seed=4)
        self.ws.write_config()
        self.key = sorted(os.listdir(self.ws.source_dir))[1]

    def test_a_good_object_writes_nothing(self):
        ws = self.ws
        before = tree(ws.root)
        r = ws.cli("preview", self.key, "--rows", "3", "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(ws.root), before, "preview wrote something")
        self.assertFalse(os.path.exists(ws.state))
        p = json.loads(r.stdout)
        expected = lf.count_source(ws.source_dir, key_re=key_re_for([self.key]))
        self.assertEqual(p["rows"], expected.total)
        self.assertEqual(p["bad_records"], 0)
        self.assertEqual(len(p["first_rows"]), 3)
        self.assertIn("_time", p["first_rows"][0])
        self.assertEqual({q["partition"][:13]: q["rows"] for q in p["partitions"]}, expected.per_hour)
        self.assertIn("host", [c["column"] for c in p["new_columns"]], "no ledger: every column is new")

        # After a run the schema is known: nothing new; still nothing written.
        ws.run_once(expect_rc=0)
        before = tree(ws.root)
        r = ws.cli("preview", self.key, "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(ws.root), before, "preview wrote something")
        p = json.loads(r.stdout)
        self.assertEqual(p["new_columns"], [])
        self.assertEqual(len(p["first_rows"]), 10)

        text = ws.cli("preview", self.key).stdout
        for heading in ("rows as they would load", "bad lines", "columns it would add", "partitions it spans"):
            self.assertIn(heading, text)

    def test_bad_lines_of_a_local_file_with_their_reasons(self):
        ws = self.ws
        t = dt.datetime(2016, 8, 1, 3, 15, tzinfo=UTC)
        lines = [lf.out_file_line(t, {"n": 1}), "not a log line\n", lf.out_file_line(t, {"n": 2, "extra": "x"}),
                 "yesterday\tapp\t{\"n\":3}\n"]
        path = os.path.join(ws.root, "sample.log")
        with open(path, "w") as f:
            f.write("".join(lines))
        ws.run_once(expect_rc=0)
        before = tree(ws.root)
        r = ws.cli("preview", "--file", path, "--json")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(tree(ws.root), before, "preview wrote something")
        p = json.loads(r.stdout)
        self.assertEqual((p["lines"], p["rows"], p["bad_records"]), (4, 2, 2))
        self.assertEqual([b["line"] for b in p["bad_lines"]], [2, 4])
        self.assertEqual(p["bad_lines"][1]["field"], "time")
        self.assertTrue(all(b["reason"] for b in p["bad_lines"]))
        self.assertEqual([c["column"] for c in p["new_columns"]], ["n", "extra"])
        self.assertEqual(p["partitions"], [{"partition": "2016-08-01T03:00:00Z", "rows": 2}])

    def test_a_missing_key_fails(self):
        r = self.ws.cli("preview", "2099010100_0.gz")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(self.ws.cli("preview").rc, 2)


if __name__ == "__main__":
    unittest.main()
