// logferry: the command-line interface. Turns the core's Status values into
// messages and exit codes:
//   0  success
//   1  verify found differences, or a command failed
//   2  bad usage or configuration
//   3  run --once finished, but some objects or partitions are failing
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/env.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"
#include "common/version.h"
#include "core/config.h"
#include "core/pipeline.h"
#include "core/verify.h"
#include "ledger/ledger.h"
#include "metrics/metrics.h"
#include "metrics/service_notify.h"
#include "registry/scheme_registry.h"
#include "tools/generator.h"
#include "warehouse/warehouse.h"

using namespace logferry;

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) {
  g_stop.store(true);
}

// Human output escapes whatever came from a bucket or a server (keys, field
// names, errors): see EscapeForDisplay. --json output is exact instead.
std::string Shown(std::string_view s) {
  return EscapeForDisplay(s);
}

// Invalid UTF-8 (a file:// key may hold any bytes) becomes U+FFFD instead of
// an exception; control characters are escaped by the JSON encoder.
std::string JsonText(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

[[noreturn]] void Die(const std::string& message, int code = 1) {
  fflush(stdout);
  fprintf(stderr, "logferry: %s\n", Shown(message).c_str());
  exit(code);
}

template <typename T>
T OrDie(StatusOr<T> v, int code = 1) {
  if (!v.ok())
    Die(v.status().message().empty() ? v.status().ToString() : v.status().message(),
        v.status().code() == StatusCode::kInvalidArgument ? 2 : code);
  return std::move(v).value();
}

void OrDie(const Status& s, int code = 1) {
  if (!s.ok()) Die(s.message(), s.code() == StatusCode::kInvalidArgument ? 2 : code);
}

// The config validated the level's name.
void SetupLogging(const std::string& level, bool verbose) {
  InstallLogging(verbose ? spdlog::level::debug : spdlog::level::from_str(level));
}

// The state directory is created owner-only (0700): the ledger holds raw
// excerpts of bad lines. Parents it creates are 0755. An existing directory
// is the operator's: a looser mode is warned about, never changed.
Status EnsureDir(const std::string& dir) {
  LF_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    spdlog::warn(
        "state_dir {} is accessible to other users (mode {:o}); the ledger holds raw excerpts of bad "
        "lines: chmod 700 it unless that is intended",
        dir, st.st_mode & 0777);
  return Status::Ok();
}

struct Env {
  Config config;
  std::unique_ptr<Ledger> ledger;
  std::unique_ptr<Pipeline> pipeline;
};

// after_config runs once the config is read, before the ledger and stores open.
Env Open(const std::string& config_path, bool verbose, const std::function<void(const Config&)>& after_config = {}) {
  Env env;
  env.config = OrDie(LoadConfig(config_path), 2);
  SetupLogging(env.config.log_level, verbose);
  if (after_config) after_config(env.config);
  OrDie(EnsureDir(env.config.state_dir));
  env.ledger = OrDie(Ledger::Open(env.config.LedgerPath()));
  env.pipeline = std::make_unique<Pipeline>(env.config, env.ledger.get());
  OrDie(env.pipeline->Init());
  return env;
}

std::string TableNames(const Config& config) {
  std::string out;
  for (const TableConfig& t : config.tables) out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

TableRuntime& TableOrDie(Env& env, const std::string& name) {
  if (name.empty()) {
    if (env.pipeline->tables().size() == 1) return env.pipeline->tables().front();
    Die("several tables are configured: say which with --table", 2);
  }
  TableRuntime* t = env.pipeline->table(name);
  if (!t) Die("no table '" + name + "' in " + env.config.path + " (tables: " + TableNames(env.config) + ")", 2);
  return *t;
}

int64_t ParseTimeArg(const std::string& s, const char* flag) {
  auto t = ParseIso8601(s, 0);
  if (!t) Die(std::string(flag) + " must be a UTC time like 2016-08-01T00 (got '" + s + "')", 2);
  return *t;
}

// --- run ---

// What the daemon tells the outside: Prometheus metrics and health checks
// (metrics_listen) and systemd (Type=notify). Both are off for run --once.
struct DaemonReports {
  std::unique_ptr<Metrics> metrics;
  ServiceNotifier service;

  void Start(const Config& config) {
    if (config.metrics_listen.empty()) return;
    metrics = OrDie(Metrics::Serve(config), 2);
    spdlog::info("serving metrics at http://{}/metrics, health checks at /healthz and /readyz", config.metrics_listen);
  }
  void Attach(Pipeline& pipeline) {
    if (metrics)
      pipeline.set_table_observer(
          [m = metrics.get()](const TableRuntime& t, const PassStats& s) { m->AddTablePass(t.config->name, s); });
    // Staging reports progress per object: a long pass keeps the watchdog fed.
    if (service.enabled()) pipeline.set_progress([this](const std::string&) { service.Ping(); });
    if (metrics) metrics->SetReady();
    service.Ready("started; first pass running");
  }
  void AfterPass(const StatusOr<PassStats>& stats, double seconds, Ledger& ledger) {
    if (metrics) metrics->EndPass(seconds, stats.ok(), ledger);
    service.Ping();
    if (!stats.ok()) {
      service.Status("last pass failed at " + FormatIso8601(logferry::Env::Default()->NowMicros()) + ": " +
                     stats.status().ToString());
      return;
    }
    service.Status("last pass " + FormatIso8601(logferry::Env::Default()->NowMicros()) + ": " +
                   std::to_string(stats->staged_objects) + " objects staged, " + std::to_string(stats->failed_objects) +
                   " failed; " + std::to_string(stats->partitions_loaded) + " partitions loaded, " +
                   std::to_string(stats->partitions_failed) + " failed");
  }
};

int CmdRun(const std::string& config_path, bool once, bool verbose) {
  DaemonReports reports;
  Env env = Open(config_path, verbose, [&](const Config& c) {
    if (!once) reports.Start(c);
  });
  // One daemon per state directory: two would stage the same objects twice over.
  std::string lock_path = env.config.state_dir + "/run.lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) != 0)
    Die("another 'logferry run' is active on " + env.config.state_dir);
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  bool tty = isatty(2);
  env.pipeline->set_single_pass(once);
  if (tty && once) {
    env.pipeline->set_progress([](const std::string& line) { fprintf(stderr, "\r\033[K%s", line.c_str()); });
  }
  if (!once) reports.Attach(*env.pipeline);
  int exit_code = 0;
  for (;;) {
    int64_t t0 = logferry::Env::Default()->MonotonicMicros();
    auto stats = env.pipeline->RunOnce(g_stop);
    double secs = (logferry::Env::Default()->MonotonicMicros() - t0) / 1e6;
    if (!once) reports.AfterPass(stats, secs, *env.ledger);
    if (tty && once) fprintf(stderr, "\r\033[K");
    if (!stats.ok()) {
      spdlog::error("pass failed: {}", stats.status().ToString());
      if (once) return 1;
    } else {
      const PassStats& s = *stats;
      if (s.discovered || s.staged_objects || s.failed_objects || s.partitions_loaded || s.partitions_failed || once) {
        spdlog::info(
            "pass: {} new objects, {} staged ({} rows, {} bad, {} read at {:.0f} MB/s), {} failed; "
            "{} partitions loaded, {} failed; {:.1f}s",
            s.discovered, s.staged_objects, s.rows_staged, s.bad_records, HumanBytes(s.bytes_read),
            s.stage_seconds > 0 ? s.bytes_read / 1e6 / s.stage_seconds : 0.0, s.failed_objects, s.partitions_loaded,
            s.partitions_failed, secs);
      }
      if (once) {
        int64_t failing = 0;
        for (TableRuntime& t : env.pipeline->tables()) {
          auto c = env.ledger->Counts(t.config->name, logferry::Env::Default()->NowMicros());
          if (c.ok()) failing += c->objects_failed + c->partitions_failed;
        }
        if (failing > 0) {
          spdlog::warn("{} object(s) or partition(s) are failing; see 'logferry status'", failing);
          exit_code = 3;
        }
      }
    }
    if (once || g_stop.load()) break;
    int64_t wake_us = logferry::Env::Default()->MonotonicMicros() + env.config.MinInterval();
    while (!g_stop.load() && logferry::Env::Default()->MonotonicMicros() < wake_us) {
      logferry::Env::Default()->SleepForMicroseconds(100'000);
      reports.service.Ping();
    }
    if (g_stop.load()) break;
  }
  reports.service.Stopping();
  if (g_stop.load()) spdlog::info("stopped by signal after finishing the current step");
  return exit_code;
}

// --- status ---

// Request objects refused (not JSON, too large, unknown table, unfilable):
// the newest few, since a stream of junk must not flood the report.
void AddRefusedRequests(Ledger& ledger, const std::string& table, nlohmann::json* j) {
  constexpr size_t kShown = 10;
  auto refused = OrDie(ledger.Requests(table, "failed"));
  nlohmann::json list = nlohmann::json::array();
  for (auto it = refused.rbegin(); it != refused.rend() && list.size() < kShown; ++it)
    list.push_back({{"request", it->origin}, {"error", it->detail}, {"at", FormatIso8601(it->created_us)}});
  (*j)["refused_requests"] = list;
  (*j)["refused_requests_total"] = refused.size();
}

// The failing event notifications of a table that has a queue. With events,
// an object the listing had to find means an event was lost.
void AddNotifications(Ledger& ledger, const TableConfig& cfg, const TableCounts& c, nlohmann::json* j) {
  (*j)["objects"]["found_only_by_listing"] = c.found_by_listing_only;
  nlohmann::json failing = nlohmann::json::array();
  for (const NotificationRow& n : OrDie(ledger.Notifications(cfg.name, "failing")))
    failing.push_back({{"message_id", n.message_id},
                       {"receive_count", n.receive_count},
                       {"error", n.detail},
                       {"updated", FormatIso8601(n.updated_us)}});
  (*j)["notifications"] = {{"queue", cfg.notifications}, {"failing", failing}};
}

void AddLoadProgress(const TableConfig& cfg, const TableCounts& c, int64_t now, nlohmann::json* j) {
  (*j)["load_jobs_24h"] = c.load_jobs_24h;
  if (const SchemeInfo* scheme = Schemes().Claim(cfg.warehouse); scheme && scheme->daily_job_budget) {
    (*j)["daily_load_budget"] = cfg.daily_load_budget;
    // Past the budget, loads wait until the oldest counted job leaves the window.
    if (c.load_jobs_24h >= cfg.daily_load_budget && c.oldest_load_job_24h_us)
      (*j)["load_budget_frees_at"] = FormatIso8601(*c.oldest_load_job_24h_us + kMicrosPerDay);
  }
  if (c.newest_loaded_partition_us) {
    (*j)["newest_loaded_partition"] = FormatIso8601(*c.newest_loaded_partition_us);
    (*j)["lag_seconds"] = (now - (*c.newest_loaded_partition_us + cfg.partition_unit_us)) / kMicrosPerSecond;
  }
  if (c.oldest_pending_partition_us) (*j)["oldest_pending_partition"] = FormatIso8601(*c.oldest_pending_partition_us);
}

// Failed objects and failing partitions, each with its last error.
void AddFailures(Ledger& ledger, const TableRuntime& t, nlohmann::json* j) {
  nlohmann::json fails = nlohmann::json::array();
  for (const ObjectRow& o : OrDie(ledger.Objects(t.config->name, ObjectState::kFailed))) {
    nlohmann::json f = {{"object", t.source->UriOf(o.key)}, {"attempts", o.attempts}, {"error", o.last_error}};
    if (o.next_attempt_us) f["next_attempt"] = FormatIso8601(*o.next_attempt_us);
    fails.push_back(f);
  }
  (*j)["failed_objects"] = fails;
  nlohmann::json pfails = nlohmann::json::array();
  for (const PartitionRow& p : OrDie(ledger.Partitions(t.config->name))) {
    if (p.last_error.empty()) continue;
    nlohmann::json f = {
        {"partition", FormatIso8601(p.partition_us)}, {"attempts", p.attempts}, {"error", p.last_error}};
    if (p.next_attempt_us) f["next_attempt"] = FormatIso8601(*p.next_attempt_us);
    pfails.push_back(f);
  }
  (*j)["failing_partitions"] = pfails;
}

// One table's status as --json prints it (and the human output reads it).
nlohmann::json TableStatus(Ledger& ledger, const TableRuntime& t, int64_t now) {
  const TableConfig& cfg = *t.config;
  TableCounts c = OrDie(ledger.Counts(cfg.name, now));
  nlohmann::json j;
  j["table"] = cfg.name;
  j["objects"] = {{"pending", c.objects_pending},
                  {"staged", c.objects_staged},
                  {"failed", c.objects_failed},
                  {"superseded", c.objects_superseded}};
  if (!cfg.notifications.empty()) AddNotifications(ledger, cfg, c, &j);
  j["partitions"] = {
      {"pending", c.partitions_pending}, {"loaded", c.partitions_loaded}, {"failing", c.partitions_failed}};
  j["rows"] = {
      {"staged", c.rows_staged}, {"loaded", c.rows_loaded}, {"bad_records", c.bad_records}, {"warnings", c.warnings}};
  AddLoadProgress(cfg, c, now, &j);
  AddFailures(ledger, t, &j);
  AddRefusedRequests(ledger, cfg.name, &j);
  return j;
}

void PrintCounts(const nlohmann::json& j) {
  auto& o = j["objects"];
  printf("  objects     %lld staged, %lld pending, %lld failed, %lld superseded", o["staged"].get<long long>(),
         o["pending"].get<long long>(), o["failed"].get<long long>(), o["superseded"].get<long long>());
  if (o.contains("found_only_by_listing"))
    printf(" (%lld found only by listing)", o["found_only_by_listing"].get<long long>());
  printf("\n");
  if (j.contains("notifications")) {
    auto& n = j["notifications"];
    printf("  events      %s: %zu notification(s) failing\n", Shown(n["queue"].get<std::string>()).c_str(),
           n["failing"].size());
    for (auto& f : n["failing"])
      printf("    message %s (received %lld times): %s\n", Shown(f["message_id"].get<std::string>()).c_str(),
             f["receive_count"].get<long long>(), Shown(f["error"].get<std::string>()).c_str());
  }
  auto& p = j["partitions"];
  printf("  partitions  %lld loaded, %lld pending, %lld failing\n", p["loaded"].get<long long>(),
         p["pending"].get<long long>(), p["failing"].get<long long>());
  auto& r = j["rows"];
  printf("  rows        %lld staged, %lld loaded, %lld bad records, %lld values repaired\n",
         r["staged"].get<long long>(), r["loaded"].get<long long>(), r["bad_records"].get<long long>(),
         r["warnings"].get<long long>());
}

void PrintLoadProgress(const nlohmann::json& j) {
  if (j.contains("newest_loaded_partition"))
    printf("  lag         newest loaded partition %s (%s ago)\n",
           j["newest_loaded_partition"].get<std::string>().c_str(),
           FormatDuration(j["lag_seconds"].get<int64_t>() * kMicrosPerSecond).c_str());
  if (j.contains("oldest_pending_partition"))
    printf("  pending     oldest %s\n", j["oldest_pending_partition"].get<std::string>().c_str());
  if (j.contains("daily_load_budget")) {
    printf("  load jobs   %lld in the last 24 hours, of a budget of %lld (BigQuery allows 1,500 per table per day)\n",
           j["load_jobs_24h"].get<long long>(), j["daily_load_budget"].get<long long>());
    if (j.contains("load_budget_frees_at"))
      printf("  WAITING     load budget used up: pending partitions wait; the next job may start at %s\n",
             j["load_budget_frees_at"].get<std::string>().c_str());
  } else {
    printf("  load jobs   %lld in the last 24 hours\n", j["load_jobs_24h"].get<long long>());
  }
}

void PrintFailures(const nlohmann::json& j) {
  for (auto& f : j["failed_objects"])
    printf("  FAILED object %s (attempts %d%s): %s\n", Shown(f["object"].get<std::string>()).c_str(),
           f["attempts"].get<int>(),
           f.contains("next_attempt") ? (", next " + f["next_attempt"].get<std::string>()).c_str() : "",
           Shown(f["error"].get<std::string>()).c_str());
  for (auto& f : j["failing_partitions"])
    printf("  FAILING partition %s (attempts %d): %s\n", f["partition"].get<std::string>().c_str(),
           f["attempts"].get<int>(), Shown(f["error"].get<std::string>()).c_str());
  for (auto& f : j["refused_requests"])
    printf("  REFUSED request %s (%s): %s\n", Shown(f["request"].get<std::string>()).c_str(),
           f["at"].get<std::string>().c_str(), Shown(f["error"].get<std::string>()).c_str());
  if (j["refused_requests_total"].get<size_t>() > j["refused_requests"].size())
    printf("  ... %zu refused request(s) in all\n", j["refused_requests_total"].get<size_t>());
}

int CmdStatus(const std::string& config_path, bool as_json) {
  Env env = Open(config_path, false);
  int64_t now = logferry::Env::Default()->NowMicros();
  nlohmann::json out = nlohmann::json::array();
  for (TableRuntime& t : env.pipeline->tables()) out.push_back(TableStatus(*env.ledger, t, now));
  if (as_json) {
    std::cout << JsonText(out) << "\n";
    return 0;
  }
  for (auto& j : out) {
    printf("table %s\n", Shown(j["table"].get<std::string>()).c_str());
    PrintCounts(j);
    PrintLoadProgress(j);
    PrintFailures(j);
  }
  return 0;
}

// --- reload ---

int CmdReload(const std::string& config_path, const std::string& table, const std::string& from_s,
              const std::string& to_s, bool verbose) {
  Env env = Open(config_path, verbose);
  TableRuntime& t = TableOrDie(env, table);
  int64_t from = ParseTimeArg(from_s, "--from");
  int64_t to = to_s.empty() ? from + t.config->partition_unit_us : ParseTimeArg(to_s, "--to");
  if (to <= from) Die("--to must be after --from", 2);
  auto [id, n] = OrDie(env.ledger->RecordRequest(t.config->name, "cli", "", from, to, t.config->partition_unit_us,
                                                 logferry::Env::Default()->NowMicros()));
  if (n == 0) {
    printf("no staged partitions of %s in %s .. %s\n", t.config->name.c_str(), FormatHour(from).c_str(),
           FormatHour(to).c_str());
    OrDie(env.ledger->FinishRequest(id, "done", "0 partition(s) loaded", logferry::Env::Default()->NowMicros()));
    return 0;
  }
  PassStats stats;
  std::atomic<bool> never{false};
  OrDie(env.pipeline->Load(t, never, &stats, std::make_pair(from, to)));
  OrDie(env.pipeline->FinishRequests(t));
  printf("reloaded %lld partition(s) of %s; %lld failed\n", static_cast<long long>(stats.partitions_loaded),
         t.config->name.c_str(), static_cast<long long>(stats.partitions_failed));
  return stats.partitions_failed > 0 ? 1 : 0;
}

// --- verify ---

int CmdVerify(const std::string& config_path, const std::string& table, bool verbose) {
  Env env = Open(config_path, verbose);
  if (!table.empty()) TableOrDie(env, table);
  VerifyReport report;
  for (TableRuntime& t : env.pipeline->tables()) {
    if (!table.empty() && t.config->name != table) continue;
    OrDie(VerifyTable(t, *env.ledger, env.config, &report));
  }
  for (auto& n : report.notes) printf("note: %s\n", Shown(n).c_str());
  for (auto& d : report.differences) printf("DIFFERENCE: %s\n", Shown(d).c_str());
  printf(
      "verify: %s — %lld source objects, %lld staged parts, %lld partitions, %lld rows in the warehouse; %zu "
      "difference(s)\n",
      report.differences.empty() ? "OK" : "FAILED", static_cast<long long>(report.objects),
      static_cast<long long>(report.parts), static_cast<long long>(report.partitions),
      static_cast<long long>(report.rows), report.differences.size());
  return report.differences.empty() ? 0 : 1;
}

// --- query ---

// Table and CSV output are for people and spreadsheets: a control character
// in a value is shown escaped (\0 for NUL, \xHH for the others; the table
// also shows tab, LF and CR as \t, \n, \r, which CSV keeps inside quotes).
// A backslash is not escaped, so only --json gives the exact value. Beyond
// ASCII, C1 and bidirectional controls, U+2028/2029 and bytes that are not
// UTF-8 are escaped as everywhere else (EscapeForDisplay).
std::string Escaped(std::string_view v, bool keep_line_breaks) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    char ch = v[i];
    auto c = static_cast<unsigned char>(ch);
    if (c >= 0x80) {
      size_t end = i;
      while (end < v.size() && static_cast<unsigned char>(v[end]) >= 0x80) ++end;
      out += EscapeForDisplay(v.substr(i, end - i));
      i = end - 1;
    } else if ((c >= 0x20 && c != 0x7f) || (keep_line_breaks && (c == '\t' || c == '\n' || c == '\r'))) {
      out.push_back(ch);
    } else if (c == 0) {
      out += "\\0";
    } else if (c == '\t' || c == '\n' || c == '\r') {
      out += c == '\t' ? "\\t" : c == '\n' ? "\\n" : "\\r";
    } else {
      static const char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

void PrintCsvField(const std::optional<std::string>& value) {
  if (!value) return;
  std::string v = Escaped(*value, true);
  bool quote = v.find_first_of(",\"\n\r") != std::string::npos;
  if (!quote) {
    fputs(v.c_str(), stdout);
    return;
  }
  putchar('"');
  for (char c : v) {
    if (c == '"') putchar('"');
    putchar(c);
  }
  putchar('"');
}

int CmdQuery(const std::string& config_path, const std::string& table, const std::string& sql, bool csv, bool as_json) {
  Config config = OrDie(LoadConfig(config_path), 2);
  SetupLogging(config.log_level, false);
  const TableConfig* tc = table.empty() ? &config.tables.front() : config.FindTable(table);
  if (!tc) Die("no table '" + table + "' in " + config.path + " (tables: " + TableNames(config) + ")", 2);
  WarehouseOptions wo = WarehouseOptionsFor(config, *tc, /*read_only=*/true);
  wo.sql_file_access = false;  // the SQL is the user's: no files, no ATTACH, no extensions
  auto wh = OrDie(OpenWarehouse(tc->warehouse, wo));
  auto r = wh->Query(sql);
  if (!r.ok()) Die("query failed: " + r.status().message());
  if (as_json) {
    // Every value as a JSON string (NULL as null), complete: NUL is \u0000.
    nlohmann::json rows = nlohmann::json::array();
    for (auto& row : r->rows) {
      nlohmann::json o = nlohmann::json::object();
      for (size_t i = 0; i < row.size(); ++i) o[r->columns[i]] = row[i] ? nlohmann::json(*row[i]) : nlohmann::json();
      rows.push_back(o);
    }
    std::cout << rows.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (csv) {
    for (size_t i = 0; i < r->columns.size(); ++i) {
      if (i) putchar(',');
      PrintCsvField(r->columns[i]);
    }
    putchar('\n');
    for (auto& row : r->rows) {
      for (size_t i = 0; i < row.size(); ++i) {
        if (i) putchar(',');
        PrintCsvField(row[i]);
      }
      putchar('\n');
    }
  } else {
    for (auto& row : r->rows)
      for (auto& v : row)
        if (v) v = Escaped(*v, false);
    std::vector<size_t> w(r->columns.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = Shown(r->columns[i]).size();
    for (auto& row : r->rows)
      for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], std::min<size_t>(60, row[i] ? row[i]->size() : 4));
    auto cell = [&](const std::string& s, size_t width) {
      std::string v = s.size() > width ? s.substr(0, width - 1) + "…" : s;
      printf("%-*s", static_cast<int>(width + (v.size() - std::min(v.size(), width))), v.c_str());
    };
    for (size_t i = 0; i < w.size(); ++i) {
      if (i) printf("  ");
      cell(Shown(r->columns[i]), w[i]);
    }
    printf("\n");
    for (size_t i = 0; i < w.size(); ++i) printf("%s%s", i ? "  " : "", std::string(w[i], '-').c_str());
    printf("\n");
    for (auto& row : r->rows) {
      for (size_t i = 0; i < row.size(); ++i) {
        if (i) printf("  ");
        cell(row[i].value_or("NULL"), w[i]);
      }
      printf("\n");
    }
    printf("(%zu row%s)\n", r->rows.size(), r->rows.size() == 1 ? "" : "s");
  }
  return 0;
}

// --- check ---

int CmdCheck(const std::string& config_path) {
  Config config = OrDie(LoadConfig(config_path), 2);
  SetupLogging(config.log_level, false);
  printf("config %s: OK (%zu table%s)\n", config_path.c_str(), config.tables.size(),
         config.tables.size() == 1 ? "" : "s");
  int bad = 0;
  auto report = [&](const std::string& what, const Status& s) {
    printf("  %-60s %s\n", Shown(what).c_str(), s.ok() ? "OK" : ("FAILED: " + Shown(s.message())).c_str());
    if (!s.ok()) ++bad;
  };
  report("state_dir " + config.state_dir, EnsureDir(config.state_dir));
  auto ledger = Ledger::Open(config.LedgerPath());
  report("ledger " + config.LedgerPath(), ledger.status());
  for (const TableConfig& t : config.tables) {
    printf("table %s\n", t.name.c_str());
    auto src = OpenTableStore(t.source, t.source_store, t.credentials);
    Status s = src.status();
    if (s.ok()) s = (*src)->List("", "", 1).status();
    report("source " + t.source + " (list)", s);
    auto stg = OpenTableStore(t.staging, t.staging_store, t.credentials);
    s = stg.status();
    if (s.ok()) {
      std::string probe = "_logferry_check/" + std::to_string(getpid());
      s = (*stg)->WriteAll(probe, "ok").status();
      if (s.ok()) s = (*stg)->Delete(probe);
    }
    report("staging " + t.staging + " (write, delete)", s);
    if (!t.notifications.empty()) {
      auto depth = ProbeNotifications(t);
      report("notifications " + t.notifications + " (attributes" + (depth.ok() ? ", " + *depth : "") + ")",
             depth.status());
    }
    WarehouseOptions wo = WarehouseOptionsFor(config, t, /*read_only=*/false);
    auto wh = OpenWarehouse(t.warehouse, wo);
    s = wh.status();
    if (s.ok()) s = (*wh)->Query("SELECT 1").status();
    report("warehouse " + t.warehouse + " (open, query)", s);
  }
  return bad ? 1 : 0;
}

// --- bad-records ---

int CmdBadRecords(const std::string& config_path, const std::string& table, const std::string& since, int64_t limit,
                  bool as_json) {
  Env env = Open(config_path, false);
  int64_t since_us = since.empty() ? 0 : ParseTimeArg(since, "--since");
  if (!table.empty()) TableOrDie(env, table);
  auto rows = OrDie(env.ledger->BadRecords(table, since_us, limit));
  if (as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& r : rows)
      out.push_back({{"table", r.table},
                     {"object", r.object_key},
                     {"line", r.record.line},
                     {"byte_offset", r.record.byte_offset},
                     {"field", r.record.field},
                     {"reason", r.record.reason},
                     {"excerpt", r.record.excerpt},
                     {"recorded", FormatIso8601(r.created_us)}});
    std::cout << JsonText(out) << "\n";
    return 0;
  }
  for (auto& r : rows) {
    printf("%s %s line %lld (byte %lld)%s: %s\n    %s\n", Shown(r.table).c_str(), Shown(r.object_key).c_str(),
           static_cast<long long>(r.record.line), static_cast<long long>(r.record.byte_offset),
           r.record.field.empty() ? "" : (" field '" + Shown(r.record.field) + "'").c_str(),
           Shown(r.record.reason).c_str(), Shown(r.record.excerpt).c_str());
  }
  printf("(%zu bad record%s)\n", rows.size(), rows.size() == 1 ? "" : "s");
  return 0;
}

// --- schema ---

int CmdSchema(const std::string& config_path, const std::string& table, bool bigquery, bool duckdb) {
  Env env = Open(config_path, false);
  TableRuntime& t = TableOrDie(env, table);
  if (bigquery) {
    std::cout << JsonText(t.schema->ToBigQuerySchema()) << "\n";
  } else if (duckdb) {
    auto cols = t.schema->DuckDbColumns();
    printf("CREATE TABLE \"%s\" (\n", t.config->name.c_str());
    for (size_t i = 0; i < cols.size(); ++i)
      printf("  \"%s\" %s%s\n", Shown(cols[i].first).c_str(), Shown(cols[i].second).c_str(),
             i + 1 < cols.size() ? "," : "");
    printf(");\n");
  }
  printf("-- name mapping (source field -> column), schema version %lld\n",
         static_cast<long long>(OrDie(env.ledger->SchemaVersion(t.config->name))));
  for (auto& [raw, col] : t.schema->NameMapping()) printf("%s -> %s\n", Shown(raw).c_str(), Shown(col).c_str());
  return 0;
}

// --- gen ---

int CmdGen(GenOptions gen, const std::string& start, const std::string& timezone, bool no_gzip) {
  gen.start_us = ParseTimeArg(start, "--start");
  gen.offset_seconds = OrDie(ParseUtcOffset(timezone), 2);
  gen.gzip = !no_gzip;
  if (gen.out_dir.empty() || gen.out_dir[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) gen.out_dir = std::string(cwd) + "/" + gen.out_dir;
  }
  GenResult r = OrDie(Generate(gen));
  printf("wrote %lld objects, %lld records (%s uncompressed) under %s/%s\n", static_cast<long long>(r.objects),
         static_cast<long long>(r.rows), HumanBytes(r.bytes_uncompressed).c_str(), gen.out_dir.c_str(),
         gen.prefix.c_str());
  return 0;
}

// --- the subcommand table ---

// Every option of every subcommand; each subcommand binds the ones it takes.
struct Args {
  std::string config_path = "logferry.toml";
  std::string table, from, to, since, sql;
  bool once = false, as_json = false, csv = false, verbose = false, bigquery = false, duckdb = false;
  int64_t limit = 1000;
  GenOptions gen;
  std::string gen_start = "2016-08-01T00", gen_tz = "+09:00";
  bool no_gzip = false;
};

void AddConfig(CLI::App* c, Args* a) {
  c->add_option("-c,--config", a->config_path, "Config file (TOML)")->capture_default_str();
  c->add_flag("-v,--verbose", a->verbose, "Debug logging");
}

void AddGenOptions(CLI::App* g, Args* a) {
  GenOptions& gen = a->gen;
  g->add_option("--out", gen.out_dir, "Directory to write into (the bucket)")->required();
  g->add_option("--prefix", gen.prefix, "Key prefix (Fluentd's path)")->capture_default_str();
  g->add_option("--hours", gen.hours, "Hours of logs")->capture_default_str();
  g->add_option("--start", a->gen_start, "First hour, UTC")->capture_default_str();
  g->add_option("--rows-per-hour", gen.rows_per_hour, "Records per hour")->capture_default_str();
  g->add_option("--split-every", gen.split_every, "Every Nth hour is written as two objects (_0, _1); 0 never")
      ->capture_default_str();
  g->add_option("--late-fraction", gen.late_fraction, "Fraction of records from the previous hour")
      ->capture_default_str();
  g->add_option("--format", gen.format, "out_file or json")->capture_default_str();
  g->add_option("--timezone", a->gen_tz, "Offset of times and time slices")->capture_default_str();
  g->add_option("--seed", gen.seed, "Random seed")->capture_default_str();
  g->add_flag("--no-gzip", a->no_gzip, "Write uncompressed objects (.log)");
}

struct Subcommand {
  const char* name;
  const char* description;
  void (*options)(CLI::App*, Args*);
  int (*run)(const Args&);
};

const Subcommand kSubcommands[] = {
    {"run", "Discover, stage and load on a schedule (SIGTERM finishes the current step)",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_flag("--once", a->once, "One full pass, then exit");
     },
     [](const Args& a) { return CmdRun(a.config_path, a.once, a.verbose); }},
    {"status", "Objects by state, partitions, lag and failures",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_flag("--json", a->as_json, "Machine-readable output");
     },
     [](const Args& a) { return CmdStatus(a.config_path, a.as_json); }},
    {"reload", "Load partitions again from staging",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Table (optional with one table)");
       c->add_option("--from", a->from, "First partition, UTC (e.g. 2016-08-01T00)")->required();
       c->add_option("--to", a->to, "End, exclusive (default: one partition)");
     },
     [](const Args& a) { return CmdReload(a.config_path, a.table, a.from, a.to, a.verbose); }},
    {"verify", "Reconcile source, ledger, staging and warehouse; exit 1 on any difference",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Only this table");
     },
     [](const Args& a) { return CmdVerify(a.config_path, a.table, a.verbose); }},
    {"query", "Run SQL on the embedded warehouse",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Use this table's warehouse (default: the first)");
       c->add_flag("--csv", a->csv, "CSV output");
       c->add_flag("--json", a->as_json, "JSON output");
       c->add_option("sql", a->sql, "SQL")->required();
     },
     [](const Args& a) { return CmdQuery(a.config_path, a.table, a.sql, a.csv, a.as_json); }},
    {"check", "Validate the config and reach every store", AddConfig,
     [](const Args& a) { return CmdCheck(a.config_path); }},
    {"bad-records", "List dead-lettered records with their raw excerpt",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Only this table");
       c->add_option("--since", a->since, "Recorded at or after this UTC time");
       c->add_option("--limit", a->limit, "At most this many")->capture_default_str();
       c->add_flag("--json", a->as_json, "JSON output");
     },
     [](const Args& a) { return CmdBadRecords(a.config_path, a.table, a.since, a.limit, a.as_json); }},
    {"schema", "Print the table schema and the name mapping",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Table (optional with one table)");
       c->add_flag("--bigquery", a->bigquery, "As BigQuery JSON schema");
       c->add_flag("--duckdb", a->duckdb, "As DuckDB DDL");
     },
     [](const Args& a) { return CmdSchema(a.config_path, a.table, a.bigquery, a.duckdb); }},
    {"gen", "Write realistic Fluentd out_s3 objects (for demos and tests)", AddGenOptions,
     [](const Args& a) { return CmdGen(a.gen, a.gen_start, a.gen_tz, a.no_gzip); }},
    {"config-reference", "Print the reference of every config key (Markdown)",
     [](CLI::App* c, Args*) { c->group(""); },  // hidden: for generating docs
     [](const Args&) {
       std::cout << ConfigReference();
       return 0;
     }},
};

// "logferry 0.1.0 (git v0.1.0-3-gabc1234)", as --version prints it.
std::string VersionText() {
  std::string git = LogferryGitDescribe();
  return std::string("logferry ") + LogferryVersion() + (git.empty() ? "" : " (git " + git + ")");
}

}  // namespace

int Main(int argc, char** argv) {
  // Staging allocates multi-megabyte buffers per object; keep them on the
  // heap for reuse instead of mmap/munmap (and page faults) every time.
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  InstallLogging(spdlog::level::info);  // escaped from the first line on, before any config is read
  CLI::App app{"logferry: Fluentd logs from object storage into an analytic warehouse, exactly once"};
  app.require_subcommand(1);
  app.set_version_flag("--version", VersionText(), "Print the version and exit");
  Args args;
  std::vector<std::pair<CLI::App*, const Subcommand*>> commands;
  for (const Subcommand& s : kSubcommands) {
    CLI::App* c = app.add_subcommand(s.name, s.description);
    s.options(c, &args);
    commands.emplace_back(c, &s);
  }
  CLI11_PARSE(app, argc, argv);
  for (auto& [c, s] : commands)
    if (*c) return s->run(args);
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    Die(std::string("internal error: ") + e.what());
  } catch (...) {
    Die("internal error: an exception that is not a std::exception");
  }
}
