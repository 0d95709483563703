"""`credentials = "path"` in a [[table]]: a service-account key file, signed
into a JWT (RS256) and exchanged at the key's token_uri, is what authorizes
the GCS staging store and the BigQuery loads, with no other Google
credentials in the environment.

The token endpoint here is a LOCAL STAND-IN that follows Google's documented
JWT bearer flow (RFC 7523: grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer);
it checks the assertion's RS256 signature with the key's public half (through
the openssl command line) and its claims. Staging goes to the Cloud Storage
emulator, loads to the BigQuery stand-in, which accepts only the token the
stand-in issued."""

import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.parse

import bq_standin
import gcs
import lf

PROJECT = "logferry-test"
DATASET = "logs"
STAGING_BUCKET = "cred-staging"
ISSUED_TOKEN = "ya29.issued-by-the-local-token-endpoint"


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class TokenEndpoint:
    """POST /token answering the JWT bearer grant. Every assertion is kept
    with the outcome of its checks."""

    def __init__(self, testcase, public_pem, client_email):
        self.public_pem = public_pem
        self.client_email = client_email
        self.assertions = []  # (claims, signature_ok)
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(n).decode())
                status, body = endpoint.answer(self.path, form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/token" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        testcase.addCleanup(self.server.server_close)
        testcase.addCleanup(self.server.shutdown)

    def verify_signature(self, signing_input, signature):
        with tempfile.TemporaryDirectory() as d:
            data, sig = os.path.join(d, "data"), os.path.join(d, "sig")
            with open(data, "wb") as f:
                f.write(signing_input)
            with open(sig, "wb") as f:
                f.write(signature)
            r = subprocess.run(["openssl", "dgst", "-sha256", "-verify", self.public_pem, "-signature", sig, data],
                               capture_output=True, timeout=30)
            return r.returncode == 0

    def answer(self, path, form):
        if path != "/token" or form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return 400, {"error": "unsupported_grant_type"}
        jwt = form.get("assertion", [""])[0]
        pieces = jwt.split(".")
        if len(pieces) != 3:
            return 400, {"error": "invalid_grant", "error_description": "not a JWT"}
        header = json.loads(b64url_decode(pieces[0]))
        claims = json.loads(b64url_decode(pieces[1]))
        ok = header.get("alg") == "RS256" and self.verify_signature(
            (pieces[0] + "." + pieces[1]).encode(), b64url_decode(pieces[2]))
        self.assertions.append((claims, ok))
        if not ok:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        return 200, {"access_token": ISSUED_TOKEN, "expires_in": 3599, "token_type": "Bearer"}


class ServiceAccountKeyFromConfig(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)
        self.keys = tempfile.mkdtemp(prefix="sa-key-")
        self.addCleanup(shutil.rmtree, self.keys, True)
        private_pem = os.path.join(self.keys, "private.pem")
        public_pem = os.path.join(self.keys, "public.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", private_pem], check=True, capture_output=True, timeout=60)
        subprocess.run(["openssl", "pkey", "-in", private_pem, "-pubout", "-out", public_pem],
                       check=True, capture_output=True, timeout=60)
        with open(private_pem) as f:
            self.private_key = f.read()
        self.email = "logferry-loader@%s.iam.gserviceaccount.com" % PROJECT
        self.token = TokenEndpoint(self, public_pem, self.email)
        self.key_file = os.path.join(self.keys, "key.json")
        with open(self.key_file, "w") as f:
            json.dump({"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
                       "private_key": self.private_key, "client_email": self.email,
                       "token_uri": self.token.url}, f)
        self.gcs = gcs.GcsEmulator(self)
        self.bq = bq_standin.BigQueryStandin(self, gcs_endpoint=self.gcs.endpoint, polls_until_done=1,
                                             token=ISSUED_TOKEN)
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("GOOGLE_") or k.startswith("CLOUDSDK_"):
                del env[k]
        gcloud = tempfile.mkdtemp(prefix="gcloud-")
        self.addCleanup(shutil.rmtree, gcloud, True)
        # No other source could authorize: an empty gcloud config and a
        # metadata server nobody answers at.
        env.update(self.gcs.env())
        env.update({"CLOUDSDK_CONFIG": gcloud, "GCE_METADATA_HOST": "127.0.0.1:1", "HOME": gcloud})
        self.ws.env = env

    def test_key_file_named_in_the_config_authorizes_staging_and_loads(self):
        self.ws.gen(hours=3, rows_per_hour=400)
        t = self.ws.table_config(staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, credentials=self.key_file)
        self.ws.write_config(tables=[t], top={"log_level": "debug"})
        r = self.ws.run_once(expect_rc=0)

        expected = {h.replace("-", "").replace("T", ""): n
                    for h, n in lf.count_source(self.ws.source_dir).per_hour.items()}
        self.assertEqual(self.bq.partition_counts(PROJECT, DATASET, "access"), expected)
        self.assertTrue(self.gcs.names(STAGING_BUCKET, "parts/access/"))

        # Every BigQuery call carried the token the endpoint issued (the
        # stand-in refuses any other with 401, so the counts above prove it
        # too); the assertions were signed by the key and claim what Google's
        # flow requires.
        calls = self.bq.requests_for()
        self.assertTrue(calls)
        for c in calls:
            self.assertEqual(c.headers.get("authorization"), "Bearer " + ISSUED_TOKEN)
        self.assertTrue(self.token.assertions)
        for claims, signature_ok in self.token.assertions:
            self.assertTrue(signature_ok, claims)
            self.assertEqual(claims["iss"], self.email)
            self.assertEqual(claims["aud"], self.token.url)
            self.assertIn("https://www.googleapis.com/auth/", claims["scope"])
            self.assertLessEqual(claims["exp"] - claims["iat"], 3600)
            self.assertLess(abs(claims["iat"] - time.time()), 600)
        # The token is cached: one exchange serves the staging store and the
        # warehouse for the whole pass.
        self.assertEqual(len(self.token.assertions), 1)

        # Even at debug level, neither the key nor the token is printed.
        secret_line = self.private_key.splitlines()[1]
        for text in (r.stdout, r.stderr):
            self.assertNotIn(secret_line, text)
            self.assertNotIn(ISSUED_TOKEN, text)

    def test_a_key_the_endpoint_refuses_fails_with_a_message_naming_the_file_not_the_key(self):
        self.ws.gen(hours=1, rows_per_hour=50)
        other = os.path.join(self.keys, "other.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                        "-out", other], check=True, capture_output=True, timeout=60)
        with open(other) as f:
            wrong_key = f.read()
        with open(self.key_file) as f:
            key = json.load(f)
        key["private_key"] = wrong_key
        with open(self.key_file, "w") as f:
            json.dump(key, f)
        t = self.ws.table_config(staging="gs://%s/parts/" % STAGING_BUCKET,
                                 warehouse="bigquery://%s/%s" % (PROJECT, DATASET),
                                 bigquery_endpoint=self.bq.endpoint, credentials=self.key_file,
                                 retry_base="1s")
        self.ws.write_config(tables=[t])
        r = self.ws.run_once(timeout=120)
        self.assertNotEqual(r.rc, 0, r)
        self.assertTrue(self.token.assertions)
        self.assertFalse(any(ok for _, ok in self.token.assertions))
        self.assertIn("invalid_grant", r.output)
        self.assertNotIn(wrong_key.splitlines()[1], r.output)
        self.assertIn(self.key_file, r.output)
        self.assertIsNone(self.bq.table(PROJECT, DATASET, "access"))


if __name__ == "__main__":
    unittest.main()
