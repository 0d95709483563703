"""The Debian package and the systemd unit (issue 12, item 9).

Builds the .deb with CPack from the build dir (installing the binary already
built: nothing is compiled), unpacks it with `dpkg-deb -x` into a temporary
root, and runs the packaged `logferry --version` from there, so the bundled
DuckDB must be found through the binary's $ORIGIN-relative RPATH. The unit
is checked with `systemd-analyze verify` and its hardening with
`systemd-analyze security --offline`.

Environment: LOGFERRY_BUILD_DIR (the CMake build dir), CPACK (the cpack
binary), LOGFERRY_SOURCE_DIR.
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILD_DIR = os.environ.get("LOGFERRY_BUILD_DIR", "build")
CPACK = os.environ.get("CPACK", "cpack")
SOURCE_DIR = os.environ.get("LOGFERRY_SOURCE_DIR", ".")


def run(args, timeout=600, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)


class DebianPackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="logferry-deb-")
        r = run([CPACK, "-G", "DEB", "-B", os.path.join(cls.tmp, "out"), "--config",
                 os.path.join(BUILD_DIR, "CPackConfig.cmake")], cwd=BUILD_DIR)
        if r.returncode != 0:
            raise AssertionError("cpack failed:\n" + r.stdout + r.stderr)
        debs = glob.glob(os.path.join(cls.tmp, "out", "*.deb"))
        if len(debs) != 1:
            raise AssertionError("expected one .deb, got %r" % debs)
        cls.deb = debs[0]
        cls.root = os.path.join(cls.tmp, "root")
        r = run(["dpkg-deb", "-x", cls.deb, cls.root])
        if r.returncode != 0:
            raise AssertionError("dpkg-deb -x failed:\n" + r.stderr)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_packaged_binary_runs_from_the_unpacked_root(self):
        r = run([os.path.join(self.root, "usr/bin/logferry"), "--version"], timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"^logferry \d+\.\d+\.\d+")
        # Its DuckDB is the one in the package, not the build tree's.
        ldd = run(["ldd", os.path.join(self.root, "usr/bin/logferry")], timeout=60).stdout
        self.assertIn(os.path.join(self.root, "usr/bin/../lib/logferry/libduckdb.so"), ldd)

    def test_package_holds_the_unit_the_example_config_and_the_docs(self):
        for path in ["usr/lib/systemd/system/logferry.service", "usr/lib/sysusers.d/logferry.conf",
                     "etc/logferry/logferry.toml.example", "usr/share/doc/logferry/README.md",
                     "usr/share/doc/logferry/operations.md", "usr/share/doc/logferry/configuration.md"]:
            self.assertTrue(os.path.isfile(os.path.join(self.root, path)), path)
        info = run(["dpkg-deb", "-f", self.deb, "Package", "Depends"], timeout=60).stdout
        self.assertIn("Package: logferry", info)
        # dpkg-shlibdeps found the Debian libraries the binary links.
        self.assertIn("libprometheus-cpp-core", info)
        self.assertIn("libsqlite3-0", info)

    def test_unit_verifies_and_is_hardened(self):
        unit = os.path.join(self.root, "usr/lib/systemd/system/logferry.service")
        with open(unit) as f:
            text = f.read()
        for setting in ["Type=notify", "User=logferry", "StateDirectory=logferry", "ProtectSystem=strict",
                        "NoNewPrivileges=yes", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec="]:
            self.assertIn(setting, text)
        self.assertIn("ExecStart=/usr/bin/logferry run -c /etc/logferry/logferry.toml", text)
        # systemd-analyze wants ExecStart's binary to exist: point it at the
        # packaged one (the only change) and verify that copy.
        checked = os.path.join(self.tmp, "logferry.service")
        with open(checked, "w") as f:
            f.write(text.replace("/usr/bin/logferry", os.path.join(self.root, "usr/bin/logferry")))
        r = run(["systemd-analyze", "verify", checked], timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "", r.stderr)
        r = run(["systemd-analyze", "security", "--offline=yes", checked], timeout=120)
        m = re.search(r"Overall exposure level for logferry.service: ([\d.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        # 0 is fully locked down, 10 not at all; systemd calls under 2 "OK".
        self.assertLess(float(m.group(1)), 2.0, r.stdout)


if __name__ == "__main__":
    unittest.main()
