#!/usr/bin/env bash
# Normalization benchmark: logferry vs DuckDB vs the Python Lambda baseline.
#
#   bench/run.sh [BUILD_DIR] [--quick] [--threads N] [--duckdb-threads N]
#                [--skip-python] [--skip-duckdb] [--repeat N] [--duckdb-variants]
#                [--breakdown] [--lineage source,line] [--data-root DIR] [--regen]
#
# BUILD_DIR: an existing build directory holding logferry and logferry_bench
# (default: configure and build Release into <repo>/build-bench).
# Generates the same records twice (out_file and json, same seed) under
# --data-root (default ${TMPDIR:-/tmp}/logferry-bench-data), about 1.1 GB
# uncompressed each, or about 100 MB with --quick. Data sets are reused across
# runs unless --regen. The other options go to logferry_bench (see its --help).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

build=""
quick=0
regen=0
data_root="${TMPDIR:-/tmp}/logferry-bench-data"
bench_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --regen) regen=1 ;;
    --data-root) data_root="$2"; shift ;;
    --threads|--duckdb-threads|--repeat|--lineage) bench_args+=("$1" "$2"); shift ;;
    --skip-python|--skip-duckdb|--duckdb-variants|--breakdown) bench_args+=("$1") ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {print}' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) [[ -z "$build" ]] || { echo "run.sh: one BUILD_DIR only" >&2; exit 2; }; build="$1" ;;
  esac
  shift
done

if [[ -z "$build" ]]; then
  build="$repo/build-bench"
  launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
  cmake --build "$build" --target logferry logferry_bench
fi
for bin in logferry logferry_bench; do
  [[ -x "$build/$bin" ]] || { echo "run.sh: $build/$bin not found (build it first)" >&2; exit 1; }
done

# ~310 bytes per record: 48 h x 75000 records/h is about 1.1 GB per format.
hours=48
if [[ $quick == 1 ]]; then rows=7000; else rows=75000; fi
seed=42
tag="h${hours}-r${rows}-s${seed}"
data="$data_root/$tag"

gen() {  # gen FORMAT
  local dir="$data/$1"
  if [[ $regen == 1 || ! -f "$dir/.complete" ]]; then
    rm -rf "$dir"
    "$build/logferry" gen --out "$dir" --hours "$hours" --rows-per-hour "$rows" --seed "$seed" --format "$1"
    touch "$dir/.complete"
  else
    echo "reusing $dir"
  fi
}
gen out_file
gen json

echo
"$build/logferry_bench" --data "$data/out_file" --json-data "$data/json" \
  --python-script "$here/lambda_baseline.py" "${bench_args[@]}"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
