// The SQLite driver of the ledger's connection (ledger/connection.h): the
// ledger's private header (only src/ledger includes it; the rest of the tree
// sees ledger.h).
#pragma once

#include <sqlite3.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ledger/connection.h"

namespace logferry {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what);

// The file: URI that opens the ledger at path read-only and creates nothing.
std::string SqliteReadOnlyUri(const std::string& path);

// Opens `filename` (a path, or a file: URI with read_only) with a 30 s busy
// timeout. describe names it in messages.
StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& filename, bool read_only,
                                                 const std::string& describe);

}  // namespace logferry
