#include "metrics/metrics.h"

#include <CivetServer.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>

#include "common/time.h"
#include "common/version.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;

Family<Counter>& CounterFamily(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}

Family<Gauge>& GaugeFamily(prometheus::Registry& r, const std::string& name, const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

// Pass durations run from a second (nothing new) to hours (a backfill).
const prometheus::Histogram::BucketBoundaries kPassBuckets = {0.1, 0.5, 1,   2.5, 5,    10,  30,
                                                              60,  120, 300, 600, 1800, 3600};

// The per-table counters, in PassStats' terms.
struct PassCounters {
  Family<Counter>& discovered;
  Family<Counter>& staged;
  Family<Counter>& failed;
  Family<Counter>& rows;
  Family<Counter>& bad;
  Family<Counter>& bytes;
  Family<Counter>& loaded;
  Family<Counter>& load_failed;
  Family<Counter>& received;
  Family<Counter>& deleted;
  Family<Counter>& list_requests;
  Family<Counter>& listings;

  explicit PassCounters(prometheus::Registry& r)
      : discovered(CounterFamily(r, "logferry_objects_discovered_total",
                                 "Source object versions discovered (new to the ledger).")),
        staged(CounterFamily(r, "logferry_objects_staged_total", "Source objects staged.")),
        failed(CounterFamily(r, "logferry_objects_failed_total",
                             "Staging attempts that failed (an object retried and failing again counts again).")),
        rows(CounterFamily(r, "logferry_rows_staged_total", "Rows written to staged parts.")),
        bad(CounterFamily(r, "logferry_bad_records_total", "Lines that could not be parsed (kept as bad records).")),
        bytes(CounterFamily(r, "logferry_source_read_bytes_total",
                            "Bytes of source objects read while staging, after decompression.")),
        loaded(CounterFamily(r, "logferry_partitions_loaded_total", "Warehouse partitions replaced (loaded).")),
        load_failed(CounterFamily(r, "logferry_partitions_failed_total", "Partition loads that failed.")),
        received(CounterFamily(r, "logferry_sqs_messages_received_total",
                               "Event notification messages received from the table's SQS queue.")),
        deleted(CounterFamily(r, "logferry_sqs_messages_deleted_total",
                              "Event notification messages deleted once their objects were staged.")),
        list_requests(CounterFamily(r, "logferry_list_requests_total",
                                    "LIST requests sent to the table's source and staging stores (one per page).")),
        listings(CounterFamily(r, "logferry_source_listings_total",
                               "Listings of the source, by kind: full (the whole source) or window (only the key "
                               "ranges of recent time slices).")) {}
};

// The per-table gauges read from the ledger after each pass.
struct LedgerGauges {
  Family<Gauge>& objects;
  Family<Gauge>& partitions;
  Family<Gauge>& rows_loaded;
  Family<Gauge>& jobs;
  Family<Gauge>& budget;
  Family<Gauge>& in_flight;
  Family<Gauge>& listing_only;
  Family<Gauge>& lag;
  Family<Gauge>& oldest_pending;

  explicit LedgerGauges(prometheus::Registry& r)
      : objects(GaugeFamily(r, "logferry_objects", "Source objects in the ledger, by state.")),
        partitions(GaugeFamily(r, "logferry_partitions", "Warehouse partitions in the ledger, by state.")),
        rows_loaded(GaugeFamily(r, "logferry_warehouse_rows", "Rows in the loaded warehouse partitions.")),
        jobs(GaugeFamily(r, "logferry_load_jobs_last_24h", "Warehouse load jobs sent in the last 24 hours.")),
        budget(GaugeFamily(r, "logferry_load_jobs_daily_budget",
                           "Load jobs a table may use per rolling 24 hours (daily_load_budget; BigQuery).")),
        in_flight(GaugeFamily(r, "logferry_sqs_messages_in_flight",
                              "Event notification messages received and not yet deleted.")),
        listing_only(GaugeFamily(r, "logferry_objects_found_only_by_listing",
                                 "Objects the reconcile listing found that no event notification announced "
                                 "(lost notifications).")),
        lag(GaugeFamily(r, "logferry_lag_seconds",
                        "Now minus the end of the newest loaded partition: how far the warehouse is behind.")),
        oldest_pending(GaugeFamily(r, "logferry_oldest_pending_object_age_seconds",
                                   "Age of the longest-waiting object not yet staged (pending or failed); 0 when "
                                   "none waits.")) {}
};

}  // namespace

struct Metrics::State {
  Env* env;
  int64_t interval_us;
  int64_t started_us;
  std::map<std::string, const TableConfig*> tables;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  PassCounters counters{*registry};
  LedgerGauges gauges{*registry};
  prometheus::Histogram& pass_seconds = prometheus::BuildHistogram()
                                            .Name("logferry_pass_duration_seconds")
                                            .Help("Duration of a pass over every table (discover, stage, load).")
                                            .Register(*registry)
                                            .Add({}, kPassBuckets);
  Family<Counter>& passes = CounterFamily(*registry, "logferry_passes_total", "Passes over every table, by outcome.");
  Gauge& last_pass = GaugeFamily(*registry, "logferry_last_pass_timestamp_seconds",
                                 "When the last pass ended, successful or not (Unix time; 0 before the first).")
                         .Add({});
  Gauge& last_success = GaugeFamily(*registry, "logferry_last_success_timestamp_seconds",
                                    "When the last pass without errors ended (Unix time; 0 before the first).")
                            .Add({});
  std::atomic<bool> ready{false};
  std::atomic<int64_t> last_pass_end_us{0};

  // Reading a table's counts from the ledger costs time in proportion to
  // its objects (seconds for millions): they are re-read after a pass that
  // changed the table, and otherwise every kLedgerRefreshUs, which also
  // picks up what other processes did (run --once, skip, other workers).
  static constexpr int64_t kLedgerRefreshUs = 5 * 60 * kMicrosPerSecond;
  std::mutex pass_mu;
  std::map<std::string, bool> changed;        // guarded by pass_mu
  std::map<std::string, int64_t> counted_us;  // guarded by pass_mu

  // What the lag gauges measure from, kept so a scrape computes them at its
  // own time rather than at the last pass's.
  std::mutex mu;
  std::map<std::string, int64_t> newest_loaded_end_us;  // guarded by mu
  std::map<std::string, int64_t> oldest_pending_us;     // guarded by mu

  State(const Config& config, Env* e) : env(e), interval_us(config.MinInterval()), started_us(e->NowMicros()) {
    for (const TableConfig& t : config.tables) tables[t.name] = &t;
    GaugeFamily(*registry, "logferry_build_info", "Always 1; the version of logferry that runs.")
        .Add({{"version", LogferryVersion()}})
        .Set(1);
  }

  void UpdateTableGauges(const TableConfig& table, const TableCounts& c);
  void SetTimeGauges(int64_t now_us);
};

void Metrics::State::UpdateTableGauges(const TableConfig& table, const TableCounts& c) {
  const std::string& name = table.name;
  auto by_state = [&](Family<Gauge>& f, const char* state, int64_t v) {
    f.Add({{"table", name}, {"state", state}}).Set(static_cast<double>(v));
  };
  by_state(gauges.objects, "pending", c.objects_pending);
  by_state(gauges.objects, "staged", c.objects_staged);
  by_state(gauges.objects, "failed", c.objects_failed);
  by_state(gauges.objects, "superseded", c.objects_superseded);
  by_state(gauges.objects, "skipped", c.objects_skipped);
  by_state(gauges.partitions, "pending", c.partitions_pending);
  by_state(gauges.partitions, "loaded", c.partitions_loaded);
  by_state(gauges.partitions, "failing", c.partitions_failed);
  gauges.rows_loaded.Add({{"table", name}}).Set(static_cast<double>(c.rows_loaded));
  gauges.jobs.Add({{"table", name}}).Set(static_cast<double>(c.load_jobs_24h));
  if (const SchemeInfo* scheme = Schemes().Claim(table.warehouse); scheme && scheme->daily_job_budget)
    gauges.budget.Add({{"table", name}}).Set(static_cast<double>(table.daily_load_budget));
  if (!table.notifications.empty())
    gauges.listing_only.Add({{"table", name}}).Set(static_cast<double>(c.found_by_listing_only));
  std::lock_guard lock(mu);
  if (c.newest_loaded_partition_us)
    newest_loaded_end_us[name] = *c.newest_loaded_partition_us + table.partition_unit_us;
  if (c.oldest_unstaged_object_us)
    oldest_pending_us[name] = *c.oldest_unstaged_object_us;
  else
    oldest_pending_us.erase(name);
}

void Metrics::State::SetTimeGauges(int64_t now_us) {
  std::lock_guard lock(mu);
  for (auto& [name, end_us] : newest_loaded_end_us)
    gauges.lag.Add({{"table", name}}).Set(static_cast<double>(now_us - end_us) / kMicrosPerSecond);
  for (auto& [name, table] : tables) {
    auto it = oldest_pending_us.find(name);
    double age = it == oldest_pending_us.end() ? 0 : static_cast<double>(now_us - it->second) / kMicrosPerSecond;
    gauges.oldest_pending.Add({{"table", name}}).Set(std::max(0.0, age));
  }
}

Metrics::Metrics(const Config& config, Env* env) : state_(std::make_unique<State>(config, env)) {
  // Every table's series exist from the start, at zero, so rate() and
  // absent-series alerts work before the first pass.
  for (auto& [name, table] : state_->tables) AddTablePass(name, PassStats{});
  state_->passes.Add({{"outcome", "ok"}});
  state_->passes.Add({{"outcome", "failed"}});
  state_->SetTimeGauges(env->NowMicros());
}

Metrics::~Metrics() {
  server_.reset();  // stop answering before the state goes
}

void Metrics::SetReady() {
  state_->ready.store(true);
}

void Metrics::AddTablePass(const std::string& table, const PassStats& s) {
  if (s.discovered || s.staged_objects || s.failed_objects || s.partitions_loaded || s.partitions_failed ||
      s.partitions_appended || s.messages_received || s.messages_deleted) {
    std::lock_guard lock(state_->pass_mu);
    state_->changed[table] = true;
  }
  PassCounters& c = state_->counters;
  const prometheus::Labels labels = {{"table", table}};
  c.discovered.Add(labels).Increment(static_cast<double>(s.discovered));
  c.staged.Add(labels).Increment(static_cast<double>(s.staged_objects));
  c.failed.Add(labels).Increment(static_cast<double>(s.failed_objects));
  c.rows.Add(labels).Increment(static_cast<double>(s.rows_staged));
  c.bad.Add(labels).Increment(static_cast<double>(s.bad_records));
  c.bytes.Add(labels).Increment(static_cast<double>(s.bytes_read));
  c.loaded.Add(labels).Increment(static_cast<double>(s.partitions_loaded));
  c.load_failed.Add(labels).Increment(static_cast<double>(s.partitions_failed));
  c.list_requests.Add(labels).Increment(static_cast<double>(s.list_requests));
  c.listings.Add({{"table", table}, {"kind", "full"}}).Increment(static_cast<double>(s.full_listings));
  c.listings.Add({{"table", table}, {"kind", "window"}}).Increment(static_cast<double>(s.windowed_listings));
  auto it = state_->tables.find(table);
  if (it == state_->tables.end() || it->second->notifications.empty()) return;
  c.received.Add(labels).Increment(static_cast<double>(s.messages_received));
  c.deleted.Add(labels).Increment(static_cast<double>(s.messages_deleted));
  state_->gauges.in_flight.Add(labels).Set(static_cast<double>(s.messages_in_flight));
}

void Metrics::EndPass(double seconds, bool ok, Ledger& ledger) {
  State& st = *state_;
  int64_t now = st.env->NowMicros();
  st.pass_seconds.Observe(seconds);
  st.passes.Add({{"outcome", ok ? "ok" : "failed"}}).Increment();
  st.last_pass.Set(static_cast<double>(now) / kMicrosPerSecond);
  if (ok) st.last_success.Set(static_cast<double>(now) / kMicrosPerSecond);
  st.last_pass_end_us.store(now);
  for (auto& [name, table] : st.tables) {
    {
      std::lock_guard lock(st.pass_mu);
      int64_t& counted = st.counted_us[name];
      if (counted != 0 && !st.changed[name] && now - counted < State::kLedgerRefreshUs) continue;
      counted = now;
      st.changed[name] = false;
    }
    auto counts = ledger.Counts(name, now);
    if (counts.ok()) st.UpdateTableGauges(*table, *counts);
  }
}

std::string Metrics::Scrape() {
  state_->SetTimeGauges(state_->env->NowMicros());
  return prometheus::TextSerializer().Serialize(state_->registry->Collect());
}

HealthAnswer Metrics::Health() {
  const State& st = *state_;
  int64_t now = st.env->NowMicros();
  int64_t last = st.last_pass_end_us.load();
  int64_t since = now - (last ? last : st.started_us);
  std::string ago = FormatDuration(since);
  std::string limit = FormatDuration(3 * st.interval_us);
  if (since <= 3 * st.interval_us)
    return {200, last ? "ok: the last pass ended " + ago + " ago" : "ok: started " + ago + " ago, first pass running"};
  return {503, (last ? "unhealthy: the last pass ended " + ago + " ago"
                     : "unhealthy: no pass has ended since start-up " + ago + " ago") +
                   " (more than three intervals, " + limit + ")"};
}

HealthAnswer Metrics::Ready() {
  if (state_->ready.load()) return {200, "ready"};
  return {503, "not ready: opening the ledger and the stores"};
}

// --- the HTTP side (civetweb, the server prometheus-cpp's own exposer uses) ---

namespace {

void Respond(mg_connection* conn, int status, const char* content_type, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Service Unavailable", content_type, body.size());
  mg_write(conn, body.data(), body.size());
}

// One path's answer; civetweb calls it on its own threads.
class Endpoint : public CivetHandler {
 public:
  enum class Kind { kMetrics, kHealth, kReady };
  Endpoint(Metrics* metrics, Kind kind) : metrics_(metrics), kind_(kind) {}

  bool handleGet(CivetServer*, mg_connection* conn) override {
    if (kind_ == Kind::kMetrics) {
      Respond(conn, 200, "text/plain; version=0.0.4; charset=utf-8", metrics_->Scrape());
      return true;
    }
    HealthAnswer a = kind_ == Kind::kHealth ? metrics_->Health() : metrics_->Ready();
    Respond(conn, a.http_status, "text/plain; charset=utf-8", a.text + "\n");
    return true;
  }

 private:
  Metrics* metrics_;
  Kind kind_;
};

}  // namespace

struct Metrics::Server {
  Endpoint metrics, health, ready;
  std::unique_ptr<CivetServer> civet;

  explicit Server(Metrics* m)
      : metrics(m, Endpoint::Kind::kMetrics), health(m, Endpoint::Kind::kHealth), ready(m, Endpoint::Kind::kReady) {}
  ~Server() {
    if (civet) civet->close();
  }
};

StatusOr<std::unique_ptr<Metrics>> Metrics::Serve(const Config& config, Env* env) {
  auto m = std::make_unique<Metrics>(config, env);
  auto server = std::make_unique<Server>(m.get());
  // Two threads: scrapes and probes are small, and a slow client must not
  // hold the only one.
  std::vector<std::string> options = {
      "listening_ports", config.metrics_listen, "num_threads", "2", "request_timeout_ms", "10000"};
  try {
    server->civet = std::make_unique<CivetServer>(options);
  } catch (const CivetException& e) {
    return Status::InvalidArgument("metrics_listen " + config.metrics_listen + ": cannot listen there (" + e.what() +
                                   ")");
  }
  server->civet->addHandler("/metrics", server->metrics);
  server->civet->addHandler("/healthz", server->health);
  server->civet->addHandler("/readyz", server->ready);
  m->server_ = std::move(server);
  return m;
}

}  // namespace logferry
