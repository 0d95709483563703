"""The Cloud Storage emulator from the npm package firebase-tools, on
127.0.0.1, for end-to-end tests (Python stdlib only).

gcs_emulator.js loads the emulator straight from node_modules (the firebase
CLI wants Java 21 and a downloaded jar); scripts/setup.sh installs it into
.deps/firebase-tools. What it does and does not emulate is listed in
../shared/ENVIRONMENT.md (section GCS): media, multipart and single-request
resumable uploads, listing with pages, ranged downloads with x-goog-hash work;
chunked resumable uploads, uploads over 130 MB and ifGenerationMatch do not.

    gcs = GcsEmulator(self)            # started; stopped in the TestCase cleanup
    gcs.upload("bucket", "a/b.gz", data)
    gcs.names("bucket", prefix="a/")   # ['a/b.gz']
    gcs.download("bucket", "a/b.gz")   # bytes

Under CI=true a missing node or emulator is a failure, not a skip.

Environment:
  LOGFERRY_FIREBASE_TOOLS  node_modules holding firebase-tools
                           (default: <source>/.deps/firebase-tools/node_modules)
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("LOGFERRY_SOURCE_DIR", os.path.dirname(os.path.dirname(HERE)))
MODULES = os.environ.get("LOGFERRY_FIREBASE_TOOLS") or os.path.join(SOURCE_DIR, ".deps", "firebase-tools",
                                                                     "node_modules")
SCRIPT = os.path.join(HERE, "gcs_emulator.js")

# The emulator's admin credential: requests carrying it bypass security rules
# (which are not loaded here: the rules engine is the part that needs Java).
ADMIN_AUTH = "Bearer owner"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tools():
    missing = []
    if shutil.which("node") is None:
        missing.append("node")
    if not os.path.isfile(os.path.join(MODULES, "firebase-tools", "lib", "emulator", "storage", "index.js")):
        missing.append("firebase-tools under %s (run scripts/setup.sh)" % MODULES)
    return missing


def require_tools(testcase=None):
    """Skips (or, under CI=true, fails) when node or the emulator is missing.
    Usable from setUpClass: without a testcase it raises AssertionError."""
    missing = missing_tools()
    if not missing:
        return
    message = "missing on this machine: %s" % ", ".join(missing)
    if os.environ.get("CI") == "true":
        if testcase is not None:
            testcase.fail(message)
        raise AssertionError(message)
    raise unittest.SkipTest(message)


class GcsError(Exception):
    def __init__(self, status, body):
        super().__init__("GCS emulator answered %d: %s" % (status, body[:500]))
        self.status, self.body = status, body


class GcsEmulator:
    """Starts the emulator; stop() (or the TestCase cleanup) ends it.

    Each instance gets its own TMPDIR: the emulator keeps blobs under
    os.tmpdir()/firebase/storage/blobs and deletes that folder when it stops,
    so with a shared one, the first emulator to stop would take the others'
    objects with it (test_gcs_emulator checks this)."""

    def __init__(self, testcase=None, project="logferry-test", start_timeout=30):
        require_tools(testcase)
        self.project = project
        self.port = free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.scratch = tempfile.mkdtemp(prefix="gcs-emulator-")
        self.log_path = os.path.join(self.scratch, "emulator.log")
        env = dict(os.environ)
        env.update({
            "TMPDIR": self.scratch,
            # firebase-tools reads its settings (and would write usage
            # consent) under here; keep it out of the real home.
            "XDG_CONFIG_HOME": os.path.join(self.scratch, "config"),
        })
        for k in ("IS_FIREBASE_CLI", "FIREBASE_CLI_EXPERIMENTS"):
            env.pop(k, None)
        self._log = open(self.log_path, "wb")
        # stdin stays open while we run: the script exits when it closes, so a
        # test runner killed with SIGKILL does not leave the emulator behind.
        self.proc = subprocess.Popen(
            ["node", SCRIPT, "--port", str(self.port), "--project", project, "--modules", MODULES],
            stdin=subprocess.PIPE, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        self.start_seconds = None
        t0 = time.monotonic()
        deadline = t0 + start_timeout
        ready = "ready %d" % self.port
        while True:
            if ready in self.log_tail():
                self.start_seconds = time.monotonic() - t0
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeError("the GCS emulator did not start:\n" + tail)
            time.sleep(0.05)
        if testcase is not None:
            testcase.addCleanup(self.stop)

    def log_tail(self, limit=4000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-limit:]
        except OSError:
            return ""

    def env(self):
        """Variables that point a GCS client at the emulator (the
        STORAGE_EMULATOR_HOST convention: a URL with scheme, host and port)."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    # -- HTTP --------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers, body bytes); an HTTP error status is returned, not raised."""
        h = {"Authorization": ADMIN_AUTH}
        h.update(headers or {})
        req = urllib.request.Request(self.endpoint + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def _ok(self, method, path, body=None, headers=None):
        status, h, data = self.request(method, path, body, headers)
        if status >= 300:
            raise GcsError(status, data.decode("utf-8", "replace"))
        return h, data

    @staticmethod
    def _object_path(bucket, name):
        return "/storage/v1/b/%s/o/%s" % (urllib.parse.quote(bucket, safe=""), urllib.parse.quote(name, safe=""))

    # -- helpers for tests -------------------------------------------------

    def reset(self):
        """Deletes every bucket and object."""
        self._ok("POST", "/internal/reset")

    def upload(self, bucket, name, data, content_type="application/octet-stream"):
        """Uploads one object (uploadType=media; the bucket appears on first
        upload); returns its metadata (generation, md5Hash, crc32c, size)."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        path = "/upload/storage/v1/b/%s/o?uploadType=media&name=%s" % (
            urllib.parse.quote(bucket, safe=""), urllib.parse.quote(name, safe=""))
        _, body = self._ok("POST", path, data, {"Content-Type": content_type})
        return json.loads(body)

    def list(self, bucket, prefix=None, page_size=1000, max_pages=1000):
        """Metadata of every object under `prefix`, following nextPageToken
        (bounded by max_pages). A bucket that does not exist lists as empty."""
        items, token = [], None
        for _ in range(max_pages):
            q = {"maxResults": str(page_size)}
            if prefix:
                q["prefix"] = prefix
            if token:
                q["pageToken"] = token
            status, _, body = self.request("GET", "/storage/v1/b/%s/o?%s" % (
                urllib.parse.quote(bucket, safe=""), urllib.parse.urlencode(q)))
            if status == 404:
                return []
            if status != 200:
                raise GcsError(status, body.decode("utf-8", "replace"))
            page = json.loads(body)
            items.extend(page.get("items", []))
            token = page.get("nextPageToken")
            if not token:
                return items
        raise AssertionError("listing gs://%s/%s did not end within %d pages" % (bucket, prefix or "", max_pages))

    def names(self, bucket, prefix=None):
        return sorted(o["name"] for o in self.list(bucket, prefix))

    def stat(self, bucket, name):
        """The object's metadata, or None if it does not exist."""
        status, _, body = self.request("GET", self._object_path(bucket, name))
        if status == 404:
            return None
        if status != 200:
            raise GcsError(status, body.decode("utf-8", "replace"))
        return json.loads(body)

    def download(self, bucket, name, byte_range=None):
        """The object's bytes (or a Range like 'bytes=0-9')."""
        headers = {"Range": byte_range} if byte_range else None
        _, data = self._ok("GET", self._object_path(bucket, name) + "?alt=media", headers=headers)
        return data

    def delete(self, bucket, name):
        self._ok("DELETE", self._object_path(bucket, name))

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        elif self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        if not self._log.closed:
            self._log.close()
        shutil.rmtree(self.scratch, ignore_errors=True)
