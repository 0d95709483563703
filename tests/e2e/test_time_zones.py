"""End-to-end: IANA time zones (event times and key time slices across
daylight-saving changes) and Fluentd keys whose time parts hold slashes.

Expected instants come from Python's zoneinfo with fold=0, the rule the docs
give for skipped and repeated wall-clock times; never from logferry.
"""

import datetime as dt
import json
import os
import unittest
import zoneinfo

import lf

UTC = dt.timezone.utc


def utc_text(local_naive, zone):
    """The UTC instant of a wall-clock time in zone, fold=0 (skipped: the offset before the change;
    repeated: the first occurrence), as 'YYYY-MM-DDTHH:MM:SS'."""
    t = local_naive.replace(tzinfo=zoneinfo.ZoneInfo(zone), fold=0)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def wall_clock_times(day, first_hour, last_hour, step_minutes):
    t = dt.datetime.fromisoformat(day).replace(hour=first_hour)
    while t.hour <= last_hour and t.date() == dt.date.fromisoformat(day):
        yield t
        t += dt.timedelta(minutes=step_minutes)


class TimeZoneTest(unittest.TestCase):
    maxDiff = None

    def query_times(self, ws, table):
        rows = ws.query_csv("SELECT n, strftime(_time, '%%Y-%%m-%%dT%%H:%%M:%%S') t FROM %s ORDER BY n" % table,
                            table=table)
        return {int(r["n"]): r["t"] for r in rows}

    def test_event_times_and_slices_across_dst_changes(self):
        ws = lf.Workspace(self)
        expected = {"ny": {}, "berlin": {}}
        # New York, 2016: 02:00-03:00 skipped on March 13, 01:00-02:00 repeated on November 6.
        # ISO-8601 times without an offset, in the json formatter's time field.
        lines, n = [], 0
        for day in ("2016-03-13", "2016-11-06"):
            for t in wall_clock_times(day, 0, 3, 10):
                n += 1
                lines.append(json.dumps({"time": t.strftime("%Y-%m-%dT%H:%M:%S"), "n": n}) + "\n")
                expected["ny"][n] = utc_text(t, "America/New_York")
        lf.write_object(os.path.join(ws.bucket, "ny", "2016031301_0.gz"), lines)
        # Records without a time take their key's slice: the wall-clock hour in the zone.
        slices = {"2016031303": 1001, "2016110601": 1002, "2016110602": 1003}
        for key, num in slices.items():
            lf.write_object(os.path.join(ws.bucket, "ny", key + "_0.gz"), [json.dumps({"n": num}) + "\n"])
            expected["ny"][num] = utc_text(dt.datetime.strptime(key, "%Y%m%d%H"), "America/New_York")
        # Berlin, 2016: 02:00-03:00 skipped on March 27, 02:00-03:00 repeated on October 30;
        # times through a strftime layout.
        lines = []
        for day in ("2016-03-27", "2016-10-30"):
            for t in wall_clock_times(day, 1, 3, 15):
                n += 1
                lines.append(json.dumps({"ts": t.strftime("%d/%b/%Y:%H:%M:%S"), "n": n}) + "\n")
                expected["berlin"][n] = utc_text(t, "Europe/Berlin")
        lf.write_object(os.path.join(ws.bucket, "berlin", "2016032701_0.gz"), lines)

        ny = ws.table_config("ny", source="file://%s/ny/" % ws.bucket, format="json", timezone="America/New_York")
        berlin = ws.table_config("berlin", source="file://%s/berlin/" % ws.bucket, format="json", time_key="ts",
                                 time_format="%d/%b/%Y:%H:%M:%S", timezone="Europe/Berlin")
        ws.write_config(tables=[ny, berlin])
        ws.run_once(expect_rc=0)
        for st in json.loads(ws.cli("status", "--json").stdout):
            self.assertEqual(st["rows"]["bad_records"], 0, st)
        self.assertEqual(self.query_times(ws, "ny"), expected["ny"])
        self.assertEqual(self.query_times(ws, "berlin"), expected["berlin"])
        self.assertEqual(ws.verify().rc, 0)

    def test_generated_objects_in_a_dst_zone_load_exactly(self):
        ws = lf.Workspace(self)
        # 2016-03-13 00:00 to 12:00 New York time: the 02 slice never exists.
        ws.gen(hours=12, rows_per_hour=400, start="2016-03-13T05", timezone="America/New_York", seed=5)
        keys = sorted(os.listdir(ws.source_dir))
        self.assertIn("2016031301_0.gz", keys)
        self.assertNotIn("2016031302_0.gz", keys)
        self.assertIn("2016031303_0.gz", keys)
        ws.write_config(timezone="America/New_York")
        ws.run_once(expect_rc=0)
        src = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertEqual(ws.verify().rc, 0)

    def test_unknown_zone_is_a_config_error(self):
        ws = lf.Workspace(self)
        os.makedirs(ws.source_dir)
        ws.write_config(timezone="Mars/Olympus_Mons")
        r = ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("timezone", r.stderr)
        self.assertIn("Asia/Tokyo", r.stderr, "the error shows what is accepted")


class SlashedSliceTest(unittest.TestCase):
    """Fluentd with path "logs/" and time_slice_format "%Y/%m/%d/%H" writes
    logs/2016/08/01/03_0.gz; the source is the bucket, %{path} matches logs/."""

    def write_hours(self, ws, key_of):
        lines_by_key = {}
        for h in range(6):
            t0 = dt.datetime(2016, 8, 1, h, tzinfo=UTC)
            key = key_of(t0)
            lines_by_key[key] = [lf.out_file_line(t0 + dt.timedelta(seconds=17 * i), {"hour": h, "seq": i})
                                 for i in range(100 + h)]
            lf.write_object(os.path.join(ws.bucket, key), lines_by_key[key])
        # Not Fluentd's: ignored, never loaded.
        lf.write_object(os.path.join(ws.bucket, "logs", "2016", "08", "README.gz"), ["x\n"])
        return {"2016-08-01T%02d" % h: 100 + h for h in range(6)}

    def check(self, key_format, key_of, **extra):
        ws = lf.Workspace(self)
        want = self.write_hours(ws, key_of)
        ws.write_config(source="file://%s/" % ws.bucket, key_format=key_format, timezone="UTC", **extra)
        ws.run_once(expect_rc=0)
        self.assertEqual(ws.warehouse_hour_counts(), want)
        self.assertEqual(ws.verify().rc, 0)
        st = json.loads(ws.cli("status", "--json").stdout)[0]
        self.assertEqual(st["objects"]["staged"], 6)

    def test_time_slice_with_slashes(self):
        self.check("%{path}%{time_slice}_%{index}.%{file_extension}",
                   lambda t: t.strftime("logs/%Y/%m/%d/%H_0.gz"), time_slice_format="%Y/%m/%d/%H")

    def test_strftime_directives_in_key_format(self):
        self.check("logs/%Y/%m/%d/%H/%{index}.%{file_extension}", lambda t: t.strftime("logs/%Y/%m/%d/%H/0.gz"))


if __name__ == "__main__":
    unittest.main()
