#!/usr/bin/env bash
# The main job on the embedded default, on one machine with no cloud account:
# generate a day of Fluentd out_s3 objects into a local "bucket", run logferry
# once (stage into a local staging store, load into DuckDB), then query it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/build.sh"
demo=${DEMO_DIR:-$root/demo}
rm -rf "$demo"
mkdir -p "$demo"
lf="$root/build/logferry"

"$lf" gen --out "$demo/bucket" --hours 24 --rows-per-hour 20000 --start 2016-08-01T00 --timezone +09:00

cat > "$demo/logferry.toml" <<TOML
state_dir = "$demo/state"

[[table]]
name = "access"
source = "file://$demo/bucket/logs/"
key_format = "%{path}%{time_slice}_%{index}.%{file_extension}"
time_slice_format = "%Y%m%d%H"
format = "out_file"
timezone = "+09:00"
staging = "file://$demo/staging/"
warehouse = "duckdb://$demo/logs.duckdb"
partition = "hour"
settle = "10m"
TOML

"$lf" run -c "$demo/logferry.toml" --once
"$lf" query -c "$demo/logferry.toml" \
  "SELECT strftime(_time, '%Y-%m-%d %H:00') AS hour_utc, count(*) AS requests,
          round(avg(response_time), 1) AS avg_ms, sum(CASE WHEN code >= 500 THEN 1 ELSE 0 END) AS errors_5xx
   FROM access GROUP BY ALL ORDER BY hour_utc"
"$lf" verify -c "$demo/logferry.toml"
echo "demo: config at $demo/logferry.toml — try: $lf status -c $demo/logferry.toml"
