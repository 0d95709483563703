#!/usr/bin/env bash
# Lists the functions in src/ longer than LIMIT lines (default 100), longest
# first, as "lines  file:line  name", and exits 1 if there are any. Uses
# universal-ctags's end: field; a lambda counts toward its enclosing function.
# Usage: scripts/long_functions.sh [LIMIT] [PATH...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
limit=${1:-100}
shift || true
[ $# -gt 0 ] || set -- "$root/src"
command -v ctags >/dev/null || { echo "long_functions: ctags not found (scripts/setup.sh installs universal-ctags)" >&2; exit 2; }
ctags -R --languages=C++ --c++-kinds=f --fields=+ne -f - "$@" |
  awk -F'\t' -v limit="$limit" -v root="$root/" '
    { line = ""; end = ""
      for (i = 4; i <= NF; i++) {
        if ($i ~ /^line:/) line = substr($i, 6)
        if ($i ~ /^end:/) end = substr($i, 5)
      }
      if (line == "" || end == "") next
      n = end - line + 1
      file = $2; sub(root, "", file)
      if (n > limit) printf "%5d  %s:%s  %s\n", n, file, line, $1 }' |
  sort -rn | awk '{ print } END { exit NR > 0 }'
