#!/usr/bin/env bash
# Runs the tests under sanitizers (scripts/test.sh calls it):
#   asan  AddressSanitizer + UndefinedBehaviorSanitizer: every unit test, and
#         a short end-to-end run of the binary on hostile and odd inputs. In
#         build-fuzz/, the fuzz targets' build, so the instrumented core is
#         compiled once for both.
#   tsan  ThreadSanitizer: the tests whose staging workers share the schema
#         registry and the ledger (logferry_threads_tests), in build-tsan/.
# Usage: scripts/sanitize.sh [asan|tsan]...   (default: both)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v clang++ >/dev/null || { echo "sanitize: clang++ not found (scripts/setup.sh installs it)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)

configure() {  # build-dir, extra cmake args...
  local build=$1
  shift
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLOGFERRY_TESTS=ON -DLOGFERRY_BENCH=OFF "${launcher[@]}" "$@" >/dev/null
}

asan() {
  local build="${FUZZ_BUILD_DIR:-$root/build-fuzz}"
  configure "$build" -DLOGFERRY_FUZZ=ON
  cmake --build "$build" -j "$(nproc)" --target logferry logferry_unit_tests
  export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  echo "sanitize: unit tests under ASan+UBSan"
  "$build/logferry_unit_tests" --gtest_brief=1
  echo "sanitize: end to end under ASan+UBSan"
  (cd "$root/tests/e2e" && LOGFERRY_BIN="$build/logferry" LOGFERRY_SOURCE_DIR="$root" LOGFERRY_SANITIZED=1 \
    python3 -m unittest test_hostile_corpus test_hostile_requests test_formats)
}

tsan() {
  local build="$root/build-tsan"
  configure "$build" -DLOGFERRY_SANITIZE=thread
  cmake --build "$build" -j "$(nproc)" --target logferry_threads_tests
  echo "sanitize: staging under TSan"
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/tsan.supp" \
    "$build/logferry_threads_tests" --gtest_brief=1
}

[ $# -gt 0 ] || set -- asan tsan
for what in "$@"; do "$what"; done
