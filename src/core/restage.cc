#include "core/restage.h"

#include "format/key_format.h"

namespace logferry {

namespace {

bool Selected(const TableRuntime& t, const RestageSelection& sel, const ObjectRow& o, RestageReport* report) {
  if (o.state == ObjectState::kSuperseded || o.state == ObjectState::kSkipped) return false;
  if (sel.failed) return o.state == ObjectState::kFailed;
  if (!sel.key.empty()) return o.key == sel.key;
  auto m = t.key_format->Match(o.key);
  if (!m || !m->time_slice_us) {
    ++report->without_slice;
    return false;
  }
  return *m->time_slice_us >= sel.slices->first && *m->time_slice_us < sel.slices->second;
}

// Whether the source still holds this version of a staged object.
StatusOr<bool> StillInSource(TableRuntime& t, const ObjectRow& o, RestageReport* report) {
  auto info = t.source->Stat(o.key);
  if (!info.ok() && info.status().IsNotFound()) {
    report->gone.push_back(o.key);
    return false;
  }
  if (!info.ok()) return info.status().WithContext("checking " + t.source->UriOf(o.key));
  if (info->etag != o.etag) {
    report->changed.push_back(o.key);
    return false;
  }
  return true;
}

// --key on a key with no version to send back: say why.
Status ExplainKey(const std::vector<ObjectRow>& objects, const std::string& key) {
  for (const ObjectRow& o : objects)
    if (o.key == key && o.state == ObjectState::kSkipped)
      return Status::FailedPrecondition("object " + key + " is skipped (" + o.skip_reason +
                                        "); `logferry unskip` sends it back to staging");
  return Status::NotFound("no object " + key + " in the ledger (keys are relative to the table's source)");
}

}  // namespace

StatusOr<RestageReport> Restage(TableRuntime& t, Ledger& ledger, const RestageSelection& sel,
                                const std::string& reason) {
  const std::string& table = t.config->name;
  LF_ASSIGN_OR_RETURN(std::vector<ObjectRow> objects, ledger.Objects(table));
  RestageReport report;
  std::vector<int64_t> ids;
  for (const ObjectRow& o : objects) {
    if (!Selected(t, sel, o, &report)) continue;
    if (o.state == ObjectState::kStaged) {
      LF_ASSIGN_OR_RETURN(bool present, StillInSource(t, o, &report));
      if (!present) continue;
    }
    ids.push_back(o.id);
  }
  if (!sel.key.empty() && ids.empty() && report.gone.empty() && report.changed.empty())
    return ExplainKey(objects, sel.key);
  if (ids.empty()) return report;
  LF_ASSIGN_OR_RETURN(report.sent, ledger.RestageObjects(table, ids, reason));
  return report;
}

}  // namespace logferry
