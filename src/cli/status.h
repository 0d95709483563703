// `logferry status`: what the ledger says about each table and about the
// `run` processes, as JSON (--json prints it; the human output renders it),
// and the verdict of `status --check`.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "ledger/ledger.h"

namespace logferry {

// Long lists (failed objects, failing partitions, notifications, refused
// requests) show this many, with the total beside them.
constexpr size_t kStatusListed = 10;

// One element per table; each carries the `run` process state ("daemon").
StatusOr<nlohmann::json> StatusReport(Ledger& ledger, const std::vector<TableRuntime>& tables, int64_t now_us);
// now_us: the report's, so that ages agree with --json.
void PrintStatus(const nlohmann::json& report, int64_t now_us);

// Why `status --check` fails: one line per reason (failing objects,
// partitions, notifications, recently refused requests, lag over max_lag).
// Empty when all is well.
std::vector<std::string> CheckProblems(const nlohmann::json& report, std::optional<int64_t> max_lag_us);

// How a pass ended, as the processes table records it: "ok", "ok; N
// object(s) and M partition(s) failing" (a zero part left out), or
// "error: ...".
std::string PassOutcome(const Status& pass, Ledger& ledger, const Config& config, int64_t now_us);

}  // namespace logferry
