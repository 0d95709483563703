// `logferry ledger ...`: commands on the ledger itself. `ledger migrate
// --to postgresql://...` moves a SQLite ledger to PostgreSQL.
#pragma once

#include <CLI/CLI.hpp>
#include <vector>

#include "reprocess.h"

namespace logferry::cli {

// Adds the subcommands to `app`. The options they bind live as long as the process.
std::vector<Command> AddLedgerCommands(CLI::App& app);

}  // namespace logferry::cli
