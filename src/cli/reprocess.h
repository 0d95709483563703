// The re-processing subcommands of the logferry command: restage, skip,
// unskip (which change the ledger, safely while a daemon runs) and preview
// (which writes nothing).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <vector>

namespace logferry::cli {

struct Command {
  CLI::App* app;             // parsed when *app is true
  std::function<int()> run;  // its exit code
};

// Adds the subcommands to `app`. The options they bind live as long as the process.
std::vector<Command> AddReprocessCommands(CLI::App& app);

}  // namespace logferry::cli
