"""End-to-end: `logferry schema`. `--bigquery` prints one JSON document, the
array of fields `bq mk --schema FILE` takes, and nothing else on stdout."""

import json
import os
import unittest

import lf

MODES = {"NULLABLE", "REPEATED", "REQUIRED"}
TYPES = {"BOOL", "INT64", "FLOAT64", "STRING", "TIMESTAMP", "RECORD"}


class SchemaCliTest(unittest.TestCase):
    def setUp(self):
        self.ws = lf.Workspace(self)
        self.ws.gen(hours=1, rows_per_hour=50)
        self.ws.write_config()
        self.ws.run_once(expect_rc=0)

    def check_fields(self, fields, where):
        self.assertIsInstance(fields, list, where)
        self.assertTrue(fields, where)
        for f in fields:
            self.assertEqual(set(f) - {"name", "type", "mode", "fields"}, set(), f)
            self.assertIn(f["type"], TYPES, f)
            self.assertIn(f["mode"], MODES, f)
            self.assertEqual("fields" in f, f["type"] == "RECORD", f)
            if "fields" in f:
                self.check_fields(f["fields"], where + "." + f["name"])

    def test_bigquery_schema_is_one_valid_json_array_of_fields(self):
        r = self.ws.cli("schema", "--bigquery")
        self.assertEqual(r.rc, 0, r)
        fields = json.loads(r.stdout)  # the whole of stdout: one document
        self.check_fields(fields, "schema")
        names = [f["name"] for f in fields]
        self.assertEqual(names[:2], ["_time", "_tag"])
        self.assertEqual(fields[0]["type"], "TIMESTAMP")
        self.assertIn("geo", names)
        geo = fields[names.index("geo")]
        self.assertEqual(geo["type"], "RECORD")
        self.assertEqual({f["name"] for f in geo["fields"]}, {"country", "asn"})

    def test_plain_and_duckdb_schemas_still_show_the_name_mapping(self):
        for args in ((), ("--duckdb",)):
            r = self.ws.cli("schema", *args)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("-- name mapping (source field -> column)", r.stdout)
            self.assertIn("response-time -> response_time", r.stdout)


if __name__ == "__main__":
    unittest.main()
