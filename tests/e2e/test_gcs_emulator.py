"""Smoke test of the GCS emulator helper (gcs.py, gcs_emulator.js): the
Cloud Storage emulator from firebase-tools, started from node_modules on
127.0.0.1. Under CI=true a missing node or emulator is a failure, not a skip."""

import gzip
import unittest

import gcs


class GcsEmulatorTest(unittest.TestCase):
    def test_upload_list_pages_download_range_delete_reset(self):
        g = gcs.GcsEmulator(self)
        data = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(1000)))
        meta = g.upload("staging", "access/dt=2016-08-01/hr=00/a.ndjson.gz", data)
        self.assertEqual(int(meta["size"]), len(data))
        self.assertTrue(meta["md5Hash"] and meta["crc32c"] and meta["generation"], meta)
        for i in range(4):
            g.upload("staging", "access/dt=2016-08-01/hr=%02d/b.ndjson.gz" % (i + 1), b"x")
        g.upload("staging", "other/c", b"y")

        # Listing follows nextPageToken (pages of 2 over 5 objects).
        self.assertEqual(len(g.list("staging", prefix="access/", page_size=2)), 5)
        self.assertEqual(g.names("staging", prefix="other/"), ["other/c"])
        self.assertEqual(g.list("no-such-bucket"), [])

        self.assertEqual(g.download("staging", "access/dt=2016-08-01/hr=00/a.ndjson.gz"), data)
        status, headers, part = g.request("GET", gcs.GcsEmulator._object_path(
            "staging", "access/dt=2016-08-01/hr=00/a.ndjson.gz") + "?alt=media", headers={"Range": "bytes=0-9"})
        self.assertEqual((status, part), (206, data[:10]))
        self.assertIn("crc32c=%s" % meta["crc32c"], headers.get("x-goog-hash", ""))
        self.assertIsNone(g.stat("staging", "missing"))

        g.delete("staging", "other/c")
        self.assertEqual(g.names("staging", prefix="other/"), [])
        g.reset()
        self.assertEqual(g.names("staging"), [])

    def test_two_emulators_keep_their_own_objects_and_exit_with_stdin(self):
        a, b = gcs.GcsEmulator(self), gcs.GcsEmulator(self)
        a.upload("bk", "o", b"from a")
        b.upload("bk", "o", b"from b")
        # Closing stdin (what happens when the test runner dies) stops it...
        a.proc.stdin.close()
        self.assertEqual(a.proc.wait(timeout=20), 0)
        # ...and a stopping emulator deletes its blob folder: with a shared
        # TMPDIR the other one would lose its objects.
        self.assertEqual(b.download("bk", "o"), b"from b")
        self.assertEqual(b.names("bk"), ["o"])


if __name__ == "__main__":
    unittest.main()
