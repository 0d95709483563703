"""TLS certificates are verified by default: an S3 endpoint on 127.0.0.1
with a self-signed certificate is refused, with an error that says why,
unless `ca_file` names that certificate (a private CA, as MinIO or Ceph
deployments use); verification stays on, so another certificate is still
refused."""

import http.server
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import unittest

import lf


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'<?xml version="1.0"?><ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TlsVerification(unittest.TestCase):
    def setUp(self):
        if shutil.which("openssl") is None:
            if os.environ.get("CI") == "true":
                self.fail("openssl is missing")
            raise unittest.SkipTest("openssl is missing")
        self.dir = tempfile.mkdtemp(prefix="tls-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        key, cert = os.path.join(self.dir, "key.pem"), os.path.join(self.dir, "cert.pem")
        self.cert = cert
        # The name is checked too: the certificate names 127.0.0.1 as an IP SAN.
        self.make_cert(key, cert)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.addCleanup(self.server.shutdown)
        self.endpoint = "https://127.0.0.1:%d" % self.server.server_address[1]

    def make_cert(self, key, cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-days", "1"],
                       check=True, capture_output=True, timeout=60)

    def workspace(self, **overrides):
        ws = lf.Workspace(self)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": "AKIDTLS", "AWS_SECRET_ACCESS_KEY": "tls-secret", "AWS_REGION": "us-east-1",
                    "AWS_EC2_METADATA_DISABLED": "true"})
        ws.env = env
        ws.write_config(source="s3://logs-bucket/logs/", endpoint=self.endpoint, **overrides)
        return ws

    def source_line(self, r):
        line = [l for l in r.stdout.splitlines() if "source s3://logs-bucket/logs/" in l]
        self.assertEqual(len(line), 1, r)
        return line[0]

    def test_self_signed_endpoint_is_refused(self):
        ws = self.workspace()
        r = ws.cli("check")
        self.assertEqual(r.rc, 1, r)
        line = self.source_line(r)
        self.assertIn("FAILED", line)
        self.assertRegex(line, "(?i)certificate")
        self.assertNotIn("tls-secret", r.output)

    def test_ca_file_trusts_the_private_ca_and_still_verifies(self):
        ws = self.workspace(ca_file=self.cert)
        r = ws.cli("check")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(self.source_line(r), r"\bOK\b")
        # A pass lists the (empty) source through the verified connection.
        ws.run_once(expect_rc=0)
        # Another CA's certificate does not vouch for this server.
        other_key, other_cert = os.path.join(self.dir, "other-key.pem"), os.path.join(self.dir, "other-cert.pem")
        self.make_cert(other_key, other_cert)
        ws = self.workspace(ca_file=other_cert)
        r = ws.cli("check")
        self.assertEqual(r.rc, 1, r)
        line = self.source_line(r)
        self.assertIn("FAILED", line)
        self.assertRegex(line, "(?i)certificate")
        # A file that cannot be read is reported by the setting's name.
        ws = self.workspace(ca_file=os.path.join(self.dir, "missing.pem"))
        r = ws.cli("check")
        self.assertEqual(r.rc, 1, r)
        self.assertIn("ca_file", self.source_line(r))


if __name__ == "__main__":
    unittest.main()
