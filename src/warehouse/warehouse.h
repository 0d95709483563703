// The warehouse interface: where partitions end up. A backend is chosen by
// URI scheme through the scheme registry (registry/scheme_registry.h:
// OpenWarehouse).
//
// The contract that makes loads repeatable: ReplacePartition makes the
// partition hold exactly the rows of the load's parts, in one atomic step,
// whatever it held before. Backends classify errors (kUnavailable: transient,
// e.g. a lock held by another process); the core decides on retries.
//
// The core plans (which partitions are due, with which parts); the backend
// decides how they become jobs (GroupIntoJobs, WhyWait: BigQuery's daily job
// budget and merged loads live there). The warehouse knows nothing of the
// ledger: the core copies what a load needs into PartitionLoad and answers
// the budget's questions through LoadJobLog.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/retry.h"
#include "common/status.h"
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

// A staged part as a load reads it (the ledger's record of it).
struct StagedPart {
  std::string key;  // in the staging store
  int64_t rows = 0;
  std::string crc32c;  // as staged, hex
  // Top-level column names the part holds, comma-separated; nullopt when
  // unknown (staged before they were recorded): every column.
  std::optional<std::string> columns;
};

// One partition to replace: a snapshot of its live parts.
struct PartitionLoad {
  std::string table;
  int64_t partition_us = 0;
  // Derived from (table, partition, generation) by the ledger: a load resumed
  // after a crash keeps it, so a backend whose loads are jobs finds its job
  // instead of running a second one.
  std::string load_id;
  std::vector<StagedPart> parts;
  int64_t expected_rows = 0;  // the sum of the parts' rows
  int64_t generation = 0;     // of the partition in the ledger (job labels)
};

// The load jobs of one table sent so far, kept by the core (in the ledger):
// what a warehouse with a job quota counts against. A job is recorded just
// before it is sent, once per id.
class LoadJobLog {
 public:
  struct Recent {
    int64_t jobs = 0;                       // sent in the 24 hours up to now
    std::optional<int64_t> oldest_sent_us;  // the first of those
  };
  virtual ~LoadJobLog() = default;
  virtual StatusOr<Recent> SentInLastDay(int64_t now_us) = 0;
  // Whether a job of this id was sent before (and counted then).
  virtual StatusOr<bool> WasSent(const std::string& job_id) = 0;
};

// The partitions due, grouped into the jobs that replace them.
struct JobGroups {
  // Partition starts, ascending; each group is one job, sent in this order.
  std::vector<std::vector<int64_t>> jobs;
  // Why they are grouped so, when the log should say ("" otherwise).
  std::string why;
};

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
  // Replaces the partition [load.partition_us, +unit_us) with the rows of
  // the load's parts, read from staging, as a job named load.load_id where
  // loads are jobs. Returns the partition's row count after the replacement
  // committed.
  virtual StatusOr<int64_t> ReplacePartition(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                                             const SchemaRegistry& schema) = 0;
  // Replaces the partitions of one job (one group of GroupIntoJobs, all of
  // one table) and returns each one's row count after the replacement.
  // job_id is the ledger's name for the job: the one load's own id, or a
  // merged id naming every (partition, generation) in it. The default
  // replaces them one by one, each atomically but not together: a failure
  // part-way leaves the earlier ones replaced. BigQuery overrides it with one
  // job for all of them.
  virtual StatusOr<std::map<int64_t, int64_t>> ReplacePartitions(const std::string& job_id,
                                                                 const std::vector<PartitionLoad>& loads,
                                                                 int64_t unit_us, ObjectStore& staging,
                                                                 const SchemaRegistry& schema) {
    std::map<int64_t, int64_t> rows;
    for (const PartitionLoad& load : loads) {
      LF_ASSIGN_OR_RETURN(rows[load.partition_us], ReplacePartition(load, unit_us, staging, schema));
    }
    return rows;
  }
  // Groups the partitions due (starts, ascending) into jobs, given the jobs
  // the table has sent. The default: one job per partition, no quota.
  virtual StatusOr<JobGroups> GroupIntoJobs(const std::vector<int64_t>& due, LoadJobLog& sent, int64_t now_us) {
    JobGroups groups;
    for (int64_t partition_us : due) groups.jobs.push_back({partition_us});
    return groups;
  }
  // nullopt when job `job_id` may be sent now; else why not, for the log:
  // then it and the `waiting` partitions counted from it wait for a later
  // pass. The default: always now.
  virtual StatusOr<std::optional<std::string>> WhyWait(const std::string& job_id, size_t waiting, LoadJobLog& sent,
                                                       int64_t now_us) {
    return std::optional<std::string>();
  }
  // Whether AppendToPartition works here; if not, rows of an open
  // partition wait for its load.
  virtual bool CanAppend() const { return false; }
  // Adds the load's parts to its partition, which keeps its other rows, as
  // job load.load_id, at most once per id: called again with an id it has
  // applied (an append resumed after a crash), it adds nothing. Returns the
  // partition's row count after. kUnavailable: the outcome is unknown (try
  // the same id again); any other error: nothing was appended.
  virtual StatusOr<int64_t> AppendToPartition(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                                              const SchemaRegistry& schema) {
    return Status::FailedPrecondition("this warehouse cannot append to a partition");
  }
  // The least time between two appends to one partition given the jobs
  // the table has sent, or nullopt when none may be sent now. Default: 0.
  virtual StatusOr<std::optional<int64_t>> AppendSpacing(LoadJobLog& sent, int64_t now_us) {
    return std::optional<int64_t>(0);
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
  // Most load jobs per table in any 24 hours (BigQuery allows 1,500, failed
  // ones included).
  int64_t daily_load_budget = 1000;
  std::shared_ptr<gcp::TokenProvider> gcp_tokens;
  RetryPolicy retry;  // per request
  // How long to wait for another process's lock before giving up.
  int64_t lock_timeout_us = 60'000'000;
};

// duckdb:///path/file.duckdb: an embedded database file on this machine.
SchemeInfo DuckDbScheme();
// bigquery://project/dataset: loads from gs:// staging, within a daily
// budget of load jobs per table.
SchemeInfo BigQueryScheme();

}  // namespace logferry
