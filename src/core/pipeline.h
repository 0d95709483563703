// The pipeline core: discover → stage → load, for every configured table.
//
// Crash safety comes from ordering, not from locks: a part is written
// (atomically) before the ledger records it; a partition is replaced in the
// warehouse before the ledger marks it loaded; a request object is moved to
// done/ only after the ledger recorded it. A crash between any two steps
// leaves work that the next pass redoes, and redoing is harmless because
// every name derives from ledger identities.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/retry.h"
#include "ledger/ledger.h"
#include "schema/schema.h"
#include "store/object_store.h"
#include "warehouse/warehouse.h"

namespace logferry {

struct TableRuntime {
  const TableConfig* config = nullptr;
  std::unique_ptr<ObjectStore> source;
  std::unique_ptr<ObjectStore> staging;
  std::unique_ptr<KeyFormat> key_format;
  std::unique_ptr<SchemaRegistry> schema;
  int64_t last_sweep_us = 0;
};

struct PassStats {
  int64_t discovered = 0;
  int64_t staged_objects = 0;
  int64_t failed_objects = 0;
  int64_t rows_staged = 0;
  int64_t bad_records = 0;
  uint64_t bytes_read = 0;  // uncompressed
  int64_t partitions_loaded = 0;
  int64_t partitions_failed = 0;
  int64_t requests = 0;
  double stage_seconds = 0;
};

class Pipeline {
 public:
  Pipeline(const Config& config, Ledger* ledger);

  // Opens stores and restores each table's schema from the ledger.
  Status Init();

  // One full pass over every table. `stop` is checked between objects and
  // partitions (SIGTERM finishes the current step).
  StatusOr<PassStats> RunOnce(const std::atomic<bool>& stop);

  // Steps, public for the CLI (reload) and tests.
  StatusOr<int64_t> Discover(TableRuntime& t);
  Status Stage(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats);
  Status ProcessRequests(TableRuntime& t);
  // Loads due partitions; with a range, only those starting in [from, to).
  Status Load(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
              std::optional<std::pair<int64_t, int64_t>> range = std::nullopt);
  Status FinishRequests(TableRuntime& t);
  Status CollectGarbage(TableRuntime& t);
  // Deletes staging files under the table's prefix that no ledger part names:
  // parts of a staging run killed before its commit whose object version was
  // then replaced. Only safe while nothing is being staged (run.lock held,
  // between passes' stage steps).
  Status SweepStaging(TableRuntime& t);

  TableRuntime* table(const std::string& name);
  std::vector<TableRuntime>& tables() { return tables_; }

  // Called with a one-line progress summary while staging (for terminals).
  void set_progress(std::function<void(const std::string&)> fn) { progress_ = std::move(fn); }

  static std::string PartKey(const std::string& table, int64_t hour_us, const std::string& version_id);
  static constexpr const char* kRequestsPrefix = "_requests/";
  static constexpr const char* kRequestsDonePrefix = "_requests/done/";

 private:
  const Config& config_;
  Ledger* ledger_;
  std::vector<TableRuntime> tables_;
  std::function<void(const std::string&)> progress_;
  RetryPolicy io_retry_;
};

}  // namespace logferry
