#!/usr/bin/env bash
# The hygiene checks CI runs (scripts/test.sh): formatting (.clang-format),
# clang-tidy on what changed since the last clean full run (scripts/tidy.sh),
# and no function over 100 lines in src/ except those named, with the reason,
# in scripts/long_functions.allow.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/format.sh" --check
"$root/scripts/tidy.sh"
long=$("$root/scripts/long_functions.sh" 100 || true)
allowed=$(grep -v '^#' "$root/scripts/long_functions.allow" | awk '{print $1}' || true)
bad=0
while read -r n where name; do
  [ -n "$name" ] || continue
  if ! grep -qx "$name" <<<"$allowed"; then echo "function over 100 lines: $name ($n lines, $where)"; bad=1; fi
done <<<"$long"
[ $bad -eq 0 ] && echo "long functions: none over 100 lines outside scripts/long_functions.allow"
exit $bad
