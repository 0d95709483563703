"""End-to-end: lineage columns (`lineage = ["source", "line"]`) on the real
Apache log in ../shared/data/apache_access.log, through the binary into
DuckDB. Every row must name the object it came from (_source) and its line
in that object (_line), the number a bad record would report.

The expected keys and line numbers are computed here from the raw file,
never from logferry.
"""

import gzip
import json
import os
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)
from test_real_data import TAG, parse_apache2, sql_str  # noqa: E402

LINEAGE = ["source", "line"]


def shared_data(name):
    """../shared/data/NAME beside the source tree, or beside a directory above
    it (a git worktree under the checkout's parent)."""
    d = os.path.dirname(os.path.abspath(lf.SOURCE_DIR))
    while True:
        path = os.path.join(d, "shared", "data", name)
        if os.path.exists(path) or d == os.path.dirname(d):
            return path
        d = os.path.dirname(d)


APACHE_LOG = shared_data("apache_access.log")


def file_lines():
    """The file's lines (without line breaks), as in_tail reads them."""
    with open(APACHE_LOG, "rb") as f:
        lines = f.read().decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def out_file_object(lines):
    """One out_file object keeping the file's line numbering: a line Fluentd's
    apache2 parser accepts becomes its record, any other stays as it is (and
    must become a bad record). Returns (object lines, {line number: record})."""
    out, records = [], {}
    for n, line in enumerate(lines, start=1):
        parsed = parse_apache2(line)
        if parsed is None:
            out.append(line + "\n")
            continue
        t, record = parsed
        records[n] = record
        out.append("%s\t%s\t%s\n" % (t.isoformat(timespec="seconds"), TAG,
                                     json.dumps(record, separators=(",", ":"), ensure_ascii=False)))
    return out, records


def columns(ws):
    r = ws.cli("schema", "--duckdb")
    if r.rc != 0:
        raise AssertionError("logferry schema failed: %r" % r)
    return r.stdout


@unittest.skipUnless(os.path.exists(APACHE_LOG) or os.environ.get("CI") == "true",
                     "real data %s is absent (expected next to the source tree in ../shared/data)" % APACHE_LOG)
class LineageOnRealData(unittest.TestCase):
    """The whole file as one out_file object, line for line."""

    KEY = "2015051710_0.gz"

    @classmethod
    def setUpClass(cls):
        cls.lines = file_lines()
        obj, cls.records = out_file_object(cls.lines)
        cls.ws = lf.Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        lf.write_object(os.path.join(cls.ws.source_dir, cls.KEY), obj)
        # The log spans four days: its one object writes about 100 hourly partitions.
        cls.ws.write_config(timezone="+00:00", lineage=LINEAGE, max_partitions_per_object=1000)
        cls.run_result = cls.ws.run_once(timeout=300)

    def query_json(self, sql):
        r = self.ws.cli("query", "--json", sql)
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)

    def test_a_every_line_is_a_row_or_a_bad_record(self):
        self.assertEqual(self.run_result.rc, 0, self.run_result)
        self.assertEqual(len(self.lines), 10000)
        (lines_read, rows, bad), = self.ws.ledger(
            "SELECT lines_read, rows_staged, bad_records FROM objects WHERE table_name='access'")
        self.assertEqual((lines_read, rows, bad), (10000, len(self.records), 10000 - len(self.records)))
        unparsed = sorted(set(range(1, 10001)) - set(self.records))
        self.assertEqual([r[0] for r in self.ws.ledger("SELECT line FROM bad_records ORDER BY line")], unparsed)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)

    def test_b_every_row_names_its_object_and_its_line(self):
        rows = self.query_json("SELECT _source, _line FROM access")
        self.assertEqual(len(rows), len(self.records))
        self.assertEqual({r["_source"] for r in rows}, {self.KEY})
        got = sorted(int(r["_line"]) for r in rows)
        self.assertEqual(got, sorted(self.records), "each parsed line once, no other")

    def test_c_the_line_is_the_rows_own_line(self):
        rows = self.query_json("SELECT _line, host, path, size, agent FROM access")
        wrong = []
        for r in rows:
            want = self.records[int(r["_line"])]
            # query --json keeps types: size is a JSON number.
            if (r["host"], r["path"], r["size"], r["agent"]) != (want["host"], want["path"], want["size"], want["agent"]):
                wrong.append((r["_line"], r))
        self.assertEqual(wrong[:3], [], "%d rows differ from their line" % len(wrong))

    def test_d_schema_has_the_lineage_columns_before_the_sources(self):
        text = columns(self.ws)
        self.assertIn("\"_source\" VARCHAR", text)
        self.assertIn("\"_line\" BIGINT", text)
        self.assertLess(text.index("_line"), text.index("host"))
        bq = self.ws.cli("schema", "--bigquery")
        self.assertEqual(bq.rc, 0, bq)
        schema, _ = json.JSONDecoder().raw_decode(bq.stdout)   # the name mapping follows it
        fields = {f["name"]: f["type"] for f in schema}
        self.assertEqual((fields["_source"], fields["_line"]), ("STRING", "INT64"))

    def test_e_an_audit_query_from_the_docs(self):
        # docs/operations.md: which objects and line ranges make up an hour.
        rows = self.query_json(
            "SELECT _source, count(*) AS n, min(_line) AS first_line, max(_line) AS last_line FROM access "
            "WHERE _time >= TIMESTAMP '2015-05-17 10:00:00+00' AND _time < TIMESTAMP '2015-05-17 11:00:00+00' "
            "GROUP BY _source ORDER BY _source")
        self.assertEqual(len(rows), 1)
        self.assertEqual(rows[0]["_source"], self.KEY)
        self.assertGreater(int(rows[0]["n"]), 0)
        dups = self.query_json("SELECT _source, _line, count(*) AS copies FROM access "
                               "GROUP BY _source, _line HAVING count(*) > 1")
        self.assertEqual(dups, [])
        missing = self.query_json(
            "SELECT range AS line FROM range(1, (SELECT max(_line) FROM access WHERE _source = %s) + 1) "
            "WHERE range NOT IN (SELECT _line FROM access WHERE _source = %s) ORDER BY line"
            % (sql_str(self.KEY), sql_str(self.KEY)))
        unparsed = sorted(set(range(1, len(self.lines) + 1)) - set(self.records))
        self.assertEqual([int(r["line"]) for r in missing], [n for n in unparsed if n < max(self.records)])


@unittest.skipUnless(os.path.exists(APACHE_LOG) or os.environ.get("CI") == "true",
                     "real data %s is absent" % APACHE_LOG)
class LineageTwoObjects(unittest.TestCase):
    """The file cut in two single_value objects; the second has an empty line,
    which is no record but still counts in the numbering."""

    def test_each_object_numbers_its_own_lines(self):
        lines = file_lines()
        first, second = lines[:4000], lines[4000:]
        second = second[:99] + [""] + second[99:]   # line 100 of the second object is empty
        objects = {"2015051800_0.gz": first, "2015051900_0.gz": second}
        ws = lf.Workspace(self)
        for key, body in objects.items():
            lf.write_object(os.path.join(ws.source_dir, key), [line + "\n" for line in body])
        ws.write_config(timezone="+00:00", format="single_value", lineage=LINEAGE)
        ws.run_once(timeout=300, expect_rc=0)
        r = ws.cli("query", "--json", "SELECT _source, _line, message FROM access")
        self.assertEqual(r.rc, 0, r)
        got = {}
        for row in json.loads(r.stdout):
            got.setdefault(row["_source"], {})[int(row["_line"])] = row["message"]
        for key, body in objects.items():
            want = {n: line for n, line in enumerate(body, start=1) if line}
            self.assertEqual(sorted(got[key]), sorted(want), key)
            self.assertEqual(got[key], want, key)
        self.assertNotIn(100, got["2015051900_0.gz"])
        read = dict(ws.ledger("SELECT key, lines_read FROM objects"))
        self.assertEqual(read, {"2015051800_0.gz": 4000, "2015051900_0.gz": 6000})


@unittest.skipUnless(os.path.exists(APACHE_LOG) or os.environ.get("CI") == "true",
                     "real data %s is absent" % APACHE_LOG)
class LineageOffThenOn(unittest.TestCase):
    """Off by default: no such columns. Turned on later, the columns are added
    and older rows hold NULL."""

    def test_off_then_on(self):
        lines = file_lines()
        ws = lf.Workspace(self)
        lf.write_object(os.path.join(ws.source_dir, "2015051800_0.gz"), [line + "\n" for line in lines[:3000]])
        ws.write_config(timezone="+00:00", format="single_value")
        ws.run_once(timeout=300, expect_rc=0)
        self.assertNotIn("_source", columns(ws))
        self.assertNotIn("_line", columns(ws))
        cols = ws.query_csv("SELECT column_name FROM information_schema.columns WHERE table_name='access'")
        self.assertEqual({c["column_name"] for c in cols}, {"_time", "message"})

        lf.write_object(os.path.join(ws.source_dir, "2015051900_0.gz"), [line + "\n" for line in lines[3000:5000]])
        ws.write_config(timezone="+00:00", format="single_value", lineage=LINEAGE)
        ws.run_once(timeout=300, expect_rc=0)
        rows = ws.query_csv("SELECT strftime(_time, '%Y-%m-%d') d, count(*) n, count(_source) s, count(_line) l, "
                            "min(_source) k FROM access GROUP BY d ORDER BY d")
        self.assertEqual(rows, [
            {"d": "2015-05-18", "n": "3000", "s": "0", "l": "0", "k": ""},
            {"d": "2015-05-19", "n": "2000", "s": "2000", "l": "2000", "k": "2015051900_0.gz"},
        ])
        v = ws.verify()
        self.assertEqual(v.rc, 0, v)


class LineageNameClash(unittest.TestCase):
    """A source field literally named _source: with lineage on from the start
    it takes the sibling suffix (_source_2); a table whose field already holds
    the name refuses lineage "source" (check and run say why)."""

    RECORD = '{"time":"2016-08-01T00:00:01Z","_source":"mine","_line":"x","a":1}\n'

    def test_the_source_field_takes_the_suffix(self):
        ws = lf.Workspace(self)
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), [self.RECORD])
        ws.write_config(format="json", lineage=LINEAGE)
        ws.run_once(expect_rc=0)
        rows = ws.query_csv("SELECT _source, _source_2, _line, _line_2 FROM access")
        self.assertEqual(rows, [{"_source": "2016080100_0.gz", "_source_2": "mine", "_line": "1", "_line_2": "x"}])

    def test_a_field_holding_the_name_refuses_lineage(self):
        ws = lf.Workspace(self)
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"),
                        ['{"time":"2016-08-01T00:00:01Z","_source":"mine"}\n'])
        ws.write_config(format="json")
        ws.run_once(expect_rc=0)
        ws.write_config(format="json", lineage=LINEAGE)
        for r in (ws.cli("check"), ws.run_once()):
            self.assertEqual(r.rc, 1, r)
            self.assertIn("lineage column _source cannot be added", r.output)
        # Only the name taken is refused.
        ws.write_config(format="json", lineage=["line"])
        ws.run_once(expect_rc=0)

    def test_unknown_values_are_config_errors(self):
        ws = lf.Workspace(self)
        ws.write_config(lineage=["source", "file"])
        r = ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertRegex(r.stderr, r"logferry\.toml:\d+: key 'lineage': unknown value 'file' \(allowed: source, line\)")


def mp_str(s):
    b = s.encode()
    assert len(b) < 32
    return bytes([0xa0 | len(b)]) + b


def mp_map(d):
    return bytes([0x80 | len(d)]) + b"".join(mp_str(k) + mp_str(v) for k, v in d.items())


class LineageMsgpack(unittest.TestCase):
    """msgpack has no lines: _line is the record's ordinal, counting bad records."""

    def test_line_is_the_records_ordinal(self):
        ws = lf.Workspace(self)
        record = {"time": "2016-08-01T00:00:01Z", "m": "x"}
        # Records 1, 3 and 4 are maps; record 2 (an integer) is a bad record.
        stream = mp_map(record) + b"\x05" + mp_map(record) + mp_map(record)
        os.makedirs(ws.source_dir)
        with open(os.path.join(ws.source_dir, "2016080100_0.gz"), "wb") as f:
            f.write(gzip.compress(stream))
        ws.write_config(format="msgpack", lineage=LINEAGE)
        ws.run_once(expect_rc=0)
        rows = ws.query_csv("SELECT _source, _line FROM access ORDER BY _line")
        self.assertEqual(rows, [{"_source": "2016080100_0.gz", "_line": str(n)} for n in (1, 3, 4)])
        self.assertEqual(ws.ledger("SELECT line FROM bad_records"), [(2,)])


class LineageCsv(unittest.TestCase):
    """A csv record whose quoted value spans lines has its first line's number."""

    def test_a_record_over_two_lines_has_its_first(self):
        ws = lf.Workspace(self)
        lines = ['2016-08-01T00:00:01Z,a\n', '2016-08-01T00:00:02Z,"b\n', 'c"\n', '2016-08-01T00:00:03Z,d\n']
        lf.write_object(os.path.join(ws.source_dir, "2016080100_0.gz"), lines)
        ws.write_config(format="csv", keys=["time", "m"], lineage=["line"])
        ws.run_once(expect_rc=0)
        rows = ws.query_csv("SELECT _line, m FROM access ORDER BY _line")
        self.assertEqual(rows, [{"_line": "1", "m": "a"}, {"_line": "2", "m": "b\nc"}, {"_line": "4", "m": "d"}])


if __name__ == "__main__":
    unittest.main()
