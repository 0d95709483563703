// The warehouse interface: where partitions end up. A backend is chosen by
// URI scheme through the scheme registry (registry/scheme_registry.h:
// OpenWarehouse).
//
// The contract that makes loads repeatable: ReplacePartition makes the
// partition hold exactly the rows of the plan's parts, in one atomic step,
// whatever it held before. Backends classify errors (kUnavailable: transient,
// e.g. a lock held by another process); the core decides on retries.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/retry.h"
#include "common/status.h"
#include "ledger/ledger.h"
#include "registry/scheme.h"
#include "schema/schema.h"
#include "store/object_store.h"

namespace logferry {

namespace gcp {
class TokenProvider;
}

// What a column's values are, so that output formats can keep numbers and
// booleans apart from text (JSON). Everything else (dates, timestamps,
// nested values, blobs) is text.
enum class ValueKind { kText, kNumber, kBool };

struct QueryResult {
  std::vector<std::string> columns;
  std::vector<ValueKind> kinds;  // one per column
  // Values as DuckDB casts them to text, complete (NUL bytes included). A
  // number's text may still be "nan" or "inf", which JSON has no form for.
  std::vector<std::vector<std::optional<std::string>>> rows;
};

class Warehouse {
 public:
  virtual ~Warehouse() = default;

  // Creates the table or brings it up to the schema (new nullable columns,
  // widened types). Idempotent.
  virtual Status EnsureTable(const std::string& table, const SchemaRegistry& schema) = 0;
  // Replaces the partition [plan.partition_us, +unit_us) with the rows of the
  // plan's parts, read from staging. Returns the partition's row count after
  // the replacement committed.
  virtual StatusOr<int64_t> ReplacePartition(const LoadPlan& plan, int64_t unit_us, ObjectStore& staging,
                                             const SchemaRegistry& schema) = 0;
  // Replaces several partitions of one table (a merged load, used when the
  // daily job budget is short) and returns each one's row count after the
  // replacement. The default replaces them one by one, each atomically but
  // not together: a failure part-way leaves the earlier ones replaced.
  // BigQuery overrides it with one job for all of them.
  virtual StatusOr<std::map<int64_t, int64_t>> ReplacePartitions(const std::vector<LoadPlan>& plans, int64_t unit_us,
                                                                 ObjectStore& staging, const SchemaRegistry& schema) {
    std::map<int64_t, int64_t> rows;
    for (const LoadPlan& plan : plans) {
      LF_ASSIGN_OR_RETURN(rows[plan.partition_us], ReplacePartition(plan, unit_us, staging, schema));
    }
    return rows;
  }
  // Row counts per partition start (for verify). kNotFound if no table.
  virtual StatusOr<std::map<int64_t, int64_t>> CountByPartition(const std::string& table, int64_t unit_us) = 0;
  // Runs one SQL statement and returns every value as text (NULL as
  // nullopt) with each column's kind. kInvalidArgument if the SQL fails.
  virtual StatusOr<QueryResult> Query(const std::string& sql) = 0;
};

struct WarehouseOptions {
  bool read_only = false;
  // false: SQL cannot reach files or the network (duckdb://: external
  // access off and the configuration locked, so no read_csv('/etc/passwd'),
  // COPY ... TO, ATTACH, INSTALL or LOAD). For `logferry query`, whose SQL
  // is the user's; loads need it on to read staged parts.
  bool sql_file_access = true;
  // bigquery:// settings (ignored by duckdb://).
  std::string endpoint;  // empty: https://bigquery.googleapis.com
  std::string location = "US";
  std::vector<std::string> clustering;
  int64_t partition_unit_us = 3'600'000'000;  // HOUR (or DAY) time partitioning on _time
  size_t max_uris_per_load = 10'000;          // BigQuery's limit per load job
  std::shared_ptr<gcp::TokenProvider> gcp_tokens;
  RetryPolicy retry;  // per request
  // How long to wait for another process's lock before giving up.
  int64_t lock_timeout_us = 60'000'000;
  std::string scratch_dir;  // for downloading parts from remote staging
};

// duckdb:///path/file.duckdb: an embedded database file on this machine.
SchemeInfo DuckDbScheme();
// bigquery://project/dataset: loads from gs:// staging, within a daily
// budget of load jobs per table.
SchemeInfo BigQueryScheme();

}  // namespace logferry
