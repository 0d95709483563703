#!/usr/bin/env python3
"""Opt-in run against the REAL AWS and Google Cloud services (never run by CI).

It generates a few hours of Fluentd objects, uploads them to your S3 bucket
with the aws CLI, runs `logferry run --once` with S3 as source (optionally
with your SQS queue), GCS as staging and BigQuery as warehouse, then
`logferry verify`, and prints what it did. It creates objects under a fresh
prefix and a fresh table, and deletes the objects afterwards (the table is
left for you to inspect; drop it with `bq rm -t`).

Environment (all required unless marked):
  LOGFERRY_BIN                 the binary (default: build/logferry)
  REAL_S3_SOURCE               s3://bucket/some/prefix/   (the aws CLI must be able to write there)
  REAL_SQS_QUEUE               (optional) the queue URL receiving that bucket's ObjectCreated events
  REAL_GCS_STAGING             gs://bucket/prefix/
  REAL_BIGQUERY                bigquery://project/dataset
  REAL_BIGQUERY_LOCATION       (optional, default US)
  GOOGLE_APPLICATION_CREDENTIALS / AWS_PROFILE etc.: as for logferry itself

Usage:  python3 tests/cloud/real_cloud.py
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LOGFERRY_BIN", os.path.join(ROOT, "build", "logferry"))


def need(name):
    v = os.environ.get(name)
    if not v:
        sys.exit("set %s (see the top of %s)" % (name, __file__))
    return v


def run(args, **kw):
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, check=True, **kw)


def main():
    source = need("REAL_S3_SOURCE").rstrip("/") + "/"
    staging = need("REAL_GCS_STAGING").rstrip("/") + "/"
    warehouse = need("REAL_BIGQUERY")
    stamp = time.strftime("%Y%m%d%H%M%S")
    source_run = "%slogferry-real-%s/" % (source, stamp)
    table = "logferry_real_%s" % stamp
    work = tempfile.mkdtemp(prefix="logferry-real-")
    run([BIN, "gen", "--out", os.path.join(work, "bucket"), "--hours", "3", "--rows-per-hour", "2000"])
    run(["aws", "s3", "cp", "--recursive", "--quiet", os.path.join(work, "bucket", "logs"), source_run])
    cfg = os.path.join(work, "logferry.toml")
    with open(cfg, "w") as f:
        f.write('state_dir = "%s"\n\n[[table]]\nname = "%s"\nsource = "%s"\nstaging = "%s"\nwarehouse = "%s"\n'
                'location = "%s"\ntimezone = "+09:00"\nsettle = "0s"\n'
                % (os.path.join(work, "state"), table, source_run, staging, warehouse,
                   os.environ.get("REAL_BIGQUERY_LOCATION", "US")))
        if os.environ.get("REAL_SQS_QUEUE"):
            f.write('notifications = "%s"\n' % os.environ["REAL_SQS_QUEUE"])
    try:
        run([BIN, "check", "-c", cfg])
        run([BIN, "run", "--once", "-c", cfg])
        run([BIN, "verify", "-c", cfg])
        run([BIN, "reload", "-c", cfg, "--from", "2016-08-01T00"])
        run([BIN, "verify", "-c", cfg])
        run([BIN, "status", "-c", cfg])
        print("OK: S3 → GCS → BigQuery verified against the real services; table %s" % table)
    finally:
        subprocess.run(["aws", "s3", "rm", "--recursive", "--quiet", source_run])


if __name__ == "__main__":
    main()
