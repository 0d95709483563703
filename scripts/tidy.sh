#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) over project sources, warnings as errors, with
# build/compile_commands.json (scripts/build.sh makes it).
#   scripts/tidy.sh          the .cc files changed since the commit in
#                            .ci/tidy-base, plus those that include a header
#                            changed since then (what CI runs)
#   scripts/tidy.sh --all    every .cc file in src/; on success it records
#                            HEAD in .ci/tidy-base (commit that file)
# A whole-tree run costs about 5 CPU-minutes (simdjson, DuckDB and nlohmann
# headers dominate), so CI checks what changed since the last clean full run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-$root/build}
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json (run scripts/build.sh)" >&2; exit 2; }
all=0
[ "${1:-}" = "--all" ] && all=1
if [ $all -eq 1 ]; then
  mapfile -t files < <(git ls-files 'src/*.cc')
else
  base=$(cat .ci/tidy-base)
  mapfile -t changed < <(git diff --name-only "$base" -- 'src/*.cc' 'src/*.h'; git ls-files --others --exclude-standard 'src/*.cc' 'src/*.h')
  declare -A pick=()
  for f in "${changed[@]}"; do
    [ -f "$f" ] || continue
    case "$f" in
      *.cc) pick[$f]=1 ;;
      *.h) while read -r user; do pick[$user]=1; done < <(git grep -l "#include \"${f#src/}\"" -- 'src/*.cc' || true) ;;
    esac
  done
  files=("${!pick[@]}")
fi
if [ ${#files[@]} -eq 0 ]; then echo "tidy: nothing changed since $(cat .ci/tidy-base)"; exit 0; fi
echo "tidy: ${#files[@]} files"
out=$(mktemp)
status=0
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -n 4 clang-tidy -p "$build" --quiet --warnings-as-errors='*' >"$out" 2>/dev/null || status=$?
cat "$out"
rm -f "$out"
[ $status -eq 0 ] || { echo "tidy: findings above (exit $status)" >&2; exit 1; }
if [ $all -eq 1 ]; then git rev-parse HEAD > .ci/tidy-base; echo "tidy: clean; .ci/tidy-base = $(cat .ci/tidy-base)"; fi
