// The PostgreSQL driver of the ledger's connection (ledger/connection.h),
// over libpq. Private to src/ledger.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "ledger/connection.h"

namespace logferry {

// The advisory lock every writing transaction holds (Connection::Begin): the
// ledger's one-writer-at-a-time guarantee, database-wide. ASCII "logfery".
inline constexpr int64_t kPostgresLedgerLockKey = 0x6c6f6766657279;

bool IsPostgresUri(std::string_view location);

// The URI or conninfo without its password (and with any echo of the
// password in a message removed): what logs, errors and status show.
std::string RedactConninfo(std::string_view conninfo);

// The SQL with `?` and `?N` placeholders as PostgreSQL's $n (placeholders in
// quotes are left alone); *params is the highest parameter number.
std::string ToDollarPlaceholders(std::string_view sql, int* params);

// Connects now (kUnavailable when the server cannot be reached, which the
// retry policy retries; kPermissionDenied when it refuses us). A connection
// that breaks later fails what it was doing with kUnavailable and connects
// again on its next use outside a transaction. read_only: every transaction
// is read-only, so any write fails.
StatusOr<std::unique_ptr<Connection>> OpenPostgres(const std::string& conninfo, bool read_only);

}  // namespace logferry
