"""End-to-end: command-line conventions. Usage errors exit 2 and name the
closest command or key; ${VAR:-default} and ${VAR:?message}; SIGINT during
`run --once` exits 130; SIGHUP re-reads the daemon's config; `query --json`
keeps types and column order.
"""

import json
import os
import signal
import time
import unittest

import lf


def wait_for(predicate, timeout, what, step=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def log_text(ws, name="run.log"):
    with open(os.path.join(ws.root, name), errors="replace") as f:
        return f.read()


class UsageTest(unittest.TestCase):
    def test_mistyped_command_exits_2_and_names_the_closest(self):
        r = lf.run(["statsu", "-c", "x.toml"])
        self.assertEqual(r.rc, 2, r)
        self.assertIn("unknown command 'statsu'", r.stderr)
        self.assertIn("did you mean 'status'?", r.stderr)
        r = lf.run(["frobnicate"])
        self.assertEqual(r.rc, 2, r)
        self.assertNotIn("did you mean", r.stderr, "nothing close: no guess")

    def test_usage_errors_exit_2(self):
        for args in ([], ["status", "--no-such-flag"], ["reload", "-c", "x.toml"], ["query"],
                     ["bad-records", "--limit", "many"]):
            with self.subTest(args=args):
                r = lf.run(args)
                self.assertEqual(r.rc, 2, r)
                self.assertNotEqual(r.stderr.strip(), "", r)

    def test_help_exits_0(self):
        for args in (["--help"], ["run", "--help"]):
            r = lf.run(args)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("Usage", r.stdout)

    def test_unknown_config_key_names_the_closest(self):
        ws = lf.Workspace(self)
        ws.write_config(timezon="+09:00")
        r = ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("unknown key 'timezon'", r.stderr)
        self.assertIn("did you mean 'timezone'?", r.stderr)
        ws.write_config(top={"stat_dir": "/tmp/x"})
        r = ws.cli("check")
        self.assertEqual(r.rc, 2, r)
        self.assertIn("did you mean 'state_dir'?", r.stderr)


class EnvDefaultTest(unittest.TestCase):
    def config(self, ws, state_expr):
        os.makedirs(ws.source_dir, exist_ok=True)
        ws.write_config()
        with open(ws.config_path) as f:
            text = f.read().replace(lf.toml_value(ws.state), '"%s"' % state_expr)
        with open(ws.config_path, "w") as f:
            f.write(text)

    def check(self, ws, **env):
        base = {k: v for k, v in os.environ.items() if not k.startswith("LF_E2E_")}
        return lf.run(["check", "-c", ws.config_path], env=dict(base, **env), timeout=60)

    def test_default_applies_when_unset_or_empty(self):
        ws = lf.Workspace(self)
        self.config(ws, "${LF_E2E_STATE:-%s/state-default}" % ws.root)
        for env in ({}, {"LF_E2E_STATE": ""}):
            r = self.check(ws, **env)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("state_dir %s/state-default" % ws.root, r.stdout)
        r = self.check(ws, LF_E2E_STATE=ws.root + "/state-set")
        self.assertEqual(r.rc, 0, r)
        self.assertIn("state_dir %s/state-set" % ws.root, r.stdout)

    def test_required_variable_message(self):
        ws = lf.Workspace(self)
        self.config(ws, "${LF_E2E_STATE:?set it to the state directory}")
        r = self.check(ws)
        self.assertEqual(r.rc, 2, r)
        self.assertIn("LF_E2E_STATE", r.stderr)
        self.assertIn("set it to the state directory", r.stderr)
        self.assertIn("state_dir", r.stderr)


class SignalTest(unittest.TestCase):
    def test_sigint_during_run_once_exits_130_and_nothing_is_lost(self):
        ws = lf.Workspace(self)
        ws.gen(hours=48, rows_per_hour=6000, timezone="+00:00", seed=11)
        ws.write_config(timezone="+00:00", top={"workers": 1})
        p = ws.start("run", "--once")
        # Discovery has recorded the objects: the handlers are in place and staging has begun.
        def discovered():
            try:
                return p.poll() is not None or ws.ledger_scalar("SELECT count(*) FROM objects") > 0
            except Exception:  # no ledger or no table yet
                return False
        wait_for(discovered, 60, "discovery")
        self.assertIsNone(p.poll(), "the pass ended before it could be interrupted:\n" + log_text(ws))
        p.send_signal(signal.SIGINT)
        rc = p.wait(timeout=120)
        self.assertEqual(rc, 130, log_text(ws))
        self.assertIn("interrupted (SIGINT)", log_text(ws))
        # The next run finishes the work, exactly.
        ws.run_once(expect_rc=0)
        src = lf.count_source(ws.source_dir, default_offset="+00:00")
        self.assertEqual(ws.warehouse_hour_counts(), src.per_hour)
        self.assertEqual(ws.verify().rc, 0)

    def test_sighup_reloads_the_config_or_keeps_the_old_one(self):
        ws = lf.Workspace(self)
        ws.gen(hours=2, rows_per_hour=300, timezone="+00:00", seed=2)
        other = os.path.join(ws.bucket, "other")
        ws.gen(out=other, hours=1, rows_per_hour=200, timezone="+00:00", seed=3)
        first = ws.table_config(timezone="+00:00", interval="1s")
        ws.write_config(tables=[first])
        p = ws.start("run")
        wait_for(lambda: "pass:" in log_text(ws) or p.poll() is not None, 60, "the first pass")
        self.assertIsNone(p.poll(), log_text(ws))

        # An invalid config is refused, with the reason; the daemon goes on with the old one.
        ws.write_config(tables=[dict(first, settle="soon")])
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the current config" in log_text(ws), 30, "the refusal")
        self.assertIn("settle", log_text(ws).split("keeping the current config")[1].splitlines()[0])
        self.assertIsNone(p.poll(), log_text(ws))

        # A valid one is applied between passes: a table added.
        second = ws.table_config("other", source="file://%s/logs/" % other, timezone="+00:00", interval="1s")
        ws.write_config(tables=[first, second])
        p.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in log_text(ws), 30, "the reload")
        want = lf.count_source(os.path.join(other, "logs"), default_offset="+00:00")

        def other_loaded():
            r = ws.cli("status", "--json")
            return r.rc == 0 and any(t["table"] == "other" and t["rows"]["loaded"] == want.total
                                     for t in json.loads(r.stdout))
        wait_for(other_loaded, 60, "the added table to load")
        self.assertEqual(ws.warehouse_hour_counts("other"), want.per_hour)

        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), 0, log_text(ws))


class QueryJsonTest(unittest.TestCase):
    def test_types_and_column_order(self):
        ws = lf.Workspace(self)
        ws.gen(hours=1, rows_per_hour=10, timezone="+00:00")
        ws.write_config(timezone="+00:00")
        ws.run_once(expect_rc=0)
        r = ws.cli("query", "--json",
                   "SELECT 3 AS z, 'x' AS a, 2.5::DOUBLE AS m, 1.50::DECIMAL(4,2) AS d, true AS b, NULL AS n, "
                   "'nan'::DOUBLE AS f, 'inf'::DOUBLE AS i, 12345678901234567890::HUGEINT AS h, "
                   "count(*) AS c FROM access")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout.count("\n"), 1, "one line")
        rows = json.loads(r.stdout, object_pairs_hook=lambda pairs: pairs)
        self.assertEqual([k for k, _ in rows[0]], ["z", "a", "m", "d", "b", "n", "f", "i", "h", "c"])
        self.assertEqual(dict(rows[0]), {"z": 3, "a": "x", "m": 2.5, "d": 1.5, "b": True, "n": None, "f": None,
                                         "i": None, "h": 12345678901234567890, "c": 10})
        self.assertIn('"h":12345678901234567890', r.stdout, "a big integer keeps its digits")


if __name__ == "__main__":
    unittest.main()
