// verify: reconciles source ↔ ledger ↔ staging ↔ warehouse, row for row.
#pragma once

#include <string>
#include <vector>

#include "core/pipeline.h"

namespace logferry {

struct VerifyReport {
  std::vector<std::string> differences;  // each one a reason to exit 1
  std::vector<std::string> notes;        // expected states (waiting to settle, expired sources)
  int64_t objects = 0, parts = 0, partitions = 0, rows = 0;
  int64_t skipped = 0;  // source objects acknowledged as broken (`logferry skip`): notes, not differences
};

// Checks one table. Reads every staged part (to check its checksum) and
// counts rows per partition in the warehouse.
Status VerifyTable(TableRuntime& t, Ledger& ledger, const Config& config, VerifyReport* report);

}  // namespace logferry
