#!/usr/bin/env bash
# Staging throughput of every Fluentd format, against the json path, in one run.
#
#   bench/formats.sh [BUILD_DIR] [ROWS_PER_HOUR]     (default: build, 40000 → ~1.2 M records per format)
#
# For each format the same records are generated (same seed), then staged by
# `logferry run --once` with one worker and loading held back (settle far in
# the future), so the time is decompress + parse + normalize + gzip + write.
# Prints MB/s of uncompressed input and records/s per core (CPU time), and
# each format's ratio to json. The issue's bar: every format ≥ 0.5× json.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$repo/build}"
rows="${2:-40000}"
lf="$build/logferry"
work="$(mktemp -d "${TMPDIR:-/tmp}/logferry-formats-XXXXXX")"
trap 'rm -rf "$work"' EXIT
keys='["time","host","user","method","path","code","size","referer","agent","response_time","country"]'

printf '%-13s %10s %10s %8s %12s %12s %14s\n' format records "MB in" "cpu s" "MB/s/core" "rec/s/core" "rec/s vs json"
declare -A rate
for fmt in json out_file ltsv csv tsv single_value msgpack; do
  out=$("$lf" gen --out "$work/$fmt" --hours 30 --rows-per-hour "$rows" --format "$fmt" --seed 7 --split-every 0)
  records=$(echo "$out" | sed -E 's/.* ([0-9]+) records.*/\1/')
  # Uncompressed bytes, measured rather than taken from gen's rounded figure.
  bytes=$(for f in "$work/$fmt"/logs/*; do gzip -dc "$f"; done | wc -c)
  extra=""
  case "$fmt" in csv|tsv) extra="keys = $keys" ;; esac
  cat > "$work/$fmt.toml" <<TOML
state_dir = "$work/state-$fmt"
workers = 1
[[table]]
name = "t"
source = "file://$work/$fmt/logs/"
staging = "file://$work/staging-$fmt/"
warehouse = "duckdb://$work/$fmt.duckdb"
format = "$fmt"
timezone = "+09:00"
settle = "36000d"            # far in the future (durations are capped at 100 years)
$extra
TOML
  # CPU time of the child (user + system), from its rusage.
  cpu=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(r.ru_utime + r.ru_stime)' "$lf" run -c "$work/$fmt.toml" --once)
  mbps=$(awk -v b="$bytes" -v c="$cpu" 'BEGIN {printf "%.1f", b / 1e6 / c}')
  rps=$(awk -v r="$records" -v c="$cpu" 'BEGIN {printf "%.0f", r / c}')
  rate[$fmt]=$rps
  ratio=$(awk -v a="$rps" -v j="${rate[json]}" 'BEGIN {printf "%.2fx", a / j}')
  printf '%-13s %10s %10.1f %8.2f %12s %12s %14s\n' "$fmt" "$records" "$(awk -v b="$bytes" 'BEGIN {print b / 1e6}')" \
    "$cpu" "$mbps" "$rps" "$ratio"
  rm -rf "$work/staging-$fmt" "$work/state-$fmt"
done
