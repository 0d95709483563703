"""Several workers loading into BigQuery (issue 13): the deployment the
issue is about. Three `logferry run` daemons, each with its own config and
state_dir, share one PostgreSQL ledger, one SQS queue (competing consumers),
one GCS staging bucket (the emulator) and one BigQuery dataset (the
stand-in, which checks every request against Google's discovery document).
BigQuery, unlike DuckDB, runs loads of several workers at once, and its jobs
outlive the worker that sent them: a SIGKILLed worker's job is found again
under the same id by whoever loads the partition next.

Workers are SIGKILLed and restarted at random while objects land; in the
end every hour in BigQuery holds exactly the source's rows, `verify`
passes, the queue is empty, and the load records show that no partition was
ever loaded by two workers at once."""

import json
import os
import shutil
import tempfile
import unittest

import bq_standin
import gcs
import lf
import moto
import test_workers as tw

BUCKET = "app-logs"
QUEUE = "s3-events"
PROJECT = "logferry-test"
DATASET = "logs"
STAGING_BUCKET = "acme-staging"


class BigQueryWorkersOnPostgres(tw.WorkersBase):
    ledger_kind = tw.SharedPostgres

    def setUp(self):
        self.moto = moto.Moto(self)
        self.gcs = gcs.GcsEmulator(self)
        self.bq = bq_standin.BigQueryStandin(self, gcs_endpoint=self.gcs.endpoint, polls_until_done=2)
        self.ws = lf.Workspace(self)
        gcloud = tempfile.mkdtemp(prefix="gcloud-")
        self.addCleanup(shutil.rmtree, gcloud, True)
        env = {k: v for k, v in self.moto.env().items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
        env.update(self.gcs.env())
        env.update({"GOOGLE_OAUTH_ACCESS_TOKEN": "e2e-access-token", "CLOUDSDK_CONFIG": gcloud,
                    "GCE_METADATA_HOST": "127.0.0.1:1"})
        self.ws.env = env
        self.ledger = self.make_ledger()

    def test_three_workers_killed_at_random_load_every_row_once_into_bigquery(self):
        self.moto.make_bucket(BUCKET)
        queue_url = self.moto.make_queue(QUEUE)
        self.moto.notify(BUCKET, QUEUE)
        incoming = os.path.join(self.ws.root, "incoming")
        self.ws.gen(out=incoming, hours=6, rows_per_hour=3000, split_every=1)
        names = sorted(os.listdir(os.path.join(incoming, "logs")))
        table = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                     notifications=queue_url, staging="gs://%s/parts/" % STAGING_BUCKET,
                                     warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                     bigquery_endpoint=self.bq.endpoint, interval="500ms", sqs_wait="1s",
                                     sqs_visibility="10s")
        fleet = tw.Fleet(self, self.ws, self.ledger.configs(tw.WORKERS, [table], tw.TOP))
        os.makedirs(self.ws.source_dir)

        def arrive(step):
            batch = names[step * 3:step * 3 + 3]
            for name in batch:
                local = os.path.join(self.ws.source_dir, name)
                shutil.move(os.path.join(incoming, "logs", name), local)
                self.moto.aws("s3", "cp", "--quiet", local, "s3://%s/logs/%s" % (BUCKET, name))
            return step * 3 + 3 < len(names)

        kills = self.chaos(fleet, arrive)
        expected = lf.count_source(self.ws.source_dir)
        tw.wait_for(lambda: self.drained(expected.total), tw.DRAIN_SECONDS, "every row to load")
        tw.wait_for(lambda: len([w for w in self.status()["daemon"]["workers"] if w["state"] == "running"])
                    == tw.WORKERS, 60, "every worker to be running")
        fleet.stop_all()

        per_hour = {h.replace("-", "").replace("T", ""): n for h, n in expected.per_hour.items()}
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, "access"), per_hour)
        v = self.ws.verify()
        self.assertEqual(v.rc, 0, v)
        loads, loaders = self.assert_no_overlapping_loads(fleet)
        self.assertGreater(kills, 0)
        self.assertEqual(self.moto.queue_depth(queue_url), (0, 0))
        self.assertEqual(self.status()["daemon"]["workers"], [], "stopped cleanly: no worker runs, no lease is held")
        # Every job the stand-in accepted was a load of this table, named by the ledger.
        for r in self.bq.requests_for(method_id="bigquery.jobs.insert"):
            if r.status == 200:
                body = r.body if isinstance(r.body, dict) else json.loads(r.body or "{}")
                self.assertTrue(body["jobReference"]["jobId"].startswith("logferry_access_"), r)
        print("bigquery workers: %d kills, %d loads by %d workers" % (kills, loads, loaders))


if __name__ == "__main__":
    unittest.main()
