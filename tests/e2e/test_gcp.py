"""The original design, end to end: S3 (moto) → SQS events → logferry →
GCS staging (the Cloud Storage emulator) → BigQuery (a local stand-in that
checks every request against Google's discovery document and loads the
staged objects from the emulator).

Expected numbers come from reading the generated objects locally."""

import json
import os
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


if __name__ == "__main__":
    unittest.main()
