"""Shared helpers for logferry's end-to-end tests (Python 3 stdlib only).

Typical use::

    import lf

    class MyTest(unittest.TestCase):
        def setUp(self):
            self.ws = lf.Workspace(self)          # temp dir, removed after the test
            self.ws.gen(hours=12, rows_per_hour=3000)
            self.ws.write_config()
        def test_it(self):
            self.ws.run_once(expect_rc=0)
            self.assertEqual(self.ws.warehouse_hour_counts(),
                             lf.count_source(self.ws.source_dir).per_hour)

Design rules:

* The expected numbers never come from logferry. `count_source` reads the
  source objects itself (gzip or plain, out_file or json lines) and computes
  the UTC hour of every record on its own, so a bug shared by the normalizer
  and `logferry query` cannot make a test pass.
* The ledger is only ever read (SQLite opened with mode=ro).
* Every subprocess has a timeout; nothing here loops without a bound.

Environment:
  LOGFERRY_BIN          path to the binary (default: /work/main/build-e2e1/logferry)
  LOGFERRY_SOURCE_DIR   the source tree (default: /work/main)
  LOGFERRY_KEEP_TMP=1   keep workspaces after the test (for debugging)
"""

import csv
import datetime as _dt
import gzip
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

SOURCE_DIR = os.environ.get("LOGFERRY_SOURCE_DIR", "/work/main")
BIN = os.environ.get("LOGFERRY_BIN") or os.path.join(SOURCE_DIR, "build-e2e1", "logferry")

# Fluentd out_s3's default key: %{path}%{time_slice}_%{index}.%{file_extension}
# with time_slice %Y%m%d%H, relative to the table's source URI.
DEFAULT_KEY_RE = re.compile(r"^\d{10}_\d+\.(gz|log|zst|txt)$")

# The per-hour query every test uses; strftime on _time is UTC because the
# DuckDB warehouse sets TimeZone='UTC' for its sessions.
HOUR_COUNT_SQL = "SELECT strftime(_time, '%Y-%m-%dT%H') h, count(*) n FROM {table} GROUP BY h ORDER BY h"


class Result:
    """Outcome of one logferry invocation."""

    def __init__(self, args, rc, stdout, stderr, seconds):
        self.args, self.rc, self.stdout, self.stderr, self.seconds = args, rc, stdout, stderr, seconds

    @property
    def output(self):
        return self.stdout + self.stderr

    def __repr__(self):
        return "Result(rc=%r, args=%r)\n--- stdout ---\n%s\n--- stderr ---\n%s" % (
            self.rc, self.args, _tail(self.stdout), _tail(self.stderr))


def _tail(text, limit=4000):
    return text if len(text) <= limit else "...[%d chars cut]...\n%s" % (len(text) - limit, text[-limit:])


def run(args, timeout=120, cwd=None, env=None):
    """Runs the logferry binary with `args`; returns a Result (never raises on rc != 0).

    A timeout raises subprocess.TimeoutExpired after killing the process, so a
    hung binary fails the test instead of hanging CI."""
    args = [str(a) for a in args]
    t0 = time.monotonic()
    p = subprocess.run([BIN] + args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
                       errors="replace")
    return Result(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(v))


# ---------------------------------------------------------------------------
# Independent counting of source objects
# ---------------------------------------------------------------------------

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?\s?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_offset(s):
    """'+09:00' / '+0900' / 'Z' -> datetime.timezone."""
    if s in (None, "", "Z", "z"):
        return _dt.timezone.utc
    sign = -1 if s[0] == "-" else 1
    digits = s[1:].replace(":", "")
    return _dt.timezone(sign * _dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))


class _HourOf:
    """ISO-8601 text -> 'YYYY-MM-DDTHH' (UTC), cached per minute+offset (the
    result cannot depend on the seconds)."""

    def __init__(self, default_offset):
        self.default_tz = parse_offset(default_offset)
        self.cache = {}

    def __call__(self, text):
        m = _TIME_RE.match(text)
        if not m:
            return None
        key = m.group(1, 2, 3, 4, 5, 7)
        hour = self.cache.get(key)
        if hour is None:
            y, mo, d, h, mi, off = key
            tz = parse_offset(off) if off else self.default_tz
            try:
                t = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), tzinfo=tz)
            except ValueError:
                return None
            hour = t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H")
            self.cache[key] = hour
        return hour


class SourceCounts:
    """What count_source found.

    per_hour: {'2016-08-01T03': rows}   (UTC hour of each record's time)
    sums:     {'2016-08-01T03': total}  of `sum_field` (only if requested)
    total:    rows with a parseable time
    bad:      non-blank lines without a parseable time (logferry dead-letters these)
    objects:  source keys that were read
    """

    def __init__(self):
        self.per_hour, self.sums, self.total, self.bad, self.objects = {}, {}, 0, 0, []


def read_object_bytes(path):
    """The decompressed content of a source object (gzip detected by magic, like compression=auto)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data


def count_source(source_dir, fmt="out_file", time_key="time", default_offset="+09:00", key_re=DEFAULT_KEY_RE,
                 sum_field=None, delimiter="\t"):
    """Counts records per UTC hour by reading every object under `source_dir`
    whose name matches `key_re` (the table's source directory, e.g. bucket/logs).

    out_file lines are "time<delim>tag<delim>{json}"; json lines carry the time in
    `time_key`. Times without an offset use `default_offset` (the table's
    timezone). With `sum_field`, also sums that top-level integer field per hour
    (a content fingerprint: equal counts with different rows are caught)."""
    hour_of = _HourOf(default_offset)
    out = SourceCounts()
    sum_re = re.compile(r'"%s":(-?\d+)' % re.escape(sum_field)) if sum_field else None
    for dirpath, _, names in os.walk(source_dir):
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, name), source_dir)
            if not key_re.match(rel):
                continue
            out.objects.append(rel)
            text = read_object_bytes(os.path.join(dirpath, name)).decode("utf-8", "replace")
            if text.startswith("\ufeff"):
                text = text[1:]
            for line in text.split("\n"):
                line = line.rstrip("\r")
                if line == "":  # only a truly empty line is no record
                    continue
                if fmt == "out_file":
                    fields = line.split(delimiter, 2)
                    hour = hour_of(fields[0]) if len(fields) == 3 else None
                    record = fields[2] if len(fields) == 3 else ""
                else:
                    try:
                        obj = json.loads(line)
                        v = obj.get(time_key) if isinstance(obj, dict) else None
                    except ValueError:
                        v = None
                    hour = hour_of(v) if isinstance(v, str) else None
                    record = line
                if hour is None:
                    out.bad += 1
                    continue
                out.per_hour[hour] = out.per_hour.get(hour, 0) + 1
                out.total += 1
                if sum_re:
                    m = sum_re.search(record)
                    out.sums[hour] = out.sums.get(hour, 0) + (int(m.group(1)) if m else 0)
    return out


# ---------------------------------------------------------------------------
# Writing source objects by hand
# ---------------------------------------------------------------------------

def out_file_line(t, record, tag="nginx.access"):
    """One Fluentd out_file line; `t` is an aware datetime (written with its offset)."""
    return "%s\t%s\t%s\n" % (t.isoformat(timespec="seconds"), tag, json.dumps(record, separators=(",", ":")))


def write_object(path, lines, compress=True):
    """Atomically (temp + rename, so the file store sees a new etag) writes a source object."""
    data = "".join(lines).encode()
    if compress:
        data = gzip.compress(data, compresslevel=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), ".tmp-%d-%s" % (os.getpid(), os.path.basename(path)))
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json_atomic(path, obj_or_text):
    """Writes a JSON document (or raw text) atomically, e.g. a reload request."""
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # The temp file lives outside the watched directory so it is never listed half-written.
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.dirname(path)) or ".", prefix=".e2e-tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Workspace: one self-contained logferry deployment in a temp directory
# ---------------------------------------------------------------------------

class Workspace:
    """A temp directory holding bucket/, staging/, state/ and logs.duckdb.

    Pass the TestCase to have it cleaned up automatically (addCleanup);
    otherwise call cleanup(). Set LOGFERRY_KEEP_TMP=1 to keep it."""

    def __init__(self, testcase=None, prefix="logferry-e2e-"):
        self.root = tempfile.mkdtemp(prefix=prefix)
        self.bucket = os.path.join(self.root, "bucket")
        self.source_dir = os.path.join(self.bucket, "logs")   # the table's source (gen writes bucket/logs/)
        self.staging = os.path.join(self.root, "staging")
        self.state = os.path.join(self.root, "state")
        self.warehouse = os.path.join(self.root, "logs.duckdb")
        self.config_path = os.path.join(self.root, "logferry.toml")
        self.env = None  # environment for logferry processes (None: inherit)
        self._procs = []
        if testcase is not None:
            testcase.addCleanup(self.cleanup)

    def cleanup(self):
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        if os.environ.get("LOGFERRY_KEEP_TMP") == "1":
            print("keeping workspace", self.root)
            return
        shutil.rmtree(self.root, ignore_errors=True)

    # --- config ----------------------------------------------------------

    def table_config(self, name="access", **overrides):
        """Settings of one [[table]] with this workspace's directories; overrides win
        (a value of None drops the key)."""
        t = {
            "name": name,
            "source": "file://%s/" % self.source_dir,
            "staging": "file://%s/" % self.staging,
            "warehouse": "duckdb://%s" % self.warehouse,
            "format": "out_file",
            "timezone": "+09:00",
            "settle": "0s",          # generated 2016 data is long settled
            "retry_base": "1s",
        }
        t.update(overrides)
        return {k: v for k, v in t.items() if v is not None}

    def write_config(self, tables=None, top=None, **table_overrides):
        """Writes the TOML config and returns its path. `tables` is a list of
        dicts (see table_config); by default one table 'access' with
        `table_overrides`. `top` adds top-level keys (workers, log_level, ...)."""
        if tables is None:
            tables = [self.table_config(**table_overrides)]
        lines = ["state_dir = %s" % toml_value(self.state)]
        for k, v in (top or {}).items():
            lines.append("%s = %s" % (k, toml_value(v)))
        for t in tables:
            lines += ["", "[[table]]"] + ["%s = %s" % (k, toml_value(v)) for k, v in t.items()]
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return self.config_path

    # --- running logferry ------------------------------------------------

    def gen(self, out=None, timeout=120, **opts):
        """`logferry gen --out bucket ...`; keyword names map to flags
        (rows_per_hour=3000 -> --rows-per-hour 3000; no_gzip=True -> --no-gzip)."""
        args = ["gen", "--out", out or self.bucket]
        for k, v in opts.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif v is not False and v is not None:
                args += [flag, v]
        r = run(args, timeout=timeout)
        if r.rc != 0:
            raise AssertionError("logferry gen failed: %r" % r)
        return r

    def cli(self, command, *args, timeout=120):
        """`logferry COMMAND -c CONFIG ARGS...`"""
        return run([command, "-c", self.config_path] + list(args), timeout=timeout, env=self.env)

    def run_once(self, timeout=300, expect_rc=None):
        r = self.cli("run", "--once", timeout=timeout)
        if expect_rc is not None and r.rc != expect_rc:
            raise AssertionError("run --once exited %d, expected %d: %r" % (r.rc, expect_rc, r))
        return r

    def verify(self, timeout=120):
        return self.cli("verify", timeout=timeout)

    def start(self, *args, log_name="run.log"):
        """Starts `logferry ARGS -c CONFIG` in the background (output appended to
        root/log_name, not a pipe, so a chatty process cannot block); returns Popen."""
        log = open(os.path.join(self.root, log_name), "ab")
        try:
            p = subprocess.Popen([BIN] + [str(a) for a in args] + ["-c", self.config_path], stdout=log,
                                 stderr=subprocess.STDOUT, env=self.env)
        finally:
            log.close()
        self._procs.append(p)
        return p

    # --- warehouse -------------------------------------------------------

    def query_csv(self, sql, table=None, timeout=120):
        """Runs `logferry query --csv SQL`; returns a list of dicts (values are strings, NULL is '')."""
        args = ["--csv"] + (["--table", table] if table else []) + [sql]
        r = self.cli("query", *args, timeout=timeout)
        if r.rc != 0:
            raise AssertionError("logferry query failed: %r" % r)
        return list(csv.DictReader(io.StringIO(r.stdout)))

    def warehouse_hour_counts(self, table="access"):
        """{'2016-08-01T03': rows} from the warehouse (UTC hours of _time)."""
        rows = self.query_csv(HOUR_COUNT_SQL.format(table=table), table=table)
        return {r["h"]: int(r["n"]) for r in rows}

    def warehouse_hour_sums(self, column, table="access"):
        """{'2016-08-01T03': sum(column)} from the warehouse."""
        rows = self.query_csv("SELECT strftime(_time, '%%Y-%%m-%%dT%%H') h, sum(\"%s\") s FROM %s GROUP BY h"
                              % (column, table), table=table)
        return {r["h"]: int(r["s"] or 0) for r in rows}

    # --- ledger (read-only) ---------------------------------------------

    @property
    def ledger_path(self):
        return os.path.join(self.state, "ledger.db")

    def ledger(self, sql, params=()):
        """Runs a read-only query on the ledger; returns all rows (tuples)."""
        con = sqlite3.connect("file:%s?mode=ro" % self.ledger_path, uri=True, timeout=30)
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def ledger_scalar(self, sql, params=()):
        rows = self.ledger(sql, params)
        return rows[0][0] if rows else None

    def generations(self, table="access"):
        """{partition 'YYYY-MM-DDTHH' (UTC): generation}"""
        return {hour_of_us(p): g for p, g in
                self.ledger("SELECT partition_us, generation FROM partitions WHERE table_name=?", (table,))}

    # --- staging ---------------------------------------------------------

    def staged_parts(self, table="access"):
        """Relative paths of every part file in staging (temp files excluded)."""
        base = os.path.join(self.staging, table)
        out = []
        for dirpath, _, names in os.walk(base):
            for n in names:
                if n.endswith(".ndjson.gz") and not n.startswith("."):
                    out.append(os.path.relpath(os.path.join(dirpath, n), self.staging))
        return sorted(out)

    def requests_dir(self):
        return os.path.join(self.staging, "_requests")


def hour_of_us(us):
    """Epoch microseconds -> 'YYYY-MM-DDTHH' (UTC)."""
    return _dt.datetime.fromtimestamp(us / 1e6, _dt.timezone.utc).strftime("%Y-%m-%dT%H")


def us_of_hour(hour):
    """'YYYY-MM-DDTHH' (UTC) -> epoch microseconds."""
    t = _dt.datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp()) * 1000000


def kill_hard(p):
    """SIGKILL (no chance to clean up) and reap. Returns True if the kill
    interrupted it, False if it had already exited on its own."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    p.wait(timeout=30)
    # An unreaped process that already exited ignores the signal: its own exit code tells.
    return p.returncode == -signal.SIGKILL
