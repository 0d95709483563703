#!/usr/bin/env python3
"""Checks that the build enforces the module layering (CMakeLists.txt).

Builds three probe targets in the given build dir: one include the layering
allows, which must compile, and three it forbids (an upward include, a
header of a module linked PRIVATEly below, the ledger from a warehouse, and
a module's INTERNAL header from a module that links it), which must fail because the
header is not found, not for any other reason.
Usage: check_layering.py BUILD_DIR
"""
import subprocess
import sys


def build(build_dir, target):
    r = subprocess.run(["cmake", "--build", build_dir, "--target", target],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return r.returncode, r.stdout


def main():
    build_dir = sys.argv[1]
    failures = []
    rc, out = build(build_dir, "layering_probe_allowed")
    if rc != 0:
        failures.append("the allowed include did not build:\n" + out[-2000:])
    for target, header in (("layering_probe_upward", "core/pipeline.h"),
                           ("layering_probe_private", "aws/client.h"),
                           ("layering_probe_warehouse", "ledger/ledger.h"),
                           ("layering_probe_internal", "ledger/sqlite.h")):
        rc, out = build(build_dir, target)
        if rc == 0:
            failures.append(f"{target}: including {header} built, but the layering forbids it")
        elif header not in out or ("No such file" not in out and "not found" not in out):
            failures.append(f"{target}: failed, but not because {header} is unreachable:\n" + out[-2000:])
    for f in failures:
        print("FAIL:", f)
    print("layering: %d of 5 probes as expected" % (5 - len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
