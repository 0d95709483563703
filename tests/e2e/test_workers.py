"""Several `logferry run` daemons on one ledger (issue 13): objects arrive
while workers are SIGKILLed and restarted at random; in the end every hour
holds exactly the source's rows, `verify` passes, and the load records show
that no partition was ever loaded by two workers at once.

The ledger is a parameter: SharedStateDir (the workers share one state_dir
and its SQLite ledger, as on one host) and SharedPostgres (each worker its
own config and state_dir, one `ledger = "postgresql://..."` on a real
PostgreSQL 15, as on several hosts). With PostgreSQL, the server is also
stopped for a while mid-run and started again: workers pause and resume.

Expected numbers come from reading the source objects (lf.count_source)."""

import json
import os
import random
import shutil
import signal
import tempfile
import time
import unittest

import bq_standin
import gcs
import lf
import moto
import pg

BUCKET = "app-logs"
QUEUE = "s3-events"
WORKERS = 3
MAX_KILLS = 15
CHAOS_SECONDS = 90
DRAIN_SECONDS = 180
TOP = {"workers": 1, "lease": "5s", "log_level": "info"}


class SharedStateDir:
    """The workers share one state_dir, hence one SQLite ledger."""

    def __init__(self, ws):
        self.ws = ws

    def configs(self, n, tables, top):
        path = self.ws.write_config(tables=tables, top=top)
        return [path] * n

    def rows(self, sql):
        return self.ws.ledger(sql)


class SharedPostgres:
    """Each worker its own config and state_dir; one PostgreSQL ledger."""

    def __init__(self, ws, testcase):
        self.ws = ws
        self.server = pg.Server(testcase)
        self.uri = self.server.new_database()
        self.database = self.uri.rsplit("/", 1)[1]

    def configs(self, n, tables, top):
        paths = []
        for i in range(n):
            self.ws.state = os.path.join(self.ws.root, "state%d" % i)
            self.ws.config_path = os.path.join(self.ws.root, "worker%d.toml" % i)
            paths.append(self.ws.write_config(tables=tables, top=dict(top, ledger=self.uri)))
        self.ws.config_path = paths[0]  # status, verify and query read through worker 0's config
        return paths

    def rows(self, sql):
        def value(v):
            return None if v == "" else int(v) if v.lstrip("-").isdigit() else v
        return [tuple(value(v) for v in row) for row in self.server.query(self.database, sql)]

    def outage(self, seconds):
        self.server.stop()
        time.sleep(seconds)
        self.server.start()


def wait_for(predicate, timeout, what, step=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError("timed out after %ds waiting for %s (last: %r)" % (timeout, what, last))


class Fleet:
    """WORKERS daemons, each restartable; remembers when each pid was killed."""

    def __init__(self, testcase, ws, configs):
        self.t, self.ws, self.configs = testcase, ws, configs
        self.procs = [None] * len(configs)
        self.killed_at_us = {}  # pid -> when it was certainly dead
        self.stopped_at_us = {}
        for i in range(len(configs)):
            self.start(i)

    def start(self, i):
        self.ws.config_path = self.configs[i]
        self.procs[i] = self.ws.start("run", log_name="worker%d.log" % i)

    def kill_and_restart(self, i):
        p = self.procs[i]
        lf.kill_hard(p)
        self.killed_at_us[p.pid] = int(time.time() * 1e6)
        self.start(i)

    def stop_all(self):
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            rc = p.wait(timeout=120)
            self.stopped_at_us[p.pid] = int(time.time() * 1e6)
            self.t.assertEqual(rc, 0, "daemon exit code after SIGTERM")

    def logs(self):
        out = ""
        for i in range(len(self.procs)):
            with open(os.path.join(self.ws.root, "worker%d.log" % i), errors="replace") as f:
                out += f.read()
        return out


class WorkersBase(unittest.TestCase):
    ledger_kind = SharedStateDir

    def make_ledger(self):
        if self.ledger_kind is SharedPostgres:
            return SharedPostgres(self.ws, self)
        return self.ledger_kind(self.ws)

    def status(self):
        r = self.ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)[0]

    def drained(self, expected_total):
        st = self.status()
        return (st["rows"]["loaded"] == expected_total and st["partitions"]["pending"] == 0 and
                st["objects"]["pending"] == 0 and st)

    def chaos(self, fleet, arrive):
        """Calls arrive(step) until it returns False, killing a random worker
        about every other step, for at most MAX_KILLS kills and CHAOS_SECONDS."""
        rng = random.Random(13)
        kills, step, deadline = 0, 0, time.monotonic() + CHAOS_SECONDS
        more = True
        while time.monotonic() < deadline and (more or kills < MAX_KILLS):
            if more:
                more = arrive(step)
            step += 1
            time.sleep(rng.uniform(0.5, 2.5))
            if kills < MAX_KILLS and rng.random() < 0.6:
                fleet.kill_and_restart(rng.randrange(len(fleet.procs)))
                kills += 1
        return kills

    def assert_no_overlapping_loads(self, fleet):
        """From the load records: per partition, the loads of different workers
        never overlap in time. A load its worker never finished (SIGKILLed)
        ended at the latest when that worker was killed. A "lapsed" load
        finished after its worker had lost the partition to another one: the
        ledger refused it (it is not the partition's state) and is left out."""
        rows = self.ledger.rows("SELECT partition_us, worker, started_us, finished_us, outcome, kind FROM loads "
                                "WHERE outcome IS NULL OR outcome <> 'lapsed'")
        self.assertTrue(rows, "no loads recorded")
        ends = dict(fleet.killed_at_us)
        ends.update(fleet.stopped_at_us)
        spans = {}
        for partition_us, worker, started, finished, outcome, kind in rows:
            self.assertTrue(worker, "a load without its worker: %r" % ((partition_us, started, outcome, kind),))
            pid = int(worker.split(":")[-2])
            end = finished if finished is not None else ends.get(pid)
            self.assertIsNotNone(end, "an unfinished load of %s by a worker never stopped" % worker)
            spans.setdefault(partition_us, []).append((started, end, worker, outcome, kind))
        workers = set()
        for partition_us, loads in spans.items():
            loads.sort()
            for a, b in zip(loads, loads[1:]):
                workers.update([a[2], b[2]])
                if a[2] != b[2]:
                    self.assertLessEqual(a[1], b[0], "partition %s loaded by two workers at once: %r and %r"
                                         % (lf.hour_of_us(partition_us), a, b))
        return len(rows), len(set(w for loads in spans.values() for _, _, w, _, _ in loads))

    def finish(self, fleet, kills):
        expected = lf.count_source(self.ws.source_dir)
        wait_for(lambda: self.drained(expected.total), DRAIN_SECONDS, "every row to load")
        # A worker restarted during a ledger outage waits for the ledger (its
        # retry spacing grows to 30 s) before it records itself.
        wait_for(lambda: len([w for w in self.status()["daemon"]["workers"] if w["state"] == "running"]) == WORKERS,
                 60, "every worker to be running")
        fleet.stop_all()
        self.assertEqual(self.ws.warehouse_hour_counts(), expected.per_hour)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)
        loads, loaders = self.assert_no_overlapping_loads(fleet)
        self.assertGreater(kills, 0)
        self.assertEqual(self.status()["daemon"]["workers"], [], "stopped cleanly: no worker runs, no lease is held")
        print("workers: %d kills, %d loads by %d workers" % (kills, loads, loaders))


class FileSourceWorkers(WorkersBase):
    def test_three_workers_killed_at_random_load_every_row_once(self):
        self.ws = lf.Workspace(self)
        self.ledger = self.make_ledger()
        incoming = os.path.join(self.ws.root, "incoming")
        self.ws.gen(out=incoming, hours=8, rows_per_hour=5000, split_every=1)
        names = sorted(os.listdir(os.path.join(incoming, "logs")))
        os.makedirs(self.ws.source_dir)
        table = self.ws.table_config(interval="500ms")
        fleet = Fleet(self, self.ws, self.ledger.configs(WORKERS, [table], TOP))

        def arrive(step):
            for name in names[step * 2:step * 2 + 2]:
                shutil.move(os.path.join(incoming, "logs", name), os.path.join(self.ws.source_dir, name))
            return step * 2 + 2 < len(names)

        kills = self.chaos(fleet, arrive)
        if hasattr(self.ledger, "outage"):
            # Objects keep landing while the ledger is gone; nobody can claim them.
            for name in names[len(names) // 2:]:
                if os.path.exists(os.path.join(incoming, "logs", name)):
                    shutil.move(os.path.join(incoming, "logs", name), os.path.join(self.ws.source_dir, name))
            self.ledger.outage(8)
            self.assertTrue(all(p.poll() is None for p in fleet.procs), "workers survive a ledger outage")
            self.assertIn("UNAVAILABLE", fleet.logs(), "the outage is logged")
        self.finish(fleet, kills)


class FrozenWorker(WorkersBase):
    def test_a_frozen_workers_claims_lapse_and_another_takes_them_over(self):
        # SIGSTOP keeps the process (and its pid) alive but silent: only the
        # lapse of its leases hands its objects to another worker.
        self.ws = lf.Workspace(self)
        self.ledger = self.make_ledger()
        self.ws.gen(hours=24, rows_per_hour=20000, split_every=1)
        expected = lf.count_source(self.ws.source_dir)
        configs = self.ledger.configs(2, [self.ws.table_config(interval="500ms")], TOP)
        self.ws.config_path = configs[0]
        a = self.ws.start("run", log_name="worker0.log")

        def holding():
            r = self.ws.cli("status", "--json")
            if r.rc != 0:
                return None  # no ledger yet
            workers = json.loads(r.stdout)[0]["daemon"]["workers"]
            return [w for w in workers if w["pid"] == a.pid and w["leases"]["objects"] > 0]

        frozen = wait_for(holding, 60, "the first worker to hold objects", step=0.05)[0]
        a.send_signal(signal.SIGSTOP)
        self.addCleanup(lambda: a.poll() is None and a.send_signal(signal.SIGCONT))
        human = self.ws.cli("status")
        self.assertIn("worker      %s" % frozen["worker"], human.stdout)
        self.ws.config_path = configs[1]
        b = self.ws.start("run", log_name="worker1.log")
        st = wait_for(lambda: self.drained(expected.total), DRAIN_SECONDS, "the second worker to do everything")
        self.assertIsNone(a.poll(), "still frozen")
        # Its heartbeat is recent enough to call it running; its leases lapsed.
        leases = [w["leases"] for w in st["daemon"]["workers"] if w["worker"] == frozen["worker"]]
        self.assertEqual(leases, [{"objects": 0, "partitions": []}])
        lf.kill_hard(a)
        fleet = Fleet.__new__(Fleet)
        fleet.t, fleet.ws, fleet.procs = self, self.ws, [b]
        fleet.killed_at_us, fleet.stopped_at_us = {a.pid: int(time.time() * 1e6)}, {}
        fleet.stop_all()
        self.assertEqual(self.ws.warehouse_hour_counts(), expected.per_hour)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)
        self.assert_no_overlapping_loads(fleet)


class LapsedLoad(WorkersBase):
    """A worker stopped in the middle of a BigQuery load until its lease
    lapses; another takes the partition over and loads a newer snapshot of
    it. When the first one comes back, its older job runs last (the stand-in
    runs a job when it is polled) and puts the older rows back: the ledger
    refuses that load, and the partition is replaced again."""

    PROJECT, DATASET, STAGING = "logferry-test", "logs", "acme-staging"

    def setUp(self):
        self.gcs = gcs.GcsEmulator(self)
        self.bq = bq_standin.BigQueryStandin(self, gcs_endpoint=self.gcs.endpoint, polls_until_done=2)
        self.ws = lf.Workspace(self)
        gcloud = tempfile.mkdtemp(prefix="gcloud-")
        self.addCleanup(shutil.rmtree, gcloud, True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
        env.update(self.gcs.env())
        env.update({"GOOGLE_OAUTH_ACCESS_TOKEN": "e2e-access-token", "CLOUDSDK_CONFIG": gcloud,
                    "GCE_METADATA_HOST": "127.0.0.1:1"})
        self.ws.env = env
        self.ledger = self.make_ledger()

    def load_inserts(self):
        """The load jobs the stand-in accepted, as their request bodies."""
        bodies = [r.body if isinstance(r.body, dict) else json.loads(r.body or "{}")
                  for r in self.bq.requests_for(method_id="bigquery.jobs.insert") if r.status == 200]
        return [b for b in bodies if "load" in b.get("configuration", {})]

    def bq_counts(self):
        return self.bq.partition_counts(self.PROJECT, self.DATASET, "access")

    def test_a_load_finished_after_its_lease_lapsed_is_refused_and_the_partition_replaced(self):
        incoming = os.path.join(self.ws.root, "incoming")
        self.ws.gen(out=incoming, hours=1, rows_per_hour=3000, objects_per_hour=3, split_every=0, late_fraction=0)
        names = sorted(os.listdir(os.path.join(incoming, "logs")))
        self.assertEqual(len(names), 3)
        os.makedirs(self.ws.source_dir)
        for name in names[:2]:
            shutil.move(os.path.join(incoming, "logs", name), os.path.join(self.ws.source_dir, name))
        table = self.ws.table_config(interval="500ms", staging="gs://%s/parts/" % self.STAGING,
                                     warehouse="bigquery://%s/%s" % (self.PROJECT, self.DATASET),
                                     bigquery_endpoint=self.bq.endpoint)
        configs = self.ledger.configs(2, [table], dict(TOP, lease="4s"))

        # A's load job stays RUNNING until A is stopped.
        self.bq.held_job_types = {"LOAD"}
        self.ws.config_path = configs[0]
        a = self.ws.start("run", log_name="worker0.log")
        self.addCleanup(lambda: a.poll() is None and (a.send_signal(signal.SIGCONT), lf.kill_hard(a)))
        wait_for(self.load_inserts, 60, "the first worker to send its load job", step=0.05)
        a.send_signal(signal.SIGSTOP)
        old_job = self.load_inserts()[0]["jobReference"]["jobId"]
        self.bq.held_job_types = set()

        # A newer snapshot of the partition, loaded by B once A's lease lapsed.
        shutil.move(os.path.join(incoming, "logs", names[2]), os.path.join(self.ws.source_dir, names[2]))
        expected = lf.count_source(self.ws.source_dir)
        per_hour = {h.replace("-", "").replace("T", ""): n for h, n in expected.per_hour.items()}
        self.ws.config_path = configs[1]
        b = self.ws.start("run", log_name="worker1.log")
        wait_for(lambda: self.drained(expected.total) and self.bq_counts() == per_hour, DRAIN_SECONDS,
                 "the second worker to load the newer snapshot")
        self.assertNotEqual(self.bq.job(self.PROJECT, old_job).state, "DONE", "A's job has not run yet")

        # A comes back: its job runs now, after B's, with the older rows.
        a.send_signal(signal.SIGCONT)
        wait_for(lambda: self.bq.job(self.PROJECT, old_job).state == "DONE", 60, "A's old job to run")
        wait_for(lambda: "lease on the partition lapsed" in self.logs(0), 60, "A's refusal to be logged")
        wait_for(lambda: self.drained(expected.total) and self.bq_counts() == per_hour, DRAIN_SECONDS,
                 "the partition to be replaced again")
        fleet = Fleet.__new__(Fleet)
        fleet.t, fleet.ws, fleet.procs = self, self.ws, [a, b]
        fleet.killed_at_us, fleet.stopped_at_us = {}, {}
        fleet.stop_all()
        self.assertEqual(self.bq_counts(), per_hour)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)
        self.assert_no_overlapping_loads(fleet)
        outcomes = self.ledger.rows("SELECT load_id, outcome FROM loads WHERE outcome = 'lapsed'")
        self.assertEqual([load_id for load_id, _ in outcomes], [old_job])

    def logs(self, i):
        with open(os.path.join(self.ws.root, "worker%d.log" % i), errors="replace") as f:
            return f.read()


class S3SqsWorkers(WorkersBase):
    def test_three_workers_share_the_queue_and_load_every_row_once(self):
        self.moto = moto.Moto(self)
        self.ws = lf.Workspace(self)
        self.ws.env = self.moto.env()
        self.ledger = self.make_ledger()
        self.moto.make_bucket(BUCKET)
        queue_url = self.moto.make_queue(QUEUE)
        self.moto.notify(BUCKET, QUEUE)
        incoming = os.path.join(self.ws.root, "incoming")
        self.ws.gen(out=incoming, hours=6, rows_per_hour=5000, split_every=1)
        names = sorted(os.listdir(os.path.join(incoming, "logs")))
        table = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                     notifications=queue_url, interval="500ms", sqs_wait="1s",
                                     sqs_visibility="10s")
        fleet = Fleet(self, self.ws, self.ledger.configs(WORKERS, [table], TOP))
        os.makedirs(self.ws.source_dir)

        def arrive(step):
            batch = names[step * 3:step * 3 + 3]
            for name in batch:
                local = os.path.join(self.ws.source_dir, name)
                shutil.move(os.path.join(incoming, "logs", name), local)
                self.moto.aws("s3", "cp", "--quiet", local, "s3://%s/logs/%s" % (BUCKET, name))
            return step * 3 + 3 < len(names)

        kills = self.chaos(fleet, arrive)
        self.finish(fleet, kills)
        # Every announcement was handled: none waits, none is held.
        self.assertEqual(self.moto.queue_depth(queue_url), (0, 0))


class FileSourceWorkersOnPostgres(FileSourceWorkers):
    ledger_kind = SharedPostgres


class S3SqsWorkersOnPostgres(S3SqsWorkers):
    ledger_kind = SharedPostgres


if __name__ == "__main__":
    unittest.main()
