"""Every Fluentd formatter out_s3 can use, end to end through the binary.

For each format, `logferry gen` writes the same kind of records, logferry
stages and loads them, and the per-hour counts and a content fingerprint
(sum of `code` per hour) must equal what this file computes by reading the
objects itself — including a small msgpack reader of its own, so the
expected numbers never come from logferry.
"""

import csv
import datetime as dt
import io
import os
import struct
import unittest

if not os.environ.get("LOGFERRY_BIN"):
    os.environ["LOGFERRY_BIN"] = os.path.join(os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main"), "build", "logferry")

import lf  # noqa: E402

KEYS = ["time", "host", "user", "method", "path", "code", "size", "referer", "agent", "response_time", "country"]


def msgpack_stream(data):
    """Decodes a stream of msgpack values (the subset Fluentd and gen write)."""
    pos = 0

    def read(n):
        nonlocal pos
        chunk = data[pos:pos + n]
        if len(chunk) != n:
            raise ValueError("truncated")
        pos += n
        return chunk

    def value():
        b = read(1)[0]
        if b <= 0x7f:
            return b
        if b >= 0xe0:
            return b - 0x100
        if 0x80 <= b <= 0x8f:
            return {value(): value() for _ in range(b & 0x0f)}
        if 0x90 <= b <= 0x9f:
            return [value() for _ in range(b & 0x0f)]
        if 0xa0 <= b <= 0xbf:
            return read(b & 0x1f).decode()
        table = {0xc0: lambda: None, 0xc2: lambda: False, 0xc3: lambda: True,
                 0xca: lambda: struct.unpack(">f", read(4))[0], 0xcb: lambda: struct.unpack(">d", read(8))[0],
                 0xcc: lambda: read(1)[0], 0xcd: lambda: struct.unpack(">H", read(2))[0],
                 0xce: lambda: struct.unpack(">I", read(4))[0], 0xcf: lambda: struct.unpack(">Q", read(8))[0],
                 0xd0: lambda: struct.unpack(">b", read(1))[0], 0xd1: lambda: struct.unpack(">h", read(2))[0],
                 0xd2: lambda: struct.unpack(">i", read(4))[0], 0xd3: lambda: struct.unpack(">q", read(8))[0],
                 0xd9: lambda: read(read(1)[0]).decode(), 0xda: lambda: read(struct.unpack(">H", read(2))[0]).decode()}
        if b in table:
            return table[b]()
        if b == 0xde:
            n = struct.unpack(">H", read(2))[0]
            return {value(): value() for _ in range(n)}
        raise ValueError("unsupported msgpack byte 0x%02x" % b)

    while pos < len(data):
        yield value()


def expected(source_dir, fmt):
    """{hour: (rows, sum of code)} computed from the objects directly."""
    hour_of = lf._HourOf("+09:00")
    out = {}
    for name in sorted(os.listdir(source_dir)):
        data = lf.read_object_bytes(os.path.join(source_dir, name))
        if fmt == "msgpack":
            records = list(msgpack_stream(data))
        else:
            text = data.decode()
            lines = [l for l in text.split("\n") if l]
            if fmt == "ltsv":
                records = [dict(f.split(":", 1) for f in l.split("\t")) for l in lines]
            elif fmt == "csv":
                records = [dict(zip(KEYS, row)) for row in csv.reader(io.StringIO(text))]
            elif fmt == "tsv":
                records = [dict(zip(KEYS, l.split("\t"))) for l in lines]
            else:  # single_value: the time is the object's time slice
                slice_start = dt.datetime.strptime(name[:10], "%Y%m%d%H").replace(
                    tzinfo=dt.timezone(dt.timedelta(hours=9)))
                hour = slice_start.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H")
                for l in lines:
                    code = int(l.split('" ')[1].split(" ")[0])
                    n, s = out.get(hour, (0, 0))
                    out[hour] = (n + 1, s + code)
                continue
        for r in records:
            hour = hour_of(r["time"])
            n, s = out.get(hour, (0, 0))
            out[hour] = (n + 1, s + int(r["code"]))
    return out


class FormatsTest(unittest.TestCase):
    def check(self, fmt, code_sql="CAST(code AS BIGINT)", **table):
        ws = lf.Workspace(self)
        ws.gen(hours=4, rows_per_hour=400, split_every=2, late_fraction=0.05, format=fmt)
        ws.write_config(format=fmt, **table)
        ws.run_once(expect_rc=0)
        want = expected(ws.source_dir, fmt)
        got_rows = ws.query_csv("SELECT strftime(_time, '%Y-%m-%dT%H') h, count(*) n, sum(" + code_sql +
                                ") s FROM access GROUP BY h ORDER BY h")
        got = {r["h"]: (int(r["n"]), int(r["s"])) for r in got_rows}
        self.assertEqual(got, want)
        self.assertEqual(ws.ledger_scalar("SELECT SUM(bad_records) FROM objects"), 0)
        self.assertEqual(ws.verify().rc, 0)
        return ws

    def test_ltsv(self):
        self.check("ltsv")

    def test_csv(self):
        self.check("csv", keys=",".join(KEYS))

    def test_tsv(self):
        self.check("tsv", keys=",".join(KEYS))

    def test_single_value(self):
        # The line is one string: take the status code out of it in SQL.
        ws = self.check("single_value", code_sql="CAST(split_part(split_part(message, '\" ', 2), ' ', 1) AS BIGINT)")
        line = ws.query_csv("SELECT message FROM access LIMIT 1")[0]["message"]
        self.assertIn(" HTTP/1.1\" ", line)

    def test_msgpack(self):
        ws = self.check("msgpack")
        # Nested maps stay nested; the float column is a float.
        row = ws.query_csv("SELECT geo->>'country' AS c, typeof(response_time) AS t FROM access LIMIT 1")[0]
        self.assertIn(row["c"], ["JP", "US", "DE", "IN", "BR"])
        self.assertEqual(row["t"], "DOUBLE")


if __name__ == "__main__":
    unittest.main()
