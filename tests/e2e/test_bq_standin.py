"""Tests of the BigQuery stand-in itself (bq_standin.py), with the GCS
emulator (gcs.py) holding the objects its load jobs read.

The first test drives it with Google's own `bq` CLI, so the stand-in's
answers are ones Google's client accepts and Google's client's requests pass
the stand-in's checks; the others call the REST API directly with the bodies
logferry's loader sends (src/warehouse/bigquery_warehouse.cc).

Under CI=true a missing bq, node or emulator is a failure, not a skip."""

import gzip
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import bq_standin
import gcs

PROJECT, DATASET, TABLE = "p", "ds", "access"
BUCKET = "staging"
HOUR0 = "2016080100"  # 2016-08-01T00 UTC
HOUR1 = "2016080101"
HOUR0_SECONDS = 1470009600  # 2016-08-01T00:00:00Z


def ndjson_gz(rows):
    return gzip.compress(("\n".join(json.dumps(r) for r in rows) + "\n").encode("utf-8"))


def rows_for(hour, n, start=0):
    """n rows in UTC hour `hour` of 2016-08-01."""
    return [{"_time": "2016-08-01T%02d:%02d:%02dZ" % (hour, (start + i) // 60 % 60, (start + i) % 60),
             "status": 200 + i % 3, "path": "/p/%d" % (start + i)} for i in range(n)]


SCHEMA = [{"name": "_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
          {"name": "status", "type": "INTEGER", "mode": "NULLABLE"},
          {"name": "path", "type": "STRING", "mode": "NULLABLE"}]


def load_job(job_id, uris, destination, write="WRITE_TRUNCATE", unit="HOUR", **extra):
    """The jobs.insert body logferry's loader sends for one partition."""
    load = {"sourceUris": uris,
            "destinationTable": {"projectId": PROJECT, "datasetId": DATASET, "tableId": destination},
            "writeDisposition": write, "createDisposition": "CREATE_IF_NEEDED",
            "sourceFormat": "NEWLINE_DELIMITED_JSON", "schema": {"fields": json.loads(json.dumps(SCHEMA))},
            "timePartitioning": {"type": unit, "field": "_time"},
            "schemaUpdateOptions": ["ALLOW_FIELD_ADDITION"], "ignoreUnknownValues": False, "maxBadRecords": 0}
    load.update(extra)
    return {"jobReference": {"projectId": PROJECT, "jobId": job_id, "location": "US"},
            "configuration": {"load": load}}


def count_sql(unit="HOUR"):
    return "SELECT TIMESTAMP_TRUNC(_time, %s) AS p, COUNT(*) AS n FROM `%s.%s.%s` GROUP BY p" % (
        unit, PROJECT, DATASET, TABLE)


class StandinTestCase(unittest.TestCase):
    def setUp(self):
        self.gcs = gcs.GcsEmulator(self)
        self.bq = bq_standin.BigQueryStandin(self, gcs_endpoint=self.gcs.endpoint)

    def put(self, name, rows):
        self.gcs.upload(BUCKET, name, ndjson_gz(rows))
        return "gs://%s/%s" % (BUCKET, name)

    def make_dataset_and_table(self, unit="HOUR"):
        status, body = self.bq.api("POST", "projects/%s/datasets" % PROJECT,
                                   {"datasetReference": {"projectId": PROJECT, "datasetId": DATASET},
                                    "location": "US"})
        self.assertEqual(status, 200, body)
        status, body = self.bq.api("POST", "projects/%s/datasets/%s/tables" % (PROJECT, DATASET),
                                   {"tableReference": {"projectId": PROJECT, "datasetId": DATASET, "tableId": TABLE},
                                    "schema": {"fields": SCHEMA},
                                    "timePartitioning": {"type": unit, "field": "_time"}})
        self.assertEqual(status, 200, body)

    def run_job(self, body, expect_error=False, max_polls=10):
        """Inserts the job and polls jobs.get until DONE (bounded); returns
        the job, which must have failed if expect_error, else succeeded."""
        status, job = self.bq.api("POST", "projects/%s/jobs" % PROJECT, body)
        self.assertEqual(status, 200, job)
        job_id = job["jobReference"]["jobId"]
        for _ in range(max_polls):
            if job["status"]["state"] == "DONE":
                self.assertEqual("errorResult" in job["status"], expect_error, job["status"])
                return job
            status, job = self.bq.api("GET", "projects/%s/jobs/%s" % (PROJECT, job_id), query={"location": "US"})
            self.assertEqual(status, 200, job)
        self.fail("job %s not DONE after %d polls" % (job_id, max_polls))

    def count_query(self, sql=None, **query):
        """jobs.query + getQueryResults (bounded) -> {partition start seconds: rows}."""
        status, r = self.bq.api("POST", "projects/%s/queries" % PROJECT,
                                {"query": sql or count_sql(), "useLegacySql": False, "location": "US",
                                 "timeoutMs": 10000})
        self.assertEqual(status, 200, r)
        for _ in range(10):
            if r["jobComplete"]:
                break
            status, r = self.bq.api("GET", "projects/%s/queries/%s" % (PROJECT, r["jobReference"]["jobId"]),
                                    query=dict(location="US", **query))
            self.assertEqual(status, 200, r)
        self.assertTrue(r["jobComplete"], r)
        self.assertEqual([f["type"] for f in r["schema"]["fields"]], ["TIMESTAMP", "INTEGER"])
        return r


@unittest.skipUnless(shutil.which("bq") or os.environ.get("CI") == "true", "bq (google-cloud-sdk) is not installed")
class BqCliTest(StandinTestCase):
    """(a) Google's `bq` CLI against the stand-in."""

    def setUp(self):
        if shutil.which("bq") is None:
            self.fail("missing on this machine: bq (google-cloud-sdk)")
        super().setUp()
        self.config = tempfile.mkdtemp(prefix="bq-config-")
        self.addCleanup(shutil.rmtree, self.config, True)
        self.calls = []

    def bq_cli(self, *args, discovery_file=True, expect_rc=0):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("CLOUDSDK_", "GOOGLE_")):
                del env[k]
        env.update({"CLOUDSDK_CONFIG": self.config, "CLOUDSDK_AUTH_ACCESS_TOKEN": "test-token",
                    "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"})
        cmd = ["bq", "--api", self.bq.endpoint, "--project_id", PROJECT,
               "--bigqueryrc", os.path.join(self.config, "bigqueryrc"), "--format", "json"]
        if discovery_file:
            cmd.append("--discovery_file=" + bq_standin.DISCOVERY_FILE)
        t0 = time.monotonic()
        r = subprocess.run(cmd + list(args), env=env, capture_output=True, text=True, timeout=120)
        self.calls.append((args[0], time.monotonic() - t0))
        if (r.returncode == 0) != (expect_rc == 0):
            self.fail("bq %s: rc=%d\nstdout: %s\nstderr: %s" % (" ".join(args), r.returncode, r.stdout[-3000:],
                                                                r.stderr[-3000:]))
        return r

    def test_bq_cli_dataset_partitioned_table_load_show_query(self):
        uris = [self.put("access/dt=2016-08-01/hr=00/a.ndjson.gz", rows_for(0, 3)),
                self.put("access/dt=2016-08-01/hr=00/b.ndjson.gz", rows_for(0, 2, start=100))]
        schema_file = os.path.join(self.config, "schema.json")
        with open(schema_file, "w") as f:
            json.dump(SCHEMA, f)

        self.bq_cli("mk", "--dataset", "%s:%s" % (PROJECT, DATASET))
        self.bq_cli("mk", "--table", "--time_partitioning_type=HOUR", "--time_partitioning_field=_time",
                    "--schema", schema_file, "%s:%s.%s" % (PROJECT, DATASET, TABLE))
        self.bq_cli("load", "--replace", "--source_format=NEWLINE_DELIMITED_JSON",
                    "%s:%s.%s$%s" % (PROJECT, DATASET, TABLE, HOUR0), ",".join(uris))
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 5})
        load = self.bq.requests_for("bigquery.jobs.insert")[0].body["configuration"]["load"]
        self.assertEqual(load["writeDisposition"], "WRITE_TRUNCATE")
        self.assertEqual(load["destinationTable"]["tableId"], "%s$%s" % (TABLE, HOUR0))

        # Without --discovery_file: bq fetches the document from the stand-in.
        shown = json.loads(self.bq_cli("show", "%s:%s.%s" % (PROJECT, DATASET, TABLE), discovery_file=False).stdout)
        self.assertEqual(shown["numRows"], "5")
        self.assertEqual(shown["timePartitioning"], {"type": "HOUR", "field": "_time"})
        self.assertEqual([f["name"] for f in shown["schema"]["fields"]], ["_time", "status", "path"])

        out = self.bq_cli("query", "--nouse_legacy_sql", count_sql()).stdout
        self.assertEqual(json.loads(out), [{"p": "2016-08-01 00:00:00", "n": "5"}])

        # An error in Google's shape is shown by bq as the message, and a
        # wildcard is refused before anything is loaded.
        r = self.bq_cli("load", "--replace", "--source_format=NEWLINE_DELIMITED_JSON",
                        "%s:%s.%s$%s" % (PROJECT, DATASET, TABLE, HOUR0), "gs://%s/access/*" % BUCKET, expect_rc=1)
        self.assertIn("wildcard source URI", r.stdout + r.stderr)
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 5})

        # Every request Google's client sent passed the discovery checks: the
        # only errors are the existence probes of `mk` and the wildcard.
        errors = [(r.method_id, r.status) for r in self.bq.requests if r.status >= 400]
        self.assertEqual(errors, [("bigquery.datasets.get", 404), ("bigquery.tables.get", 404),
                                  ("bigquery.jobs.insert", 400)])
        calls = ", ".join("%s %.1fs" % c for c in self.calls)
        print("\nbq calls: %s" % calls)


class RequestCheckTest(StandinTestCase):
    """(b) Bodies and query parameters are checked against the discovery document."""

    def assert_invalid(self, status, body, *needles, location=None):
        self.assertEqual(status, 400, body)
        err = body["error"]
        self.assertEqual(err["code"], 400)
        self.assertEqual(err["status"], "INVALID_ARGUMENT")
        self.assertEqual(err["errors"][0]["reason"], "invalid")
        for n in needles:
            self.assertIn(n, err["message"])
        if location:
            self.assertEqual(err["errors"][0]["location"], location)

    def test_job_labels_follow_the_discovery_documents_rules(self):
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 1))
        jobs = "projects/%s/jobs" % PROJECT
        for labels, where in (({"Logferry_kind": "append"}, "configuration.labels.Logferry_kind"),
                              ({"1kind": "append"}, "configuration.labels.1kind"),
                              ({"kind": "Append"}, "configuration.labels.kind"),
                              ({"kind": "x" * 64}, "configuration.labels.kind"),
                              ({"kind": "a.b"}, "configuration.labels.kind")):
            body = load_job("jl", [uri], TABLE + "$" + HOUR0, write="WRITE_APPEND")
            body["configuration"]["labels"] = labels
            self.assert_invalid(*self.bq.api("POST", jobs, body), "Label", location=where)
        body = load_job("jl", [uri], TABLE + "$" + HOUR0, write="WRITE_APPEND")
        body["configuration"]["labels"] = {"logferry_kind": "append", "logferry_generation": "3", "empty": "",
                                           "ключ": "значение"}
        job = self.run_job(body)
        self.assertEqual(job["configuration"]["labels"]["logferry_kind"], "append")

    def test_unknown_fields_and_wrong_types_are_rejected_naming_the_field(self):
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 1))
        jobs = "projects/%s/jobs" % PROJECT

        body = load_job("j1", [uri], TABLE + "$" + HOUR0)
        body["configuration"]["load"]["sourceUriz"] = [uri]
        self.assert_invalid(*self.bq.api("POST", jobs, body), 'Unknown name "sourceUriz"', "'configuration.load'",
                            location="configuration.load.sourceUriz")

        body = load_job("j1", [uri], TABLE + "$" + HOUR0, maxBadRecords="none")
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.maxBadRecords", "TYPE_INT32",
                            location="configuration.load.maxBadRecords")

        body = load_job("j1", uri, TABLE + "$" + HOUR0)  # a string, not a list
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.sourceUris",
                            location="configuration.load.sourceUris")

        body = load_job("j1", [uri], TABLE + "$" + HOUR0, ignoreUnknownValues="false")
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.ignoreUnknownValues", "TYPE_BOOL")

        body = load_job("j1", [uri], TABLE + "$" + HOUR0)
        body["configuration"]["load"]["schema"]["fields"][1]["mdoe"] = "NULLABLE"
        self.assert_invalid(*self.bq.api("POST", jobs, body), 'Unknown name "mdoe"',
                            "'configuration.load.schema.fields[1]'",
                            location="configuration.load.schema.fields[1].mdoe")

        # Values the document lists only in its descriptions.
        self.assert_invalid(*self.bq.api("POST", jobs, load_job("j1", [uri], TABLE, write="WRITE_SOMETIMES")),
                            "configuration.load.writeDisposition", "WRITE_TRUNCATE",
                            location="configuration.load.writeDisposition")
        self.assert_invalid(*self.bq.api("POST", jobs, load_job("j1", [uri], TABLE, unit="WEEK")),
                            "configuration.load.timePartitioning.type")
        body = load_job("j1", [uri], TABLE + "$" + HOUR0, schemaUpdateOptions=["ALLOW_FIELD_ADDITON"])
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.schemaUpdateOptions[0]",
                            location="configuration.load.schemaUpdateOptions[0]")
        body = load_job("j1", [uri], TABLE, sourceFormat="NDJSON")
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.sourceFormat")
        # A formal enum of the document.
        body = load_job("j1", [uri], TABLE, columnNameCharacterMap="V9")
        self.assert_invalid(*self.bq.api("POST", jobs, body), "configuration.load.columnNameCharacterMap", "V2")

        # Top level of another method's request schema (Table).
        status, body = self.bq.api("POST", "projects/%s/datasets/%s/tables" % (PROJECT, DATASET),
                                   {"tableReference": {"projectId": PROJECT, "datasetId": DATASET, "tableId": "t2"},
                                    "partitioning": {"type": "HOUR"}})
        self.assert_invalid(status, body, 'Unknown name "partitioning": Cannot find field.', location="partitioning")

        # Query parameters too.
        status, body = self.bq.api("GET", "projects/%s/jobs/j1" % PROJECT, query={"locaton": "US"})
        self.assert_invalid(status, body, 'Unknown name "locaton"', "Cannot bind query parameter")

        # Nothing was created by the rejected requests.
        self.assertIsNone(self.bq.job(PROJECT, "j1"))
        self.assertIsNone(self.bq.table(PROJECT, DATASET, "t2"))
        # The body the loader sends passes.
        job = self.run_job(load_job("j1", [uri], TABLE + "$" + HOUR0))
        self.assertNotIn("errorResult", job["status"], job)

    def test_missing_credentials_are_refused(self):
        status, body = self.bq.api("GET", "projects/%s/datasets/%s" % (PROJECT, DATASET), auth=None)
        self.assertEqual(status, 401, body)
        self.assertEqual(body["error"]["status"], "UNAUTHENTICATED")


class JobIdTest(StandinTestCase):
    """(c) A job id is used once: the second insert is 409 duplicate."""

    def test_duplicate_job_id_is_409_and_the_job_runs_once(self):
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 4))
        body = load_job("logferry_access_2016080100_g1", [uri], TABLE + "$" + HOUR0)
        job = self.run_job(body)
        self.assertEqual(job["statistics"]["load"]["outputRows"], "4")

        status, err = self.bq.api("POST", "projects/%s/jobs" % PROJECT, body)
        self.assertEqual(status, 409, err)
        self.assertEqual(err["error"]["errors"][0]["reason"], "duplicate")
        self.assertEqual(err["error"]["status"], "ALREADY_EXISTS")
        self.assertIn("Already Exists: Job p:US.logferry_access_2016080100_g1", err["error"]["message"])
        status, again = self.bq.api("GET", "projects/%s/jobs/logferry_access_2016080100_g1" % PROJECT,
                                    query={"location": "US"})
        self.assertEqual((status, again["status"]), (200, {"state": "DONE"}))
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 4})
        # Another location is another job namespace as far as jobs.get goes.
        status, _ = self.bq.api("GET", "projects/%s/jobs/logferry_access_2016080100_g1" % PROJECT,
                                query={"location": "EU"})
        self.assertEqual(status, 404)

    def test_lost_insert_response_then_409_then_get(self):
        """The insert takes effect but its answer is lost (503): the retry's
        409 leads to jobs.get, and the partition is loaded once."""
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 4))
        body = load_job("logferry_access_2016080100_g2", [uri], TABLE + "$" + HOUR0)
        self.bq.fail_next_requests(1, code=503, method="POST", path_contains="/jobs", after_effect=True)
        status, err = self.bq.api("POST", "projects/%s/jobs" % PROJECT, body)
        self.assertEqual(status, 503, err)
        self.assertEqual(err["error"]["status"], "UNAVAILABLE")
        status, _ = self.bq.api("POST", "projects/%s/jobs" % PROJECT, body)
        self.assertEqual(status, 409)
        states = []
        for _ in range(3):
            status, job = self.bq.api("GET", "projects/%s/jobs/logferry_access_2016080100_g2" % PROJECT,
                                      query={"location": "US"})
            states.append(job["status"]["state"])
        self.assertEqual(states, ["RUNNING", "DONE", "DONE"])
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 4})


class PartitionTest(StandinTestCase):
    """(d) WRITE_TRUNCATE with a decorator replaces exactly that partition."""

    def test_write_truncate_replaces_only_the_decorated_partition(self):
        self.make_dataset_and_table()
        h0 = self.put("access/dt=2016-08-01/hr=00/a.ndjson.gz", rows_for(0, 5))
        h1 = self.put("access/dt=2016-08-01/hr=01/a.ndjson.gz", rows_for(1, 3))
        h0_again = self.put("access/dt=2016-08-01/hr=00/b.ndjson.gz", rows_for(0, 2, start=500))
        self.run_job(load_job("l1", [h0], TABLE + "$" + HOUR0))
        self.run_job(load_job("l2", [h1], TABLE + "$" + HOUR1))
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 5, HOUR1: 3})

        job = self.run_job(load_job("l3", [h0_again], TABLE + "$" + HOUR0))
        self.assertEqual(job["statistics"]["load"], {"inputFiles": "1", "inputFileBytes": job["statistics"]["load"][
            "inputFileBytes"], "outputRows": "2", "outputBytes": job["statistics"]["load"]["outputBytes"],
            "badRecords": "0"})
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 2, HOUR1: 3})
        self.assertEqual(sorted(r["path"] for r in self.bq.rows(PROJECT, DATASET, TABLE, HOUR0)), ["/p/500", "/p/501"])

        # WRITE_APPEND adds; the count query sees what is stored.
        self.run_job(load_job("l4", [h1], TABLE + "$" + HOUR1, write="WRITE_APPEND"))
        r = self.count_query()
        self.assertEqual([[c["v"] for c in row["f"]] for row in r["rows"]],
                         [["1.4700096E9", "2"], ["1.4700132E9", "6"]])

    def test_rows_outside_the_decorated_partition_fail_the_job_naming_the_file(self):
        self.make_dataset_and_table()
        good = self.put("access/dt=2016-08-01/hr=00/a.ndjson.gz", rows_for(0, 5))
        stray = self.put("access/dt=2016-08-01/hr=00/stray.ndjson.gz", rows_for(0, 1) + rows_for(1, 1))
        self.run_job(load_job("l1", [good], TABLE + "$" + HOUR0))
        job = self.run_job(load_job("l2", [good, stray], TABLE + "$" + HOUR0), expect_error=True)
        err = job["status"]["errorResult"]
        self.assertEqual(err["reason"], "invalid")
        self.assertIn("destination partition %s" % HOUR0, err["message"])
        self.assertIn(stray, err["message"])
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 5})  # unchanged

    def test_bad_records_name_the_file_and_respect_max_bad_records(self):
        self.make_dataset_and_table()
        rows = rows_for(0, 3)
        rows[1]["unexpected"] = 1
        uri = self.put("bad.ndjson.gz", rows)
        job = self.run_job(load_job("l1", [uri], TABLE + "$" + HOUR0), expect_error=True)
        self.assertEqual(job["status"]["errorResult"]["reason"], "invalid")
        self.assertIn("No such field: unexpected.", json.dumps(job["status"]["errors"]))
        self.assertIn(uri, job["status"]["errorResult"]["message"])
        self.assertIsNone(self.bq.partition_counts(PROJECT, DATASET, TABLE).get(HOUR0))
        job = self.run_job(load_job("l2", [uri], TABLE + "$" + HOUR0, maxBadRecords=1))
        self.assertEqual((job["statistics"]["load"]["outputRows"], job["statistics"]["load"]["badRecords"]),
                         ("2", "1"))

    def test_copy_from_a_scratch_table_replaces_the_partition(self):
        self.make_dataset_and_table()
        self.run_job(load_job("l0", [self.put("old.ndjson.gz", rows_for(0, 7))], TABLE + "$" + HOUR0))
        parts = [self.put("p%d.ndjson.gz" % i, rows_for(0, 2, start=10 * i)) for i in range(3)]
        scratch = TABLE + "__lf_scratch_" + HOUR0
        # BigQuery refuses schemaUpdateOptions with WRITE_TRUNCATE of a whole
        # table (JobConfigurationLoad.schemaUpdateOptions' description).
        job = self.run_job(load_job("l1_b0", parts[:2], scratch), expect_error=True)
        self.assertIn("Schema update options should only be specified with WRITE_APPEND disposition, or with "
                      "WRITE_TRUNCATE disposition on a table partition.", job["status"]["errorResult"]["message"])
        self.run_job(load_job("l1_b0_", parts[:2], scratch, schemaUpdateOptions=None))
        self.run_job(load_job("l1_b1", parts[2:], scratch, write="WRITE_APPEND"))
        copy = {"jobReference": {"projectId": PROJECT, "jobId": "l1_copy", "location": "US"},
                "configuration": {"copy": {
                    "sourceTable": {"projectId": PROJECT, "datasetId": DATASET, "tableId": scratch},
                    "destinationTable": {"projectId": PROJECT, "datasetId": DATASET, "tableId": TABLE + "$" + HOUR0},
                    "writeDisposition": "WRITE_TRUNCATE", "createDisposition": "CREATE_NEVER"}}}
        job = self.run_job(copy)
        self.assertEqual(job["statistics"]["copy"]["copiedRows"], "6")
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), {HOUR0: 6})
        status, _ = self.bq.api("DELETE", "projects/%s/datasets/%s/tables/%s" % (PROJECT, DATASET, scratch))
        self.assertEqual(status, 204)


class JobLifecycleTest(StandinTestCase):
    def test_states_progress_across_polls(self):
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 1))
        status, job = self.bq.api("POST", "projects/%s/jobs" % PROJECT, load_job("j1", [uri], TABLE + "$" + HOUR0))
        states = [job["status"]["state"]]
        for _ in range(3):
            states.append(self.bq.api("GET", "projects/%s/jobs/j1" % PROJECT)[1]["status"]["state"])
        self.assertEqual(states, ["PENDING", "RUNNING", "DONE", "DONE"])
        self.bq.polls_until_done = 0
        status, job = self.bq.api("POST", "projects/%s/jobs" % PROJECT, load_job("j2", [uri], TABLE + "$" + HOUR0))
        self.assertEqual(job["status"]["state"], "DONE")

    def test_injected_job_failure_and_5xx(self):
        self.make_dataset_and_table()
        uri = self.put("a.ndjson.gz", rows_for(0, 3))
        self.bq.fail_next_jobs(1, reason="backendError", message="injected", job_type="LOAD")
        job = self.run_job(load_job("j1", [uri], TABLE + "$" + HOUR0), expect_error=True)
        self.assertEqual(job["status"]["errorResult"], {"reason": "backendError", "message": "injected"})
        self.assertEqual(self.bq.table(PROJECT, DATASET, TABLE).num_rows(), 0)

        self.bq.fail_next_requests(2, code=500, path_contains="/jobs")
        for _ in range(2):
            status, err = self.bq.api("POST", "projects/%s/jobs" % PROJECT, load_job("j2", [uri], TABLE + "$" + HOUR0))
            self.assertEqual((status, err["error"]["errors"][0]["reason"]), (500, "backendError"))
        self.assertIsNone(self.bq.job(PROJECT, "j2"))
        job = self.run_job(load_job("j2", [uri], TABLE + "$" + HOUR0))
        self.assertEqual(job["statistics"]["load"]["outputRows"], "3")

    def test_count_query_paging_int64_timestamps_and_refusals(self):
        self.make_dataset_and_table(unit="HOUR")
        for h in range(3):
            self.run_job(load_job("l%d" % h, [self.put("h%d.ndjson.gz" % h, rows_for(h, h + 1))],
                                  TABLE + "$20160801%02d" % h))
        r = self.count_query(maxResults="2", **{"formatOptions.useInt64Timestamp": "true"})
        self.assertEqual(r["totalRows"], "3")
        self.assertEqual([[c["v"] for c in row["f"]] for row in r["rows"]],
                         [[str(HOUR0_SECONDS * 10**6), "1"], [str((HOUR0_SECONDS + 3600) * 10**6), "2"]])
        status, page = self.bq.api("GET", "projects/%s/queries/%s" % (PROJECT, r["jobReference"]["jobId"]),
                                   query={"location": "US", "pageToken": r["pageToken"]})
        self.assertEqual([[c["v"] for c in row["f"]] for row in page["rows"]], [["1.4700168E9", "3"]])
        r = self.count_query(count_sql("DAY"))
        self.assertEqual([[c["v"] for c in row["f"]] for row in r["rows"]], [["1.4700096E9", "6"]])

        # Legacy SQL (the API's default) and any other statement are refused.
        self.bq.polls_until_done = 0
        status, err = self.bq.api("POST", "projects/%s/queries" % PROJECT, {"query": count_sql()})
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "invalidQuery"))
        self.assertIn("useLegacySql", err["error"]["message"])
        status, err = self.bq.api("POST", "projects/%s/queries" % PROJECT,
                                  {"query": "SELECT COUNT(*) FROM `p.ds.access`", "useLegacySql": False})
        self.assertEqual((status, err["error"]["errors"][0]["reason"]), (400, "invalidQuery"))
        self.assertIn("TIMESTAMP_TRUNC", err["error"]["message"])

    def test_tables_patch_adds_fields_and_never_drops_them(self):
        self.make_dataset_and_table()
        path = "projects/%s/datasets/%s/tables/%s" % (PROJECT, DATASET, TABLE)
        status, t = self.bq.api("PATCH", path, {"schema": {"fields": SCHEMA + [{"name": "ua", "type": "STRING"}]}})
        self.assertEqual(status, 200, t)
        self.assertEqual([f["name"] for f in t["schema"]["fields"]], ["_time", "status", "path", "ua"])
        status, err = self.bq.api("PATCH", path, {"schema": {"fields": SCHEMA}})
        self.assertEqual(status, 400, err)
        self.assertIn("Field ua is missing in new schema", err["error"]["message"])
        status, err = self.bq.api("PATCH", path, {"schema": {"fields": [dict(SCHEMA[0]), {
            "name": "status", "type": "STRING"}, SCHEMA[2], {"name": "ua", "type": "STRING"}]}})
        self.assertEqual(status, 400, err)
        self.assertIn("changed type", err["error"]["message"])


def merge_script(ranges, columns=("_time", "status", "path"), scratch="access_scratch", select=None):
    """The transaction logferry sends for a merged load (bigquery_warehouse.cc)."""
    cols = ", ".join("`%s`" % c for c in columns)
    where = " OR ".join("(_time >= TIMESTAMP('%s') AND _time < TIMESTAMP('%s'))" % r for r in ranges)
    return ("BEGIN TRANSACTION;\nDELETE FROM `{p}.{d}.{t}` WHERE {w};\nINSERT INTO `{p}.{d}.{t}` ({c}) SELECT {s} "
            "FROM `{p}.{d}.{x}`;\nCOMMIT TRANSACTION;").format(p=PROJECT, d=DATASET, t=TABLE, w=where, c=cols,
                                                              s=select or cols, x=scratch)


def query_job(job_id, sql):
    return {"jobReference": {"projectId": PROJECT, "jobId": job_id, "location": "US"},
            "configuration": {"query": {"query": sql, "useLegacySql": False}}}


class MergeScriptTest(StandinTestCase):
    """The merged load's transaction: DELETE periods, INSERT a scratch table."""

    H1 = ("2016-08-01T01:00:00Z", "2016-08-01T02:00:00Z")
    H2 = ("2016-08-01T02:00:00Z", "2016-08-01T03:00:00Z")

    def scratch(self, rows, fields=None, name="access_scratch"):
        status, body = self.bq.api("POST", "projects/%s/datasets/%s/tables" % (PROJECT, DATASET),
                                   {"tableReference": {"projectId": PROJECT, "datasetId": DATASET, "tableId": name},
                                    "schema": {"fields": fields or SCHEMA},
                                    "timePartitioning": {"type": "HOUR", "field": "_time"},
                                    "expirationTime": str(int(time.time() * 1000) + 3600_000)})
        self.assertEqual(status, 200, body)
        self.assertIn("expirationTime", body)
        job = load_job(name + "_b0", [self.put(name + ".ndjson.gz", rows)], name, schemaUpdateOptions=None,
                       createDisposition="CREATE_NEVER")
        if fields:
            job["configuration"]["load"]["schema"]["fields"] = fields
        self.run_job(job)

    def setUp(self):
        super().setUp()
        self.make_dataset_and_table()
        for h in range(4):
            self.run_job(load_job("l%d" % h, [self.put("h%d.ndjson.gz" % h, rows_for(h, 3))],
                                  TABLE + "$20160801%02d" % h))

    def test_the_periods_are_replaced_by_the_scratch_rows_at_once(self):
        self.scratch(rows_for(1, 5, start=100) + rows_for(2, 1, start=200))
        job = self.run_job(query_job("m_dml", merge_script([self.H1, self.H2])))
        self.assertEqual(job["statistics"]["query"]["numDmlAffectedRows"], str(6 + 6))
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE),
                         {"2016080100": 3, "2016080101": 5, "2016080102": 1, "2016080103": 3})
        self.assertEqual(sorted(r["path"] for r in self.bq.rows(PROJECT, DATASET, TABLE, "2016080102")), ["/p/200"])
        self.assertEqual([j.id for j in self.bq.merge_scripts()], ["m_dml"])
        # An emptied period: its range deleted, nothing inserted for it.
        self.scratch(rows_for(1, 2), name="other_scratch")
        self.run_job(query_job("m2_dml", merge_script([self.H1, self.H2], scratch="other_scratch")))
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE),
                         {"2016080100": 3, "2016080101": 2, "2016080103": 3})

    def assert_refused(self, sql, needle, reason="invalidQuery"):
        before = self.bq.partition_counts(PROJECT, DATASET, TABLE)
        job = self.run_job(query_job("bad_%d" % len(self.bq.jobs), sql), expect_error=True)
        self.assertEqual(job["status"]["errorResult"]["reason"], reason, job["status"])
        self.assertIn(needle, job["status"]["errorResult"]["message"])
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, TABLE), before, "all or nothing")

    def test_columns_must_exist_on_both_sides_with_the_same_types(self):
        self.scratch(rows_for(1, 2))
        self.assert_refused(merge_script([self.H1], columns=("_time", "status", "path", "ua")),
                            "Column ua is not present in table")
        self.assert_refused(merge_script([self.H1], columns=("_time", "status")).replace(
            "INSERT INTO `p.ds.access` (`_time`, `status`)", "INSERT INTO `p.ds.access`"), "must list its columns")
        self.assert_refused(merge_script([self.H1], select="`_time`, `path`, `status`"),
                            "must name the same columns in order")
        self.assert_refused(merge_script([self.H1], columns=("status", "path")),
                            "must insert the partitioning column _time")
        self.assert_refused(merge_script([self.H1]).replace("(_time >=", "(status >=", 1), "must filter _time")
        wide = SCHEMA + [{"name": "ua", "type": "STRING", "mode": "NULLABLE"}]
        status, _ = self.bq.api("PATCH", "projects/%s/datasets/%s/tables/%s" % (PROJECT, DATASET, TABLE),
                                {"schema": {"fields": wide}})
        self.assertEqual(status, 200)
        self.assert_refused(merge_script([self.H1], columns=("_time", "status", "path", "ua")),
                            "Unrecognized name: ua")
        self.scratch([dict(r, status=str(r["status"])) for r in rows_for(1, 2)], name="typed_scratch",
                     fields=[SCHEMA[0], {"name": "status", "type": "STRING", "mode": "NULLABLE"}, SCHEMA[2]])
        self.assert_refused(merge_script([self.H1], scratch="typed_scratch"),
                            "Query column status has type NULLABLE STRING which cannot be inserted")

    def test_rows_that_a_reload_would_not_replace_are_refused(self):
        self.scratch(rows_for(1, 2) + [{"_time": None, "status": 1, "path": "/null"}])
        self.assert_refused(merge_script([self.H1]), "has NULL _time")
        self.scratch(rows_for(1, 2) + rows_for(3, 1), name="wide_scratch")
        self.assert_refused(merge_script([self.H1], scratch="wide_scratch"), "outside the periods the script deletes")
        self.assert_refused(merge_script([self.H1], scratch="missing_scratch"), "Not found: Table", "notFound")


if __name__ == "__main__":
    unittest.main()
