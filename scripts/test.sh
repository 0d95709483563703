#!/usr/bin/env bash
# Installs what is missing, builds (warnings are errors), checks hygiene
# (scripts/check_style.sh: clang-format, clang-tidy on what changed since the
# last clean full run, no function over 100 lines), and runs every test:
# unit, integration, end to end through the binary, and the build's layering
# probes (ctest); then every fuzz target
# deterministically (scripts/fuzz.sh: seed 1, 4,000 runs each, replaying the
# reproducers kept in fuzz/corpus/); then the unit tests and a short end-to-end
# run under ASan+UBSan (a RelWithDebInfo build with asserts on), and staging
# under TSan (scripts/sanitize.sh).
# Exits non-zero if anything fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
"$root/scripts/check_style.sh"
cd "$root/build"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
# CI explores a fixed path (seed and run count) so a pass here is a pass
# there; longer, randomized runs are scripts/fuzz.sh SECONDS.
FUZZ_SKIP="" FUZZ_SEED=1 FUZZ_RUNS=4000 "$root/scripts/fuzz.sh" 30
"$root/scripts/sanitize.sh"
