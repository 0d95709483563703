"""A hostile corpus through the binary, each case beside good objects.

Anyone who can write to the source bucket can hand logferry any bytes. For
every case here the process survives (exit 0, or 3 when the object is visibly
failed), the good objects of the same pass load exactly, the hostile object
is accounted for (lines read = rows staged + bad records, or `failed` with an
error that names it), and the process's peak RSS stays within the bound
docs/operations.md states.

The cases are made by code, not kept as files: several are megabytes
uncompressed. The hostile records' event times are in 2018, away from the
good objects' hours (2016-08-01), so the good hours' counts are exact.
"""

import datetime as dt
import gzip
import json
import os
import subprocess
import unittest
import zlib

import lf

# The bound docs/operations.md states for one `run --once` over any single
# object of this corpus, with the default settings.
PEAK_RSS_BOUND_MB = 1024
# Under AddressSanitizer (scripts/sanitize.sh) shadow memory and the
# quarantine of freed blocks roughly double a process's RSS.
if os.environ.get("LOGFERRY_SANITIZED"):
    PEAK_RSS_BOUND_MB *= 3
TOKYO = dt.timezone(dt.timedelta(hours=9))
T0 = dt.datetime(2018, 1, 1, 9, 0, tzinfo=TOKYO)  # 2018-01-01T00 UTC


def line(record_text, t=T0, tag="evil"):
    return "%s\t%s\t%s\n" % (t.isoformat(timespec="seconds"), tag, record_text)


def deep(opening, closing, depth, inner="1"):
    return opening * depth + inner + closing * depth


# --- the cases: name -> list of lines (str) or raw bytes ---------------------

def case_deep_array():
    return [line('{"a":%s}' % deep("[", "]", 30000)), line('{"ok":1}')]


def case_deep_object():
    return [line('{"a":%s}' % deep('{"a":', "}", 30000)), line('{"ok":1}')]


def case_deep_mixed():
    return [line('{"a":%s}' % deep('[{"a":', "}]", 20000)), line('{"ok":1}')]


def case_million_levels():
    return [line('{"a":%s}' % deep("[", "]", 1000000)), line('{"a":%s}' % deep('{"b":', "}", 1000000))]


def case_column_limit_then_new_fields():
    wide = "{" + ",".join('"c%d":%d' % (i, i) for i in range(10050)) + "}"
    return [line(wide)] + [line('{"late_%d":1,"x":2}' % (i % 2)) for i in range(6)]


def case_many_hours():
    return [line('{"i":%d}' % i, T0 + dt.timedelta(hours=i)) for i in range(8000)]


def case_long_keys_with_bad_escape():
    key = "k" * (5 << 20) + "\\q"
    return [line('{"%s":1}' % key) for _ in range(30)]


def case_million_distinct_keys():
    out, n = [], 0
    for _ in range(10000):
        out.append(line("{" + ",".join('"u%d":1' % (n + j) for j in range(100)) + "}"))
        n += 100
    return out


def case_blank_tab_and_space_lines():
    return ["\n", "\t\t\n", "   \n", "\t \t\n", line('{"ok":1}'), "\n\n", line('{"ok":2}')]


def case_nul_and_invalid_utf8():
    return [line('{"a":"x\\u0000y"}'), line('{"b":"\xff\xfe"}'), "\x00\x00\x00\n", line('{"c\\u0000":1}')]


def case_control_characters():
    return [line('{"\\u001b[2Jfake\\npass: all good":"\\u001b[31mred","k":"\\r\\n"}', tag="\x1b[2J")]


def case_truncated_gzip():
    data = gzip.compress("".join(line('{"i":%d}' % i) for i in range(20000)).encode())
    return data[: len(data) // 2]


def case_gzip_bomb():
    # 2 GiB of one character in about 2 MB: one line, far over max_line_bytes.
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a" * (1 << 24)
    parts = [c.compress(block) for _ in range(128)]
    return b"".join(parts) + c.flush()


def case_binary_garbage():
    return bytes((i * 7919 + 13) % 256 for i in range(1 << 20))


CASES = {
    "deep_array": case_deep_array,
    "deep_object": case_deep_object,
    "deep_mixed": case_deep_mixed,
    "million_levels": case_million_levels,
    "column_limit_then_new_fields": case_column_limit_then_new_fields,
    "many_hours": case_many_hours,
    "long_keys_with_bad_escape": case_long_keys_with_bad_escape,
    "million_distinct_keys": case_million_distinct_keys,
    "blank_tab_and_space_lines": case_blank_tab_and_space_lines,
    "nul_and_invalid_utf8": case_nul_and_invalid_utf8,
    "control_characters": case_control_characters,
    "truncated_gzip": case_truncated_gzip,
    "gzip_bomb": case_gzip_bomb,
    "binary_garbage": case_binary_garbage,
}


def run_measured(ws, args, timeout=600):
    """Runs logferry under /usr/bin/time; returns (rc, stdout+stderr, peak RSS in MiB)
    of that process alone (a child forked from this test would inherit the
    test's own high-water mark)."""
    rss_file = os.path.join(ws.root, "rss.txt")
    p = subprocess.run(["/usr/bin/time", "-o", rss_file, "-f", "%M", lf.BIN] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=ws.env, timeout=timeout)
    with open(rss_file) as f:
        last = f.read().strip().splitlines()[-1]
    return p.returncode, p.stdout.decode("utf-8", "replace"), int(last) / 1024.0


class HostileCorpusTest(unittest.TestCase):
    maxDiff = 4000

    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=2, rows_per_hour=500)
        self.ws.write_config()

    def write_case(self, name):
        made = CASES[name]()
        path = os.path.join(self.ws.source_dir, "2018010100_%d.gz" % (list(CASES).index(name) + 100))
        if isinstance(made, bytes):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(made)
            return path, None
        text = "".join(made)
        lf.write_object(path, [text])
        # Lines read: every line but the truly empty ones (a line of tabs or
        # spaces is a record or a bad record).
        nonempty = sum(1 for l in text.split("\n") if l != "")
        return path, nonempty

    def check_case(self, name):
        good = lf.count_source(self.ws.source_dir)
        path, lines = self.write_case(name)
        rc, output, rss_mb = run_measured(self.ws, ["run", "-c", self.ws.config_path, "--once"])
        self.assertIn(rc, (0, 3), "%s: the process must survive (rc %d)\n%s" % (name, rc, output[-3000:]))
        self.assertLessEqual(rss_mb, PEAK_RSS_BOUND_MB, "%s: peak RSS %.0f MiB" % (name, rss_mb))
        got = self.ws.warehouse_hour_counts()
        for hour, n in good.per_hour.items():
            self.assertEqual(got.get(hour), n, "%s: good hour %s" % (name, hour))
        key = os.path.basename(path)
        row = self.ws.ledger("SELECT state, lines_read, rows_staged, bad_records, COALESCE(last_error, '') "
                             "FROM objects WHERE key=? ORDER BY id DESC LIMIT 1", (key,))
        self.assertEqual(len(row), 1, name)
        state, read, staged, bad, error = row[0]
        if state == "failed":
            self.assertEqual(rc, 3, name)
            self.assertTrue(error, name)
            self.assertLessEqual(len(error), 4096, "%s: a bounded error" % name)
            st = self.ws.cli("status")
            self.assertIn(key, st.stdout, name)
        else:
            self.assertEqual(state, "staged", "%s: %s" % (name, error))
            self.assertEqual(read, staged + bad, "%s: lines read = rows staged + bad records" % name)
            if lines is not None:
                self.assertEqual(read, lines, "%s: every non-empty line is counted" % name)
            v = self.ws.verify()
            self.assertEqual(v.rc, 0, "%s: verify\n%s" % (name, v.output[-3000:]))
        # Nothing a record holds may reach a log line raw.
        self.assertNotIn("\x1b", output, name)
        print("%s: rc %d, %s, peak RSS %.0f MiB" % (name, rc, state, rss_mb))
        return state


def _make(name):
    def test(self):
        self.check_case(name)
    test.__name__ = "test_" + name
    return test


for _name in CASES:
    setattr(HostileCorpusTest, "test_" + _name, _make(_name))


if __name__ == "__main__":
    unittest.main()
