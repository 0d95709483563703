#include "core/verify.h"

#include <map>
#include <set>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "registry/scheme_registry.h"

namespace logferry {

Status VerifyTable(TableRuntime& t, Ledger& ledger, const Config& config, VerifyReport* r) {
  const TableConfig& cfg = *t.config;
  const std::string prefix = "[" + cfg.name + "] ";
  auto diff = [&](std::string s) { r->differences.push_back(prefix + s); };
  auto note = [&](std::string s) { r->notes.push_back(prefix + s); };
  int64_t now = Env::Default()->NowMicros();

  // Source ↔ ledger: every object Fluentd wrote is staged in its current version.
  LF_ASSIGN_OR_RETURN(auto listed, t.source->ListAll(""));
  LF_ASSIGN_OR_RETURN(auto objects, ledger.Objects(cfg.name));
  std::map<std::pair<std::string, std::string>, const ObjectRow*> by_version;
  for (const ObjectRow& o : objects) by_version[{o.key, o.etag}] = &o;
  std::set<std::string> source_keys;
  for (const ObjectInfo& o : listed) {
    if (!t.key_format->Match(o.key)) continue;
    source_keys.insert(o.key);
    ++r->objects;
    auto it = by_version.find({o.key, o.etag});
    if (it == by_version.end()) {
      diff("source object " + t.source->UriOf(o.key) + " (etag " + o.etag + ") is not in the ledger yet");
    } else if (it->second->state == ObjectState::kFailed) {
      diff("source object " + t.source->UriOf(o.key) + " failed: " + it->second->last_error);
    } else if (it->second->state != ObjectState::kStaged) {
      diff("source object " + t.source->UriOf(o.key) + " is " + ObjectStateName(it->second->state) + ", not staged");
    }
  }
  std::map<int64_t, int64_t> rows_by_object;
  for (const ObjectRow& o : objects) {
    if (o.state != ObjectState::kStaged) continue;
    if (!source_keys.count(o.key))
      note("staged object " + o.key + " is no longer in the source (expired or deleted); its rows stay");
    if (o.lines_read != o.rows_staged + o.bad_records)
      diff("object " + o.key + ": lines read " + std::to_string(o.lines_read) + " != rows staged " +
           std::to_string(o.rows_staged) + " + bad records " + std::to_string(o.bad_records));
  }

  // Ledger ↔ staging: every live part exists with its recorded size and checksum; no strays.
  LF_ASSIGN_OR_RETURN(auto parts, ledger.LiveParts(cfg.name));
  LF_ASSIGN_OR_RETURN(auto staged_files, t.staging->ListAll(cfg.name + "/"));
  std::map<std::string, const ObjectInfo*> files;
  for (const ObjectInfo& f : staged_files) files[f.key] = &f;
  std::set<std::string> known;
  std::map<int64_t, int64_t> expected_by_partition;
  for (const PartRow& p : parts) {
    ++r->parts;
    known.insert(p.key);
    rows_by_object[p.object_id] += p.rows;
    expected_by_partition[p.partition_us] += p.rows;
    auto it = files.find(p.key);
    if (it == files.end()) {
      diff("staged part " + t.staging->UriOf(p.key) + " is missing");
      continue;
    }
    if (static_cast<int64_t>(it->second->size) != p.bytes) {
      diff("staged part " + t.staging->UriOf(p.key) + " has " + std::to_string(it->second->size) +
           " bytes, ledger says " + std::to_string(p.bytes));
      continue;
    }
    auto data = t.staging->ReadAll(p.key, 1ull << 40);
    if (!data.ok())
      diff("staged part " + t.staging->UriOf(p.key) + ": " + data.status().ToString());
    else if (Crc32cHex(Crc32c(0, data->data(), data->size())) != p.crc32c)
      diff("staged part " + t.staging->UriOf(p.key) + " fails its checksum");
  }
  for (const ObjectRow& o : objects) {
    if (o.state == ObjectState::kStaged && rows_by_object[o.id] != o.rows_staged)
      diff("object " + o.key + ": its parts hold " + std::to_string(rows_by_object[o.id]) + " rows, ledger says " +
           std::to_string(o.rows_staged));
  }
  // Obsolete parts (of replaced object versions) stay until their partition reloads.
  LF_ASSIGN_OR_RETURN(auto all_keys, ledger.PartKeys(cfg.name));
  for (const ObjectInfo& f : staged_files) {
    if (known.count(f.key)) continue;
    if (all_keys.count(f.key))
      note("staged part " + f.key + " belongs to a replaced object version; removed after its partition reloads");
    else
      diff("staged file " + t.staging->UriOf(f.key) +
           " is not in the ledger (left by an interrupted run; the next run removes it)");
  }

  // Ledger ↔ warehouse: each partition holds exactly its parts' rows.
  LF_ASSIGN_OR_RETURN(auto partitions, ledger.Partitions(cfg.name));
  WarehouseOptions wo = WarehouseOptionsFor(config, cfg, /*read_only=*/true);
  std::map<int64_t, int64_t> counts;
  auto wh = OpenWarehouse(cfg.warehouse, wo);
  if (wh.ok()) {
    auto c = (*wh)->CountByPartition(cfg.name, cfg.partition_unit_us);
    if (c.ok())
      counts = *c;
    else if (!c.status().IsNotFound())
      return c.status();
  } else if (!wh.status().IsNotFound()) {
    return wh.status();
  }
  std::set<int64_t> seen;
  for (const PartitionRow& p : partitions) {
    seen.insert(p.partition_us);
    int64_t expected = expected_by_partition[p.partition_us];
    int64_t actual = counts.count(p.partition_us) ? counts[p.partition_us] : 0;
    ++r->partitions;
    r->rows += actual;
    std::string name = "partition " + FormatHour(p.partition_us);
    if (p.pending()) {
      int64_t due_at = p.partition_us + cfg.partition_unit_us + cfg.settle_us;
      if (!p.requested && due_at > now && p.last_error.empty()) {
        note(name + " waits to settle until " + FormatIso8601(due_at) + " (" + std::to_string(expected) +
             " rows staged)");
        continue;
      }
      diff(name + " is not loaded" + (p.last_error.empty() ? "" : ": " + p.last_error) + " (warehouse " +
           std::to_string(actual) + " rows, staged " + std::to_string(expected) + ")");
      continue;
    }
    if (actual != expected || p.rows_loaded != expected)
      diff(name + ": warehouse has " + std::to_string(actual) + " rows, staged parts have " + std::to_string(expected) +
           ", last load recorded " + std::to_string(p.rows_loaded));
  }
  for (auto& [part, n] : counts) {
    if (!seen.count(part) && n > 0)
      diff("warehouse partition " + FormatHour(part) + " has " + std::to_string(n) +
           " rows the ledger knows nothing of");
  }
  return Status::Ok();
}

}  // namespace logferry
