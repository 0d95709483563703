"""A BigQuery stand-in for tests: a local HTTP server (stdlib only) serving the
part of the BigQuery REST API v2 that logferry's loader uses. It is NOT an
emulator of BigQuery and nothing here was checked against the real service;
what it does come from is Google's own API description (the discovery
document shipped with `bq`) and Google's documentation, and
test_bq_standin.py drives it with the real `bq` CLI to show that Google's
client accepts its answers.

Served (paths under /bigquery/v2/, as in the discovery document):
  datasets get / insert / list / delete
  tables   get / insert / patch / list / delete
  jobs     insert (load, copy, query) / get / query / getQueryResults
  GET /$discovery/rest?version=v2   the discovery document itself (for `bq`)
Every other method of the document answers 501 (notImplemented).

Request checking, against the discovery document
(/usr/lib/google-cloud-sdk/platform/bq/discovery_next/bigquery.json):
  * the method's request schema ($ref) is resolved and every body checked
    recursively: unknown fields (Google's "Unknown name ... Cannot find field")
    and wrong JSON types are rejected with 400 invalid naming the field path;
    int64/uint64/int32 accept a JSON integer or a decimal string (the proto3
    JSON mapping Google's front end applies), booleans must be true/false;
    read-only (output) fields are accepted and ignored, as Google does.
  * enums: formal `enum` lists in the document are checked. writeDisposition,
    createDisposition, sourceFormat, timePartitioning.type, schema field
    types and modes, schemaUpdateOptions and a few more are plain strings in
    this document whose allowed values are listed only in their description
    text; DESCRIBED_ENUMS lists those values and is checked against the
    document's descriptions when it is loaded (a value the description does
    not name is a startup error), then enforced like a formal enum.
  * query parameters: unknown ones are rejected (as Google does: "Cannot bind
    query parameter"), types and enums checked.
  * a missing Authorization header answers 401.

Semantics:
  * Jobs go PENDING -> RUNNING -> DONE across polls: jobs.insert answers
    PENDING, each jobs.get / getQueryResults / jobs.query call is a poll, and
    the job runs (atomically) at poll number `polls_until_done` (default 2:
    insert PENDING, 1st get RUNNING, 2nd get DONE; 0 runs it at insert).
  * jobs.insert with an existing jobId -> 409 duplicate ("Already Exists: Job
    p:LOC.id"); a job's location must match its dataset's.
  * Load jobs: configuration.load with an explicit list of gs://bucket/object
    sourceUris (any wildcard -> 400: the loader must never use one, a
    deliberate stand-in rule; real BigQuery would expand it),
    NEWLINE_DELIMITED_JSON only (others 501), destination table with an
    optional partition decorator table$YYYYMMDDHH (HOUR) / table$YYYYMMDD
    (DAY) which must match the table's partitioning, writeDisposition
    WRITE_TRUNCATE / WRITE_TRUNCATE_DATA / WRITE_APPEND / WRITE_EMPTY,
    createDisposition, schema (new fields need ALLOW_FIELD_ADDITION unless
    the whole table is truncated; a type change is an error), timePartitioning
    (must match an existing table's), ignoreUnknownValues, maxBadRecords.
    Each object is read from the GCS emulator given at start, gunzipped (by
    magic bytes), parsed as NDJSON and every value checked against the
    schema (unknown field, missing REQUIRED, wrong type: bad records, with
    BigQuery's "JSON parsing error in row starting at position N" and the
    file). With a decorator, every row's partitioning field (_time) must fall
    in that partition, else the job fails with reason "invalid" naming the
    file ("Some rows belong to different partitions rather than destination
    partition ..."). WRITE_TRUNCATE replaces that partition's rows (or, with
    no decorator, the whole table). Rows are kept in memory per table per
    partition. statistics.load: inputFiles, inputFileBytes, outputRows,
    outputBytes, badRecords.
  * Copy jobs: configuration.copy from sourceTable (optionally decorated) to a
    table or table$decorator; rows must fall in the destination partition;
    write/create dispositions as above (the API's default for copies is
    WRITE_EMPTY). statistics.copy.copiedRows.
  * Query jobs (jobs.insert with configuration.query, or jobs.query) answer
    two statements: the per-partition count and the merge script (below).
    The count (case-insensitive keywords, any whitespace; COUNT_QUERY_RE is
    the grammar):

        SELECT TIMESTAMP_TRUNC(<col>, HOUR|DAY) AS <p>, COUNT(*) AS <n>
        FROM `project.dataset.table`            -- or `dataset.table`
        [WHERE <col> >= TIMESTAMP('<ts>') AND <col> < TIMESTAMP('<ts>')]
        GROUP BY <p> | 1
        [ORDER BY <p> | 1 [ASC|DESC]]

    with useLegacySql=false (the API's default is legacy SQL, which would
    reject the backquoted name; the stand-in fails such a query the same
    way). Rows are computed from the stored rows, ascending by <p> unless
    ORDER BY ... DESC, and returned in getQueryResults' shape: schema
    [<p> TIMESTAMP, <n> INTEGER] and rows {"f":[{"v": ...}]} with TIMESTAMP
    values as BigQuery sends them, seconds since the epoch as a Java-double
    string ("1.4700096E9"), or int64 microseconds with
    formatOptions.useInt64Timestamp=true; maxResults/pageToken paging. Any
    other SQL fails with invalidQuery naming this grammar. A table with
    requirePartitionFilter needs the WHERE clause.
  * The merge script (MERGE_SCRIPT_RE), the one DML the loader sends, to
    replace several partitions with the rows of a scratch table at once:

        BEGIN TRANSACTION;
        DELETE FROM `p.d.table` WHERE (<col> >= TIMESTAMP('..') AND <col> < TIMESTAMP('..')) OR ...;
        INSERT INTO `p.d.table` (`c1`, `c2`, ...) SELECT `c1`, `c2`, ... FROM `p.d.scratch`;
        COMMIT TRANSACTION;

    run all or nothing. Checked as BigQuery would: both tables exist in the
    job's location; every INSERT column exists in the table and in the
    scratch table with the same type and mode (RECORDs field by field, in
    order, since BigQuery matches STRUCT fields by position); table columns
    left out must not be REQUIRED. Checked as stand-in rules, stricter than
    BigQuery, because breaking them would make a reload duplicate rows: the
    column lists are required and equal; the ranges filter the table's
    partitioning column; that column is inserted; and every scratch row has
    a non-NULL value in it that falls inside one of the deleted ranges.
    statistics.query.numDmlAffectedRows counts deleted + inserted rows.

Test hooks: `requests` (every request: method, path, query, body, status),
`fail_next_jobs(n, ...)` (the next n jobs finish DONE with the given
errorResult and no effect), `fail_next_requests(n, code=503, ...)` (5xx
before the request takes effect, or with after_effect=True once it has, like
a lost response), `misreport_next_loads(n, delta)` (the next n load jobs
report outputRows off by delta, their effect unchanged), `polls_until_done`,
`held_job_types` (jobs of these types stay RUNNING however often they are
polled), and readers of the stored state (`partition_counts`, `rows`,
`table`, `table_ids`, `job`, `merge_scripts`).

Not emulated: storage/billing/quotas (1,500 loads per table per day is not
counted), streaming inserts, tabledata.list, any SQL beyond the two
statements above, CSV / Avro / Parquet loads, autodetect, real time-travel,
partition or table expiration (expirationTime is stored, never acted on),
IAM, job cancellation, ingestion-time-partitioned tables beyond the basics,
and all the error texts BigQuery has that are not listed above (the ones
used are modelled on BigQuery's but not verified against it).

Run by hand:  python3 bq_standin.py --port 9050 --gcs http://127.0.0.1:PORT
"""

import base64
import datetime as _dt
import gzip
import hashlib
import http.server
import json
import os
import re
import socketserver
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

DISCOVERY_FILE = "/usr/lib/google-cloud-sdk/platform/bq/discovery_next/bigquery.json"

# Fields that are plain strings in the discovery document but whose allowed
# values its description lists ("The following values are supported: * A:
# ... * B: ..."). Checked against those descriptions at load time.
DESCRIBED_ENUMS = {
    ("JobConfigurationLoad", "writeDisposition"): ["WRITE_TRUNCATE", "WRITE_TRUNCATE_DATA", "WRITE_APPEND",
                                                   "WRITE_EMPTY"],
    ("JobConfigurationLoad", "createDisposition"): ["CREATE_IF_NEEDED", "CREATE_NEVER"],
    ("JobConfigurationLoad", "sourceFormat"): ["CSV", "DATASTORE_BACKUP", "NEWLINE_DELIMITED_JSON", "AVRO",
                                               "PARQUET", "ORC"],
    ("JobConfigurationLoad", "schemaUpdateOptions"): ["ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION"],
    ("JobConfigurationLoad", "encoding"): ["UTF-8", "ISO-8859-1", "UTF-16BE", "UTF-16LE", "UTF-32BE", "UTF-32LE"],
    ("JobConfigurationTableCopy", "writeDisposition"): ["WRITE_TRUNCATE", "WRITE_APPEND", "WRITE_EMPTY"],
    ("JobConfigurationTableCopy", "createDisposition"): ["CREATE_IF_NEEDED", "CREATE_NEVER"],
    ("JobConfigurationQuery", "writeDisposition"): ["WRITE_TRUNCATE", "WRITE_TRUNCATE_DATA", "WRITE_APPEND",
                                                    "WRITE_EMPTY"],
    ("JobConfigurationQuery", "createDisposition"): ["CREATE_IF_NEEDED", "CREATE_NEVER"],
    ("JobConfigurationQuery", "priority"): ["INTERACTIVE", "BATCH"],
    ("JobConfigurationQuery", "schemaUpdateOptions"): ["ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION"],
    ("TimePartitioning", "type"): ["DAY", "HOUR", "MONTH", "YEAR"],
    ("TableFieldSchema", "type"): ["STRING", "BYTES", "INTEGER", "INT64", "FLOAT", "FLOAT64", "BOOLEAN", "BOOL",
                                   "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "NUMERIC", "BIGNUMERIC",
                                   "JSON", "RECORD", "STRUCT", "RANGE"],
    ("TableFieldSchema", "mode"): ["NULLABLE", "REQUIRED", "REPEATED"],
}

# The one statement query jobs answer (see the module docstring).
COUNT_QUERY_RE = re.compile(
    r"""^\s*SELECT\s+TIMESTAMP_TRUNC\s*\(\s*`?(?P<col>[A-Za-z_][A-Za-z0-9_]*)`?\s*,\s*(?P<unit>HOUR|DAY)\s*\)
        \s+AS\s+(?P<p>[A-Za-z_][A-Za-z0-9_]*)\s*,\s*COUNT\s*\(\s*\*\s*\)\s+AS\s+(?P<n>[A-Za-z_][A-Za-z0-9_]*)
        \s+FROM\s+`(?P<table>[^`]+)`
        (?:\s+WHERE\s+`?(?P<wcol1>[A-Za-z_][A-Za-z0-9_]*)`?\s*>=\s*TIMESTAMP\s*\(\s*'(?P<lo>[^']*)'\s*\)
           \s+AND\s+`?(?P<wcol2>[A-Za-z_][A-Za-z0-9_]*)`?\s*<\s*TIMESTAMP\s*\(\s*'(?P<hi>[^']*)'\s*\))?
        \s+GROUP\s+BY\s+(?P<g>[A-Za-z_][A-Za-z0-9_]*|1)
        (?:\s+ORDER\s+BY\s+(?P<o>[A-Za-z_][A-Za-z0-9_]*|1)(?:\s+(?P<dir>ASC|DESC))?)?
        \s*;?\s*$""", re.IGNORECASE | re.VERBOSE)
# The one script the loader sends (a merged load, when its daily job budget
# is short): in one transaction, delete some time ranges of a table and insert
# a scratch table's rows.
MERGE_SCRIPT_RE = re.compile(
    r"""^\s*BEGIN\s+TRANSACTION\s*;
        \s*DELETE\s+FROM\s+`(?P<dtable>[^`]+)`\s+WHERE\s+(?P<ranges>.+?)\s*;
        \s*INSERT\s+INTO\s+`(?P<itable>[^`]+)`\s*(?:\((?P<icols>[^)]*)\))?
        \s*SELECT\s+(?P<scols>.+?)\s+FROM\s+`(?P<stable>[^`]+)`\s*;
        \s*COMMIT\s+TRANSACTION\s*;?\s*$""", re.IGNORECASE | re.VERBOSE | re.DOTALL)
RANGE_RE = re.compile(
    r"""\(\s*`?(?P<c1>[A-Za-z_][A-Za-z0-9_]*)`?\s*>=\s*TIMESTAMP\s*\(\s*'(?P<lo>[^']*)'\s*\)
        \s+AND\s+`?(?P<c2>[A-Za-z_][A-Za-z0-9_]*)`?\s*<\s*TIMESTAMP\s*\(\s*'(?P<hi>[^']*)'\s*\)\s*\)""",
    re.IGNORECASE | re.VERBOSE)
COUNT_QUERY_TEXT = ("SELECT TIMESTAMP_TRUNC(col, HOUR|DAY) AS p, COUNT(*) AS n FROM `project.dataset.table` "
                    "[WHERE col >= TIMESTAMP('..') AND col < TIMESTAMP('..')] GROUP BY p [ORDER BY p [ASC|DESC]]")

_CANONICAL_TYPE = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}
_PARTITION_FORMAT = {"HOUR": "%Y%m%d%H", "DAY": "%Y%m%d", "MONTH": "%Y%m", "YEAR": "%Y"}
_DECORATOR_LENGTH = {"HOUR": 10, "DAY": 8, "MONTH": 6, "YEAR": 4}
_GRPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                409: "ALREADY_EXISTS", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE",
                503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
# errorResult reason -> HTTP status, when a failed job is reported as an
# HTTP error (jobs.query, getQueryResults).
_REASON_CODE = {"invalid": 400, "invalidQuery": 400, "notFound": 404, "duplicate": 409, "backendError": 500,
                "internalError": 500, "rateLimitExceeded": 403, "quotaExceeded": 403, "accessDenied": 403,
                "notImplemented": 501}
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_INT_RANGES = {"int32": (-2**31, 2**31 - 1), "uint32": (0, 2**32 - 1), "int64": (-2**63, 2**63 - 1),
               "uint64": (0, 2**64 - 1)}


def require_discovery(testcase=None):
    """Skips (or, under CI=true, fails) when the discovery document (shipped
    with the Google Cloud SDK's `bq`) is missing: the stand-in checks every
    request against it and cannot run without it."""
    if os.path.isfile(DISCOVERY_FILE):
        return
    message = "missing on this machine: %s (google-cloud-sdk's bq)" % DISCOVERY_FILE
    if os.environ.get("CI") == "true":
        if testcase is not None:
            testcase.fail(message)
        raise AssertionError(message)
    raise unittest.SkipTest(message)


class ApiError(Exception):
    """An error answered in Google's JSON shape:
    {"error": {"code", "message", "errors": [{"message", "domain", "reason", "location"?}], "status"}}."""

    def __init__(self, code, reason, message, location=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.location = code, reason, message, location

    def body(self):
        e = {"message": self.message, "domain": "global", "reason": self.reason}
        if self.location:
            e["location"], e["locationType"] = self.location, "other"
        return {"error": {"code": self.code, "message": self.message, "errors": [e],
                          "status": _GRPC_STATUS.get(self.code, "UNKNOWN")}}


def invalid(message, location=None):
    return ApiError(400, "invalid", message, location)


def not_found(message):
    return ApiError(404, "notFound", message)


def not_implemented(message):
    return ApiError(501, "notImplemented", "bq_standin does not emulate this: " + message)


class JobFailure(Exception):
    """A job that finishes DONE with this errorResult (and these errors)."""

    def __init__(self, reason, message, errors=None, location=None):
        super().__init__(message)
        self.reason, self.message, self.location = reason, message, location
        self.errors = errors or []


# ---------------------------------------------------------------------------
# The discovery document: routes, request schemas, parameters
# ---------------------------------------------------------------------------

class Discovery:
    """Google's description of the API, used to route requests and to check
    their bodies and query parameters."""

    def __init__(self, path=DISCOVERY_FILE):
        with open(path, "rb") as f:
            self.raw = f.read()
        doc = json.loads(self.raw)
        self.schemas = doc["schemas"]
        self.global_params = doc.get("parameters", {})
        self.base_path = doc.get("servicePath", "bigquery/v2/")
        self.methods = {}
        self.routes = []
        self._collect(doc.get("resources", {}))
        # Literal-rich routes first, so ".../tables/{t}:getIamPolicy" is not
        # taken for tables.get of a table named "t:getIamPolicy".
        self.routes.sort(key=lambda r: -r[3])
        self.described_enums = self._check_described_enums()
        self._check_label_rules()

    def _collect(self, resources):
        for resource in resources.values():
            for method in resource.get("methods", {}).values():
                self.methods[method["id"]] = method
                flat = method.get("flatPath", method["path"])
                names = re.findall(r"\{\+?([^}]+)\}", method["path"])
                flat_names = re.findall(r"\{([^}]+)\}", flat)
                if len(names) != len(flat_names):
                    names = flat_names
                pattern, literal = "", 0
                for part in re.split(r"(\{[^}]+\})", flat):
                    if part.startswith("{"):
                        pattern += "([^/]+)"
                    else:
                        pattern += re.escape(part)
                        literal += len(part)
                regex = re.compile("^/" + re.escape(self.base_path) + pattern + "$")
                self.routes.append((method["httpMethod"], regex, method["id"], literal, names))
            self._collect(resource.get("resources", {}))

    # Phrases of JobConfiguration.labels' description that the stand-in's
    # label checks implement (_check_labels).
    LABEL_RULES = ["no longer than 63 characters", "lowercase letters, numeric characters, underscores and dashes",
                   "must start with a letter"]

    def _check_label_rules(self):
        text = self.schemas["JobConfiguration"]["properties"]["labels"].get("description", "")
        for phrase in self.LABEL_RULES:
            if phrase not in text:
                raise RuntimeError("bq_standin: JobConfiguration.labels: the discovery document no longer says %r"
                                   % phrase)

    def _check_described_enums(self):
        out = {}
        for (schema, field), values in DESCRIBED_ENUMS.items():
            prop = self.schemas[schema]["properties"][field]
            text = prop.get("description", "")
            for v in values:
                if not re.search(r"(?<![A-Z0-9_-])" + re.escape(v) + r"(?![A-Z0-9_-])", text):
                    raise RuntimeError("bq_standin: %s.%s: the discovery document's description no longer names %s"
                                       % (schema, field, v))
            out[(schema, field)] = set(values)
        return out

    def route(self, http_method, path):
        """(method id, {param: value}) or (None, None)."""
        for verb, regex, method_id, _, names in self.routes:
            if verb != http_method:
                continue
            m = regex.match(path)
            if m:
                return method_id, {n: urllib.parse.unquote(v) for n, v in zip(names, m.groups())}
        return None, None

    # -- query parameters --------------------------------------------------

    def check_query(self, method_id, query):
        params = dict(self.global_params)
        params.update({k: v for k, v in self.methods[method_id].get("parameters", {}).items()
                       if v.get("location") == "query"})
        for name, values in query.items():
            spec = params.get(name)
            if spec is None:
                raise invalid('Invalid JSON payload received. Unknown name "%s": Cannot bind query parameter. '
                              "Field '%s' could not be found in request message." % (name, name), name)
            if len(values) > 1 and not spec.get("repeated"):
                raise invalid("Query parameter %s given %d times" % (name, len(values)), name)
            for v in values:
                t = spec.get("type")
                if t == "boolean" and v not in ("true", "false", "True", "False", "1", "0"):
                    raise invalid("Invalid value at '%s' (TYPE_BOOL), \"%s\"" % (name, v), name)
                if t == "integer" or spec.get("format") in _INT_RANGES:
                    self._check_int(v, spec.get("format") or "int32", name)
                if "enum" in spec and v not in spec["enum"]:
                    raise invalid("Invalid value at '%s' (TYPE_ENUM), \"%s\"" % (name, v), name)

    # -- bodies ------------------------------------------------------------

    def request_schema(self, method_id):
        ref = self.methods[method_id].get("request", {}).get("$ref")
        return self.schemas[ref] if ref else None

    def check_body(self, method_id, body):
        schema = self.request_schema(method_id)
        if schema is None:
            if body not in (None, {}):
                raise invalid("Invalid JSON payload received. %s takes no request body." % method_id)
            return
        if not isinstance(body, dict):
            raise invalid("Invalid JSON payload received. Expected a JSON object for %s." % schema.get("id"))
        self._check(body, schema, "", schema.get("id", ""))

    @staticmethod
    def _kind(spec):
        t, fmt = spec.get("type"), spec.get("format")
        if "$ref" in spec:
            return "type.googleapis.com/google.cloud.bigquery.v2." + spec["$ref"]
        if "enum" in spec:
            return "TYPE_ENUM"
        kinds = {("string", "int64"): "TYPE_INT64", ("string", "uint64"): "TYPE_UINT64",
                 ("integer", "int32"): "TYPE_INT32", ("integer", "uint32"): "TYPE_UINT32",
                 ("number", "double"): "TYPE_DOUBLE", ("number", "float"): "TYPE_FLOAT",
                 ("boolean", None): "TYPE_BOOL", ("string", "byte"): "TYPE_BYTES"}
        return kinds.get((t, fmt), "TYPE_" + str(t).upper())

    @staticmethod
    def _bad(path, spec, value, why=""):
        shown = json.dumps(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return invalid("Invalid value at '%s' (%s), %s%s" % (path, Discovery._kind(spec), shown,
                                                                ": " + why if why else ""), path)

    @staticmethod
    def _check_int(value, fmt, path, spec=None):
        lo, hi = _INT_RANGES.get(fmt, _INT_RANGES["int64"])
        if isinstance(value, bool):
            ok = False
        elif isinstance(value, int):
            ok = True
        elif isinstance(value, float):
            ok = value.is_integer()
            value = int(value) if ok else value
        elif isinstance(value, str):
            ok = re.fullmatch(r"-?\d+", value) is not None
            value = int(value) if ok else value
        else:
            ok = False
        if not ok or not lo <= value <= hi:
            raise Discovery._bad(path, spec or {"type": "string", "format": fmt}, value,
                                 "" if ok else "not an integer")

    def _check(self, value, spec, path, schema_name):
        """Checks `value` against the discovery schema `spec` at `path`;
        schema_name is the schema holding the field (for DESCRIBED_ENUMS)."""
        if "$ref" in spec:
            ref = spec["$ref"]
            if value is None:
                return
            if not isinstance(value, dict):
                raise self._bad(path, spec, value, "expected a JSON object")
            target = self.schemas[ref]
            return self._check_object(value, target, path, ref)
        if value is None:
            return  # proto3 JSON: null is the field's default.
        t = spec.get("type")
        fmt = spec.get("format")
        if t == "object":
            if not isinstance(value, dict):
                raise self._bad(path, spec, value, "expected a JSON object")
            return self._check_object(value, spec, path, schema_name)
        if t == "array":
            if not isinstance(value, list):
                raise self._bad(path, spec, value, "expected a JSON array")
            items = spec.get("items", {})
            for i, item in enumerate(value):
                if item is None:
                    raise self._bad("%s[%d]" % (path, i), items, item, "null in a list")
                self._check(item, items, "%s[%d]" % (path, i), schema_name)
            return
        if t == "any":
            return
        if t == "boolean":
            if not isinstance(value, bool):
                raise self._bad(path, spec, value)
        elif t == "integer" or (t == "string" and fmt in _INT_RANGES):
            self._check_int(value, fmt or "int32", path, spec)
        elif t == "number":
            if isinstance(value, bool) or not (
                    isinstance(value, (int, float)) or
                    (isinstance(value, str) and re.fullmatch(r"NaN|-?Infinity|-?\d+(\.\d*)?([eE][-+]?\d+)?", value))):
                raise self._bad(path, spec, value)
        elif t == "string":
            if not isinstance(value, str):
                raise self._bad(path, spec, value)
            if fmt == "byte":
                try:
                    base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4),
                                     validate=True)
                except ValueError:
                    raise self._bad(path, spec, value, "not base64")
            elif fmt in ("google-datetime", "date-time") and not re.fullmatch(
                    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", value):
                raise self._bad(path, spec, value, "not an RFC 3339 time")
            elif fmt == "google-duration" and not re.fullmatch(r"-?\d+(\.\d{1,9})?s", value):
                raise self._bad(path, spec, value, "not a duration")
        else:
            raise AssertionError("bq_standin: unhandled discovery type %r at %s" % (t, path))
        allowed = spec.get("enum")
        field = path.rsplit(".", 1)[-1].split("[", 1)[0]
        described = self.described_enums.get((schema_name, field))
        if allowed is not None and value not in allowed:
            raise self._bad(path, spec, value, "expected one of " + ", ".join(allowed))
        if described is not None and value not in described:
            raise invalid("Invalid value at '%s' (TYPE_STRING), %s: expected one of %s (the values the API "
                          "description lists)" % (path, json.dumps(value), ", ".join(sorted(described))), path)

    def _check_object(self, value, spec, path, schema_name):
        props = spec.get("properties")
        extra = spec.get("additionalProperties")
        for k, v in value.items():
            sub = "%s.%s" % (path, k) if path else k
            if props is not None and k in props:
                self._check(v, props[k], sub, schema_name)
            elif extra is not None:
                self._check(v, extra, sub, schema_name)
            else:
                where = " at '%s'" % path if path else ""
                raise invalid('Invalid JSON payload received. Unknown name "%s"%s: Cannot find field.' % (k, where),
                              sub)


# ---------------------------------------------------------------------------
# Values: timestamps, partitions, the Java double format BigQuery uses
# ---------------------------------------------------------------------------

_TS_RE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[Tt ](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,12}))?)?)?"
                    r"\s*(Z|z|UTC|[+-]\d{1,2}(?::?\d{2})?)?$")


def parse_timestamp(value):
    """A BigQuery TIMESTAMP literal or JSON value -> microseconds since the
    epoch (UTC), or None if it is not one. Strings: 'YYYY-MM-DD[( |T)HH:MM[:SS[.F]]][Z|UTC|+HH[:MM]]'
    (no zone: UTC); numbers: seconds since the epoch."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(round(value * 1_000_000))
    if not isinstance(value, str):
        return None
    m = _TS_RE.match(value.strip())
    if not m:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        t = _dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    micros = (t - _EPOCH) // _dt.timedelta(microseconds=1)
    if frac:
        if len(frac) > 6 and frac[6:].strip("0"):
            return None
        micros += int((frac + "000000")[:6])
    if zone and zone not in ("Z", "z", "UTC"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        hh = int(digits[:-2]) if len(digits) > 2 else int(digits)
        mm = int(digits[-2:]) if len(digits) > 2 else 0
        micros -= sign * (hh * 3600 + mm * 60) * 1_000_000
    return micros


def parse_date(value):
    if not isinstance(value, str):
        return None
    m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value.strip())
    if not m:
        return None
    try:
        t = _dt.datetime(*map(int, m.groups()), tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    return (t - _EPOCH) // _dt.timedelta(microseconds=1)


def partition_id(micros, unit):
    """'2016080100' (HOUR), '20160801' (DAY), ... for a time in UTC; '__NULL__' for None."""
    if micros is None:
        return "__NULL__"
    return (_EPOCH + _dt.timedelta(microseconds=micros)).strftime(_PARTITION_FORMAT[unit])


def truncate(micros, unit):
    t = _EPOCH + _dt.timedelta(microseconds=micros)
    t = t.replace(minute=0, second=0, microsecond=0)
    if unit == "DAY":
        t = t.replace(hour=0)
    return (t - _EPOCH) // _dt.timedelta(microseconds=1)


def java_double(x):
    """Java's Double.toString, which is how BigQuery's REST API writes a
    TIMESTAMP (seconds since the epoch): 1470009600.0 -> '1.4700096E9'."""
    if x == 0:
        return "0.0"
    sign = "-" if x < 0 else ""
    x = abs(x)
    if 1e-3 <= x < 1e7:
        s = repr(float(x))
        return sign + (s if "." in s or "e" in s else s + ".0")
    # The shortest digits that round-trip (what repr() finds), in Java's layout.
    digits, exp = _shortest_digits(x)
    return "%s%s.%sE%d" % (sign, digits[0], digits[1:] or "0", exp)


def _shortest_digits(x):
    s = repr(float(x)).lower()
    mant, _, e = s.partition("e")
    exp = int(e) if e else 0
    intpart, _, frac = mant.partition(".")
    digits = (intpart + frac).lstrip("0")
    # Position of the decimal point relative to the first significant digit.
    lead_zeros = len(intpart + frac) - len((intpart + frac).lstrip("0"))
    point = len(intpart) - lead_zeros - 1 + exp
    return digits.rstrip("0") or "0", point


def split_decorator(table_id):
    """'t$2016080100' -> ('t', '2016080100'); 't' -> ('t', None)."""
    if "$" in table_id:
        name, _, deco = table_id.partition("$")
        return name, deco
    return table_id, None


def check_decorator(deco, unit, where):
    """The partition id `deco` must name a real period of `unit`."""
    if unit not in _DECORATOR_LENGTH or len(deco) != _DECORATOR_LENGTH[unit] or not deco.isdigit():
        raise JobFailure("invalid", "Invalid partition decorator $%s for %s: the table is partitioned by %s, "
                         "so the decorator must have %d digits" % (deco, where, unit, _DECORATOR_LENGTH.get(unit, 0)))
    try:
        _dt.datetime.strptime(deco, _PARTITION_FORMAT[unit])
    except ValueError:
        raise JobFailure("invalid", "Invalid partition decorator $%s for %s: not a valid %s" % (deco, where, unit))


# ---------------------------------------------------------------------------
# Schemas and rows
# ---------------------------------------------------------------------------

_FIELD_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,299}$")


def normalize_fields(fields, path="schema.fields"):
    """Checks a TableSchema's fields (names, duplicates, RECORD sub-fields)
    and returns a copy with canonical types and explicit modes."""
    out, seen = [], set()
    for i, f in enumerate(fields or []):
        where = "%s[%d]" % (path, i)
        name = f.get("name")
        if not name or not _FIELD_NAME_RE.match(name):
            raise invalid("Invalid field name \"%s\". Fields must contain only letters, numbers, and underscores, "
                          "start with a letter or underscore, and be at most 300 characters long." % name, where)
        if name.lower() in seen:
            raise invalid("Duplicate column names: '%s'." % name, where)  # names are case-insensitive
        seen.add(name.lower())
        t = (f.get("type") or "").upper()
        if not t:
            raise invalid("The type of field %s is missing." % name, where)
        g = dict(f)
        g["type"] = _CANONICAL_TYPE.get(t, t)
        g["mode"] = (f.get("mode") or "NULLABLE").upper()
        if g["type"] == "RECORD":
            if not f.get("fields"):
                raise invalid("Field %s is type RECORD but has no schema." % name, where)
            g["fields"] = normalize_fields(f["fields"], where + ".fields")
        elif f.get("fields"):
            raise invalid("Field %s is type %s and cannot have sub-fields." % (name, g["type"]), where)
        out.append(g)
    return out


def merge_schema(table_fields, job_fields, options, table_name, replace):
    """The table's schema after a write with `job_fields`. `replace`: the
    write truncates the whole table, so the job's schema simply wins.
    Otherwise fields may only be added (ALLOW_FIELD_ADDITION) or relaxed from
    REQUIRED to NULLABLE (ALLOW_FIELD_RELAXATION); types never change."""
    if replace:
        return job_fields
    by_name = {f["name"].lower(): f for f in table_fields}
    out = [dict(f) for f in table_fields]
    index = {f["name"].lower(): i for i, f in enumerate(out)}
    for jf in job_fields:
        tf = by_name.get(jf["name"].lower())
        if tf is None:
            if "ALLOW_FIELD_ADDITION" not in options:
                raise JobFailure("invalid", "Provided Schema does not match Table %s. Cannot add fields "
                                 "(field: %s)" % (table_name, jf["name"]))
            if jf["mode"] == "REQUIRED":
                raise JobFailure("invalid", "Provided Schema does not match Table %s. Cannot add required fields "
                                 "to an existing schema. (field: %s)" % (table_name, jf["name"]))
            out.append(dict(jf))
            continue
        if tf["type"] != jf["type"]:
            raise JobFailure("invalid", "Provided Schema does not match Table %s. Field %s has changed type from "
                             "%s to %s" % (table_name, jf["name"], tf["type"], jf["type"]))
        if tf["mode"] != jf["mode"]:
            if tf["mode"] == "REQUIRED" and jf["mode"] == "NULLABLE" and "ALLOW_FIELD_RELAXATION" in options:
                out[index[jf["name"].lower()]]["mode"] = "NULLABLE"
            else:
                raise JobFailure("invalid", "Provided Schema does not match Table %s. Field %s has changed mode "
                                 "from %s to %s" % (table_name, jf["name"], tf["mode"], jf["mode"]))
        if tf["type"] == "RECORD":
            merged = merge_schema(tf["fields"], jf["fields"], options, table_name, False)
            out[index[jf["name"].lower()]]["fields"] = merged
    return out


def _check_scalar(value, ftype):
    """None if `value` is a valid JSON encoding of BigQuery type `ftype`, else why not."""
    if ftype == "STRING":
        ok = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    elif ftype == "INTEGER":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or \
             (isinstance(value, float) and value.is_integer()) or \
             (isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value) is not None)
        if ok and not -2**63 <= int(float(value) if isinstance(value, float) else value) <= 2**63 - 1:
            ok = False
    elif ftype in ("FLOAT", "NUMERIC", "BIGNUMERIC"):
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or \
             (isinstance(value, str) and re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*|NaN|[-+]?Infinity",
                                                      value) is not None)
    elif ftype == "BOOLEAN":
        ok = isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false", "1", "0"))
    elif ftype == "TIMESTAMP":
        ok = parse_timestamp(value) is not None
    elif ftype == "DATE":
        ok = parse_date(value) is not None
    elif ftype == "JSON":
        ok = True
    else:  # BYTES, TIME, DATETIME, GEOGRAPHY, RANGE: not interpreted here
        ok = isinstance(value, str)
    return None if ok else "Could not convert value to %s: %s" % (ftype.lower(), json.dumps(value)[:60])


def check_row(row, fields, ignore_unknown, prefix=""):
    """None if the JSON object `row` fits `fields`, else BigQuery's reason."""
    if not isinstance(row, dict):
        return "JSON object expected, found %s" % type(row).__name__
    by_name = {f["name"].lower(): f for f in fields}
    for k, v in row.items():
        f = by_name.get(k.lower())
        if f is None:
            if ignore_unknown:
                continue
            return "No such field: %s%s." % (prefix, k)
        if v is None:
            if f["mode"] == "REQUIRED":
                return "Missing required field: %s%s." % (prefix, f["name"])
            continue
        values = v if f["mode"] == "REPEATED" else [v]
        if f["mode"] == "REPEATED" and not isinstance(v, list):
            return "Repeated field must be imported as a JSON array. Field: %s%s." % (prefix, f["name"])
        if f["mode"] != "REPEATED" and isinstance(v, list) and f["type"] != "JSON":
            return "Array specified for non-repeated field: %s%s." % (prefix, f["name"])
        for item in values:
            if f["type"] == "RECORD":
                why = check_row(item, f["fields"], ignore_unknown, prefix + f["name"] + ".")
            else:
                why = _check_scalar(item, f["type"])
                if why:
                    why += " Field: %s%s" % (prefix, f["name"])
            if why:
                return why
    present = {k.lower() for k, v in row.items() if v is not None}
    for f in fields:
        if f["mode"] == "REQUIRED" and f["name"].lower() not in present:
            return "Missing required field: %s%s." % (prefix, f["name"])
    return None


def row_time(row, field, fields):
    """The partitioning field's value as microseconds (None if null)."""
    ftype = "TIMESTAMP"
    for f in fields:
        if f["name"].lower() == field.lower():
            ftype = f["type"]
    for k, v in row.items():
        if k.lower() == field.lower():
            if v is None:
                return None
            return parse_date(v) if ftype == "DATE" else parse_timestamp(v)
    return None


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------

def _now_ms():
    return int(time.time() * 1000)


def _etag(obj):
    return base64.b64encode(hashlib.md5(json.dumps(obj, sort_keys=True).encode()).digest()).decode()[:22]


class Table:
    def __init__(self, project, dataset, table_id, fields, partitioning, clustering=None, extra=None):
        self.project, self.dataset, self.id = project, dataset, table_id
        self.fields = fields
        self.partitioning = partitioning  # {"type": "HOUR", "field": "_time", ...} or None
        self.clustering = clustering
        self.extra = dict(extra or {})  # description, labels, friendlyName, requirePartitionFilter, ...
        self.partitions = {}  # partition id -> [row dict]
        self.created_ms = self.modified_ms = _now_ms()

    @property
    def name(self):
        return "%s:%s.%s" % (self.project, self.dataset, self.id)

    def unit(self):
        return (self.partitioning or {}).get("type") or ("DAY" if self.partitioning is not None else None)

    def field(self):
        return (self.partitioning or {}).get("field")

    def num_rows(self):
        return sum(len(r) for r in self.partitions.values())

    def resource(self, endpoint, location):
        nbytes = sum(len(json.dumps(r)) for rows in self.partitions.values() for r in rows)
        t = {
            "kind": "bigquery#table",
            "id": self.name,
            "selfLink": "%s/bigquery/v2/projects/%s/datasets/%s/tables/%s" % (endpoint, self.project, self.dataset,
                                                                              urllib.parse.quote(self.id, safe="")),
            "tableReference": {"projectId": self.project, "datasetId": self.dataset, "tableId": self.id},
            "schema": {"fields": self.fields},
            "numBytes": str(nbytes),
            "numLongTermBytes": "0",
            "numRows": str(self.num_rows()),
            "creationTime": str(self.created_ms),
            "lastModifiedTime": str(self.modified_ms),
            "type": "TABLE",
            "location": location,
        }
        if self.partitioning is not None:
            t["timePartitioning"] = dict(self.partitioning)
            t["numPartitions"] = str(len([p for p, rows in self.partitions.items() if rows]))
        if self.clustering:
            t["clustering"] = self.clustering
        t.update(self.extra)
        t["etag"] = _etag([t, self.modified_ms])
        return t


class Dataset:
    def __init__(self, project, dataset_id, location, extra):
        self.project, self.id, self.location = project, dataset_id, location
        self.extra = extra
        self.tables = {}
        self.created_ms = self.modified_ms = _now_ms()

    def resource(self, endpoint):
        d = {
            "kind": "bigquery#dataset",
            "id": "%s:%s" % (self.project, self.id),
            "selfLink": "%s/bigquery/v2/projects/%s/datasets/%s" % (endpoint, self.project, self.id),
            "datasetReference": {"projectId": self.project, "datasetId": self.id},
            "access": [],
            "creationTime": str(self.created_ms),
            "lastModifiedTime": str(self.modified_ms),
            "location": self.location,
            "type": "DEFAULT",
        }
        d.update(self.extra)
        d["etag"] = _etag([d, self.modified_ms])
        return d


class Job:
    def __init__(self, project, job_id, location, configuration, job_type):
        self.project, self.id, self.location = project, job_id, location
        self.configuration = configuration
        self.type = job_type  # LOAD, COPY, QUERY
        self.polls = 0
        self.state = "PENDING"
        self.error_result, self.errors = None, []
        self.statistics = {}
        self.forced_failure = None  # from fail_next_jobs
        self.misreport = 0  # from misreport_next_loads
        self.result = None  # query: (schema fields, [row cells])
        self.created_ms = _now_ms()
        self.start_ms = self.end_ms = None

    @property
    def name(self):
        return "%s:%s.%s" % (self.project, self.location, self.id)

    def resource(self, endpoint):
        stats = {"creationTime": str(self.created_ms)}
        if self.start_ms is not None:
            stats["startTime"] = str(self.start_ms)
        if self.end_ms is not None:
            stats["endTime"] = str(self.end_ms)
        stats.update(self.statistics)
        status = {"state": self.state}
        if self.error_result:
            status["errorResult"] = self.error_result
            status["errors"] = self.errors or [self.error_result]
        config = dict(self.configuration)
        config["jobType"] = self.type
        j = {
            "kind": "bigquery#job",
            "id": self.name,
            "selfLink": "%s/bigquery/v2/projects/%s/jobs/%s?location=%s" % (endpoint, self.project, self.id,
                                                                             self.location),
            "user_email": "standin@logferry.invalid",
            "principal_subject": "user:standin@logferry.invalid",
            "jobReference": {"projectId": self.project, "jobId": self.id, "location": self.location},
            "configuration": config,
            "statistics": stats,
            "status": status,
        }
        j["etag"] = _etag(j)
        return j


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------

class LoggedRequest:
    def __init__(self, method, path, query, body, headers):
        self.method, self.path, self.query, self.body, self.headers = method, path, query, body, headers
        self.status = None
        self.method_id = None
        self.body_error = None

    def __repr__(self):
        return "%s %s -> %s" % (self.method, self.path, self.status)


class BigQueryStandin:
    """The stand-in, serving on 127.0.0.1 in a thread of this process.

        bq = BigQueryStandin(self, gcs_endpoint=gcs.endpoint)   # stopped in the TestCase cleanup
        bq.endpoint            # http://127.0.0.1:PORT (root URL; the API is under /bigquery/v2/)
        bq.partition_counts("p", "ds", "access")   # {"2016080100": 3000, ...}
    """

    def __init__(self, testcase=None, gcs_endpoint=None, port=0, polls_until_done=2, token=None,
                 default_location="US", discovery_file=DISCOVERY_FILE, gcs_auth="Bearer owner", count_only=False):
        if discovery_file == DISCOVERY_FILE:
            require_discovery(testcase)
        self.discovery = Discovery(discovery_file)
        self.gcs_endpoint = gcs_endpoint.rstrip("/") if gcs_endpoint else None
        self.gcs_auth = gcs_auth
        self.polls_until_done = polls_until_done
        # Benchmarks: a load into one partition counts its lines instead of
        # parsing and checking each row (real BigQuery does that work on
        # Google's machines, not on the cores being measured).
        self.count_only = count_only
        self.token = token
        self.default_location = default_location
        self.lock = threading.RLock()
        self.requests = []
        self.datasets = {}  # (project, dataset) -> Dataset
        self.jobs = {}  # (project, job id) -> Job
        self._job_faults = []  # [dict(reason, message, job_type)]
        self._misreports = []  # [outputRows delta] for the next load jobs
        self.held_job_types = set()  # "LOAD", "COPY", "QUERY": never finish while listed
        self._request_faults = []  # [dict(code, reason, message, method, path_contains, after_effect)]
        self._job_counter = 0
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        self.server = _Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="bq-standin", daemon=True)
        self.thread.start()
        if testcase is not None:
            testcase.addCleanup(self.stop)

    def stop(self):
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=10)
        self.server.server_close()

    def api(self, method, path, body=None, query=None, auth="Bearer test-token", timeout=30):
        """A client call for tests: (status, parsed JSON or None). `path` is
        under /bigquery/v2/ unless it starts with '/'."""
        url = self.endpoint + (path if path.startswith("/") else "/bigquery/v2/" + path)
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode("utf-8"))
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = auth
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, text = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read()
        return status, (json.loads(text) if text else None)

    # -- hooks -------------------------------------------------------------

    def fail_next_jobs(self, n, reason="backendError", message="bq_standin: injected job failure", job_type=None):
        """The next `n` jobs inserted (of `job_type` LOAD/COPY/QUERY, or any)
        finish DONE with this errorResult and change nothing."""
        with self.lock:
            for _ in range(n):
                self._job_faults.append({"reason": reason, "message": message, "job_type": job_type})

    def fail_next_requests(self, n, code=503, reason="backendError", message="bq_standin: injected error",
                           method=None, path_contains=None, after_effect=False):
        """The next `n` requests (matching `method` and `path_contains`, if
        given) answer `code` in Google's error shape. after_effect=False:
        before anything happens; True: once the request has taken effect (a
        lost response, e.g. jobs.insert created the job)."""
        with self.lock:
            for _ in range(n):
                self._request_faults.append({"code": code, "reason": reason, "message": message, "method": method,
                                             "path_contains": path_contains, "after_effect": after_effect})

    def misreport_next_loads(self, n, delta=1):
        """The next `n` load jobs inserted report statistics.load.outputRows
        off by `delta` (what they store is unchanged)."""
        with self.lock:
            self._misreports.extend([delta] * n)

    def reset(self):
        with self.lock:
            self.requests.clear()
            self.datasets.clear()
            self.jobs.clear()
            self._job_faults.clear()
            self._misreports.clear()
            self._request_faults.clear()

    # -- readers for tests -------------------------------------------------

    def requests_for(self, method_id=None, http_method=None, path_contains=None):
        with self.lock:
            return [r for r in self.requests
                    if (method_id is None or r.method_id == method_id) and
                    (http_method is None or r.method == http_method) and
                    (path_contains is None or path_contains in r.path)]

    def table(self, project, dataset, table):
        with self.lock:
            ds = self.datasets.get((project, dataset))
            return ds.tables.get(table) if ds else None

    def table_ids(self, project, dataset):
        with self.lock:
            ds = self.datasets.get((project, dataset))
            return sorted(ds.tables) if ds else []

    def partition_counts(self, project, dataset, table):
        """{partition id: rows} for the non-empty partitions."""
        with self.lock:
            t = self.table(project, dataset, table)
            if t is None:
                raise KeyError("no table %s:%s.%s" % (project, dataset, table))
            return {p: len(rows) for p, rows in sorted(t.partitions.items()) if rows}

    def rows(self, project, dataset, table, partition=None):
        with self.lock:
            t = self.table(project, dataset, table)
            if t is None:
                raise KeyError("no table %s:%s.%s" % (project, dataset, table))
            if partition is not None:
                return list(t.partitions.get(partition, []))
            return [r for p in sorted(t.partitions) for r in t.partitions[p]]

    def job(self, project, job_id):
        with self.lock:
            return self.jobs.get((project, job_id))

    def merge_scripts(self, project=None):
        """Query jobs inserted (not found again by a 409) whose SQL is a
        merge script, oldest first."""
        with self.lock:
            return [j for (p, _), j in self.jobs.items()
                    if j.type == "QUERY" and (project is None or p == project) and
                    MERGE_SCRIPT_RE.match(j.configuration["query"].get("query") or "")]

    # -- dispatch ----------------------------------------------------------

    def handle(self, req):
        """-> (status, JSON-able body or bytes)."""
        if self.count_only:
            self._count_before_poll(req)
        with self.lock:
            self.requests.append(req)
            try:
                if req.method == "GET" and req.path in ("/$discovery/rest", "/discovery/v1/apis/bigquery/v2/rest"):
                    return 200, self.discovery.raw
                method_id, params = self.discovery.route(req.method, req.path)
                req.method_id = method_id
                if method_id is None:
                    raise not_found("bq_standin: no API method at %s %s" % (req.method, req.path))
                self._check_auth(req)
                fault = self._take_request_fault(req)
                if fault and not fault["after_effect"]:
                    raise ApiError(fault["code"], fault["reason"], fault["message"])
                self.discovery.check_query(method_id, req.query)
                if req.body_error:
                    raise invalid(req.body_error)
                self.discovery.check_body(method_id, req.body)
                handler = getattr(self, "_" + method_id.replace("bigquery.", "").replace(".", "_"), None)
                if handler is None:
                    raise not_implemented("method %s" % method_id)
                status, body = handler(params, req)
                if fault:
                    raise ApiError(fault["code"], fault["reason"], fault["message"])
                return status, body
            except ApiError as e:
                return e.code, e.body()

    def _check_auth(self, req):
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            e = ApiError(401, "required", "Request is missing required authentication credential. Expected OAuth 2 "
                         "access token, login cookie or other valid authentication credential.", "Authorization")
            raise e
        if self.token is not None and auth[7:].strip() != self.token:
            raise ApiError(401, "authError", "Invalid Credentials", "Authorization")

    def _take_request_fault(self, req):
        for i, f in enumerate(self._request_faults):
            if (f["method"] is None or f["method"] == req.method) and \
                    (f["path_contains"] is None or f["path_contains"] in req.path):
                return self._request_faults.pop(i)
        return None

    def _query_value(self, req, name, default=None):
        v = req.query.get(name)
        return v[0] if v else default

    # -- datasets ----------------------------------------------------------

    def _dataset(self, project, dataset_id):
        ds = self.datasets.get((project, dataset_id))
        if ds is None:
            raise not_found("Not found: Dataset %s:%s" % (project, dataset_id))
        return ds

    def _datasets_get(self, p, req):
        return 200, self._dataset(p["projectId"], p["datasetId"]).resource(self.endpoint)

    def _datasets_insert(self, p, req):
        body = req.body or {}
        ref = body.get("datasetReference") or {}
        project = ref.get("projectId") or p["projectId"]
        dataset_id = ref.get("datasetId")
        if not dataset_id:
            raise invalid("Dataset reference is missing the dataset ID.", "datasetReference.datasetId")
        if project != p["projectId"]:
            raise invalid("Invalid project ID '%s' in the dataset reference: the request is for project %s."
                          % (project, p["projectId"]), "datasetReference.projectId")
        if not re.fullmatch(r"[A-Za-z0-9_]{1,1024}", dataset_id):
            raise invalid("Invalid dataset ID \"%s\". Dataset IDs must be alphanumeric (plus underscores) and must "
                          "be at most 1024 characters long." % dataset_id, "datasetReference.datasetId")
        if (project, dataset_id) in self.datasets:
            raise ApiError(409, "duplicate", "Already Exists: Dataset %s:%s" % (project, dataset_id))
        keep = {k: body[k] for k in ("description", "friendlyName", "labels", "defaultTableExpirationMs",
                                     "defaultPartitionExpirationMs") if k in body}
        ds = Dataset(project, dataset_id, body.get("location") or self.default_location, keep)
        self.datasets[(project, dataset_id)] = ds
        return 200, ds.resource(self.endpoint)

    def _datasets_list(self, p, req):
        items = [{"kind": "bigquery#dataset", "id": "%s:%s" % k, "location": ds.location,
                  "datasetReference": {"projectId": k[0], "datasetId": k[1]}}
                 for k, ds in sorted(self.datasets.items()) if k[0] == p["projectId"]]
        out = {"kind": "bigquery#datasetList", "etag": _etag(items)}
        if items:
            out["datasets"] = items
        return 200, out

    def _datasets_delete(self, p, req):
        ds = self._dataset(p["projectId"], p["datasetId"])
        if ds.tables and self._query_value(req, "deleteContents") not in ("true", "True", "1"):
            raise ApiError(400, "resourceInUse", "Dataset %s:%s is still in use" % (ds.project, ds.id))
        del self.datasets[(ds.project, ds.id)]
        return 204, None

    # -- tables ------------------------------------------------------------

    def _table(self, project, dataset_id, table_id):
        ds = self._dataset(project, dataset_id)
        t = ds.tables.get(table_id)
        if t is None:
            raise not_found("Not found: Table %s:%s.%s" % (project, dataset_id, table_id))
        return t

    def _tables_get(self, p, req):
        ds = self._dataset(p["projectId"], p["datasetId"])
        name, deco = split_decorator(p["tableId"])
        return 200, self._table(p["projectId"], p["datasetId"], name).resource(self.endpoint, ds.location)

    @staticmethod
    def _check_partitioning(tp, fields, where):
        if tp is None:
            return None
        tp = dict(tp)
        tp["type"] = tp.get("type") or "DAY"
        field = tp.get("field")
        if field:
            match = [f for f in fields if f["name"].lower() == field.lower()]
            if not match:
                raise invalid("The field specified for partitioning cannot be found in the schema", where)
            if match[0]["type"] not in ("TIMESTAMP", "DATE", "DATETIME") or match[0]["mode"] == "REPEATED":
                raise invalid("The field specified for time partitioning can only be of type TIMESTAMP, DATE or "
                              "DATETIME. The type found is: %s." % match[0]["type"], where)
            if match[0]["type"] == "DATE" and tp["type"] == "HOUR":
                raise invalid("Partitioning by HOUR is not supported on a DATE column.", where)
        return tp

    _TABLE_KEEP = ("description", "friendlyName", "labels", "expirationTime", "requirePartitionFilter")
    _TABLE_UNSUPPORTED = ("view", "materializedView", "externalDataConfiguration", "rangePartitioning", "model",
                          "tableConstraints", "biglakeConfiguration", "externalCatalogTableOptions",
                          "partitionDefinition", "tableReplicationInfo", "encryptionConfiguration")

    def _tables_insert(self, p, req):
        body = req.body or {}
        ref = body.get("tableReference") or {}
        project, dataset_id = p["projectId"], p["datasetId"]
        if ref.get("projectId", project) != project or ref.get("datasetId", dataset_id) != dataset_id:
            raise invalid("The table reference %s:%s does not match the request's dataset %s:%s"
                          % (ref.get("projectId"), ref.get("datasetId"), project, dataset_id), "tableReference")
        table_id = ref.get("tableId")
        if not table_id:
            raise invalid("Table reference is missing the table ID.", "tableReference.tableId")
        if not re.fullmatch(r"[\w\- ]{1,1024}", table_id):
            raise invalid("Invalid table ID \"%s\"." % table_id, "tableReference.tableId")
        for k in self._TABLE_UNSUPPORTED:
            if body.get(k):
                raise not_implemented("tables.insert with %s" % k)
        ds = self._dataset(project, dataset_id)
        if table_id in ds.tables:
            raise ApiError(409, "duplicate", "Already Exists: Table %s:%s.%s" % (project, dataset_id, table_id))
        fields = normalize_fields((body.get("schema") or {}).get("fields"))
        tp = self._check_partitioning(body.get("timePartitioning"), fields, "timePartitioning")
        clustering = body.get("clustering")
        self._check_clustering(clustering, fields)
        t = Table(project, dataset_id, table_id, fields, tp, clustering,
                  {k: body[k] for k in self._TABLE_KEEP if k in body})
        ds.tables[table_id] = t
        return 200, t.resource(self.endpoint, ds.location)

    @staticmethod
    def _check_clustering(clustering, fields):
        if not clustering:
            return
        names = {f["name"].lower() for f in fields}
        cf = clustering.get("fields") or []
        if len(cf) > 4:
            raise invalid("Too many clustering fields: %d, only 4 are allowed." % len(cf), "clustering.fields")
        for c in cf:
            if c.lower() not in names:
                raise invalid("The field specified for clustering cannot be found in the schema. Invalid field: %s."
                              % c, "clustering.fields")

    def _tables_patch(self, p, req):
        body = req.body or {}
        ds = self._dataset(p["projectId"], p["datasetId"])
        t = self._table(p["projectId"], p["datasetId"], p["tableId"])
        for k in self._TABLE_UNSUPPORTED:
            if body.get(k):
                raise not_implemented("tables.patch of %s" % k)
        fields = t.fields
        if body.get("schema") is not None:
            new = normalize_fields((body["schema"] or {}).get("fields"))
            new_names = {f["name"].lower() for f in new}
            for f in t.fields:
                if f["name"].lower() not in new_names:
                    raise invalid("Provided Schema does not match Table %s. Field %s is missing in new schema"
                                  % (t.name, f["name"]), "schema")
            try:
                fields = merge_schema(t.fields, new, {"ALLOW_FIELD_ADDITION", "ALLOW_FIELD_RELAXATION"}, t.name,
                                      False)
            except JobFailure as e:
                raise invalid(e.message, "schema")
            for f in new:
                if f["mode"] == "REQUIRED" and f["name"].lower() not in {g["name"].lower() for g in t.fields}:
                    raise invalid("Provided Schema does not match Table %s. Cannot add required fields to an "
                                  "existing schema. (field: %s)" % (t.name, f["name"]), "schema")
        if "timePartitioning" in body:
            tp = body["timePartitioning"] or {}
            old = t.partitioning or {}
            if (tp.get("type") or "DAY") != (old.get("type") or "DAY") or tp.get("field") != old.get("field") or \
                    t.partitioning is None:
                raise invalid("Cannot change partitioning spec of table %s" % t.name, "timePartitioning")
        if body.get("clustering") is not None:
            self._check_clustering(body["clustering"], fields)
            t.clustering = body["clustering"]
        t.fields = fields
        if "timePartitioning" in body and body["timePartitioning"]:
            t.partitioning.update(body["timePartitioning"])
        for k in self._TABLE_KEEP:
            if k in body:
                t.extra[k] = body[k]
        t.modified_ms = _now_ms()
        return 200, t.resource(self.endpoint, ds.location)

    def _tables_delete(self, p, req):
        ds = self._dataset(p["projectId"], p["datasetId"])
        self._table(p["projectId"], p["datasetId"], p["tableId"])
        del ds.tables[p["tableId"]]
        return 204, None

    def _tables_list(self, p, req):
        ds = self._dataset(p["projectId"], p["datasetId"])
        items = []
        for name, t in sorted(ds.tables.items()):
            item = {"kind": "bigquery#table", "id": t.name, "type": "TABLE",
                    "tableReference": {"projectId": t.project, "datasetId": t.dataset, "tableId": t.id},
                    "creationTime": str(t.created_ms)}
            if t.partitioning is not None:
                item["timePartitioning"] = t.partitioning
            items.append(item)
        out = {"kind": "bigquery#tableList", "etag": _etag(items), "totalItems": len(items)}
        if items:
            out["tables"] = items
        return 200, out

    # -- jobs --------------------------------------------------------------

    def _jobs_insert(self, p, req):
        body = req.body or {}
        ref = body.get("jobReference") or {}
        project = p["projectId"]
        if ref.get("projectId", project) != project:
            raise invalid("The job reference's project %s does not match the request's project %s"
                          % (ref.get("projectId"), project), "jobReference.projectId")
        config = body.get("configuration") or {}
        self._check_labels(config.get("labels"), "configuration.labels")
        kinds = [k for k in ("load", "copy", "query", "extract") if config.get(k) is not None]
        if len(kinds) != 1:
            raise invalid("Job configuration must contain exactly one job-specific configuration object (e.g., "
                          "query, load, extract, spreadsheetExtract), but there were %d." % len(kinds),
                          "configuration")
        if kinds[0] == "extract":
            raise not_implemented("extract jobs")
        if config.get("dryRun"):
            raise not_implemented("dry runs")
        job_id = ref.get("jobId")
        if job_id is None:
            self._job_counter += 1
            job_id = "bqjob_standin_%d_%d" % (int(time.time()), self._job_counter)
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", job_id):
            raise invalid("Invalid job ID \"%s\". Job IDs must be alphanumeric (plus underscores and dashes) and "
                          "must be at most 1024 characters long." % job_id, "jobReference.jobId")
        location = ref.get("location") or self.default_location
        if (project, job_id) in self.jobs:
            old = self.jobs[(project, job_id)]
            raise ApiError(409, "duplicate", "Already Exists: Job %s:%s.%s" % (project, old.location, job_id))
        job_type = kinds[0].upper()
        if job_type == "LOAD":
            self._precheck_load(config["load"])
        elif job_type == "COPY":
            self._precheck_copy(config["copy"], project)
        job = Job(project, job_id, location, config, job_type)
        for i, f in enumerate(self._job_faults):
            if f["job_type"] is None or f["job_type"].upper() == job_type:
                job.forced_failure = self._job_faults.pop(i)
                break
        if job_type == "LOAD" and self._misreports:
            job.misreport = self._misreports.pop(0)
        self.jobs[(project, job_id)] = job
        if self.polls_until_done <= 0:
            self._finish(job)
        return 200, job.resource(self.endpoint)

    def _job_for(self, p, req, path_key):
        project, job_id = p["projectId"], p[path_key]
        job = self.jobs.get((project, job_id))
        location = self._query_value(req, "location")
        if job is None or (location and location.lower() != job.location.lower()):
            raise not_found("Not found: Job %s:%s.%s" % (project, location or self.default_location, job_id))
        return job

    def _poll(self, job):
        if job.state == "DONE":
            return
        job.polls += 1
        if job.polls >= self.polls_until_done and job.type not in self.held_job_types:
            self._finish(job)
        else:
            job.state = "RUNNING"
            if job.start_ms is None:
                job.start_ms = _now_ms()

    def _jobs_get(self, p, req):
        job = self._job_for(p, req, "jobId")
        self._poll(job)
        return 200, job.resource(self.endpoint)

    def _jobs_query(self, p, req):
        body = req.body or {}
        if body.get("dryRun"):
            raise not_implemented("dry runs")
        query = {"query": body.get("query")}
        for k in ("useLegacySql", "defaultDataset", "useQueryCache", "parameterMode", "queryParameters",
                  "maximumBytesBilled", "connectionProperties", "preserveNulls"):
            if k in body:
                query[k] = body[k]
        self._job_counter += 1
        job_id = "job_standin_query_%d_%d" % (int(time.time()), self._job_counter)
        job = Job(p["projectId"], job_id, body.get("location") or self.default_location, {"query": query}, "QUERY")
        for i, f in enumerate(self._job_faults):
            if f["job_type"] is None or f["job_type"].upper() == "QUERY":
                job.forced_failure = self._job_faults.pop(i)
                break
        self.jobs[(p["projectId"], job_id)] = job
        if self.polls_until_done <= 0:
            self._finish(job)
        else:
            self._poll(job)
        return 200, self._query_response(job, "bigquery#queryResponse", body.get("maxResults"), None, False)

    def _jobs_getQueryResults(self, p, req):
        job = self._job_for(p, req, "jobId")
        if job.type != "QUERY":
            raise invalid("Job %s is not a query job" % job.name)
        self._poll(job)
        max_results = self._query_value(req, "maxResults")
        start = self._query_value(req, "pageToken") or self._query_value(req, "startIndex")
        int64_ts = self._query_value(req, "formatOptions.useInt64Timestamp") in ("true", "True", "1")
        return 200, self._query_response(job, "bigquery#getQueryResultsResponse", max_results, start, int64_ts)

    def _query_response(self, job, kind, max_results, start, int64_ts):
        out = {"kind": kind, "jobReference": {"projectId": job.project, "jobId": job.id, "location": job.location},
               "jobComplete": job.state == "DONE"}
        if job.state != "DONE":
            out["etag"] = _etag(out)
            return out
        if job.error_result:
            code = _REASON_CODE.get(job.error_result["reason"], 400)
            raise ApiError(code, job.error_result["reason"], job.error_result["message"],
                           job.error_result.get("location"))
        fields, cells = job.result
        start = int(start or 0)
        end = len(cells) if max_results is None else min(len(cells), start + int(max_results))
        rows = []
        for row in cells[start:end]:
            f = []
            for field, v in zip(fields, row):
                if v is None:
                    f.append({"v": None})
                elif field["type"] == "TIMESTAMP":
                    f.append({"v": str(v) if int64_ts else java_double(v / 1e6)})
                else:
                    f.append({"v": str(v)})
            rows.append({"f": f})
        out.update({"schema": {"fields": fields}, "totalRows": str(len(cells)), "totalBytesProcessed": "0",
                    "cacheHit": False})
        if rows:
            out["rows"] = rows
        if end < len(cells):
            out["pageToken"] = str(end)
        out["etag"] = _etag(out)
        return out

    # -- job execution -----------------------------------------------------

    def _finish(self, job):
        """Runs the job (all or nothing) and marks it DONE."""
        job.start_ms = job.start_ms or _now_ms()
        try:
            if job.forced_failure:
                f = job.forced_failure
                raise JobFailure(f["reason"], f["message"])
            if job.type == "LOAD":
                self._run_load(job)
            elif job.type == "COPY":
                self._run_copy(job)
            else:
                self._run_query(job)
        except JobFailure as e:
            job.error_result = {"reason": e.reason, "message": e.message}
            if e.location:
                job.error_result["location"] = e.location
            job.errors = [job.error_result] + e.errors
        job.state = "DONE"
        job.end_ms = _now_ms()

    def _destination(self, ref, job):
        """(dataset, table name, decorator) for a TableReference; the dataset
        must exist in the job's location."""
        ds = self.datasets.get((ref.get("projectId") or job.project, ref["datasetId"]))
        if ds is None:
            raise JobFailure("notFound", "Not found: Dataset %s:%s" % (ref.get("projectId") or job.project,
                                                                       ref["datasetId"]))
        if ds.location.lower() != job.location.lower():
            raise JobFailure("notFound", "Not found: Dataset %s:%s was not found in location %s"
                             % (ds.project, ds.id, job.location))
        name, deco = split_decorator(ref["tableId"])
        return ds, name, deco

    @staticmethod
    def _check_table_ref(ref, where):
        if not ref or not ref.get("datasetId") or not ref.get("tableId"):
            raise invalid("%s must name a dataset and a table" % where, where)
        name, deco = split_decorator(ref["tableId"])
        if not re.fullmatch(r"[\w\- ]{1,1024}", name) or (deco is not None and not re.fullmatch(r"\d{4,10}", deco)):
            raise invalid("Invalid table ID \"%s\"." % ref["tableId"], where + ".tableId")

    _LOAD_SUPPORTED = {"sourceUris", "destinationTable", "writeDisposition", "createDisposition", "sourceFormat",
                       "schema", "timePartitioning", "clustering", "schemaUpdateOptions", "ignoreUnknownValues",
                       "maxBadRecords", "encoding", "autodetect",
                       # CSV-only options, meaningless for NDJSON.
                       "allowJaggedRows", "allowQuotedNewlines", "fieldDelimiter", "quote", "skipLeadingRows",
                       "nullMarker", "nullMarkers", "preserveAsciiControlCharacters"}

    # The label rules, as JobConfiguration.labels' description in the
    # discovery document states them (checked at start-up: LABEL_RULES).
    @staticmethod
    def _label_text_ok(text):
        # "lowercase letters" of any script ("International characters are allowed").
        return len(text) <= 63 and all(c.isdigit() or c in "_-" or (c.isalpha() and c == c.lower()) for c in text)

    def _check_labels(self, labels, where):
        if labels is None:
            return
        for k, v in labels.items():
            if not (k and k[0].isalpha() and self._label_text_ok(k)):
                raise invalid("Label key %r is invalid: keys must start with a letter and hold at most 63 lowercase "
                              "letters, digits, underscores and dashes" % k, "%s.%s" % (where, k))
            if not isinstance(v, str) or not self._label_text_ok(v):
                raise invalid("Label value %r of %r is invalid: at most 63 lowercase letters, digits, underscores "
                              "and dashes" % (v, k), "%s.%s" % (where, k))

    def _precheck_load(self, load):
        """What BigQuery rejects at jobs.insert, plus the stand-in's own limits."""
        for k, v in load.items():
            if k not in self._LOAD_SUPPORTED and v not in (None, False, [], {}):
                raise not_implemented("configuration.load.%s" % k)
        if load.get("autodetect"):
            raise not_implemented("configuration.load.autodetect")
        uris = load.get("sourceUris") or []
        if not uris:
            raise invalid("Load configuration must specify at least one source URI", "configuration.load.sourceUris")
        for i, u in enumerate(uris):
            where = "configuration.load.sourceUris[%d]" % i
            if "*" in u:
                raise invalid("bq_standin: wildcard source URI %s: the loader must list every part explicitly "
                              "(a wildcard would also load orphaned parts)" % u, where)
            if not re.fullmatch(r"gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]/.+", u):
                raise invalid("Invalid source URI %s: expected gs://bucket/object" % u, where)
        self._check_table_ref(load.get("destinationTable"), "configuration.load.destinationTable")
        if (load.get("sourceFormat") or "CSV") != "NEWLINE_DELIMITED_JSON":
            raise not_implemented("sourceFormat %s (only NEWLINE_DELIMITED_JSON)" % (load.get("sourceFormat") or
                                                                                     "CSV (the default)"))
        if (load.get("encoding") or "UTF-8") != "UTF-8":
            raise not_implemented("encoding %s" % load["encoding"])
        if load.get("schema") is not None:
            normalize_fields(load["schema"].get("fields"), "configuration.load.schema.fields")

    def _precheck_copy(self, copy, project):
        sources = copy.get("sourceTables") or ([copy["sourceTable"]] if copy.get("sourceTable") else [])
        if len(sources) != 1:
            raise invalid("Copy configuration must name exactly one source table (the stand-in copies one)",
                          "configuration.copy.sourceTable")
        if copy.get("operationType") not in (None, "COPY", "OPERATION_TYPE_UNSPECIFIED"):
            raise not_implemented("copy operationType %s" % copy["operationType"])
        self._check_table_ref(sources[0], "configuration.copy.sourceTable")
        self._check_table_ref(copy.get("destinationTable"), "configuration.copy.destinationTable")

    def _read_object(self, uri):
        if not self.gcs_endpoint:
            raise JobFailure("invalid", "bq_standin was started without a GCS endpoint, cannot read %s" % uri)
        bucket, _, name = uri[len("gs://"):].partition("/")
        url = "%s/storage/v1/b/%s/o/%s?alt=media" % (self.gcs_endpoint, urllib.parse.quote(bucket, safe=""),
                                                     urllib.parse.quote(name, safe=""))
        req = urllib.request.Request(url, headers={"Authorization": self.gcs_auth})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise JobFailure("notFound", "Not found: URI %s" % uri, location=uri)
            raise JobFailure("backendError", "Error reading %s from GCS: HTTP %d" % (uri, e.code), location=uri)
        except OSError as e:
            raise JobFailure("backendError", "Error reading %s from GCS: %s" % (uri, e), location=uri)

    def _run_load(self, job):
        load = job.configuration["load"]
        ds, name, deco = self._destination(load["destinationTable"], job)
        table = ds.tables.get(name)
        write = load.get("writeDisposition") or "WRITE_APPEND"
        create = load.get("createDisposition") or "CREATE_IF_NEEDED"
        options = set(load.get("schemaUpdateOptions") or [])
        job_fields = normalize_fields((load.get("schema") or {}).get("fields")) if load.get("schema") else None
        job_tp = load.get("timePartitioning")
        full_name = "%s:%s.%s" % (ds.project, ds.id, name)
        # JobConfigurationLoad.schemaUpdateOptions: "supported in two cases:
        # when writeDisposition is WRITE_APPEND; when writeDisposition is
        # WRITE_TRUNCATE and the destination table is a partition of a table,
        # specified by partition decorators."
        if options and not (write == "WRITE_APPEND" or (write.startswith("WRITE_TRUNCATE") and deco is not None)):
            raise JobFailure("invalid", "Schema update options should only be specified with WRITE_APPEND "
                             "disposition, or with WRITE_TRUNCATE disposition on a table partition.")
        if table is None:
            if create == "CREATE_NEVER":
                raise JobFailure("notFound", "Not found: Table %s" % full_name)
            if not job_fields:
                raise JobFailure("invalid", "No schema specified on job or table.")
            try:
                tp = self._check_partitioning(job_tp, job_fields, "configuration.load.timePartitioning")
                self._check_clustering(load.get("clustering"), job_fields)
            except ApiError as e:
                raise JobFailure("invalid", e.message)
            target = Table(ds.project, ds.id, name, job_fields, tp, load.get("clustering"))
            fields = job_fields
        else:
            target = table
            if job_tp is not None:
                want = (job_tp.get("type") or "DAY", (job_tp.get("field") or "").lower())
                have = ((table.partitioning or {}).get("type") or "DAY",
                        ((table.partitioning or {}).get("field") or "").lower())
                if table.partitioning is None or want != have:
                    raise JobFailure("invalid", "Incompatible table partitioning specification. Expects "
                                     "partitioning specification %s, but input partitioning specification is "
                                     "interval(type:%s,field:%s)" % (
                                         "interval(type:%s,field:%s)" % (have[0].lower(), have[1])
                                         if table.partitioning else "none", want[0].lower(), want[1]))
            replace_schema = write in ("WRITE_TRUNCATE",) and deco is None
            fields = merge_schema(table.fields, job_fields, options, full_name, replace_schema) \
                if job_fields else table.fields
        if deco is not None:
            if target.partitioning is None:
                raise JobFailure("invalid", "Cannot use a partition decorator ($%s) on non-partitioned table %s"
                                 % (deco, full_name))
            check_decorator(deco, target.unit(), full_name)
        ignore_unknown = bool(load.get("ignoreUnknownValues"))
        max_bad = int(load.get("maxBadRecords") or 0)
        if self.count_only and deco is not None and write.startswith("WRITE_TRUNCATE"):
            return self._count_load(job, ds, name, table, target, fields, deco, load["sourceUris"])
        pfield = target.field()
        new_rows, bad, errors, in_bytes = [], 0, [], 0
        uris = load["sourceUris"]
        for uri in uris:
            data = self._read_object(uri)
            in_bytes += len(data)
            if data[:2] == b"\x1f\x8b":
                try:
                    data = gzip.decompress(data)
                except (OSError, EOFError) as e:
                    raise JobFailure("invalid", "Error while reading data, error message: %s File: %s" % (e, uri),
                                     location=uri)
            pos = 0
            for line in data.split(b"\n"):
                start, pos = pos, pos + len(line) + 1
                if not line.strip():
                    continue
                why = None
                try:
                    row = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    row, why = None, "Parser terminated before end of string" if isinstance(e, ValueError) \
                        else "invalid UTF-8"
                if why is None:
                    why = check_row(row, fields, ignore_unknown)
                if why is not None:
                    bad += 1
                    errors.append({"reason": "invalid", "location": uri,
                                   "message": "Error while reading data, error message: JSON parsing error in row "
                                              "starting at position %d: %s File: %s" % (start, why, uri)})
                    continue
                if ignore_unknown:
                    known = {f["name"].lower() for f in fields}
                    row = {k: v for k, v in row.items() if k.lower() in known}
                micros = row_time(row, pfield, fields) if pfield else None
                if deco is not None:
                    pid = deco
                    if pfield and partition_id(micros, target.unit()) != deco:
                        raise JobFailure(
                            "invalid", "Some rows belong to different partitions rather than destination partition "
                            "%s. The row starting at position %d has %s %s. File: %s" % (
                                deco, start, pfield, json.dumps(row.get(pfield)), uri), location=uri)
                elif target.partitioning is not None:
                    pid = partition_id(micros, target.unit()) if pfield else partition_id(_now_ms() * 1000,
                                                                                          target.unit())
                else:
                    pid = ""
                new_rows.append((pid, row))
        if bad > max_bad:
            raise JobFailure("invalid", "Error while reading data, error message: JSON table encountered too many "
                             "errors, giving up. Rows: %d; errors: %d. Please look into the errors[] collection for "
                             "more details. File: %s" % (len(new_rows) + bad, bad, errors[0]["location"]),
                             errors=errors[:100], location=errors[0]["location"])
        out_bytes = self._write(target, fields, deco, write, new_rows, full_name)
        if table is None:
            ds.tables[name] = target
        job.statistics["load"] = {"inputFiles": str(len(uris)), "inputFileBytes": str(in_bytes),
                                  "outputRows": str(len(new_rows) + job.misreport), "outputBytes": str(out_bytes),
                                  "badRecords": str(bad)}
        if errors:
            job.errors = errors[:100]

    def _count_before_poll(self, req):
        """count_only: a poll of a load job counts its rows before taking the lock, so that jobs of
        several clients run at once, as BigQuery's do."""
        try:
            method_id, params = self.discovery.route(req.method, req.path)
        except ApiError:
            return
        if method_id != "bigquery.jobs.get":
            return
        with self.lock:
            job = self.jobs.get((params.get("projectId"), params.get("jobId")))
            if job is None or job.type != "LOAD" or job.state == "DONE" or hasattr(job, "counted"):
                return
            uris = list(job.configuration["load"].get("sourceUris") or [])
        try:
            counted = self._count_rows(uris)
        except JobFailure:
            return  # the job fails the same way when it runs
        with self.lock:
            job.counted = counted

    def _count_rows(self, uris):
        """(rows, bytes read): a row per line (runs of blank lines, which logferry never writes, are
        not all discounted)."""
        rows, in_bytes = 0, 0
        for uri in uris:
            data = self._read_object(uri)
            in_bytes += len(data)
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            rows += data.count(b"\n") + (not data.endswith(b"\n")) - data.count(b"\n\n") if data.strip() else 0
        return rows, in_bytes

    def _count_load(self, job, ds, name, table, target, fields, deco, uris):
        """count_only: replaces partition `deco` with one placeholder row per line."""
        rows, in_bytes = getattr(job, "counted", None) or self._count_rows(uris)
        target.partitions[deco] = [None] * rows
        target.fields = fields
        target.modified_ms = _now_ms()
        if table is None:
            ds.tables[name] = target
        job.statistics["load"] = {"inputFiles": str(len(uris)), "inputFileBytes": str(in_bytes),
                                  "outputRows": str(rows + job.misreport), "outputBytes": str(in_bytes),
                                  "badRecords": "0"}

    @staticmethod
    def _write(target, fields, deco, write, new_rows, full_name):
        """Applies a write to `target` in one step; returns the bytes written."""
        if deco is not None:
            existing = target.partitions.get(deco, [])
        else:
            existing = [r for rows in target.partitions.values() for r in rows]
        if write == "WRITE_EMPTY" and existing:
            raise JobFailure("duplicate", "Already Exists: Table %s%s" % (full_name, "$" + deco if deco else ""))
        grouped = {}
        for pid, row in new_rows:
            grouped.setdefault(pid, []).append(row)
        if write in ("WRITE_TRUNCATE", "WRITE_TRUNCATE_DATA"):
            if deco is not None:
                target.partitions[deco] = grouped.get(deco, [])
            else:
                target.partitions = grouped
        else:
            for pid, rows in grouped.items():
                target.partitions.setdefault(pid, []).extend(rows)
        target.fields = fields
        target.modified_ms = _now_ms()
        return sum(len(json.dumps(r)) for _, r in new_rows)

    def _run_copy(self, job):
        copy = job.configuration["copy"]
        src_ref = (copy.get("sourceTables") or [copy.get("sourceTable")])[0]
        sds, sname, sdeco = self._destination(src_ref, job)
        source = sds.tables.get(sname)
        if source is None:
            raise JobFailure("notFound", "Not found: Table %s:%s.%s" % (sds.project, sds.id, sname))
        if sdeco is not None:
            if source.partitioning is None:
                raise JobFailure("invalid", "Cannot read a partition ($%s) of non-partitioned table %s"
                                 % (sdeco, source.name))
            check_decorator(sdeco, source.unit(), source.name)
            rows = list(source.partitions.get(sdeco, []))
        else:
            rows = [r for p in sorted(source.partitions) for r in source.partitions[p]]
        ds, name, deco = self._destination(copy["destinationTable"], job)
        full_name = "%s:%s.%s" % (ds.project, ds.id, name)
        table = ds.tables.get(name)
        write = copy.get("writeDisposition") or "WRITE_EMPTY"
        if table is None:
            if (copy.get("createDisposition") or "CREATE_IF_NEEDED") == "CREATE_NEVER":
                raise JobFailure("notFound", "Not found: Table %s" % full_name)
            target = Table(ds.project, ds.id, name, [dict(f) for f in source.fields],
                           dict(source.partitioning) if source.partitioning else None, source.clustering)
            fields = target.fields
        else:
            target = table
            for f in source.fields:
                match = [g for g in table.fields if g["name"].lower() == f["name"].lower()]
                if not match or match[0]["type"] != f["type"]:
                    raise JobFailure("invalid", "Provided Schema does not match Table %s. %s" % (
                        full_name, "Field %s is missing" % f["name"] if not match else
                        "Field %s has changed type from %s to %s" % (f["name"], match[0]["type"], f["type"])))
            fields = merge_schema(table.fields, source.fields, set(), full_name,
                                  write == "WRITE_TRUNCATE" and deco is None)
        if deco is not None:
            if target.partitioning is None:
                raise JobFailure("invalid", "Cannot use a partition decorator ($%s) on non-partitioned table %s"
                                 % (deco, full_name))
            check_decorator(deco, target.unit(), full_name)
        pfield = target.field()
        new_rows = []
        for row in rows:
            micros = row_time(row, pfield, fields) if pfield else None
            pid = partition_id(micros, target.unit()) if target.partitioning is not None and pfield else (deco or "")
            if deco is not None and pfield and pid != deco:
                raise JobFailure("invalid", "Some rows belong to different partitions rather than destination "
                                 "partition %s. Source table: %s" % (deco, source.name))
            new_rows.append((deco if deco is not None else pid, row))
        self._write(target, fields, deco, write, new_rows, full_name)
        if table is None:
            ds.tables[name] = target
        job.statistics["copy"] = {"copiedRows": str(len(new_rows)),
                                  "copiedLogicalBytes": str(sum(len(json.dumps(r)) for _, r in new_rows))}

    def _run_query(self, job):
        q = job.configuration["query"]
        sql = q.get("query") or ""
        if q.get("useLegacySql", True) is not False:
            raise JobFailure("invalidQuery", "bq_standin: the query ran as legacy SQL (useLegacySql defaults to "
                             "true in the API); the stand-in answers only GoogleSQL: set useLegacySql=false")
        for k in ("queryParameters", "destinationTable", "tableDefinitions", "userDefinedFunctionResources"):
            if q.get(k):
                raise JobFailure("invalidQuery", "bq_standin does not emulate configuration.query.%s" % k)
        script = MERGE_SCRIPT_RE.match(sql)
        if script:
            return self._run_merge_script(job, script)
        m = COUNT_QUERY_RE.match(sql)
        if not m:
            raise JobFailure("invalidQuery", "bq_standin answers only the per-partition count query: %s; got: %s"
                             % (COUNT_QUERY_TEXT, sql[:300]))
        col = m.group("col")
        for g in ("wcol1", "wcol2"):
            if m.group(g) and m.group(g).lower() != col.lower():
                raise JobFailure("invalidQuery", "bq_standin: the WHERE clause must filter the truncated column %s"
                                 % col)
        for g in ("g", "o"):
            v = m.group(g)
            if v and v != "1" and v.lower() != m.group("p").lower():
                raise JobFailure("invalidQuery", "bq_standin: GROUP BY / ORDER BY must name %s (or 1)" % m.group("p"))
        parts = m.group("table").split(".")
        default = q.get("defaultDataset") or {}
        if len(parts) == 2:
            parts = [default.get("projectId") or job.project] + parts
        if len(parts) != 3:
            raise JobFailure("invalidQuery", "Table name \"%s\" missing dataset while no default dataset is set in "
                             "the request." % m.group("table"))
        project, dataset_id, table_id = parts
        ds = self.datasets.get((project, dataset_id))
        table = ds.tables.get(table_id) if ds else None
        if table is None or ds.location.lower() != job.location.lower():
            raise JobFailure("notFound", "Not found: Table %s:%s.%s was not found in location %s"
                             % (project, dataset_id, table_id, job.location))
        field = [f for f in table.fields if f["name"].lower() == col.lower()]
        if not field:
            raise JobFailure("invalidQuery", "Unrecognized name: %s" % col)
        if field[0]["type"] != "TIMESTAMP":
            raise JobFailure("invalidQuery", "No matching signature for function TIMESTAMP_TRUNC for argument types: "
                             "%s, DATE_TIME_PART" % field[0]["type"])
        lo = hi = None
        if m.group("lo") is not None:
            lo, hi = parse_timestamp(m.group("lo")), parse_timestamp(m.group("hi"))
            if lo is None or hi is None:
                raise JobFailure("invalidQuery", "Could not cast literal to type TIMESTAMP")
        if (table.extra.get("requirePartitionFilter") or (table.partitioning or {}).get("requirePartitionFilter")) \
                and lo is None:
            raise JobFailure("invalidQuery", "Cannot query over table '%s.%s' without a filter over column(s) '%s' "
                             "that can be used for partition elimination" % (dataset_id, table_id, table.field()))
        unit = m.group("unit").upper()
        counts = {}
        for rows in table.partitions.values():
            for row in rows:
                micros = row_time(row, field[0]["name"], table.fields)
                if lo is not None and (micros is None or not lo <= micros < hi):
                    continue
                key = truncate(micros, unit) if micros is not None else None
                counts[key] = counts.get(key, 0) + 1
        keys = sorted(counts, key=lambda k: (k is not None, k or 0))  # NULLs first, as BigQuery sorts them
        if (m.group("dir") or "").upper() == "DESC":
            keys.reverse()
        schema = [{"name": m.group("p"), "type": "TIMESTAMP", "mode": "NULLABLE"},
                  {"name": m.group("n"), "type": "INTEGER", "mode": "NULLABLE"}]
        job.result = (schema, [[k, counts[k]] for k in keys])
        job.statistics["query"] = {"totalBytesProcessed": "0", "totalBytesBilled": "0", "cacheHit": False,
                                   "statementType": "SELECT", "totalSlotMs": "0"}
        job.statistics["totalBytesProcessed"] = "0"

    def _table_by_name(self, name, job):
        parts = name.split(".")
        if len(parts) != 3:
            raise JobFailure("invalidQuery", "bq_standin: name tables as `project.dataset.table`: %s" % name)
        ds = self.datasets.get((parts[0], parts[1]))
        table = ds.tables.get(parts[2]) if ds else None
        if table is None or ds.location.lower() != job.location.lower():
            raise JobFailure("notFound", "Not found: Table %s:%s.%s was not found in location %s"
                             % (parts[0], parts[1], parts[2], job.location))
        return ds, table

    @staticmethod
    def _same_type(a, b):
        """Whether a value of field `b` may be inserted into field `a`
        without coercion (RECORDs field by field, by position)."""
        if a["type"] != b["type"] or a["mode"] != b["mode"]:
            return False
        if a["type"] != "RECORD":
            return True
        fa, fb = a.get("fields") or [], b.get("fields") or []
        return len(fa) == len(fb) and all(x["name"].lower() == y["name"].lower() and
                                          BigQueryStandin._same_type(x, y) for x, y in zip(fa, fb))

    def _run_merge_script(self, job, m):
        """DELETE the time ranges, INSERT the scratch rows, atomically (the
        new partitions are computed first, then swapped in)."""
        if m.group("dtable") != m.group("itable"):
            raise JobFailure("invalidQuery", "bq_standin: the merge script deletes from and inserts into one table")
        if m.group("stable") == m.group("dtable"):
            raise JobFailure("invalidQuery", "bq_standin: the merge script inserts from another (scratch) table")
        _, table = self._table_by_name(m.group("dtable"), job)
        _, scratch = self._table_by_name(m.group("stable"), job)
        field = table.field()
        if not field:
            raise JobFailure("invalidQuery", "bq_standin: the merge script replaces periods of a table partitioned "
                             "by a column; %s is not" % table.name)
        ranges = []
        rest = RANGE_RE.sub(lambda r: ranges.append(r) or "", m.group("ranges"))
        if not ranges or re.sub(r"(?i)\bOR\b|\s", "", rest):
            raise JobFailure("invalidQuery", "bq_standin: DELETE ... WHERE must be (col >= TIMESTAMP(..) AND col < "
                             "TIMESTAMP(..)) OR ...; got: %s" % m.group("ranges")[:200])
        bounds = []
        for r in ranges:
            if r.group("c1").lower() != field.lower() or r.group("c2").lower() != field.lower():
                raise JobFailure("invalidQuery", "bq_standin: the ranges must filter %s" % field)
            lo, hi = parse_timestamp(r.group("lo")), parse_timestamp(r.group("hi"))
            if lo is None or hi is None:
                raise JobFailure("invalidQuery", "Could not cast literal to type TIMESTAMP")
            bounds.append((lo, hi))
        if m.group("icols") is None:
            raise JobFailure("invalidQuery", "bq_standin: INSERT must list its columns")
        icols = [c.strip().strip("`") for c in m.group("icols").split(",") if c.strip()]
        scols = [c.strip().strip("`") for c in m.group("scols").split(",")]
        if [c.lower() for c in icols] != [c.lower() for c in scols]:
            raise JobFailure("invalidQuery", "bq_standin: INSERT and SELECT must name the same columns in order")
        if len(set(c.lower() for c in icols)) != len(icols):
            raise JobFailure("invalidQuery", "Column name %s is duplicated in the INSERT column list" % icols[0])
        tfields = {f["name"].lower(): f for f in table.fields}
        sfields = {f["name"].lower(): f for f in scratch.fields}
        for c in icols:
            t, sf = tfields.get(c.lower()), sfields.get(c.lower())
            if t is None:
                raise JobFailure("invalidQuery", "Column %s is not present in table %s" % (c, table.name))
            if sf is None:
                raise JobFailure("invalidQuery", "Unrecognized name: %s (not a column of %s)" % (c, scratch.name))
            if not self._same_type(t, sf):
                raise JobFailure("invalidQuery", "Query column %s has type %s %s which cannot be inserted into "
                                 "column %s, which has type %s %s" % (c, sf["mode"], sf["type"], c, t["mode"],
                                                                      t["type"]))
        for f in table.fields:
            if f["mode"] == "REQUIRED" and f["name"].lower() not in {c.lower() for c in icols}:
                raise JobFailure("invalidQuery", "Required field %s cannot be omitted from the INSERT" % f["name"])
        if field.lower() not in {c.lower() for c in icols}:
            raise JobFailure("invalidQuery", "bq_standin: the merge script must insert the partitioning column %s"
                             % field)
        keep_cols = {c.lower() for c in icols}

        def inside(t):
            return t is not None and any(lo <= t < hi for lo, hi in bounds)

        inserted_rows = []
        for rows in scratch.partitions.values():
            for row in rows:
                row = {k: v for k, v in row.items() if k.lower() in keep_cols}
                t = row_time(row, field, table.fields)
                if t is None:
                    raise JobFailure("invalidQuery", "bq_standin: a scratch row has NULL %s; the merge would put it "
                                     "outside every replaced period (a reload would not remove it)" % field)
                if not inside(t):
                    raise JobFailure("invalidQuery", "bq_standin: a scratch row's %s (%d microseconds since the "
                                     "epoch) is outside the periods the script deletes (a reload would duplicate it)"
                                     % (field, t))
                inserted_rows.append((partition_id(t, table.unit()), row))
        new = {}
        deleted = 0
        for pid, rows in table.partitions.items():
            keep = [r for r in rows if not inside(row_time(r, field, table.fields))]
            deleted += len(rows) - len(keep)
            new[pid] = keep
        for pid, row in inserted_rows:
            new.setdefault(pid, []).append(row)
        table.partitions = new
        table.modified_ms = _now_ms()
        job.result = ([], [])
        job.statistics["query"] = {"totalBytesProcessed": "0", "totalBytesBilled": "0", "cacheHit": False,
                                   "statementType": "SCRIPT",
                                   "numDmlAffectedRows": str(deleted + len(inserted_rows))}
        job.statistics["totalBytesProcessed"] = "0"


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    standin = None

    def log_message(self, fmt, *args):
        pass

    def _body(self):
        """(parsed JSON or None, error text or None)."""
        data = b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            for _ in range(1_000_000):
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            data = b"".join(chunks)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and data:
            data = gzip.decompress(data)
        if not data:
            return None, None
        try:
            return json.loads(data.decode("utf-8")), None
        except (UnicodeDecodeError, ValueError) as e:
            return data, "Invalid JSON payload received. %s" % e

    def _serve(self):
        url = urllib.parse.urlsplit(self.path)
        body, body_error = self._body()
        req = LoggedRequest(self.command, url.path, urllib.parse.parse_qs(url.query, keep_blank_values=True), body,
                            {k.lower(): v for k, v in self.headers.items()})
        req.body_error = body_error
        status, out = self.standin.handle(req)
        req.status = status
        if out is None:
            payload = b""
        elif isinstance(out, bytes):
            payload = out
        else:
            payload = json.dumps(out, indent=2).encode("utf-8")
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
        self.send_header("Vary", "Origin")
        self.end_headers()
        if status != 204:
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


def main():
    import argparse
    ap = argparse.ArgumentParser(description="BigQuery stand-in for logferry's tests")
    ap.add_argument("--port", type=int, default=9050)
    ap.add_argument("--gcs", help="GCS emulator endpoint, e.g. http://127.0.0.1:9023")
    ap.add_argument("--polls-until-done", type=int, default=2)
    args = ap.parse_args()
    s = BigQueryStandin(gcs_endpoint=args.gcs, port=args.port, polls_until_done=args.polls_until_done)
    print("ready %d" % s.port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        s.stop()


if __name__ == "__main__":
    main()
