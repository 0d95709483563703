// Configuration: TOML, one [[table]] per pipeline. Every key is declared once
// in config.cc's key table (name, where it may appear, default, doc), which
// drives validation and the reference in docs/configuration.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "format/compression.h"
#include "format/format_options.h"
#include "format/key_format.h"
#include "format/lineage.h"
#include "store/object_store.h"

namespace logferry {

struct TableConfig {
  std::string name;
  std::string source;
  std::string staging;
  std::string warehouse;
  // How to reach each side (endpoint, region, addressing); the core adds the
  // retry policy and shared credentials when it opens the stores.
  StoreOptions source_store;
  StoreOptions staging_store;
  std::string notifications;  // SQS queue URL, or empty
  // Google (gs://, bigquery://).
  std::string credentials;
  std::string bigquery_endpoint;
  std::string location;
  std::vector<std::string> clustering;
  int64_t daily_load_budget = 0;
  int64_t max_uris_per_load = 0;
  int64_t reconcile_every_us = 0;
  int64_t lookback_us = 0;  // windowed listing; 0: none
  int64_t sqs_wait_us = 0;
  int64_t sqs_visibility_us = 0;
  std::string key_format;
  std::string time_slice_format;
  std::string format_name;
  FormatOptions format;
  Compression compression = Compression::kAuto;
  std::string timezone;
  TimeZone zone;          // of times and time slices written without an offset
  std::string partition;  // "hour" | "day"
  int64_t partition_unit_us = 0;
  int64_t settle_us = 0;
  int64_t interval_us = 0;
  // Least time between appends to an open partition; nullopt: "off".
  std::optional<int64_t> fresh_interval_us;
  int64_t max_line_bytes = 0;
  int64_t max_partitions_per_object = 0;
  int64_t max_columns = 0;
  Lineage lineage;  // columns saying where each row came from (`lineage`)
  int64_t retry_base_us = 0;
  int64_t retry_max_us = 0;
};

struct Config {
  std::string path;
  std::string state_dir;
  std::string ledger;  // a postgresql:// URI; empty: SQLite in state_dir
  int workers = 0;
  std::string log_level;
  std::string log_format;            // "text" or "json"
  bool allow_insecure_http = false;  // plain http to non-loopback SigV4 endpoints
  int64_t lock_timeout_us = 0;
  // How long a worker's claim on an object or partition lasts unless renewed
  // (several `run` processes on one ledger): how soon a dead one's work is
  // taken over.
  int64_t lease_us = 0;
  std::string metrics_listen;  // "HOST:PORT" of the daemon's /metrics, /healthz, /readyz; empty: off
  std::vector<TableConfig> tables;

  const TableConfig* FindTable(const std::string& name) const;
  int64_t MinInterval() const;
  // What Ledger::Open takes: the SQLite file, or the PostgreSQL URI.
  std::string LedgerPath() const { return ledger.empty() ? SqliteLedgerPath() : ledger; }
  std::string SqliteLedgerPath() const { return state_dir + "/ledger.db"; }
  // LedgerPath() as messages show it (without a password).
  std::string LedgerName() const;
};

// Parses and validates a config file. Errors name the key and line.
StatusOr<Config> LoadConfig(const std::string& path);
StatusOr<Config> ParseConfig(const std::string& text, const std::string& origin);

// Markdown reference of every key (docs/configuration.md is generated from it).
std::string ConfigReference();

}  // namespace logferry
