"""S3 as source and staging, with discovery by S3 event notifications through
SQS, against a real moto_server; the objects are written and the bucket
notification is set up by the real `aws` CLI.

Expected numbers come from reading the generated objects locally
(lf.count_source), never from logferry."""

import json
import os
import re
import time
import unittest
import urllib.parse

import faultproxy
import lf
import moto

BUCKET = "app-logs"
QUEUE = "s3-events"


def wait_for(predicate, timeout, what):
    """Polls predicate (bounded in time) until it returns a truthy value."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.25)


def counts_when_ready(ws):
    """The warehouse's hourly counts, or None before the first load made it."""
    try:
        return ws.warehouse_hour_counts()
    except AssertionError:
        return None


class S3Case(unittest.TestCase):
    def setUp(self):
        self.moto = moto.Moto(self)
        self.ws = lf.Workspace(self)
        self.ws.env = self.moto.env()
        self.moto.make_bucket(BUCKET)
        self.queue_url = self.moto.make_queue(QUEUE)
        self.moto.notify(BUCKET, QUEUE)

    def upload(self, local_dir, prefix="logs/"):
        self.moto.aws("s3", "cp", "--recursive", "--quiet", local_dir, "s3://%s/%s" % (BUCKET, prefix))

    def config(self, **overrides):
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=self.moto.endpoint,
                                 notifications=self.queue_url, **overrides)
        return self.ws.write_config(tables=[t], top={"workers": 2})

    def status(self):
        r = self.ws.cli("status", "--json")
        self.assertEqual(r.rc, 0, r)
        return json.loads(r.stdout)[0]

    def found_by(self):
        return dict(self.ws.ledger("SELECT key, found_by FROM objects WHERE table_name='access'"))


class EventDrivenDiscovery(S3Case):
    def test_events_drive_discovery_and_listing_catches_lost_ones(self):
        first = os.path.join(self.ws.root, "first")
        self.ws.gen(out=first, hours=6, rows_per_hour=1500)
        lost = os.path.join(self.ws.root, "lost")
        self.ws.gen(out=lost, hours=2, rows_per_hour=1000, start="2016-08-01T06", seed=7)
        self.config(reconcile_every="4s", interval="300ms", sqs_wait="1s")

        # Debug logging on: not even debug output may carry a secret.
        daemon = self.ws.start("run", "-v")
        # Configuring the notification queued an s3:TestEvent; once the daemon
        # deleted it, its first pass (including the startup listing) is over.
        wait_for(lambda: self.moto.queue_depth(self.queue_url) == (0, 0), 60, "the test event to be consumed")
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM objects"), 0)

        self.upload(os.path.join(first, "logs"))
        n_first = len(os.listdir(os.path.join(first, "logs")))
        wait_for(lambda: self.ws.ledger_scalar("SELECT count(*) FROM objects WHERE state='staged'") == n_first, 120,
                 "%d objects to be staged" % n_first)
        by = self.found_by()
        self.assertEqual(len(by), n_first)
        # Announced by events; a reconcile listing may have seen some first.
        self.assertTrue(all(v in ("event", "listing+event") for v in by.values()), by)
        self.assertGreater(sum(v == "event" for v in by.values()), 0, by)
        # Every message is deleted once its objects are staged.
        wait_for(lambda: self.moto.queue_depth(self.queue_url) == (0, 0), 60, "the queue to drain")

        # Events lost: notifications off while two more hours arrive.
        self.moto.notify(BUCKET, None)
        self.upload(os.path.join(lost, "logs"))
        n_lost = len(os.listdir(os.path.join(lost, "logs")))
        wait_for(lambda: self.ws.ledger_scalar("SELECT count(*) FROM objects WHERE state='staged'") == n_first + n_lost,
                 120, "the reconcile listing to find the objects whose events were lost")
        st = self.status()
        self.assertEqual(st["objects"]["found_only_by_listing"], n_lost, st)
        self.assertEqual(st["notifications"]["queue"], self.queue_url)

        expected = lf.count_source(os.path.join(first, "logs")).per_hour
        for h, n in lf.count_source(os.path.join(lost, "logs")).per_hour.items():
            expected[h] = expected.get(h, 0) + n
        wait_for(lambda: counts_when_ready(self.ws) == expected, 120, "the warehouse to hold every row")
        daemon.terminate()
        daemon.wait(timeout=60)
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        r = self.ws.cli("status")
        self.assertIn("found only by listing", r.stdout)
        # No secret in anything logferry printed.
        with open(os.path.join(self.ws.root, "run.log"), errors="replace") as f:
            self.assertNotIn("moto-secret-key-never-logged", f.read() + r.stdout)

    def test_unusable_message_is_recorded_and_left_for_the_dead_letter_queue(self):
        self.ws.gen(hours=1, rows_per_hour=500)
        self.upload(self.ws.source_dir)
        self.moto.aws("sqs", "send-message", "--queue-url", self.queue_url, "--message-body", "this is not an event")
        self.config(sqs_visibility="10s")
        r = self.ws.run_once()
        self.assertIn(r.rc, (0, 3), r)
        st = self.status()
        failing = st["notifications"]["failing"]
        self.assertEqual(len(failing), 1, st)
        self.assertIn("not JSON", failing[0]["error"])
        # Still on the queue (invisible for now), for its redrive policy.
        self.assertEqual(sum(self.moto.queue_depth(self.queue_url)), 1)
        self.assertEqual(self.ws.warehouse_hour_counts(), lf.count_source(self.ws.source_dir).per_hour)

    def test_message_whose_object_keeps_failing_is_recorded_and_kept(self):
        self.ws.gen(hours=2, rows_per_hour=500, split_every=0)
        names = sorted(os.listdir(self.ws.source_dir))
        bad = os.path.join(self.ws.source_dir, names[0])
        with open(bad, "rb") as f:
            data = f.read()
        with open(bad, "wb") as f:
            f.write(data[: len(data) // 2])  # a truncated gzip member: cannot be read
        self.config(retry_base="200ms", retry_max="1s", interval="200ms", sqs_wait="1s", sqs_visibility="10s")
        daemon = self.ws.start("run")
        wait_for(lambda: self.moto.queue_depth(self.queue_url) == (0, 0), 60, "the test event to be consumed")
        self.upload(self.ws.source_dir)

        def failing():
            st = self.status()
            return st["notifications"]["failing"] if st["notifications"]["failing"] else None

        rows = wait_for(failing, 90, "the notification of the failing object to be recorded")
        self.assertEqual(len(rows), 1, rows)
        self.assertIn(names[0], rows[0]["error"])
        self.assertIn("CORRUPTION", rows[0]["error"])
        # The good object's message was deleted; the failing one stays for the
        # queue's redrive policy.
        self.assertEqual(sum(self.moto.queue_depth(self.queue_url)), 1)
        daemon.terminate()
        daemon.wait(timeout=60)
        st = self.status()
        self.assertEqual(st["objects"]["failed"], 1)
        self.assertEqual(st["objects"]["staged"], len(names) - 1)


# Keys below a %{path} of any depth, not only at the source's root.
ANY_PATH_KEY_RE = re.compile(r"^(.*/)?\d{10}_\d+\.(gz|log|zst|txt)$")
# A %{path} with a space, a '+' and a non-ASCII character: S3 event
# notifications form-encode keys ('+' for a space, %2B for a '+').
ODD_DIR = "web 1+2 caf\u00e9"


class S3Staging(S3Case):
    def receive_all_events(self, expected):
        """Every message now on the queue, received and then made visible again
        (bounded); returns {key: [eventName, ...]}, keys decoded."""
        messages = []
        for _ in range(50):
            if len(messages) >= expected:
                break
            r = self.moto.aws("sqs", "receive-message", "--queue-url", self.queue_url, "--max-number-of-messages",
                              "10", "--visibility-timeout", "60", "--wait-time-seconds", "1")
            messages += (r or {}).get("Messages", [])
        self.assertEqual(len(messages), expected)
        for i in range(0, len(messages), 10):
            entries = [{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                       for j, m in enumerate(messages[i:i + 10])]
            self.moto.aws("sqs", "change-message-visibility-batch", "--queue-url", self.queue_url, "--entries",
                          json.dumps(entries))
        events = {}
        for m in messages:
            for record in json.loads(m["Body"]).get("Records", []):
                key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
                events.setdefault(key, []).append(record["eventName"])
        return events

    def test_s3_source_and_staging_exact_counts_and_duplicate_events(self):
        self.moto.make_bucket("staging")
        # Multipart uploads for anything over 64 KB: S3 then announces each
        # object twice (Put and CompleteMultipartUpload).
        with open(os.path.join(self.moto.config_dir, "config"), "w") as f:
            f.write("[default]\ns3 =\n  multipart_threshold = 64KB\n  multipart_chunksize = 5MB\n")
        self.ws.gen(hours=5, rows_per_hour=3000)
        names = sorted(os.listdir(self.ws.source_dir))
        # The largest object goes below an odd directory name, so it takes
        # the multipart path and its key the form-encoded one.
        biggest = max(names, key=lambda name: os.path.getsize(os.path.join(self.ws.source_dir, name)))
        self.assertGreater(os.path.getsize(os.path.join(self.ws.source_dir, biggest)), 64 * 1024)
        os.mkdir(os.path.join(self.ws.source_dir, ODD_DIR))
        os.rename(os.path.join(self.ws.source_dir, biggest), os.path.join(self.ws.source_dir, ODD_DIR, biggest))
        odd_key = ODD_DIR + "/" + biggest
        self.upload(self.ws.source_dir)
        n = len(names)
        sizes = {name: os.path.getsize(os.path.join(self.ws.source_dir, name)) for name in names if name != biggest}
        sizes[odd_key] = os.path.getsize(os.path.join(self.ws.source_dir, odd_key))
        multipart = sorted(k for k, size in sizes.items() if size > 64 * 1024)
        # The same object written again, unchanged: more events, same etag.
        some = sorted(k for k in sizes if k != odd_key)[0]
        self.moto.aws("s3", "cp", "--quiet", os.path.join(self.ws.source_dir, some), "s3://%s/logs/%s" % (BUCKET, some))
        # What moto delivered, before logferry sees it: two events for every
        # multipart object (so two events must make one ledger entry), the
        # odd key decoded to itself, and the s3:TestEvent.
        per_upload = {k: ["ObjectCreated:CompleteMultipartUpload", "ObjectCreated:Put"] if k in multipart
                      else ["ObjectCreated:Put"] for k in sizes}
        events = self.receive_all_events(1 + sum(len(v) for v in per_upload.values()) + len(per_upload[some]))
        self.assertEqual(sorted(events), sorted("logs/" + k for k in sizes))
        self.assertIn(odd_key, multipart)
        for k in sizes:
            self.assertEqual(sorted(events["logs/" + k]), sorted(per_upload[k] * (2 if k == some else 1)), k)
        self.config(staging="s3://staging/parts/")
        r = self.ws.run_once(expect_rc=0)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM objects"), n)
        # Announced by its events (received before the pass lists the source),
        # under its exact key.
        self.assertEqual(self.found_by().get(odd_key), "event", self.found_by())
        self.assertEqual(self.ws.warehouse_hour_counts(),
                         lf.count_source(self.ws.source_dir, key_re=ANY_PATH_KEY_RE).per_hour)
        etags = dict(self.ws.ledger("SELECT key, etag FROM objects"))
        for k in multipart:
            self.assertIn("-", etags[k])  # multipart ETags made it through
        listed = self.moto.aws("s3api", "list-objects-v2", "--bucket", "staging", "--prefix", "parts/access/")
        staged = sorted(o["Key"] for o in listed.get("Contents", []))
        self.assertEqual(staged, sorted("parts/" + k for (k,) in self.ws.ledger("SELECT key FROM parts")))
        self.assertEqual(self.moto.queue_depth(self.queue_url), (0, 0))
        # A second pass changes nothing.
        self.ws.run_once(expect_rc=0)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM loads"),
                         self.ws.ledger_scalar("SELECT count(DISTINCT partition_us) FROM parts"))
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        # A reload from S3 staging replaces one hour and keeps its count.
        before = self.ws.warehouse_hour_counts()
        r = self.ws.cli("reload", "--table", "access", "--from", "2016-08-01T02", "--to", "2016-08-01T03")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.ws.warehouse_hour_counts(), before)


class FaultInjection(S3Case):
    def test_resets_slowdowns_stalls_and_truncations_lose_and_duplicate_nothing(self):
        self.moto.make_bucket("staging")
        self.ws.gen(hours=6, rows_per_hour=2000)
        n = len(os.listdir(self.ws.source_dir))
        proxy = faultproxy.FaultProxy(self.moto.port, rate=0.2, max_faults=60, stall_seconds=1.0, seed=11)
        self.addCleanup(proxy.stop)
        queue_via_proxy = self.queue_url.replace(self.moto.endpoint, proxy.endpoint)
        self.assertNotEqual(queue_via_proxy, self.queue_url)
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, staging="s3://staging/parts/",
                                 endpoint=proxy.endpoint, notifications=queue_via_proxy, interval="300ms",
                                 sqs_wait="1s", sqs_visibility="10s", reconcile_every="5s")
        self.ws.write_config(tables=[t], top={"workers": 2})
        daemon = self.ws.start("run")
        self.upload(self.ws.source_dir)
        expected = lf.count_source(self.ws.source_dir).per_hour
        wait_for(lambda: counts_when_ready(self.ws) == expected, 240, "every row through the faults")
        wait_for(lambda: proxy.total_faults() >= 20, 120, "enough faults to have been injected")
        daemon.terminate()
        daemon.wait(timeout=60)
        self.assertEqual(self.ws.ledger_scalar("SELECT count(*) FROM objects WHERE state<>'superseded'"), n)
        self.assertGreaterEqual(sum(1 for k, v in proxy.faults.items() if v > 0), 4, proxy.faults)
        proxy.max_faults = 0
        r = self.ws.verify()
        self.assertEqual(r.rc, 0, r)
        print("faults injected: %s over %d requests" % (proxy.faults, proxy.requests))


class SlowStaging(S3Case):
    def test_visibility_is_extended_while_an_object_stages(self):
        self.ws.gen(hours=1, rows_per_hour=500, split_every=0)
        self.assertEqual(len(os.listdir(self.ws.source_dir)), 1)
        self.upload(self.ws.source_dir)
        # The one object's first ranged GET is held for 14 s: longer than the
        # 10 s visibility timeout the message was received with.
        proxy = faultproxy.FaultProxy(self.moto.port, rate=1.0, max_faults=1, stall_seconds=14, kinds=("stall",),
                                      match=lambda line: line.startswith(b"GET /%s/logs/" % BUCKET.encode()))
        self.addCleanup(proxy.stop)
        t = self.ws.table_config(source="s3://%s/logs/" % BUCKET, endpoint=proxy.endpoint,
                                 notifications=self.queue_url, sqs_visibility="10s", sqs_wait="1s")
        self.ws.write_config(tables=[t])
        run = self.ws.start("run", "--once")
        wait_for(lambda: proxy.faults["stall"] == 1, 30, "the stalled GET")
        time.sleep(11)
        self.assertIsNone(run.poll(), "staging should still be stalled")
        # Past the original timeout, the messages (the object's event and the
        # s3:TestEvent) are still in flight, not back on the queue.
        visible, in_flight = self.moto.queue_depth(self.queue_url)
        self.assertEqual(visible, 0)
        self.assertEqual(in_flight, 2)
        self.assertEqual(run.wait(timeout=60), 0)
        self.assertEqual(self.moto.queue_depth(self.queue_url), (0, 0))
        self.assertEqual(self.ws.warehouse_hour_counts(), lf.count_source(self.ws.source_dir).per_hour)
        r = self.ws.cli("check")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stdout, r"notifications .*s3-events.* OK")


if __name__ == "__main__":
    unittest.main()
