// A fake Warehouse for tests of the core: it keeps each partition's rows (the
// NDJSON lines of the staged parts it was given) in memory, counts the
// replacements, and can lose the answer to a replacement that did commit
// (kUnavailable, or a SimulatedCrash thrown out of the caller), the window
// between "replaced in the warehouse" and "marked loaded in the ledger".
//
// Reached through the scheme registry: Schemes().Register(
// FakeWarehouseScheme(state)) makes fakewh://any a warehouse URI whose every
// Open shares `state`, as every connection shares a real warehouse.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/strings.h"
#include "fault_injection_store.h"
#include "format/compression.h"
#include "registry/scheme.h"
#include "warehouse/warehouse.h"

namespace logferry::testutil {

struct FakeWarehouseState {
  std::mutex mu;
  std::map<int64_t, std::vector<std::string>> rows;  // partition start -> its rows
  std::map<int64_t, int> replacements;               // partition start -> replacements committed
  // The next this many replacements commit and then report kUnavailable.
  int lose_answers = 0;
  // The next replacement commits and then throws SimulatedCrash.
  bool crash_after_replace = false;
  // A job policy like BigQuery's, for tests of how the core follows one:
  // every partition due in one job, and at most this many jobs sent (as the
  // core's job log counts them) unless the job was sent before. 0: the
  // default policy (one job per partition, no limit).
  int64_t job_limit = 0;
  std::vector<std::string> job_ids;  // ReplacePartitions' job ids, in order
};

class FakeWarehouse final : public Warehouse {
 public:
  explicit FakeWarehouse(std::shared_ptr<FakeWarehouseState> state) : state_(std::move(state)) {}

  Status EnsureTable(const std::string&, const SchemaRegistry&) override { return Status::Ok(); }

  StatusOr<int64_t> ReplacePartition(const PartitionLoad& plan, int64_t, ObjectStore& staging,
                                     const SchemaRegistry&) override {
    std::vector<std::string> rows;
    for (const StagedPart& part : plan.parts) {
      LF_ASSIGN_OR_RETURN(std::string gz, staging.ReadAll(part.key, 64 << 20));
      LF_ASSIGN_OR_RETURN(std::string text, Decompress(gz));
      for (std::string& line : Split(text, '\n'))
        if (!line.empty()) rows.push_back(std::move(line));
    }
    std::lock_guard lock(state_->mu);
    int64_t n = static_cast<int64_t>(rows.size());
    state_->rows[plan.partition_us] = std::move(rows);  // replaced whole, as one atomic step
    ++state_->replacements[plan.partition_us];
    if (state_->crash_after_replace) {
      state_->crash_after_replace = false;
      throw SimulatedCrash{};
    }
    if (state_->lose_answers > 0) {
      --state_->lose_answers;
      return Status::Unavailable("injected: the answer to a committed replacement was lost");
    }
    return n;
  }

  StatusOr<std::map<int64_t, int64_t>> ReplacePartitions(const std::string& job_id,
                                                         const std::vector<PartitionLoad>& loads, int64_t unit_us,
                                                         ObjectStore& staging, const SchemaRegistry& schema) override {
    {
      std::lock_guard lock(state_->mu);
      state_->job_ids.push_back(job_id);
    }
    return Warehouse::ReplacePartitions(job_id, loads, unit_us, staging, schema);
  }

  StatusOr<JobGroups> GroupIntoJobs(const std::vector<int64_t>& due, LoadJobLog& sent, int64_t now_us) override {
    if (state_->job_limit == 0) return Warehouse::GroupIntoJobs(due, sent, now_us);
    return JobGroups{{due}, "all in one job"};
  }

  StatusOr<std::optional<std::string>> WhyWait(const std::string& job_id, size_t waiting, LoadJobLog& sent,
                                               int64_t now_us) override {
    if (state_->job_limit == 0) return std::optional<std::string>();
    LF_ASSIGN_OR_RETURN(bool known, sent.WasSent(job_id));
    LF_ASSIGN_OR_RETURN(LoadJobLog::Recent recent, sent.SentInLastDay(now_us));
    if (known || recent.jobs < state_->job_limit) return std::optional<std::string>();
    return std::optional<std::string>(std::to_string(waiting) + " partition(s) wait for the job limit");
  }

  StatusOr<std::map<int64_t, int64_t>> CountByPartition(const std::string&, int64_t) override {
    std::lock_guard lock(state_->mu);
    std::map<int64_t, int64_t> counts;
    for (const auto& [partition, rows] : state_->rows)
      if (!rows.empty()) counts[partition] = static_cast<int64_t>(rows.size());
    return counts;
  }

  StatusOr<QueryResult> Query(const std::string&) override {
    return Status::InvalidArgument("the fake warehouse runs no SQL");
  }

 private:
  std::shared_ptr<FakeWarehouseState> state_;
};

inline SchemeInfo FakeWarehouseScheme(std::shared_ptr<FakeWarehouseState> state) {
  SchemeInfo s;
  s.name = "fakewh";
  s.example = "fakewh://name";
  s.service = "a fake warehouse";
  s.roles = kRoleWarehouse;
  s.open_warehouse = [state](const Uri&, const WarehouseOptions&) -> StatusOr<std::unique_ptr<Warehouse>> {
    return std::unique_ptr<Warehouse>(new FakeWarehouse(state));
  };
  return s;
}

}  // namespace logferry::testutil
