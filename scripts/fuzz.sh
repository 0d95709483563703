#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cc) into build-fuzz/ with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, then runs each target for
# SECONDS_PER_TARGET (default 10), one at a time, starting from its seeds in
# fuzz/corpus/<target>/. The seeds are copied to a scratch directory first,
# so inputs the fuzzer finds never land in the repository.
#
# Exits non-zero if any target crashes, hangs, runs out of memory or breaks
# an invariant, printing the reproducer's path; rerun one with
#   build-fuzz/fuzz/<target> <reproducer>
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-10}
shift || true
build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"  # another directory lets two runs go side by side

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/setup.sh installs it)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DLOGFERRY_FUZZ=ON -DLOGFERRY_TESTS=ON -DLOGFERRY_BENCH=OFF "${launcher[@]}" >/dev/null

if [ $# -gt 0 ]; then
  targets=("$@")
else
  targets=()
  for src in "$root"/fuzz/fuzz_*.cc; do
    t="$(basename "$src" .cc)"
    # FUZZ_SKIP: space-separated targets left out (with the reason stated by the caller).
    [[ " ${FUZZ_SKIP:-} " == *" $t "* ]] && { echo "fuzz: $t skipped (FUZZ_SKIP)"; continue; }
    targets+=("$t")
  done
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"
crashes=0
for t in "${targets[@]}"; do
  corpus="$scratch/$t"
  mkdir -p "$corpus"
  [ -d "$root/fuzz/corpus/$t" ] && cp -R "$root/fuzz/corpus/$t/." "$corpus/"
  log="$artifacts/$t.log"
  set +e
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}" \
    "$build/fuzz/$t" -max_total_time="$secs" ${FUZZ_RUNS:+-runs=$FUZZ_RUNS} ${FUZZ_SEED:+-seed=$FUZZ_SEED} \
      -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/$t-" -print_final_stats=1 "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  stats=$( (grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" || true) | tail -1 | sed -E 's/ +/ /g')
  if [ $rc -ne 0 ]; then
    crashes=$((crashes + 1))
    repro=$(grep -oE "Test unit written to \S+" "$log" | tail -1 | sed 's/Test unit written to //')
    echo "fuzz: $t FAILED (exit $rc); reproducer: ${repro:-none written}; log: $log"
    grep -E 'INVARIANT VIOLATED|ERROR: |runtime error|SUMMARY' "$log" | head -5 | sed 's/^/  /'
  else
    echo "fuzz: $t ok: $stats"
  fi
done
echo "fuzz: ${#targets[@]} targets, $secs seconds each, $crashes crashes"
[ $crashes -eq 0 ]
