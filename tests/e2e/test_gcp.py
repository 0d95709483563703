"""The original design, end to end: S3 (moto) → SQS events → logferry →
GCS staging (the Cloud Storage emulator) → BigQuery (a local stand-in that
checks every request against Google's discovery document and loads the
staged objects from the emulator).

Expected numbers come from reading the generated objects locally."""

import datetime
import json
import os
import re
import shutil
import tempfile
import time
import unittest

import bq_standin
import gcs
import lf
import moto

BUCKET = "app-logs"
QUEUE = "s3-events"
PROJECT = "logferry-test"
DATASET = "logs"
STAGING_BUCKET = "acme-staging"


def body_of(request):
    return request.body if isinstance(request.body, dict) else json.loads(request.body or "{}")


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.1)


class CrossCloudBase(unittest.TestCase):
    def setUp(self):
        self.moto = moto.Moto(self)
        self.gcs = gcs.GcsEmulator(self)
        self.bq = bq_standin.BigQueryStandin(self, gcs_endpoint=self.gcs.endpoint, polls_until_done=2)
        self.ws = lf.Workspace(self)
        gcloud = tempfile.mkdtemp(prefix="gcloud-")
        self.addCleanup(shutil.rmtree, gcloud, True)
        env = self.moto.env()
        for k in list(env):
            if k.startswith("GOOGLE_") or k.startswith("CLOUDSDK_"):
                del env[k]
        env.update(self.gcs.env())
        # No real Google credentials anywhere: an access token from the
        # environment, and an empty gcloud config directory.
        env.update({"GOOGLE_OAUTH_ACCESS_TOKEN": "e2e-access-token", "CLOUDSDK_CONFIG": gcloud,
                    "GCE_METADATA_HOST": "127.0.0.1:1"})
        self.ws.env = env
        self.moto.make_bucket(BUCKET)
        self.queue_url = self.moto.make_queue(QUEUE)
        self.moto.notify(BUCKET, QUEUE)
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 notifications=self.queue_url, staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, clustering="host")
        self.ws.write_config(tables=[t], top={"workers": 2})

    def upload(self):
        self.moto.aws("s3", "cp", "--recursive", "--quiet", self.ws.source_dir, "s3://%s/logs/" % BUCKET)

    def expected(self):
        """{'2016080100': rows} computed from the source objects."""
        return {h.replace("-", "").replace("T", ""): n for h, n in lf.count_source(self.ws.source_dir).per_hour.items()}

    def bq_counts(self):
        return self.bq.partition_counts(PROJECT, DATASET, "access")

    def load_jobs(self, decorator=None):
        """Load jobs the stand-in accepted (not 409s), optionally for one partition."""
        out = []
        for r in self.bq.requests_for(method_id="bigquery.jobs.insert"):
            if r.status != 200:
                continue
            load = body_of(r).get("configuration", {}).get("load")
            if load and (decorator is None or load["destinationTable"]["tableId"] == "access$" + decorator):
                out.append(body_of(r))
        return out


class CrossCloud(CrossCloudBase):
    def test_s3_to_gcs_to_bigquery_with_reloads_and_a_kill_during_a_load(self):
        self.ws.gen(hours=6, rows_per_hour=1500)
        self.upload()
        r = self.ws.run_once(expect_rc=0)
        expected = self.expected()
        self.assertEqual(self.bq_counts(), expected)
        jobs = self.load_jobs()
        self.assertEqual(len(jobs), len(expected))
        for job in jobs:
            load = job["configuration"]["load"]
            self.assertEqual(load["writeDisposition"], "WRITE_TRUNCATE")
            self.assertTrue(all(u.startswith("gs://%s/parts/access/" % STAGING_BUCKET) for u in load["sourceUris"]))
            self.assertTrue(all("*" not in u for u in load["sourceUris"]))
            self.assertTrue(job["jobReference"]["jobId"].startswith("logferry_access_"))
        # Every staged part is in GCS, named as the ledger names it.
        staged = sorted(n for n in self.gcs.names(STAGING_BUCKET, "parts/access/"))
        self.assertEqual(staged, sorted("parts/" + k for (k,) in self.ws.ledger("SELECT key FROM parts")))
        table = self.bq.table(PROJECT, DATASET, "access")
        self.assertIsNotNone(table)
        resource = table.resource(self.bq.endpoint, "US")
        self.assertEqual(resource["timePartitioning"], {"type": "HOUR", "field": "_time"})
        self.assertEqual(resource["clustering"], {"fields": ["host"]})
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.moto.queue_depth(self.queue_url), (0, 0))

        # A reload of one period from GCS: one more load job, same rows.
        r = self.ws.cli("reload", "--table", "access", "--from", "2016-08-01T02")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(self.load_jobs("2016080102")), 2)
        self.assertEqual(self.bq_counts(), expected)

        # A reload asked for by a request object under the GCS staging prefix.
        self.gcs.upload(STAGING_BUCKET, "parts/_requests/r1.json",
                        json.dumps({"table": "access", "from": "2016-08-01T03", "to": "2016-08-01T05"}).encode())
        self.ws.run_once(expect_rc=0)
        self.assertEqual(len(self.load_jobs("2016080103")), 2)
        self.assertEqual(len(self.load_jobs("2016080104")), 2)
        self.assertIn("parts/_requests/done/r1.json", self.gcs.names(STAGING_BUCKET, "parts/_requests/"))
        self.assertEqual(self.bq_counts(), expected)

        # SIGKILL while a load job runs; the restart must find that job (409
        # → jobs.get), not run a second one.
        self.bq.polls_until_done = 10_000
        before = len(self.load_jobs("2016080105"))
        self.gcs.upload(STAGING_BUCKET, "parts/_requests/r2.json",
                        json.dumps({"table": "access", "from": "2016-08-01T05"}).encode())
        p = self.ws.start("run", "--once")
        wait_for(lambda: len(self.load_jobs("2016080105")) == before + 1, 60, "the load job to be inserted")
        lf.kill_hard(p)
        job_id = self.load_jobs("2016080105")[-1]["jobReference"]["jobId"]
        self.bq.polls_until_done = 1
        self.ws.run_once(expect_rc=0)
        self.assertEqual(len(self.load_jobs("2016080105")), before + 1, "a second load job ran after the kill")
        conflicts = [r for r in self.bq.requests_for(method_id="bigquery.jobs.insert")
                     if r.status == 409 and body_of(r)["jobReference"]["jobId"] == job_id]
        self.assertEqual(len(conflicts), 1, "the restart re-inserted the same job id and found it")
        self.assertEqual(self.bq_counts(), expected)
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        st = json.loads(self.ws.cli("status", "--json").stdout)[0]
        # One job per load here (nothing merged), the killed one counted once.
        self.assertEqual(st["load_jobs_24h"], self.ws.ledger_scalar("SELECT count(*) FROM loads"))
        self.assertEqual(st["load_jobs_24h"], len(self.load_jobs()))
        self.assertEqual(st["daily_load_budget"], 1000)
        self.assertNotIn("load_budget_frees_at", st)


class ScratchAndCopy(CrossCloudBase):
    def test_partitions_with_more_parts_than_one_job_may_name_go_through_a_scratch_table(self):
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, max_uris_per_load=1)
        self.ws.write_config(tables=[t])
        self.ws.gen(hours=3, rows_per_hour=1000, split_every=1)  # two objects an hour, late rows: 2+ parts
        self.upload()
        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.bq_counts(), self.expected())
        copies = [body_of(r) for r in self.bq.requests_for(method_id="bigquery.jobs.insert")
                  if r.status == 200 and "copy" in body_of(r).get("configuration", {})]
        self.assertGreater(len(copies), 0)
        for c in copies:
            self.assertEqual(c["configuration"]["copy"]["writeDisposition"], "WRITE_TRUNCATE")
            self.assertIn("$", c["configuration"]["copy"]["destinationTable"]["tableId"])
        for job in self.load_jobs():
            self.assertEqual(len(job["configuration"]["load"]["sourceUris"]), 1)
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)


def day_of(partition):
    """'2016080103' -> '20160801'."""
    return partition[:8]


def us_of(partition):
    """'2016080103' -> epoch microseconds."""
    p = partition
    return lf.us_of_hour("%s-%s-%sT%s" % (p[:4], p[4:6], p[6:8], p[8:10]))


class LoadBudget(CrossCloudBase):
    """A small daily_load_budget with many hourly partitions due: they are
    merged into one job per UTC day, and past the budget they wait."""

    def configure(self, budget, settle):
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, daily_load_budget=budget, settle=settle,
                                 fresh_interval="off")  # loads only: no appends into open partitions
        self.ws.write_config(tables=[t])

    def status(self):
        r = self.ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)[0]

    def job_inserts(self):
        return [r for r in self.bq.requests_for(method_id="bigquery.jobs.insert") if r.status == 200]

    def loaded_by_job(self):
        """{job id: sorted partitions 'YYYYMMDDHH'} of the loads the ledger recorded as loaded."""
        out = {}
        for p, job in self.ws.ledger("SELECT partition_us, job_id FROM loads WHERE outcome='loaded'"):
            out.setdefault(job, []).append(lf.hour_of_us(p).replace("-", "").replace("T", ""))
        return {j: sorted(ps) for j, ps in out.items()}

    def test_merged_per_day_under_a_small_budget_then_waiting_then_resumed_after_a_kill(self):
        # 48 hours from 2016-07-31T12 UTC: hourly partitions over three UTC days.
        self.ws.gen(hours=48, rows_per_hour=20, start="2016-07-31T12")
        self.upload()
        expected = self.expected()
        days = sorted({day_of(p) for p in expected})
        self.assertEqual(len(days), 3, expected)
        by_day = {d: sorted(p for p in expected if day_of(p) == d) for d in days}

        # Everything staged, nothing due yet.
        self.configure(budget=2, settle="200000h")
        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.job_inserts(), [])
        # One damaged part in the second day.
        damaged = by_day[days[1]][5]
        key = self.ws.ledger_scalar("SELECT key FROM parts WHERE state='live' AND partition_us=? LIMIT 1",
                                    (us_of(damaged),))
        self.assertIsNotNone(key)
        self.gcs.upload(STAGING_BUCKET, "parts/" + key, b"not what the ledger recorded")

        # Due now: 48 partitions, 2 jobs left. One merged job per UTC day;
        # the damaged partition leaves its batch (alone in backoff); the
        # third day waits for the budget.
        self.configure(budget=2, settle="0s")
        r = self.ws.run_once(expect_rc=3)
        self.assertIn("wait for the load budget", r.output)
        scripts = self.bq.merge_scripts()
        self.assertEqual(len(scripts), 2)
        want = {p: n for p, n in expected.items() if day_of(p) in days[:2] and p != damaged}
        self.assertEqual(self.bq_counts(), want)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM load_jobs"), 2)
        groups = self.loaded_by_job()
        self.assertEqual(sorted(groups.values()), [by_day[days[0]], [p for p in by_day[days[1]] if p != damaged]])
        self.assertEqual(sorted(groups), sorted(j.id[:-len("_dml")] for j in scripts))
        for job_id in groups:
            self.assertRegex(job_id, r"^logferry_access_\d{10}_m\d+_[0-9a-f]{16}$")
        self.assertIsNone(self.ws.ledger_scalar(
            "SELECT job_id FROM loads WHERE partition_us=? ORDER BY id DESC LIMIT 1", (us_of(damaged),)),
            "a load stopped before BigQuery is no job")
        st = self.status()
        self.assertEqual((st["load_jobs_24h"], st["daily_load_budget"]), (2, 2))
        self.assertIn("load_budget_frees_at", st)
        self.assertEqual(st["partitions"]["pending"], len(by_day[days[2]]) + 1)
        self.assertEqual(st["partitions"]["failing"], 1)
        self.assertIn("checksum mismatch", st["failing_partitions"][0]["error"])
        text = self.ws.cli("status").stdout
        self.assertIn("load jobs   2 in the last 24 hours, of a budget of 2", text)
        self.assertIn("load budget used up", text)
        # Scratch tables: created to expire, dropped after their transaction.
        now_ms = time.time() * 1000
        scratch = [body_of(r) for r in self.bq.requests_for(method_id="bigquery.tables.insert")
                   if body_of(r)["tableReference"]["tableId"] != "access"]
        self.assertEqual(len(scratch), 2)
        for body in scratch:
            self.assertGreater(int(body["expirationTime"]), now_ms)
        self.assertEqual(self.bq.table_ids(PROJECT, DATASET), ["access"])

        # Budget used up: the next run (which stages the damaged part's
        # object again) sends nothing.
        before = len(self.job_inserts())
        self.ws.run_once()
        self.assertEqual(len(self.job_inserts()), before)
        self.assertEqual(self.bq_counts(), want)

        # More budget; SIGKILL while the next transaction runs. The restart
        # finds that job (409 → jobs.get) and counts it once.
        again = sorted(lf.hour_of_us(p).replace("-", "").replace("T", "") for (p,) in self.ws.ledger(
            "SELECT DISTINCT partition_us FROM parts WHERE object_id=(SELECT object_id FROM parts WHERE key=?)",
            (key,)))
        self.assertIn(damaged, again)
        self.assertEqual({day_of(p) for p in again}, {days[1]}, "chosen so that one job reloads them")
        self.configure(budget=4, settle="0s")
        wait_for(lambda: (self.ws.ledger_scalar("SELECT next_attempt_us FROM partitions WHERE partition_us=?",
                                                (us_of(damaged),)) or 0) < time.time() * 1e6,
                 30, "the damaged partition's backoff to pass")
        self.bq.held_job_types = {"QUERY"}
        p = self.ws.start("run", "--once")
        wait_for(lambda: len(self.bq.merge_scripts()) == 3 or p.poll() is not None, 120,
                 "the third merged transaction to be inserted")
        self.assertTrue(lf.kill_hard(p), "logferry exited before the kill")
        dml_id = self.bq.merge_scripts()[-1].id
        self.bq.held_job_types = set()
        self.ws.run_once(expect_rc=0)
        # Staged again, the damaged part's object rewrote all its parts (late
        # rows put it in two hours), so those partitions load again: one job
        # for them (merged if several), one for the third day.
        self.assertEqual(sorted(p for p, n in self.ws.ledger("SELECT partition_us, generation FROM partitions")
                                if n > 1), [us_of(p) for p in again])
        self.assertEqual(len(self.bq.merge_scripts()), 2 + (len(again) > 1) + 1,
                         "a transaction ran twice after the kill")
        conflicts = [r for r in self.bq.requests_for(method_id="bigquery.jobs.insert")
                     if r.status == 409 and body_of(r)["jobReference"]["jobId"] == dml_id]
        self.assertEqual(len(conflicts), 1, "the restart re-inserted the same job id and found it")
        self.assertEqual(self.bq_counts(), expected)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM load_jobs"), 4)
        groups = self.loaded_by_job()
        self.assertIn(again, groups.values())
        self.assertIn(by_day[days[2]], groups.values())
        st = self.status()
        self.assertEqual((st["load_jobs_24h"], st["partitions"]["pending"], st["partitions"]["failing"]), (4, 0, 0))
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.bq.table_ids(PROJECT, DATASET), ["access"])

        # Nothing new: nothing sent.
        before = len(self.job_inserts())
        self.ws.run_once(expect_rc=0)
        self.assertEqual(len(self.job_inserts()), before)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM load_jobs"), 4)


class DayPartitions(CrossCloudBase):
    def test_day_partitions_new_fields_and_a_load_whose_row_count_disagrees(self):
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, partition="day", clustering="path,host")
        self.ws.write_config(tables=[t])
        self.ws.gen(hours=6, rows_per_hour=50)
        self.upload()

        def expected_by_day():
            out = {}
            for p, n in self.expected().items():
                out[day_of(p)] = out.get(day_of(p), 0) + n
            return out

        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.bq_counts(), expected_by_day())
        resource = self.bq.table(PROJECT, DATASET, "access").resource(self.bq.endpoint, "US")
        self.assertEqual(resource["timePartitioning"], {"type": "DAY", "field": "_time"})
        self.assertEqual(resource["clustering"], {"fields": ["path", "host"]})
        for job in self.load_jobs():
            self.assertRegex(job["configuration"]["load"]["destinationTable"]["tableId"], r"^access\$\d{8}$")

        # An object with a field the table does not have: tables.patch adds it.
        when = datetime.datetime(2016, 8, 1, 3, 30, tzinfo=datetime.timezone.utc)
        lf.write_object(os.path.join(self.ws.source_dir, "2016080112_7.gz"),
                        [lf.out_file_line(when, {"host": "h1", "path": "/new", "referrer_id": 7})])
        self.upload()
        self.ws.run_once(expect_rc=0)
        patches = [body_of(r) for r in self.bq.requests_for(method_id="bigquery.tables.patch") if r.status == 200]
        self.assertEqual(len(patches), 1)
        self.assertIn("referrer_id", [f["name"] for f in patches[0]["schema"]["fields"]])
        fields = {f["name"]: f["type"] for f in self.bq.table(PROJECT, DATASET, "access").fields}
        self.assertEqual(fields.get("referrer_id"), "INTEGER")
        self.assertEqual(self.bq_counts(), expected_by_day())

        # BigQuery reports one row more than the ledger holds: the load fails.
        self.bq.misreport_next_loads(1, delta=1)
        r = self.ws.cli("reload", "--table", "access", "--from", "2016-08-01T00", "--to", "2016-08-02T00")
        self.assertEqual(r.rc, 1, r)
        st = json.loads(self.ws.cli("status", "--json").stdout)[0]
        self.assertEqual(len(st["failing_partitions"]), 1, st)
        self.assertEqual(st["failing_partitions"][0]["partition"], "2016-08-01T00:00:00Z")
        self.assertIn("rows after the load but the ledger expects %d" % expected_by_day()["20160801"],
                      st["failing_partitions"][0]["error"])
        r = self.ws.cli("reload", "--table", "access", "--from", "2016-08-01T00", "--to", "2016-08-02T00")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.bq_counts(), expected_by_day())
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)


if __name__ == "__main__":
    unittest.main()


class OpenPartitionAppends(CrossCloudBase):
    """Rows of the open hour reach BigQuery before the hour is loaded, as
    WRITE_APPEND load jobs into the partition, labelled for
    INFORMATION_SCHEMA.JOBS and spaced within half of daily_load_budget."""

    def configure(self):
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, settle="30m", daily_load_budget=1000)
        self.ws.write_config(tables=[t])

    def put(self, name):
        self.moto.aws("s3", "cp", "--quiet", os.path.join(self.ws.source_dir, name), "s3://%s/logs/%s" % (BUCKET, name))

    def test_open_hour_is_appended_labelled_and_spaced_by_the_budget(self):
        hour = datetime.datetime.now(datetime.timezone.utc).replace(minute=0, second=0, microsecond=0)
        self.ws.gen(hours=1, rows_per_hour=300, start=hour.strftime("%Y-%m-%dT%H"), split_every=1, late_fraction=0)
        names = sorted(os.listdir(self.ws.source_dir))
        self.assertEqual(len(names), 2, names)
        self.configure()
        decorator = hour.strftime("%Y%m%d%H")
        first = lf.count_source(self.ws.source_dir, key_re=re.compile(re.escape(names[0]) + "$")).total

        self.put(names[0])
        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.bq_counts(), {decorator: first}, "the open hour's rows are in BigQuery")
        jobs = self.load_jobs(decorator)
        self.assertEqual(len(jobs), 1, jobs)
        cfg = jobs[0]["configuration"]
        self.assertEqual(cfg["load"]["writeDisposition"], "WRITE_APPEND")
        self.assertEqual(cfg["labels"], {"logferry_table": "access", "logferry_partition": decorator,
                                         "logferry_kind": "append",
                                         "logferry_generation": str(self.ws.generations()[hour.strftime("%Y-%m-%dT%H")])})
        self.assertEqual(jobs[0]["jobReference"]["jobId"],
                         self.ws.ledger_scalar("SELECT load_id FROM loads WHERE kind='append'"))

        # Within the spacing the budget allows (24h / (1000 / 2) = 173 s), the
        # next object waits: the run succeeds and sends no job.
        self.put(names[1])
        self.ws.run_once(expect_rc=0)
        self.assertEqual(len(self.load_jobs(decorator)), 1)
        self.assertEqual(self.bq_counts(), {decorator: first})
        status = json.loads(self.ws.cli("status", "--json").stdout)[0]
        self.assertEqual([(o["partition"][:13], o["appends"], o["rows_queryable"]) for o in status["open_partitions"]],
                         [(hour.strftime("%Y-%m-%dT%H"), 1, first)])
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)

        # A reload replaces the partition with every staged row at once.
        self.ws.cli("reload", "--table", "access", "--from", hour.strftime("%Y-%m-%dT%H"))
        self.assertEqual(self.bq_counts(), {decorator: lf.count_source(self.ws.source_dir).total})
        replace = [j for j in self.load_jobs(decorator) if j["configuration"]["load"]["writeDisposition"] == "WRITE_TRUNCATE"]
        self.assertEqual(len(replace), 1)
        self.assertEqual(replace[0]["configuration"]["labels"]["logferry_kind"], "replace")
