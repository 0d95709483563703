#include "core/requests.h"

#include <nlohmann/json.hpp>

#include "common/env.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"

namespace logferry {

namespace {

// A string member, or an error when it is present with another type.
bool TextMember(const nlohmann::json& j, const char* key, std::string* out, std::string* error) {
  auto it = j.find(key);
  if (it == j.end()) return true;
  if (!it->is_string()) {
    *error = std::string("'") + key + "' must be a string";
    return false;
  }
  *out = it->get_ref<const std::string&>();
  return true;
}

std::string RequestName(const ObjectInfo& o) {
  return o.key.substr(strlen(kRequestsPrefix));
}

std::string OriginKey(ObjectStore& staging, const ObjectInfo& o) {
  return "request:" + staging.UriOf(o.key) + "#" + o.etag;
}

}  // namespace

ParsedRequest ParseRequest(std::string_view body, int64_t unit_us) {
  ParsedRequest r;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "not a JSON object";
    return r;
  }
  std::string from_s, to_s;
  if (!TextMember(j, "table", &r.table, &r.error) || !TextMember(j, "from", &from_s, &r.error) ||
      !TextMember(j, "to", &to_s, &r.error))
    return r;
  auto from = ParseIso8601(from_s, 0);
  if (!from) {
    r.error = "'from' must be a time like 2016-08-01T00 (UTC unless it has an offset)";
    return r;
  }
  r.from_us = *from;
  auto to = to_s.empty() ? std::optional<int64_t>(*from + unit_us) : ParseIso8601(to_s, 0);
  if (!to) {
    r.error = "'to' must be a time like 2016-08-02T00 (UTC unless it has an offset)";
    return r;
  }
  r.to_us = *to;
  if (r.to_us <= r.from_us) r.error = "'to' must be after 'from'";
  return r;
}

StatusOr<int> RequestInbox::FileAll() {
  LF_ASSIGN_OR_RETURN(auto listed, staging_.ListAll(kRequestsPrefix));
  // The blocker first, so that the others can be filed in this same pass.
  for (const ObjectInfo& o : listed)
    if (o.key + "/" == kRequestsDonePrefix) {
      Status s = RemoveDoneBlocker(o);
      if (!s.ok()) log::Warn("request {}: {}", staging_.UriOf(o.key), s.ToString());
    }
  int recorded = 0;
  for (const ObjectInfo& o : listed) {
    if (StartsWith(o.key, kRequestsDonePrefix) || o.key + "/" == kRequestsDonePrefix) continue;
    auto outcome = FileOne(o);
    if (!outcome.ok()) {
      // Transient (the store or the ledger): the object is read again next pass.
      log::Warn("request {}: {}; tried again next pass", staging_.UriOf(o.key), outcome.status().ToString());
      continue;
    }
    if (*outcome == Outcome::kRecorded) ++recorded;
  }
  return recorded;
}

StatusOr<RequestInbox::Outcome> RequestInbox::FileOne(const ObjectInfo& o) {
  LF_ASSIGN_OR_RETURN(auto known, ledger_.FindRequest(OriginKey(staging_, o)));
  if (known) {
    if (known->table == table_.name) LF_RETURN_IF_ERROR(FinishRecorded(o));
    return Outcome::kSkipped;
  }
  ParsedRequest r;
  ReadOptions pinned;  // exactly the version listed; a newer one is a new request
  pinned.if_etag = o.etag;
  auto body = staging_.ReadAll(o.key, kMaxRequestBytes, pinned);
  if (!body.ok()) {
    const Status& s = body.status();
    if (s.IsNotFound() || s.code() == StatusCode::kFailedPrecondition) return Outcome::kSkipped;  // taken or replaced
    if (s.code() != StatusCode::kResourceExhausted) return s;
    r.error = "larger than " + HumanBytes(kMaxRequestBytes) + " (" + HumanBytes(o.size) + "); not read";
  } else {
    r = ParseRequest(*body, table_.partition_unit_us);
    if (r.error.empty() && ForAnotherTableHere(r.table)) return Outcome::kSkipped;
    if (r.error.empty()) r.error = CheckTable(r.table);
    Status filed = staging_.WriteAll(kRequestsDonePrefix + RequestName(o), *body).status();
    if (filed.IsTransient()) return filed;
    if (!filed.ok()) r.error = "cannot be filed under " + std::string(kRequestsDonePrefix) + ": " + filed.ToString();
  }
  LF_RETURN_IF_ERROR(Record(o, r));
  LF_RETURN_IF_ERROR(FinishRecorded(o));
  return Outcome::kRecorded;
}

bool RequestInbox::ForAnotherTableHere(const std::string& table) const {
  if (table.empty() || table == table_.name) return false;
  const TableConfig* other = config_.FindTable(table);
  return other && other->staging == table_.staging;
}

std::string RequestInbox::CheckTable(const std::string& table) const {
  if (table.empty() || table == table_.name) return "";
  if (config_.FindTable(table)) return "table '" + Excerpt(table, 128) + "' does not stage to " + staging_.uri();
  std::string names;
  for (const TableConfig& t : config_.tables) names += (names.empty() ? "" : ", ") + t.name;
  return "no table '" + Excerpt(table, 128) + "' in the config (tables: " + names + ")";
}

Status RequestInbox::Record(const ObjectInfo& o, const ParsedRequest& r) {
  int64_t now = Env::Default()->NowMicros();
  std::string uri = staging_.UriOf(o.key);
  int64_t from = r.error.empty() ? r.from_us : 0, to = r.error.empty() ? r.to_us : 0;
  LF_ASSIGN_OR_RETURN(auto rec, ledger_.RecordRequest(table_.name, uri, OriginKey(staging_, o), from, to,
                                                      table_.partition_unit_us, now));
  if (!r.error.empty()) {
    LF_RETURN_IF_ERROR(ledger_.FinishRequest(rec.first, "failed", r.error, now));
    log::Warn("request {} refused: {}", uri, r.error);
    return Status::Ok();
  }
  log::Info("request {}: reload {} .. {} ({} partitions)", uri, FormatHour(from), FormatHour(to), rec.second);
  return Status::Ok();
}

Status RequestInbox::FinishRecorded(const ObjectInfo& o) {
  // Filed means its copy is under done/: only then may the original go.
  auto copy = staging_.Stat(kRequestsDonePrefix + RequestName(o));
  if (!copy.ok() || copy->size != o.size) return copy.ok() || copy.status().IsNotFound() ? Status::Ok() : copy.status();
  Status removed = staging_.DeleteIfUnchanged(o.key, o.etag);
  if (removed.code() == StatusCode::kFailedPrecondition) {
    log::Info("request {} was written again while it was filed; the new one is read next pass", staging_.UriOf(o.key));
    return Status::Ok();
  }
  return removed;
}

Status RequestInbox::RemoveDoneBlocker(const ObjectInfo& o) {
  std::string origin = OriginKey(staging_, o);
  LF_ASSIGN_OR_RETURN(auto known, ledger_.FindRequest(origin));
  if (!known) {
    int64_t now = Env::Default()->NowMicros();
    LF_ASSIGN_OR_RETURN(auto rec, ledger_.RecordRequest(table_.name, staging_.UriOf(o.key), origin, 0, 0,
                                                        table_.partition_unit_us, now));
    std::string why = std::string("'") + kRequestsDonePrefix + "' is where filed requests go; this object was removed";
    LF_RETURN_IF_ERROR(ledger_.FinishRequest(rec.first, "failed", why, now));
    log::Warn("request {} refused: {}", staging_.UriOf(o.key), why);
  }
  return staging_.DeleteIfUnchanged(o.key, o.etag);
}

}  // namespace logferry
