#!/usr/bin/env bash
# Formats the C++ sources with the repo's .clang-format (so layout is never a review topic).
# --check: report files that would change, exit 1 if any.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'bench/*.cc')
if [ "${1:-}" = "--check" ]; then
  bad=0
  for f in $files; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then echo "needs formatting: $f"; bad=1; fi
  done
  exit $bad
fi
clang-format -i $files
