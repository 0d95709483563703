// The pipeline core: discover → stage → load, for every configured table.
//
// Crash safety comes from ordering, not from locks: a part is written
// (atomically) before the ledger records it; a partition is replaced in the
// warehouse before the ledger marks it loaded; a request object is copied
// to done/, then recorded, and deleted only once recorded (core/requests.h).
// A crash between any two steps leaves work that the next pass redoes, and
// redoing is harmless because every name derives from ledger identities.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/retry.h"
#include "core/config.h"
#include "discovery/discovery.h"
#include "ledger/ledger.h"
#include "schema/schema.h"
#include "store/object_store.h"
#include "warehouse/warehouse.h"

namespace logferry {

struct StageOutcome;

// Opens one side of a table (its source or staging store) with the core's
// per-request retry policy and the process's shared AWS credentials.
StatusOr<std::unique_ptr<ObjectStore>> OpenTableStore(const std::string& uri, const StoreOptions& side,
                                                      const std::string& google_credentials = "",
                                                      Env* env = Env::Default());
// How a table's warehouse is reached (BigQuery settings, shared Google
// tokens, the per-request retry policy, the scratch directory).
WarehouseOptions WarehouseOptionsFor(const Config& config, const TableConfig& table, bool read_only,
                                     Env* env = Env::Default());
// Google tokens for a credentials file ("" = Application Default
// Credentials), one provider per file for the whole process.
std::shared_ptr<gcp::TokenProvider> SharedGcpTokens(const std::string& credentials_file);
// The process's AWS credential chain, shared so temporary credentials are
// fetched and refreshed once.
std::shared_ptr<aws::CredentialsProvider> SharedAwsCredentials();
// How a table discovers objects, for `check`: "windowed listing: lookback
// 3h, full listing every 1h", "full listing every pass: <why no window>",
// or notifications with a full listing every reconcile_every.
std::string DescribeDiscovery(const TableConfig& table, const KeyFormat& key_format);
// Reads the depth of a table's notification queue, for `check`:
// "3 waiting, 0 in flight".
StatusOr<std::string> ProbeNotifications(const TableConfig& table);

struct TableRuntime {
  const TableConfig* config = nullptr;
  std::unique_ptr<ObjectStore> source;
  std::unique_ptr<ObjectStore> staging;
  std::unique_ptr<KeyFormat> key_format;
  std::unique_ptr<SchemaRegistry> schema;
  int64_t schema_version = -1;  // the ledger's, when schema last read it
  int64_t last_sweep_us = 0;
  // A listing, or events backed by one (discovery/discovery.h).
  std::unique_ptr<Discovery> discovery;
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
  int64_t partitions_appended = 0;  // appends into open partitions
  int64_t requests = 0;
  int64_t messages_received = 0;
  int64_t messages_deleted = 0;
  int64_t messages_in_flight = 0;  // after the pass: received, not yet deleted
  int64_t list_requests = 0;       // LIST requests to the source and staging stores
  int64_t full_listings = 0;       // listings of the whole source
  int64_t windowed_listings = 0;   // listings of its recent key ranges
  double stage_seconds = 0;

  void Add(const PassStats& other);
};

class Pipeline {
 public:
  // env: the clock and the sleeps of the pipeline, and of the stores,
  // queues and warehouses it opens (through their RetryPolicy).
  Pipeline(const Config& config, Ledger* ledger, Env* env = Env::Default());

  // Opens stores and restores each table's schema from the ledger.
  Status Init();

  // One full pass over every table. `stop` is checked between objects and
  // partitions (SIGTERM finishes the current step).
  StatusOr<PassStats> RunOnce(const std::atomic<bool>& stop);

  // Steps, public for the CLI (reload) and tests.
  // Receives event notifications (when configured) and lists the source
  // (always without notifications; every reconcile_every with them).
  StatusOr<int64_t> Discover(TableRuntime& t, PassStats* stats = nullptr);
  // Acknowledges (deletes) held notifications whose objects are now staged.
  Status Acknowledge(TableRuntime& t, PassStats* stats);
  // Stages the objects due, keeping the notifications that announced them
  // from being redelivered meanwhile.
  Status StageAndExtend(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats);
  Status Stage(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats);
  Status ProcessRequests(TableRuntime& t);
  // Loads due partitions; with a range, only those starting in [from, to).
  Status Load(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
              std::optional<std::pair<int64_t, int64_t>> range = std::nullopt);
  Status FinishRequests(TableRuntime& t);
  Status CollectGarbage(TableRuntime& t);
  // Deletes staging files under the table's prefix that no ledger part names:
  // parts of a staging run killed before its commit whose object version was
  // then replaced. A file of an object version under a live lease is kept:
  // another worker may be writing it, its commit still to come.
  Status SweepStaging(TableRuntime& t);

  TableRuntime* table(const std::string& name);
  std::vector<TableRuntime>& tables() { return tables_; }

  // Called with a one-line progress summary while staging (for terminals).
  void set_progress(std::function<void(const std::string&)> fn) { progress_ = std::move(fn); }
  // Called after each table's part of a pass, with that table's counts
  // (also when a step failed), for metrics.
  void set_table_observer(std::function<void(const TableRuntime&, const PassStats&)> fn) {
    table_observer_ = std::move(fn);
  }
  // A single pass (run --once) long-polls briefly; the daemon waits longer.
  void set_single_pass(bool single) { single_pass_ = single; }
  // The name this process's leases carry (ProcessRow::worker_id() of its
  // `run` row); by default one made up at construction (reload, tests).
  void set_worker(std::string id) { worker_ = std::move(id); }
  const std::string& worker() const { return worker_; }

  static std::string PartKey(const std::string& table, int64_t hour_us, const std::string& version_id);

 private:
  struct StageRun;
  class PartitionLeases;
  struct CommitGroup;
  class ClaimSize;

  const Config& config_;
  Ledger* ledger_;
  Env* env_;
  std::vector<TableRuntime> tables_;
  std::function<void(const std::string&)> progress_;
  bool single_pass_ = false;
  std::string worker_;
  std::function<void(const TableRuntime&, const PassStats&)> table_observer_;

  // One table's steps of a pass; the first error, after running the others.
  Status RunTable(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats);

  // Stages one claimed batch of objects not tried yet in this step (added
  // to *tried), as many as *claim says; how many it took.
  StatusOr<size_t> StageBatch(TableRuntime& t, const std::atomic<bool>& stop, PassStats* stats,
                              std::set<int64_t>* tried, ClaimSize* claim);
  // Leases of workers on this host whose process is gone (killed, or it
  // stopped holding some) are freed at once instead of lapsing.
  void FreeLeasesOfGoneLocalWorkers();
  void RenewLeases();  // every lease this worker holds, by `lease` from now

  // Load's steps (pipeline.cc).
  Status LoadDue(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const std::vector<PartitionRow>& due,
                 const std::atomic<bool>& stop, PassStats* stats);
  Status SettleAppends(TableRuntime& t, Warehouse& wh, const std::vector<PartitionRow>& due, PassStats* stats);
  Status AppendOpen(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const std::vector<PartitionRow>& open,
                    const std::atomic<bool>& stop, PassStats* stats);
  Status AppendNewParts(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const PartitionRow& p, PassStats* stats);
  Status RefreshSchema(TableRuntime& t);
  Status RunAppend(TableRuntime& t, Warehouse& wh, const AppendPlan& plan, PassStats* stats);
  StatusOr<std::unique_ptr<Warehouse>> OpenWarehouseForLoad(TableRuntime& t, const std::vector<PartitionRow>& due,
                                                            PassStats* stats);
  StatusOr<bool> LoadJob(TableRuntime& t, Warehouse& wh, LoadJobLog& jobs, const std::vector<PartitionRow>& batch,
                         size_t waiting, PassStats* stats);
  Status DropPlansWithDamagedParts(TableRuntime& t, std::vector<LoadPlan>* plans, std::vector<int>* attempts,
                                   int64_t now, PassStats* stats);
  Status RecordLoads(TableRuntime& t, const std::vector<LoadPlan>& plans, const std::vector<int>& attempts,
                     const StatusOr<std::map<int64_t, int64_t>>& replaced, const std::string& job_id, PassStats* stats);
  StatusOr<std::unique_ptr<Discovery>> OpenDiscovery(const TableRuntime& t);
  Status CheckStagedParts(TableRuntime& t, const LoadPlan& plan);
  // The steps of Stage, on each worker thread.
  void RunStageWorkers(TableRuntime& t, StageRun& run, const std::atomic<bool>& stop);
  void StageWorker(TableRuntime& t, StageRun& run, const std::atomic<bool>& stop);
  void FailObject(TableRuntime& t, StageRun& run, const ObjectRow& obj, const Status& error);
  // Records a worker's staged objects in the ledger, in one transaction.
  void CommitGroupNow(TableRuntime& t, StageRun& run, CommitGroup& group);
  void ReportCommitted(TableRuntime& t, StageRun& run, const ObjectRow& obj, const StageOutcome& outcome);
  void ReportProgress(const TableRuntime& t, const StageRun& run);
};

}  // namespace logferry
