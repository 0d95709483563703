"""End-to-end: damaged objects, bad lines and awkward-but-valid input.

* An object that cannot be decoded (truncated gzip, flipped bytes) fails as a
  whole, is reported with its byte offset, is retried on its backoff schedule,
  and loads once it is rewritten; the good objects around it load exactly.
* Lines that cannot be parsed are dead-lettered one by one (line number,
  reason, excerpt) without failing their object.
* CRLF, a BOM, blank lines, invalid UTF-8, an uncompressed object named .gz
  and a zero-length object are all good input.
"""

import datetime as dt
import gzip
import json
import os
import shutil
import time
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

UTC = dt.timezone.utc
T0 = dt.datetime(2016, 8, 1, 0, 0, 0, tzinfo=UTC)


def write_raw(path, data):
    """Writes bytes as a new file version (temp + rename: a new etag for the file store)."""
    tmp = os.path.join(os.path.dirname(path), ".tmp-" + os.path.basename(path))
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def line(i, obj, **extra):
    rec = {"obj": obj, "i": i}
    rec.update(extra)
    return "%s\te2e.bad\t%s" % ((T0 + dt.timedelta(seconds=i)).isoformat(), json.dumps(rec, separators=(",", ":")))


def parse_iso(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class DamagedObjectsTest(unittest.TestCase):
    """Objects whose compression is broken."""

    maxDiff = None
    TRUNCATED = "2016080101_0.gz"   # its hour also has a good _1
    FLIPPED = "2016080102_0.gz"

    def status(self, ws):
        r = ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)[0]

    def failed_by_key(self, ws):
        return {os.path.basename(f["object"]): f for f in self.status(ws)["failed_objects"]}

    def attempts(self, ws, key):
        return ws.ledger("SELECT state, attempts FROM objects WHERE table_name='access' AND key=? "
                         "ORDER BY id DESC LIMIT 1", (key,))[0]

    def test_corrupt_objects_fail_retry_and_recover(self):
        ws = lf.Workspace(self)
        ws.gen(hours=4, rows_per_hour=1500, split_every=2, timezone="+00:00", seed=7)
        ws.write_config(timezone="+00:00", retry_base="1s", retry_max="2s")
        originals = {}
        for key in (self.TRUNCATED, self.FLIPPED):
            with open(os.path.join(ws.source_dir, key), "rb") as f:
                originals[key] = f.read()
        # Expected counts of the good objects alone, from a copy of them.
        good_dir = os.path.join(ws.root, "good")
        shutil.copytree(ws.source_dir, good_dir)
        for key in originals:
            os.remove(os.path.join(good_dir, key))
        good = lf.count_source(good_dir, default_offset="+00:00")
        full = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertLess(good.total, full.total)

        write_raw(os.path.join(ws.source_dir, self.TRUNCATED), originals[self.TRUNCATED][:len(originals[self.TRUNCATED]) // 2])
        flipped = bytearray(originals[self.FLIPPED])
        mid = len(flipped) // 2
        for i in range(mid, mid + 16):
            flipped[i] ^= 0xFF
        write_raw(os.path.join(ws.source_dir, self.FLIPPED), bytes(flipped))

        # Pass 1: the good objects load exactly; the broken ones fail with a byte offset.
        r = ws.run_once()
        self.assertEqual(r.rc, 3, r)
        self.assertEqual(ws.warehouse_hour_counts(), good.per_hour)
        failed = self.failed_by_key(ws)
        self.assertEqual(sorted(failed), sorted(originals))
        for key, f in failed.items():
            self.assertIn(key, f["error"])
            self.assertRegex(f["error"], r"byte offset \d+")
            self.assertEqual(f["attempts"], 1)
            self.assertEqual(self.attempts(ws, key), ("failed", 1))
        self.assertRegex(failed[self.TRUNCATED]["error"], r"(?i)truncat")
        # Failing objects leave nothing half-staged behind: verify's only complaints are the two objects.
        v = ws.verify()
        self.assertEqual(v.rc, 1, v)
        diffs = [l for l in v.stdout.splitlines() if l.startswith("DIFFERENCE")]
        self.assertEqual(len(diffs), 2, v)
        for key in originals:
            self.assertTrue(any(key in d for d in diffs), v)

        # Pass 2, after the retry time: retried (attempts=2), still failed and still reported.
        next_at = max(parse_iso(f["next_attempt"]) for f in failed.values())
        wait = next_at - time.time() + 0.2
        self.assertLess(wait, 5, "retry_base 1s must schedule the first retry within seconds")
        time.sleep(max(0.0, wait))
        r = ws.run_once()
        self.assertEqual(r.rc, 3, r)
        failed = self.failed_by_key(ws)
        self.assertEqual(sorted(failed), sorted(originals))
        for key, f in failed.items():
            self.assertEqual(f["attempts"], 2, f)
            self.assertEqual(self.attempts(ws, key), ("failed", 2))
        self.assertEqual(ws.warehouse_hour_counts(), good.per_hour)

        # Rewritten validly: staged, loaded, and the table matches the whole source.
        for key, data in originals.items():
            write_raw(os.path.join(ws.source_dir, key), data)
        r = ws.run_once()
        self.assertEqual(r.rc, 0, r)
        for key in originals:
            self.assertEqual(self.attempts(ws, key)[0], "staged")
        self.assertEqual(self.status(ws)["failed_objects"], [])
        self.assertEqual(ws.warehouse_hour_counts(), full.per_hour)
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)


class BadLinesTest(unittest.TestCase):
    """Unparseable lines are dead-lettered; their object still stages."""

    maxDiff = None
    KEY = "2016080100_0.gz"

    @classmethod
    def setUpClass(cls):
        ws = cls.ws = lf.Workspace()
        cls.addClassCleanup(ws.cleanup)
        ts = T0.isoformat()
        # (text, expected reason pattern, expected field) ; None: a good line
        cls.lines = [
            (line(0, "mix"), None, None),
            (ts + '\te2e.bad\t{"obj":"mix","i":1', r"^invalid JSON", ""),
            (line(2, "mix"), None, None),
            ("", None, None),  # blank: skipped, but still a line of the file
            (ts + ' e2e.bad {"obj":"mix","i":4}', r"no delimiter after the time", "time"),
            (ts + '\t{"obj":"mix","i":5}', r"no delimiter after the tag", "tag"),
            ('yesterday at noon\te2e.bad\t{"obj":"mix","i":6}', r"unparseable time", "time"),
            (ts + '\te2e.bad\t[{"obj":"mix","i":7}]', r"not a JSON object", ""),
            (ts + '\te2e.bad\t"just a string"', r"not a JSON object", ""),
            (ts + '\te2e.bad\t{"obj":"mix","i":9} {"obj":"mix","i":10}', r"trailing", ""),
            (line(11, "mix"), None, None),
        ]
        cls.data = "".join(t + "\n" for t, _, _ in cls.lines).encode()
        lf.write_object(os.path.join(ws.source_dir, cls.KEY), [cls.data.decode()])
        # Trailing text that is not itself JSON, alone in its own object (see test_trailing_garbage_reason).
        cls.garbage = ts + '\te2e.bad\t{"obj":"garbage","i":0} xyz'
        lf.write_object(os.path.join(ws.source_dir, "2016080100_1.gz"),
                        [line(1, "garbage") + "\n", cls.garbage + "\n"])
        ws.write_config(timezone="+00:00")
        cls.run_result = ws.run_once()
        r = ws.cli("bad-records", "--json")
        cls.bad_result = r
        cls.bad = json.loads(r.stdout) if r.rc == 0 else None

    def test_run_succeeds_despite_bad_lines(self):
        self.assertEqual(self.run_result.rc, 0, self.run_result)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM objects WHERE state<>'staged'"), 0)

    def test_bad_records_lists_each_with_line_reason_excerpt(self):
        self.assertEqual(self.bad_result.rc, 0, self.bad_result)
        got = sorted((b for b in self.bad if b["object"] == self.KEY), key=lambda b: b["line"])
        expected = []
        offset = 0
        for n, (text, reason, field) in enumerate(self.lines, start=1):
            if reason is not None:
                expected.append((n, offset, text, reason, field))
            offset += len(text.encode()) + 1
        self.assertEqual([b["line"] for b in got], [e[0] for e in expected], got)
        for b, (n, off, text, reason, field) in zip(got, expected):
            with self.subTest(line=n):
                self.assertEqual(b["excerpt"], text)
                self.assertRegex(b["reason"], reason)
                self.assertEqual(b["field"], field)
                self.assertEqual(b["byte_offset"], off)
                self.assertEqual(b["table"], "access")

    def test_ledger_lines_read_equals_rows_plus_bad(self):
        lines_read, rows, bad = self.ws.ledger(
            "SELECT lines_read, rows_staged, bad_records FROM objects WHERE key=?", (self.KEY,))[0]
        n_good = sum(1 for t, r, _ in self.lines if r is None and t)
        n_bad = sum(1 for _, r, _ in self.lines if r is not None)
        self.assertEqual((rows, bad), (n_good, n_bad))
        self.assertEqual(lines_read, rows + bad)

    def test_good_rows_are_loaded(self):
        rows = self.ws.query_csv("SELECT i FROM access WHERE obj='mix' ORDER BY i")
        self.assertEqual([int(r["i"]) for r in rows], [0, 2, 11])
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)

    def test_trailing_garbage_reason(self):
        # The line is rejected (right), and the reason must say why: text after the object.
        rows = [b for b in self.bad if b["object"] == "2016080100_1.gz"]
        self.assertEqual([(b["line"], b["excerpt"]) for b in rows], [(2, self.garbage)])
        self.assertRegex(rows[0]["reason"], r"(?i)trailing", "reason %r does not say the object is followed "
                                                               "by trailing text" % rows[0]["reason"])


class ValidEdgeCasesTest(unittest.TestCase):
    """Input that looks odd but holds only good records."""

    maxDiff = None

    @classmethod
    def setUpClass(cls):
        ws = cls.ws = lf.Workspace()
        cls.addClassCleanup(ws.cleanup)
        d = ws.source_dir
        os.makedirs(d)
        cls.expected = {}   # key -> (obj name, records)

        def put(key, obj, data, records, compress=True):
            write_raw(os.path.join(d, key), gzip.compress(data) if compress else data)
            cls.expected[key] = (obj, records)

        crlf = "".join(line(i, "crlf") + "\r\n" for i in range(3)).encode()
        put("2016080100_10.gz", "crlf", crlf, 3)
        bom = b"\xef\xbb\xbf" + "".join(line(i, "bom") + "\n" for i in range(3)).encode()
        put("2016080100_11.gz", "bom", bom, 3)
        # Only truly empty lines (CRLF ones included) are no records; lines
        # of spaces or tabs are bad records (test_bad_corpus).
        blank = ("\n" + line(0, "blank") + "\n\n\n\r\n" + line(1, "blank") + "\n\r\n" + line(2, "blank")).encode()
        put("2016080100_12.gz", "blank", blank, 3)   # ... and no newline after the last record
        cls.utf8_raw = b"x\xff\xfey\x80z"
        utf8 = (line(0, "utf8") + "\n").encode() + \
            line(1, "utf8", s="@@").encode().replace(b"@@", cls.utf8_raw) + b"\n"
        put("2016080100_13.gz", "utf8", utf8, 2)
        plain = "".join(line(i, "plain") + "\n" for i in range(4)).encode()
        put("2016080100_14.gz", "plain", plain, 4, compress=False)
        put("2016080100_15.gz", "empty", b"", 0, compress=False)

        ws.write_config(timezone="+00:00")
        cls.run_result = ws.run_once()

    def object_row(self, key):
        return self.ws.ledger("SELECT id, state, lines_read, rows_staged, bad_records, warnings FROM objects "
                              "WHERE key=?", (key,))[0]

    def test_run_succeeds_and_verify_passes(self):
        self.assertEqual(self.run_result.rc, 0, self.run_result)
        self.assertEqual(self.ws.cli("bad-records", "--json").stdout.strip(), "[]")
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)

    def test_every_object_staged_with_all_its_records(self):
        for key, (obj, n) in self.expected.items():
            with self.subTest(obj=obj):
                _, state, lines_read, rows, bad, _ = self.object_row(key)
                self.assertEqual((state, lines_read, rows, bad), ("staged", n, n, 0))

    def test_warehouse_holds_every_record(self):
        rows = self.ws.query_csv("SELECT obj, count(*) n, min(i) lo, max(i) hi FROM access GROUP BY obj")
        got = {r["obj"]: (int(r["n"]), int(r["lo"]), int(r["hi"])) for r in rows}
        want = {obj: (n, 0, n - 1) for obj, n in self.expected.values() if n}
        self.assertEqual(got, want)
        # The BOM is not part of the first record's time (which would dead-letter it) nor of any value.
        t = self.ws.query_csv("SELECT strftime(_time, '%Y-%m-%dT%H:%M:%S') t, _tag FROM access "
                              "WHERE obj='bom' AND i=0")
        self.assertEqual(t, [{"t": "2016-08-01T00:00:00", "_tag": "e2e.bad"}])

    def test_invalid_utf8_is_repaired_not_dropped(self):
        r = self.ws.cli("query", "--json", "SELECT s FROM access WHERE obj='utf8' AND i=1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(json.loads(r.stdout), [{"s": self.utf8_raw.decode("utf-8", "replace")}])
        self.assertGreaterEqual(self.object_row("2016080100_13.gz")[5], 1, "the repair is counted as a warning")
        # The warning names the line, its byte offset and the field.
        self.assertEqual(self.ws.ledger_scalar("SELECT last_warning FROM objects WHERE key='2016080100_13.gz'"),
                         "line 2 (byte offset 55): field 's': invalid UTF-8 replaced with U+FFFD")

    def test_repair_is_logged_with_its_reason(self):
        # The operator's only live signal of a repaired value is this log line; it must say what was repaired.
        logged = [l for l in self.run_result.stderr.splitlines() if "2016080100_13.gz" in l and "repaired" in l]
        self.assertEqual(len(logged), 1, self.run_result)
        self.assertRegex(logged[0], r"latest: \S", "the log line names no repair: %r" % logged[0])

    def test_zero_length_object_has_no_parts(self):
        oid = self.object_row("2016080100_15.gz")[0]
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM parts WHERE object_id=?", (oid,)), 0)


if __name__ == "__main__":
    unittest.main()
