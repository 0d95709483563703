// Request objects: small JSON files under <staging>/_requests/ asking for a
// reload, the original design's trigger files:
//   {"table": "access", "from": "2016-08-01T00", "to": "2016-08-02T00"}
//
// Whoever can write to the staging bucket can write here, so every object is
// handled on its own. One that is too large, is not a request, names a table
// that does not stage here, or cannot be filed under done/ is recorded as
// failed (ledger, one log line, `status`) and never read again; the others go
// on. Only failing to list the prefix stops the step.
//
// Order, for crash safety: copy to done/, record in the ledger, delete the
// original. A crash before the record leaves the original to be read again
// (the copy is rewritten); after it, the ledger knows the version (URI and
// etag) and the next pass only finishes the delete.
#pragma once

#include <string>

#include "common/status.h"
#include "core/config.h"
#include "ledger/ledger.h"
#include "store/object_store.h"

namespace logferry {

inline constexpr const char* kRequestsPrefix = "_requests/";
inline constexpr const char* kRequestsDonePrefix = "_requests/done/";
// A request body larger than this is refused unread.
inline constexpr size_t kMaxRequestBytes = 1 << 20;

struct ParsedRequest {
  std::string table;  // empty: the table whose inbox it is
  int64_t from_us = 0, to_us = 0;
  std::string error;  // why it is not a valid request; empty when it is
};

// Parses a request body; `unit_us` is the default span when "to" is absent.
ParsedRequest ParseRequest(std::string_view body, int64_t unit_us);

class RequestInbox {
 public:
  // `table` is the table whose pass this is; `config` names every table, so
  // a request for a table that does not stage to this store can be refused.
  RequestInbox(const Config& config, const TableConfig& table, ObjectStore& staging, Ledger& ledger)
      : config_(config), table_(table), staging_(staging), ledger_(ledger) {}

  // Records and files every request waiting for this table. Returns how many
  // were recorded (accepted or refused) in this call.
  StatusOr<int> FileAll();

 private:
  enum class Outcome { kRecorded, kSkipped };
  StatusOr<Outcome> FileOne(const ObjectInfo& o);
  // Whether the request belongs to another table that reads this store.
  bool ForAnotherTableHere(const std::string& table) const;
  std::string CheckTable(const std::string& table) const;
  // The original is deleted only once the ledger knows it; a request that
  // could not be filed stays where it is (the ledger keeps it from running
  // twice) so that nothing the operator wrote is lost.
  Status FinishRecorded(const ObjectInfo& o);
  Status Record(const ObjectInfo& o, const ParsedRequest& r);
  // The object named exactly "_requests/done" would stop every request from
  // being filed on a file:// store (done/ cannot become a folder).
  Status RemoveDoneBlocker(const ObjectInfo& o);

  const Config& config_;
  const TableConfig& table_;
  ObjectStore& staging_;
  Ledger& ledger_;
};

}  // namespace logferry
