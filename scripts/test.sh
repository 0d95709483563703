#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, integration,
# end to end through the binary), then every fuzz target for a bounded 15 s
# (scripts/fuzz.sh). Exits non-zero if anything fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
cd "$root/build"
ctest --output-on-failure -j "$(nproc)" --timeout 900 "$@"
# Bounded fuzzing: each libFuzzer target 15 s from its seeds, replaying the
# reproducers kept in fuzz/corpus/ (a separate ASan+UBSan build, build-fuzz/).
# CI explores a fixed path (seed and run count) so a pass here is a pass
# there; longer, randomized runs are scripts/fuzz.sh SECONDS.
# fuzz_decompress is left out until its open finding is fixed: a truncated
# zstd frame read with tiny output buffers decodes as empty, read whole it is
# corrupt (reproducer: fuzz/corpus/fuzz_decompress/regression-zstd-*).
FUZZ_SKIP="" FUZZ_SEED=1 FUZZ_RUNS=4000 "$root/scripts/fuzz.sh" 30
