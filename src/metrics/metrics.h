// What `logferry run` tells its operators while it runs: Prometheus metrics
// at /metrics and health checks at /healthz and /readyz, served on
// `metrics_listen` (docs/operations.md, "Metrics and health").
//
// The core knows nothing of Prometheus: the daemon hands over each table's
// PassStats (Pipeline::set_table_observer) and, after each pass, the
// ledger's counts; this module turns them into counters and gauges.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/env.h"
#include "common/status.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "ledger/ledger.h"

namespace logferry {

// An answer of /healthz or /readyz.
struct HealthAnswer {
  int http_status = 200;  // 200 or 503
  std::string text;       // one line saying why
};

// Every method is thread-safe: the daemon reports from its pass loop while
// the server's threads answer scrapes.
class Metrics {
 public:
  // The metrics of `config`'s tables, not served (tests; Serve below).
  explicit Metrics(const Config& config, Env* env = Env::Default());
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Metrics served at config.metrics_listen on threads of their own until
  // destroyed. kInvalidArgument when the address cannot be bound.
  static StatusOr<std::unique_ptr<Metrics>> Serve(const Config& config, Env* env = Env::Default());

  // /readyz answers 200 from now on: the config is loaded, the ledger and
  // the stores are open.
  void SetReady();
  // Adds one table's counts of one pass.
  void AddTablePass(const std::string& table, const PassStats& stats);
  // After a pass: its duration and outcome; then the ledger's view of each
  // table (objects and partitions by state, lag, load jobs), read again
  // when the table's pass changed something, at the first pass, and at
  // least every 5 minutes. A table whose counts cannot be read keeps its
  // previous values.
  void EndPass(double seconds, bool ok, Ledger& ledger);

  // The Prometheus text exposition, as /metrics serves it.
  std::string Scrape();
  // /healthz: the last pass (or the start, before one has ended) is at most
  // three intervals old.
  HealthAnswer Health();
  // /readyz.
  HealthAnswer Ready();

 private:
  struct State;
  struct Server;
  std::unique_ptr<State> state_;
  std::unique_ptr<Server> server_;
};

}  // namespace logferry
