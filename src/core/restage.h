// restage: sends source objects back to be staged with the current config
// (after fixing a wrong time_format, say). It only changes the ledger; the
// next pass, the daemon's or `run --once`, stages them again: the same
// object version rewrites the same part keys, parts for hours it no longer
// writes become obsolete, and every partition touched gets a new revision,
// so the usual replace reloads it with exactly the new rows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/pipeline.h"
#include "ledger/ledger.h"

namespace logferry {

// Which objects: exactly one of the three.
struct RestageSelection {
  // Objects whose key's time slice starts in [first, second), UTC.
  std::optional<std::pair<int64_t, int64_t>> slices;
  std::string key;      // the current version of this key
  bool failed = false;  // every failed object
};

struct RestageReport {
  RestageCounts sent;  // by the state they were in
  // Staged objects left as they are: gone from the source (their rows stay),
  // or replaced there (the next pass stages the new version anyway).
  std::vector<std::string> gone, changed;
  int64_t without_slice = 0;  // keys with no time slice (--from/--to cannot select them)
  int64_t selected() const { return sent.staged + sent.failed + sent.pending; }
};

// Selects objects of t's table and sends them back (Ledger::RestageObjects).
// A staged object is sent back only if the source still holds that version
// (a Stat each), so a restage never trades loaded rows for a failure.
// kNotFound when --key names no object; kFailedPrecondition when it is skipped.
StatusOr<RestageReport> Restage(TableRuntime& t, Ledger& ledger, const RestageSelection& selection,
                                const std::string& reason);

}  // namespace logferry
