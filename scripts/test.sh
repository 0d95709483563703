#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration,
# end to end through the binary). Exits non-zero if anything fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
