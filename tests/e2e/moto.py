"""A real moto_server (S3 + SQS) on 127.0.0.1 for end-to-end tests, driven
with the real `aws` CLI: a client nobody on this project wrote.

Under CI=true a missing moto_server or aws CLI is a failure, not a skip."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request

ACCOUNT = "123456789012"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_tools(testcase):
    missing = [t for t in ("moto_server", "aws") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            testcase.fail("missing on this machine: %s" % ", ".join(missing))
        raise unittest.SkipTest("missing: %s" % ", ".join(missing))


class Moto:
    """Starts moto_server; stop() (or the TestCase cleanup) kills it."""

    def __init__(self, testcase=None):
        if testcase is not None:
            require_tools(testcase)
        self.port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=1).read()
                break
            except Exception:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.1)
        self.config_dir = tempfile.mkdtemp(prefix="aws-config-")
        if testcase is not None:
            testcase.addCleanup(self.stop)

    def env(self):
        """Environment for logferry and the aws CLI: fixed test keys, no
        profiles or metadata lookups from the real machine."""
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("AWS_"):
                del e[k]
        e.update({
            "AWS_ACCESS_KEY_ID": "AKIDMOTOTEST",
            "AWS_SECRET_ACCESS_KEY": "moto-secret-key-never-logged",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.path.join(self.config_dir, "config"),
            "AWS_SHARED_CREDENTIALS_FILE": os.path.join(self.config_dir, "credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        })
        return e

    def aws(self, *args, check=True, endpoint=None, timeout=120):
        r = subprocess.run(["aws", "--endpoint-url", endpoint or self.endpoint, "--output", "json"] + list(args),
                           env=self.env(), capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("aws %s failed (%d): %s" % (" ".join(args), r.returncode, r.stderr[-2000:]))
        return json.loads(r.stdout) if r.stdout.strip() else None

    def make_bucket(self, bucket):
        self.aws("s3api", "create-bucket", "--bucket", bucket)

    def make_queue(self, name):
        return self.aws("sqs", "create-queue", "--queue-name", name)["QueueUrl"]

    def notify(self, bucket, queue_name, prefix=None):
        """Bucket notifications of ObjectCreated:* to the queue (None: off)."""
        config = {}
        if queue_name:
            rule = {"QueueArn": "arn:aws:sqs:us-east-1:%s:%s" % (ACCOUNT, queue_name), "Events": ["s3:ObjectCreated:*"]}
            if prefix:
                rule["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
            config = {"QueueConfigurations": [rule]}
        self.aws("s3api", "put-bucket-notification-configuration", "--bucket", bucket,
                 "--notification-configuration", json.dumps(config))

    def queue_depth(self, url):
        a = self.aws("sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names",
                     "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.config_dir, ignore_errors=True)
        try:
            os.unlink(self.log.name)
        except OSError:
            pass
