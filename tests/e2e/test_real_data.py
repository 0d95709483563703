"""End-to-end on real traffic: the 10,000-line Apache combined log in
../shared/data/apache_access.log (May 2015), turned into what Fluentd's
`apache2` parser + out_s3 would have written, then moved by `logferry run
--once`. Every line must arrive, in the right hour, with its fields intact.

The expected values are computed here from the raw log file, never from
logferry.
"""

import collections
import datetime as dt
import json
import os
import re
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build-e2e2",
                                              "logferry")

import lf  # noqa: E402  (reads LOGFERRY_BIN at import)

APACHE_LOG = os.path.join(os.path.dirname(os.path.abspath(lf.SOURCE_DIR)), "shared", "data", "apache_access.log")

# Fluentd's apache2 parser (lib/fluent/plugin/parser_apache2.rb), in Python syntax.
APACHE2_RE = re.compile(
    r'^(?P<host>[^ ]*) [^ ]* (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] "(?P<method>\S+)'
    r'(?: +(?P<path>(?:[^\"]|\\.)*?)(?: +\S*)?)?" (?P<code>[^ ]*) (?P<size>[^ ]*)'
    r'(?: "(?P<referer>(?:[^\"]|\\.)*)" "(?P<agent>(?:[^\"]|\\.)*)")?$')
APACHE2_TIME = "%d/%b/%Y:%H:%M:%S %z"
TAG = "apache.access"
FIELDS = ("host", "user", "method", "path", "code", "size", "referer", "agent")
# Every SPLIT_EVERY-th hour Fluentd flushed two chunks: objects _0 and _1.
SPLIT_EVERY = 4
# The one line of the file that Fluentd cannot parse: its user agent lacks the
# closing quote (line 8899, a truncated Googlebot request).
EXPECTED_UNPARSED = [8899]


def _dash_nil(v):
    return None if v is None or v == "-" else v


def _to_i(s):
    # Ruby's String#to_i: leading integer, else 0.
    m = re.match(r"\s*[+-]?\d+", s)
    return int(m.group(0)) if m else 0


def parse_apache2(line):
    """(event time as aware datetime, record) as Fluentd's apache2 parser builds them, or None."""
    m = APACHE2_RE.match(line)
    if not m:
        return None
    try:
        t = dt.datetime.strptime(m["time"], APACHE2_TIME)
    except ValueError:
        return None
    code = _to_i(m["code"])
    record = {
        "host": _dash_nil(m["host"]),
        "user": _dash_nil(m["user"]),
        "method": m["method"],
        "path": m["path"],
        "code": code if code != 0 else None,
        "size": None if m["size"] == "-" else _to_i(m["size"]),
        "referer": _dash_nil(m["referer"]),
        "agent": _dash_nil(m["agent"]),
    }
    return t, record


class Event:
    __slots__ = ("lineno", "time", "record")

    def __init__(self, lineno, time, record):
        self.lineno, self.time, self.record = lineno, time, record

    @property
    def hour(self):
        return self.time.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H")

    @property
    def epoch_ms(self):
        return int(self.time.timestamp() * 1000)

    def as_row(self):
        """The row as query_json returns it: every value as text, NULL as None."""
        row = {"_ms": str(self.epoch_ms), "_tag": TAG}
        for f in FIELDS:
            v = self.record[f]
            row[f] = None if v is None else str(v)
        return row


def load_events(path):
    """(events in file order, line numbers that do not parse)."""
    with open(path, "rb") as f:
        raw = f.read()
    events, unparsed = [], []
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, b in enumerate(lines, start=1):
        # in_tail reads UTF-8; the file is ASCII (odd bytes arrive as literal \xNN escapes).
        parsed = parse_apache2(b.decode("utf-8"))
        if parsed is None:
            unparsed.append(i)
        else:
            events.append(Event(i, *parsed))
    return events, unparsed


def write_fluentd_objects(source_dir, events):
    """out_s3 layout: one gzip object per UTC hour (time_slice %Y%m%d%H), lines
    `<ISO-8601 time>\\tapache.access\\t<json>`; some hours flushed as _0 and _1.
    Returns {key: number of lines}."""
    by_hour = collections.OrderedDict()
    for e in events:
        by_hour.setdefault(e.time.astimezone(dt.timezone.utc).strftime("%Y%m%d%H"), []).append(e)
    written = {}
    for n, (slice_, evs) in enumerate(sorted(by_hour.items())):
        lines = ["%s\t%s\t%s\n" % (e.time.isoformat(timespec="seconds"), TAG,
                                   json.dumps(e.record, separators=(",", ":"), ensure_ascii=False)) for e in evs]
        chunks = [lines[:len(lines) // 2], lines[len(lines) // 2:]] if n % SPLIT_EVERY == 1 and len(lines) > 1 \
            else [lines]
        for index, chunk in enumerate(chunks):
            key = "%s_%d.gz" % (slice_, index)
            lf.write_object(os.path.join(source_dir, key), chunk)
            written[key] = len(chunk)
    return written


def sql_str(s):
    return "'" + s.replace("'", "''") + "'"


# CI always has shared/ beside the clone: there a missing file is a failure,
# not a reason to skip the one test on real data.
@unittest.skipUnless(os.path.exists(APACHE_LOG) or os.environ.get("CI") == "true",
                     "real data %s is absent (expected next to the source tree in ../shared/data)" % APACHE_LOG)
class RealApacheLogTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.events, cls.unparsed = load_events(APACHE_LOG)
        cls.ws = lf.Workspace()
        cls.addClassCleanup(cls.ws.cleanup)
        cls.objects = write_fluentd_objects(cls.ws.source_dir, cls.events)
        # Fluentd wrote slices in UTC, so times and slices need no default offset.
        cls.ws.write_config(timezone="+00:00")
        cls.run_result = cls.ws.run_once(timeout=300)

    def query_json(self, sql):
        """Rows of `query --json` with every value as text (NULL as None), so expectations need not know
        which SQL type each column got."""
        r = self.ws.cli("query", "--json", sql)
        self.assertEqual(r.rc, 0, r)
        text = lambda v: v if v is None or isinstance(v, str) else json.dumps(v)
        return [{k: text(v) for k, v in row.items()} for row in json.loads(r.stdout)]

    def expected_by_hour(self):
        out = collections.defaultdict(list)
        for e in self.events:
            out[e.hour].append(e)
        return out

    # --- the fixture itself -------------------------------------------

    def test_a_fixture_is_what_fluentd_would_write(self):
        self.assertEqual(len(self.events) + len(self.unparsed), 10000)
        # Lines Fluentd's regex rejects are dropped by Fluentd ("pattern not matched"): they never reach S3.
        self.assertEqual(self.unparsed, EXPECTED_UNPARSED)
        hours = self.expected_by_hour()
        self.assertGreater(len(hours), 80, "the log spans about four days")
        self.assertTrue(any(k.endswith("_1.gz") for k in self.objects), "some hours are written as _0 and _1")
        self.assertEqual(sum(self.objects.values()), len(self.events))
        # The independent counter reads the objects back the same way.
        src = lf.count_source(self.ws.source_dir, default_offset="+00:00")
        self.assertEqual(src.bad, 0)
        self.assertEqual(src.per_hour, {h: len(v) for h, v in hours.items()})

    # --- the run --------------------------------------------------------

    def test_b_run_succeeds_and_ledger_accounts_for_every_line(self):
        self.assertEqual(self.run_result.rc, 0, self.run_result)
        rows = self.ws.ledger("SELECT key, state, lines_read, rows_staged, bad_records FROM objects "
                              "WHERE table_name='access'")
        self.assertEqual({r[0]: r[1] for r in rows}, {k: "staged" for k in self.objects})
        for key, _, lines_read, rows_staged, bad in rows:
            self.assertEqual((lines_read, rows_staged, bad), (self.objects[key], self.objects[key], 0), key)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)
        self.assertNotIn("DIFFERENCE", v.stdout)

    def test_c_every_line_in_its_hour(self):
        expected = {h: len(v) for h, v in self.expected_by_hour().items()}
        self.assertEqual(self.ws.warehouse_hour_counts(), expected)
        self.assertEqual(sum(expected.values()), 9999)

    def test_d_hourly_size_sum_and_distinct_hosts(self):
        exp_sum, exp_hosts = {}, {}
        for h, evs in self.expected_by_hour().items():
            sizes = [e.record["size"] for e in evs if e.record["size"] is not None]
            exp_sum[h] = str(sum(sizes)) if sizes else None
            exp_hosts[h] = str(len({e.record["host"] for e in evs}))
        rows = self.query_json("SELECT strftime(_time, '%Y-%m-%dT%H') h, sum(size) s, count(DISTINCT host) d "
                               "FROM access GROUP BY h")
        self.assertEqual({r["h"]: r["s"] for r in rows}, exp_sum)
        self.assertEqual({r["h"]: r["d"] for r in rows}, exp_hosts)
        # '-' sizes must be NULL, not 0: count them independently.
        n_null = self.query_json("SELECT count(*) n FROM access WHERE size IS NULL")[0]["n"]
        self.assertEqual(int(n_null), sum(1 for e in self.events if e.record["size"] is None))
        self.assertGreater(int(n_null), 0)

    def test_e_every_record_round_trips_exactly(self):
        cols = {r["column_name"] for r in self.query_json(
            "SELECT column_name FROM information_schema.columns WHERE table_name='access'")}
        # All-null fields (user is '-' on every line) have no column; no field appears that Fluentd did not write.
        non_null = {f for f in FIELDS if any(e.record[f] is not None for e in self.events)}
        self.assertEqual(cols - {"_time", "_tag"} - {"user"}, non_null)
        select = ", ".join('"%s"' % f if f in cols else 'NULL AS "%s"' % f for f in FIELDS)
        rows = self.query_json("SELECT epoch_ms(_time) _ms, _tag, %s FROM access" % select)
        got = collections.Counter(json.dumps(r, sort_keys=True) for r in rows)
        want = collections.Counter(json.dumps(e.as_row(), sort_keys=True) for e in self.events)
        missing, extra = want - got, got - want
        self.assertEqual((len(missing), len(extra)), (0, 0),
                         "missing e.g. %s; unexpected e.g. %s" % (list(missing)[:3], list(extra)[:3]))

    def spot_check(self, event):
        rows = self.query_json("SELECT epoch_ms(_time) _ms, _tag, host, method, path, code, size, referer, agent "
                               "FROM access WHERE host = %s AND epoch_ms(_time) = %d"
                               % (sql_str(event.record["host"]), event.epoch_ms))
        want = {k: v for k, v in event.as_row().items() if k != "user"}
        self.assertIn(want, rows, "line %d" % event.lineno)

    def test_f_spot_checks_of_odd_lines(self):
        def first(pred, what):
            for e in self.events:
                if pred(e.record):
                    return e
            self.fail("the log has no line with " + what)

        cases = [
            first(lambda r: "\\x" in (r["referer"] or ""), "a \\xNN escape (odd bytes) in the referer"),
            first(lambda r: "$" in (r["path"] or ""), "a '$' in the path"),
            first(lambda r: "%" in (r["agent"] or ""), "a '%' in the user agent"),
            first(lambda r: r["size"] is None, "size '-'"),
            first(lambda r: r["method"] == "OPTIONS", "an OPTIONS request"),
            max(self.events, key=lambda e: len(e.record["agent"] or "")),
            self.events[0],
            self.events[-1],
        ]
        for e in cases:
            with self.subTest(line=e.lineno):
                self.spot_check(e)
        # The escape text itself survives: backslashes are data, not JSON escapes to undo.
        e = cases[0]
        got = self.query_json("SELECT referer FROM access WHERE host = %s AND epoch_ms(_time) = %d"
                              % (sql_str(e.record["host"]), e.epoch_ms))
        self.assertIn({"referer": e.record["referer"]}, got)
        self.assertIn("\\xe4", e.record["referer"])


if __name__ == "__main__":
    unittest.main()
