"""Request objects under <staging>/_requests/ never block each other.

Whoever can write to the staging bucket can put anything there. Each object
is handled on its own: one that is too large, is not a request, names an
unknown table or cannot be filed under done/ is recorded as failed (ledger,
one log line, `status`), and the valid requests beside it still run in the
same pass.
"""

import os
import unittest

import lf


class HostileRequestsTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=4, rows_per_hour=200)
        self.ws.write_config()
        self.ws.run_once(expect_rc=0)
        self.req = self.ws.requests_dir()
        os.makedirs(self.req, exist_ok=True)

    def requests(self):
        rows = self.ws.ledger("SELECT origin, state, detail FROM requests ORDER BY id")
        return {o[len("file://" + self.req) + 1:]: (s, d) for o, s, d in rows}

    def write_valid(self, name="zz_valid.json"):
        lf.write_json_atomic(os.path.join(self.req, name),
                             {"table": "access", "from": "2016-08-01T00", "to": "2016-08-01T01"})

    def too_long_name(self):
        # Fits as _requests/<name>, but not as _requests/done/<name> (PATH_MAX 4096).
        room = 4095 - len(os.path.join(self.req, "")) - 1
        parts, left = [], room
        while left > 0:
            n = min(200, left)
            parts.append("d" * (n - 1))
            left -= n
        return "/".join(parts)

    def test_bad_requests_do_not_block_a_valid_one(self):
        with open(os.path.join(self.req, "huge.json"), "w") as f:
            f.write('{"table": "access", "from": "2016-08-01T00", "pad": "' + "x" * (2 << 20) + '"}')
        with open(os.path.join(self.req, "done"), "w") as f:
            f.write("not a folder")
        lf.write_json_atomic(os.path.join(self.req, "nosuch.json"), {"table": "nosuch", "from": "2016-08-01T00"})
        lf.write_json_atomic(os.path.join(self.req, "array.json"), [1, 2, 3])
        long_name = self.too_long_name()
        os.makedirs(os.path.dirname(os.path.join(self.req, long_name)), exist_ok=True)
        lf.write_json_atomic(os.path.join(self.req, long_name), {"table": "access", "from": "2016-08-01T00"})
        self.write_valid()
        gens = self.ws.generations()

        r = self.ws.run_once(expect_rc=0)

        got = self.requests()
        self.assertEqual(got["zz_valid.json"][0], "done", got)
        self.assertGreater(self.ws.generations()["2016-08-01T00"], gens["2016-08-01T00"], "the valid request ran")
        self.assertEqual(got["huge.json"][0], "failed")
        self.assertIn("larger than 1.0 MiB", got["huge.json"][1])
        self.assertEqual(got["done"][0], "failed")
        self.assertIn("_requests/done/", got["done"][1])
        self.assertEqual(got["nosuch.json"][0], "failed")
        self.assertIn("no table 'nosuch'", got["nosuch.json"][1])
        self.assertIn("tables: access", got["nosuch.json"][1])
        self.assertEqual(got["array.json"][0], "failed")
        self.assertEqual(got[long_name][0], "failed")
        self.assertIn("cannot be filed", got[long_name][1])
        # One log line each.
        for name in ("huge.json", "nosuch.json", "array.json"):
            self.assertEqual(r.stderr.count(name + " refused"), 1, r.stderr[-3000:])
        filed = set(os.listdir(os.path.join(self.req, "done")))
        self.assertTrue({"array.json", "nosuch.json", "zz_valid.json"} <= filed, filed)
        self.assertFalse({"huge.json", "done"} & filed, filed)
        # Left in place, not lost: the oversized body and the unfilable name.
        self.assertTrue(os.path.exists(os.path.join(self.req, "huge.json")))
        self.assertTrue(os.path.exists(os.path.join(self.req, long_name)))

        # `status` shows the refusals.
        st = self.ws.cli("status")
        self.assertIn("nosuch.json", st.stdout)

        # The next pass reads nothing again and says nothing again.
        before = len(got)
        r2 = self.ws.run_once(expect_rc=0)
        self.assertEqual(len(self.requests()), before)
        self.assertNotIn("refused", r2.stderr)
        self.write_valid("zz_second.json")
        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.requests()["zz_second.json"][0], "done")

    def test_request_rewritten_after_filing_is_a_new_request(self):
        self.write_valid("again.json")
        self.ws.run_once(expect_rc=0)
        self.write_valid("again.json")
        self.ws.run_once(expect_rc=0)
        rows = self.ws.ledger("SELECT state FROM requests WHERE origin LIKE '%again.json'")
        self.assertEqual([s for (s,) in rows], ["done", "done"])

    def test_table_names_reserved_for_logferry_are_config_errors(self):
        for name in ("_requests", "_logferry_loads", "_x"):
            self.ws.write_config(tables=[self.ws.table_config(name=name)])
            r = self.ws.cli("check")
            self.assertEqual(r.rc, 2, r)
            self.assertIn("reserved", r.stderr)


if __name__ == "__main__":
    unittest.main()
