#!/usr/bin/env python3
"""The baseline logferry replaces: what the original AWS Lambda did per object.

For every .gz object under the input directories: gunzip, json.loads every
line, json.dumps it back, gzip the result. One process, stdlib only, no
batching tricks: the point is to measure the plain approach.

Usage: lambda_baseline.py [--format json|out_file] [--level N] --out-dir DIR
                          [--report FILE] INPUT_DIR...

--format out_file parses Fluentd's "time<TAB>tag<TAB>{json}" lines and adds
_time/_tag to the record, as the Lambda did; json (the default) parses each
line as a record. --level is the gzip level of the output (default 1, the
same as logferry's staging; Python's own default of 9 would make the
baseline slower still). --report writes "rows N bytes M" (M = uncompressed
input bytes) for the benchmark driver.
"""

import argparse
import gzip
import json
import os
import sys
import time


def objects(dirs):
    for d in dirs:
        for root, _, files in os.walk(d):
            for name in sorted(files):
                if name.endswith(".gz"):
                    yield os.path.join(root, name)


def convert(path, out_path, fmt, level):
    rows = 0
    nbytes = 0
    out = []
    with gzip.open(path, "rb") as f:
        for line in f:
            nbytes += len(line)
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue
            if fmt == "out_file":
                ts, tag, body = line.split(b"\t", 2)
                rec = json.loads(body)
                rec["_time"] = ts.decode()
                rec["_tag"] = tag.decode()
            else:
                rec = json.loads(line)
            out.append(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
            rows += 1
    with gzip.open(out_path, "wb", compresslevel=level) as g:
        g.write(("\n".join(out) + "\n").encode() if out else b"")
    return rows, nbytes


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--format", choices=("json", "out_file"), default="json")
    p.add_argument("--level", type=int, default=1)
    p.add_argument("--out-dir", required=True)
    p.add_argument("--report")
    p.add_argument("inputs", nargs="+")
    a = p.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    rows = nbytes = 0
    t0 = time.monotonic()
    for i, path in enumerate(objects(a.inputs)):
        out_path = os.path.join(a.out_dir, "%06d_%s" % (i, os.path.basename(path)))
        r, b = convert(path, out_path, a.format, a.level)
        rows += r
        nbytes += b
    secs = time.monotonic() - t0
    if a.report:
        with open(a.report, "w") as f:
            f.write("rows %d bytes %d\n" % (rows, nbytes))
    print("python: %d rows, %.1f MB in %.1f s (%.1f MB/s)" % (rows, nbytes / 1e6, secs, nbytes / 1e6 / max(secs, 1e-9)),
          file=sys.stderr)


if __name__ == "__main__":
    main()
