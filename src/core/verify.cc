#include "core/verify.h"

#include <map>
#include <set>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

// One table's reconciliation, in three steps that share what the ledger
// said: source ↔ ledger, ledger ↔ staging, ledger ↔ warehouse.
class TableVerifier {
 public:
  TableVerifier(TableRuntime& t, Ledger& ledger, const Config& config, VerifyReport* report)
      : t_(t), cfg_(*t.config), ledger_(ledger), config_(config), r_(report), prefix_("[" + cfg_.name + "] ") {}

  Status Run() {
    LF_ASSIGN_OR_RETURN(objects_, ledger_.Objects(cfg_.name));
    LF_RETURN_IF_ERROR(CheckSource());
    CheckObjectCounts();
    LF_RETURN_IF_ERROR(CheckParts());
    CheckPartRows();
    LF_RETURN_IF_ERROR(CheckStrayFiles());
    return CheckWarehouse();
  }

 private:
  void Diff(const std::string& s) { r_->differences.push_back(prefix_ + s); }
  void Note(const std::string& s) { r_->notes.push_back(prefix_ + s); }

  // Source ↔ ledger: every object Fluentd wrote is staged in its current version.
  Status CheckSource() {
    LF_ASSIGN_OR_RETURN(auto listed, t_.source->ListAll(""));
    std::map<std::pair<std::string, std::string>, const ObjectRow*> by_version;
    for (const ObjectRow& o : objects_) by_version[{o.key, o.etag}] = &o;
    for (const ObjectInfo& o : listed) {
      if (!t_.key_format->Match(o.key)) continue;
      source_keys_.insert(o.key);
      ++r_->objects;
      auto it = by_version.find({o.key, o.etag});
      std::string name = "source object " + t_.source->UriOf(o.key);
      if (it == by_version.end()) {
        Diff(name + " (etag " + o.etag + ") is not in the ledger yet");
      } else if (it->second->state == ObjectState::kFailed) {
        Diff(name + " failed: " + it->second->last_error);
      } else if (it->second->state == ObjectState::kSkipped) {
        ++r_->skipped;
        Note(name + " is skipped (acknowledged as broken: " + it->second->skip_reason + "); it holds no rows");
      } else if (it->second->state != ObjectState::kStaged) {
        Diff(name + " is " + ObjectStateName(it->second->state) + ", not staged");
      }
    }
    return Status::Ok();
  }

  void CheckObjectCounts() {
    for (const ObjectRow& o : objects_) {
      if (o.state != ObjectState::kStaged) continue;
      if (!source_keys_.count(o.key))
        Note("staged object " + o.key + " is no longer in the source (expired or deleted); its rows stay");
      if (o.lines_read != o.rows_staged + o.bad_records)
        Diff("object " + o.key + ": lines read " + std::to_string(o.lines_read) + " != rows staged " +
             std::to_string(o.rows_staged) + " + bad records " + std::to_string(o.bad_records));
    }
  }

  // Ledger ↔ staging: every live part exists with its recorded size and checksum.
  Status CheckParts() {
    LF_ASSIGN_OR_RETURN(auto parts, ledger_.LiveParts(cfg_.name));
    LF_ASSIGN_OR_RETURN(staged_files_, t_.staging->ListAll(cfg_.name + "/"));
    std::map<std::string, const ObjectInfo*> files;
    for (const ObjectInfo& f : staged_files_) files[f.key] = &f;
    for (const PartRow& p : parts) {
      ++r_->parts;
      live_keys_.insert(p.key);
      rows_by_object_[p.object_id] += p.rows;
      expected_by_partition_[p.partition_us] += p.rows;
      auto it = files.find(p.key);
      if (it == files.end()) {
        Diff("staged part " + t_.staging->UriOf(p.key) + " is missing");
      } else if (static_cast<int64_t>(it->second->size) != p.bytes) {
        Diff("staged part " + t_.staging->UriOf(p.key) + " has " + std::to_string(it->second->size) +
             " bytes, ledger says " + std::to_string(p.bytes));
      } else {
        CheckPartContent(p);
      }
    }
    return Status::Ok();
  }

  void CheckPartContent(const PartRow& p) {
    auto data = t_.staging->ReadAll(p.key, 1ull << 40);
    if (!data.ok())
      Diff("staged part " + t_.staging->UriOf(p.key) + ": " + data.status().ToString());
    else if (Crc32cHex(Crc32c(0, data->data(), data->size())) != p.crc32c)
      Diff("staged part " + t_.staging->UriOf(p.key) + " fails its checksum");
  }

  void CheckPartRows() {
    for (const ObjectRow& o : objects_) {
      if (o.state == ObjectState::kStaged && rows_by_object_[o.id] != o.rows_staged)
        Diff("object " + o.key + ": its parts hold " + std::to_string(rows_by_object_[o.id]) + " rows, ledger says " +
             std::to_string(o.rows_staged));
    }
  }

  // No strays: obsolete parts (of replaced object versions) stay until their
  // partition reloads; anything else was left by an interrupted run.
  Status CheckStrayFiles() {
    LF_ASSIGN_OR_RETURN(auto all_keys, ledger_.PartKeys(cfg_.name));
    for (const ObjectInfo& f : staged_files_) {
      if (live_keys_.count(f.key)) continue;
      if (all_keys.count(f.key))
        Note("staged part " + f.key + " belongs to a replaced object version; removed after its partition reloads");
      else
        Diff("staged file " + t_.staging->UriOf(f.key) +
             " is not in the ledger (left by an interrupted run; the next run removes it)");
    }
    return Status::Ok();
  }

  // Rows per partition in the warehouse; none when the table does not exist yet.
  StatusOr<std::map<int64_t, int64_t>> WarehouseCounts() {
    WarehouseOptions wo = WarehouseOptionsFor(config_, cfg_, /*read_only=*/true);
    auto wh = OpenWarehouse(cfg_.warehouse, wo);
    if (!wh.ok() && wh.status().IsNotFound()) return std::map<int64_t, int64_t>{};
    if (!wh.ok()) return wh.status();
    auto counts = (*wh)->CountByPartition(cfg_.name, cfg_.partition_unit_us);
    if (!counts.ok() && counts.status().IsNotFound()) return std::map<int64_t, int64_t>{};
    return counts;
  }

  // Ledger ↔ warehouse: each partition holds exactly its parts' rows.
  Status CheckWarehouse() {
    LF_ASSIGN_OR_RETURN(auto partitions, ledger_.Partitions(cfg_.name));
    LF_ASSIGN_OR_RETURN(auto counts, WarehouseCounts());
    std::set<int64_t> seen;
    for (const PartitionRow& p : partitions) {
      seen.insert(p.partition_us);
      int64_t actual = counts.count(p.partition_us) ? counts[p.partition_us] : 0;
      ++r_->partitions;
      r_->rows += actual;
      CheckPartition(p, actual);
    }
    for (auto& [part, n] : counts) {
      if (!seen.count(part) && n > 0)
        Diff("warehouse partition " + FormatHour(part) + " has " + std::to_string(n) +
             " rows the ledger knows nothing of");
    }
    return Status::Ok();
  }

  void CheckPartition(const PartitionRow& p, int64_t actual) {
    int64_t expected = expected_by_partition_[p.partition_us];
    std::string name = "partition " + FormatHour(p.partition_us);
    if (p.pending()) {
      int64_t due_at = p.partition_us + cfg_.partition_unit_us + cfg_.settle_us;
      if (!p.requested && due_at > now_us_ && p.last_error.empty()) {
        // An open partition holds what was appended (and loaded) so far.
        if (p.appendable && actual != p.rows_in_warehouse)
          Diff(name + " is open with " + std::to_string(actual) +
               " rows in the warehouse, but its appended parts have " + std::to_string(p.rows_in_warehouse));
        Note(name + " waits to settle until " + FormatIso8601(due_at) + " (" + std::to_string(expected) +
             " rows staged, " + std::to_string(actual) + " queryable)");
        return;
      }
      Diff(name + " is not loaded" + (p.last_error.empty() ? "" : ": " + p.last_error) + " (warehouse " +
           std::to_string(actual) + " rows, staged " + std::to_string(expected) + ")");
      return;
    }
    if (actual != expected || p.rows_loaded != expected)
      Diff(name + ": warehouse has " + std::to_string(actual) + " rows, staged parts have " + std::to_string(expected) +
           ", last load recorded " + std::to_string(p.rows_loaded));
  }

  TableRuntime& t_;
  const TableConfig& cfg_;
  Ledger& ledger_;
  const Config& config_;
  VerifyReport* r_;
  const std::string prefix_;
  const int64_t now_us_ = Env::Default()->NowMicros();

  std::vector<ObjectRow> objects_;
  std::set<std::string> source_keys_;
  std::vector<ObjectInfo> staged_files_;
  std::set<std::string> live_keys_;
  std::map<int64_t, int64_t> rows_by_object_;
  std::map<int64_t, int64_t> expected_by_partition_;
};

}  // namespace

Status VerifyTable(TableRuntime& t, Ledger& ledger, const Config& config, VerifyReport* report) {
  return TableVerifier(t, ledger, config, report).Run();
}

}  // namespace logferry
