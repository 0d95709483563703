// logferry: the command-line interface. Turns the core's Status values into
// messages and exit codes:
//   0    success
//   1    verify found differences, or a command failed
//   2    bad usage or configuration
//   3    run --once finished, but some objects or partitions are failing
//   130  run --once interrupted by SIGINT (Ctrl-C) before its pass ended
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "common/env.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/strings.h"
#include "common/time.h"
#include "common/version.h"
#include "core/config.h"
#include "core/liveness.h"
#include "core/pipeline.h"
#include "core/stage.h"
#include "core/verify.h"
#include "discovery/listing_discovery.h"
#include "fail.h"
#include "format/key_format.h"
#include "ledger/ledger.h"
#include "ledger_cmd.h"
#include "metrics/metrics.h"
#include "metrics/service_notify.h"
#include "registry/scheme_registry.h"
#include "reprocess.h"
#include "status.h"
#include "tools/generator.h"
#include "warehouse/bigquery_schema.h"
#include "warehouse/warehouse.h"

using namespace logferry;
using logferry::cli::Fail;
using logferry::cli::OrFail;

namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_stop_signal{0};
std::atomic<bool> g_reload{false};

// SIGTERM and SIGINT finish the current step and stop; SIGHUP asks the
// daemon to re-read its config between passes.
void OnSignal(int sig) {
  if (sig == SIGHUP) {
    g_reload.store(true);
    return;
  }
  g_stop_signal.store(sig);
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

// The config validated the names.
void SetupLogging(const Config& config, bool verbose) {
  LogOptions options;
  options.level = verbose ? LogLevel::kDebug : ParseLogLevel(config.log_level).value_or(LogLevel::kInfo);
  options.format = ParseLogLineFormat(config.log_format).value_or(LogLineFormat::kText);
  InstallLogging(std::move(options));
}

// The state directory is created owner-only (0700): the ledger holds raw
// excerpts of bad lines. Parents it creates are 0755. An existing directory
// is the operator's: a looser mode is warned about, never changed.
Status EnsureDir(const std::string& dir) {
  LF_RETURN_IF_ERROR(MakeDirectories(dir, 0700));
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    log::Warn(
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

// Only `run` creates the state directory and the ledger: for any other
// command a missing ledger means a wrong state_dir, not an empty one.
// after_config runs once the config is read, before the ledger and stores open.
// The ledger and the pipeline on it. A daemon (wait) whose shared ledger
// cannot be reached keeps trying, saying so, as it does when the ledger
// goes away later: workers started during a PostgreSQL outage wait for it.
Status OpenLedgerAndPipeline(Env& env, bool create) {
  if (create) {
    LF_ASSIGN_OR_RETURN(env.ledger, Ledger::Open(env.config.LedgerPath()));
  } else {
    LF_ASSIGN_OR_RETURN(env.ledger, Ledger::OpenExisting(env.config.LedgerPath()));
  }
  env.pipeline = std::make_unique<Pipeline>(env.config, env.ledger.get());
  return env.pipeline->Init();
}

Env Open(const std::string& config_path, bool verbose, bool create = false,
         const std::function<void(const Config&)>& after_config = {}, bool wait = false) {
  Env env;
  env.config = OrFail(LoadConfig(config_path), 2);
  SetupLogging(env.config, verbose);
  if (after_config) after_config(env.config);
  if (create) OrFail(EnsureDir(env.config.state_dir));
  for (int64_t delay_s = 1;; delay_s = std::min<int64_t>(delay_s * 2, 30)) {
    Status s = OpenLedgerAndPipeline(env, create);
    if (s.ok() || !wait || !s.IsTransient()) OrFail(s);
    if (s.ok()) return env;
    log::Error("cannot reach the ledger, retrying in {}s: {}", delay_s, s.ToString());
    env.pipeline.reset();
    env.ledger.reset();
    std::this_thread::sleep_for(std::chrono::seconds(delay_s));
  }
}

std::string TableNames(const Config& config) {
  std::string out;
  for (const TableConfig& t : config.tables) out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

TableRuntime& TableOrFail(Env& env, const std::string& name) {
  if (name.empty()) {
    if (env.pipeline->tables().size() == 1) return env.pipeline->tables().front();
    Fail("several tables are configured: say which with --table", 2);
  }
  TableRuntime* t = env.pipeline->table(name);
  if (!t) Fail("no table '" + name + "' in " + env.config.path + " (tables: " + TableNames(env.config) + ")", 2);
  return *t;
}

int64_t ParseTimeArg(const std::string& s, const char* flag) {
  auto t = ParseIso8601(s, 0);
  if (!t)
    Fail(std::string(flag) + " must be a time like 2016-08-01T00 (UTC) or 2016-08-01T09+09:00 (got '" + s + "')", 2);
  return *t;
}

// --- run ---

// Config URIs hold no secrets (credentials come from the environment), but a
// user:password@ someone wrote into one is cut all the same.
std::string WithoutUserInfo(const std::string& uri) {
  size_t start = uri.find("://");
  if (start == std::string::npos) return uri;
  start += 3;
  size_t at = uri.find('@', start);
  if (at == std::string::npos || at > uri.find('/', start)) return uri;
  return uri.substr(0, start) + uri.substr(at + 1);
}

// The first line a daemon writes: which build runs which config on what.
void LogStartup(const Config& config, bool once) {
  std::string tables;
  for (const TableConfig& t : config.tables)
    tables += fmt::format("{}{} (source {}, staging {}, warehouse {})", tables.empty() ? "" : "; ", t.name,
                          WithoutUserInfo(t.source), WithoutUserInfo(t.staging), WithoutUserInfo(t.warehouse));
  log::Info("logferry {} starting{}: config {}, state_dir {}, ledger {}, {} table(s): {}", LogferryVersion(),
            once ? " one pass" : "", config.path, config.state_dir, config.LedgerName(), config.tables.size(), tables);
}

// Passes that find nothing write no pass line; this says, once a minute
// (and on the first idle pass after starting), that the daemon is alive.
class IdleHeartbeat {
 public:
  static constexpr int64_t kEveryUs = 60 * kMicrosPerSecond;

  void Active(int64_t now_us, bool staged) {
    last_line_us_ = now_us;
    idle_passes_ = 0;
    if (staged) last_staged_us_ = now_us;
  }
  void Idle(int64_t now_us) {
    if (idle_passes_++ == 0) idle_since_us_ = now_us;
    if (last_line_us_ >= 0 && now_us - last_line_us_ < kEveryUs) return;
    last_line_us_ = now_us;
    log::Info("idle: 0 new objects in {} pass(es) since {}; last object staged {}", idle_passes_,
              FormatIso8601(idle_since_us_),
              last_staged_us_ ? "at " + FormatIso8601(*last_staged_us_) : std::string("before this process started"));
  }

 private:
  int64_t last_line_us_ = -1;  // of the last pass line or heartbeat
  int64_t idle_passes_ = 0, idle_since_us_ = 0;
  std::optional<int64_t> last_staged_us_;
};
void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
}

// The pass line when the pass did anything (every pass of --once); the
// idle heartbeat otherwise.
void LogPass(const PassStats& s, double secs, bool once, IdleHeartbeat& heartbeat) {
  bool active = s.discovered || s.staged_objects || s.failed_objects || s.partitions_loaded || s.partitions_failed ||
                s.partitions_appended;
  int64_t now_us = logferry::Env::Default()->NowMicros();
  if (!active && !once) {
    heartbeat.Idle(now_us);
    return;
  }
  heartbeat.Active(now_us, s.staged_objects > 0);
  log::Info(
      "pass: {} new objects, {} staged ({} rows, {} bad, {} read at {:.0f} MB/s), {} failed; "
      "{} partitions loaded, {} failed, {} appended to; {:.1f}s",
      s.discovered, s.staged_objects, s.rows_staged, s.bad_records, HumanBytes(s.bytes_read),
      s.stage_seconds > 0 ? s.bytes_read / 1e6 / s.stage_seconds : 0.0, s.failed_objects, s.partitions_loaded,
      s.partitions_failed, s.partitions_appended, secs);
}

// run --once's exit code after its pass: 3 while anything is failing.
int FailingExitCode(Env& env) {
  int64_t failing = 0;
  for (TableRuntime& t : env.pipeline->tables()) {
    auto c = env.ledger->Counts(t.config->name, logferry::Env::Default()->NowMicros());
    if (c.ok()) failing += c->objects_failed + c->partitions_failed;
  }
  if (failing == 0) return 0;
  log::Warn("{} object(s) or partition(s) are failing; see 'logferry status'", failing);
  return 3;
}

// SIGHUP: the daemon re-reads its config between passes. A config that does
// not parse, moves state_dir, or whose stores or warehouses do not open is
// refused with the reason, and the running one stays.
void Reload(Env& env, bool verbose) {
  const std::string path = env.config.path;
  auto fresh = LoadConfig(path);
  if (!fresh.ok()) {
    log::Error("SIGHUP: keeping the current config: {}", fresh.status().message());
    return;
  }
  if (fresh->state_dir != env.config.state_dir) {
    log::Error("SIGHUP: keeping the current config: state_dir cannot change while running ({} -> {}); restart",
               env.config.state_dir, fresh->state_dir);
    return;
  }
  if (fresh->ledger != env.config.ledger) {
    log::Error("SIGHUP: keeping the current config: the ledger cannot change while running ({} -> {}); restart",
               env.config.LedgerName(), fresh->LedgerName());
    return;
  }
  // The pipeline holds the config (and the warehouses it opened): it goes first.
  Config current = std::move(env.config);
  env.pipeline.reset();
  env.config = std::move(*fresh);
  env.pipeline = std::make_unique<Pipeline>(env.config, env.ledger.get());
  if (Status s = env.pipeline->Init(); !s.ok()) {
    log::Error("SIGHUP: keeping the current config: the new one does not start: {}", s.message());
    env.pipeline.reset();
    env.config = std::move(current);
    env.pipeline = std::make_unique<Pipeline>(env.config, env.ledger.get());
    OrFail(env.pipeline->Init());
    return;
  }
  SetupLogging(env.config, verbose);
  log::Info("SIGHUP: reloaded {} (tables: {})", path, TableNames(env.config));
}

// Sleeps until the next pass is due, a stop signal, or a reload request,
// calling tick every 100 ms (the systemd watchdog).
void WaitForNextPass(const Config& config, const std::function<void()>& tick) {
  int64_t wake_us = logferry::Env::Default()->MonotonicMicros() + config.MinInterval();
  while (!g_stop.load() && !g_reload.load() && logferry::Env::Default()->MonotonicMicros() < wake_us) {
    logferry::Env::Default()->SleepForMicroseconds(100'000);
    tick();
  }
}

// What the daemon tells the outside: Prometheus metrics and health checks
// (metrics_listen) and systemd (Type=notify). Both are off for run --once.
struct DaemonReports {
  std::unique_ptr<Metrics> metrics;
  ServiceNotifier service;

  void Start(const Config& config) {
    if (config.metrics_listen.empty()) return;
    metrics = OrFail(Metrics::Serve(config), 2);
    log::Info("serving metrics at http://{}/metrics, health checks at /healthz and /readyz", config.metrics_listen);
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
  Env env = Open(
      config_path, verbose, /*create=*/true,
      [&](const Config& c) {
        if (!once) reports.Start(c);
      },
      /*wait=*/!once);
  InstallSignalHandlers();
  bool tty = isatty(2);
  env.pipeline->set_single_pass(once);
  if (tty && once) {
    env.pipeline->set_progress([](const std::string& line) { fprintf(stderr, "\r\033[K%s", line.c_str()); });
  }
  LogStartup(env.config, once);
  IdleHeartbeat heartbeat;
  if (!once) reports.Attach(*env.pipeline);
  int exit_code = 0;
  bool cut_short = false;  // a stop signal came while the pass ran: it ended at the next step
  // Several `run` processes may share a ledger: each works under leases
  // named after its row in the processes table.
  ProcessRecorder process(env.ledger.get(), once ? "once" : "daemon");
  env.pipeline->set_worker(process.worker_id());
  for (;;) {
    if (g_reload.exchange(false) && !once) {
      Reload(env, verbose);
      reports.Attach(*env.pipeline);  // the pipeline is a new one
      env.pipeline->set_worker(process.worker_id());
    }
    int64_t t0 = logferry::Env::Default()->MonotonicMicros();
    process.PassStarted();
    auto stats = env.pipeline->RunOnce(g_stop);
    cut_short = g_stop.load();
    process.PassEnded(PassOutcome(stats.status(), *env.ledger, env.config, logferry::Env::Default()->NowMicros()));
    double secs = (logferry::Env::Default()->MonotonicMicros() - t0) / 1e6;
    if (!once) reports.AfterPass(stats, secs, *env.ledger);
    if (tty && once) fprintf(stderr, "\r\033[K");
    if (!stats.ok()) {
      log::Error("pass failed: {}", stats.status().ToString());
      if (once) return 1;
    } else {
      LogPass(*stats, secs, once, heartbeat);
      if (once) exit_code = FailingExitCode(env);
    }
    if (once || g_stop.load()) break;
    WaitForNextPass(env.config, [&] { reports.service.Ping(); });
    if (g_stop.load()) break;
  }
  if (once && cut_short && g_stop_signal.load() == SIGINT) {
    log::Warn("interrupted (SIGINT) after finishing the current step; the rest waits for the next run");
    return 130;
  }
  reports.service.Stopping();
  if (g_stop.load()) log::Info("stopped by signal after finishing the current step");
  return exit_code;
}

// --- status ---

int CmdStatus(const std::string& config_path, bool as_json, bool check, const std::string& max_lag) {
  std::optional<int64_t> max_lag_us;
  if (!max_lag.empty()) {
    auto d = ParseDuration(max_lag);
    if (!d.ok()) Fail("--max-lag: " + d.status().message(), 2);
    max_lag_us = *d;
  }
  Env env = Open(config_path, false);
  int64_t now = logferry::Env::Default()->NowMicros();
  nlohmann::json report = OrFail(StatusReport(*env.ledger, env.pipeline->tables(), now));
  std::vector<std::string> problems = check ? CheckProblems(report, max_lag_us) : std::vector<std::string>{};
  if (as_json) {
    std::cout << JsonText(report) << "\n";
  } else if (check) {
    for (const std::string& p : problems) printf("FAILING %s\n", p.c_str());  // escaped already
    if (problems.empty())
      printf("OK: %zu table(s), nothing failing%s\n", report.size(),
             max_lag_us ? (", lag within " + FormatDuration(*max_lag_us)).c_str() : "");
  } else {
    PrintStatus(report, now);
  }
  return problems.empty() ? 0 : 1;
}

// --- reload ---

int CmdReload(const std::string& config_path, const std::string& table, const std::string& from_s,
              const std::string& to_s, bool verbose) {
  Env env = Open(config_path, verbose);
  TableRuntime& t = TableOrFail(env, table);
  int64_t from = ParseTimeArg(from_s, "--from");
  int64_t to = to_s.empty() ? from + t.config->partition_unit_us : ParseTimeArg(to_s, "--to");
  if (to <= from) Fail("--to must be after --from", 2);
  auto [id, n] = OrFail(env.ledger->RecordRequest(t.config->name, "cli", "", from, to, t.config->partition_unit_us,
                                                  logferry::Env::Default()->NowMicros()));
  if (n == 0) {
    printf("no staged partitions of %s in %s .. %s\n", t.config->name.c_str(), FormatHour(from).c_str(),
           FormatHour(to).c_str());
    OrFail(env.ledger->FinishRequest(id, "done", "0 partition(s) loaded", logferry::Env::Default()->NowMicros()));
    return 0;
  }
  PassStats stats;
  std::atomic<bool> never{false};
  OrFail(env.pipeline->Load(t, never, &stats, std::make_pair(from, to)));
  OrFail(env.pipeline->FinishRequests(t));
  printf("reloaded %lld partition(s) of %s; %lld failed\n", static_cast<long long>(stats.partitions_loaded),
         t.config->name.c_str(), static_cast<long long>(stats.partitions_failed));
  return stats.partitions_failed > 0 ? 1 : 0;
}

// --- verify ---

int CmdVerify(const std::string& config_path, const std::string& table, bool verbose) {
  Env env = Open(config_path, verbose);
  if (!table.empty()) TableOrFail(env, table);
  VerifyReport report;
  for (TableRuntime& t : env.pipeline->tables()) {
    if (!table.empty() && t.config->name != table) continue;
    OrFail(VerifyTable(t, *env.ledger, env.config, &report));
  }
  for (auto& n : report.notes) printf("note: %s\n", Shown(n).c_str());
  for (auto& d : report.differences) printf("DIFFERENCE: %s\n", Shown(d).c_str());
  printf(
      "verify: %s — %lld source objects%s, %lld staged parts, %lld partitions, %lld rows in the warehouse; %zu "
      "difference(s)\n",
      report.differences.empty() ? "OK" : "FAILED", static_cast<long long>(report.objects),
      report.skipped ? (" (" + std::to_string(report.skipped) + " skipped)").c_str() : "",
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

// A DuckDB number's text is a JSON number but for nan and inf, which JSON
// has no form for.
bool IsJsonNumber(std::string_view v) {
  size_t i = v.empty() || v[0] != '-' ? 0 : 1;
  auto digits = [&] {
    size_t from = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
    return i > from;
  };
  if (i >= v.size() || (v[i] == '0' && i + 1 < v.size() && v[i + 1] >= '0' && v[i + 1] <= '9') || !digits())
    return false;
  if (i < v.size() && v[i] == '.' && (++i, !digits())) return false;
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    ++i;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == v.size();
}

// One array of objects on one line, keys in the SELECT's order, values
// typed by their column: numbers as JSON numbers (nan and inf as null),
// booleans as true/false, NULL as null, the rest as strings, complete (NUL
// is \u0000; invalid UTF-8 becomes U+FFFD).
void PrintJsonRows(const QueryResult& r) {
  std::string out = "[";
  for (size_t n = 0; n < r.rows.size(); ++n) {
    out += n ? ",{" : "{";
    for (size_t i = 0; i < r.columns.size(); ++i) {
      if (i) out += ',';
      AppendJsonString(&out, r.columns[i]);
      out += ':';
      const std::optional<std::string>& v = r.rows[n][i];
      const ValueKind kind = i < r.kinds.size() ? r.kinds[i] : ValueKind::kText;
      if (!v)
        out += "null";
      else if (kind == ValueKind::kNumber)
        out += IsJsonNumber(*v) ? *v : "null";
      else if (kind == ValueKind::kBool && (*v == "true" || *v == "false"))
        out += *v;
      else
        AppendJsonString(&out, *v);
    }
    out += '}';
  }
  out += "]\n";
  fwrite(out.data(), 1, out.size(), stdout);
}

void PrintCsvRows(const QueryResult& r) {
  for (size_t i = 0; i < r.columns.size(); ++i) {
    if (i) putchar(',');
    PrintCsvField(r.columns[i]);
  }
  putchar('\n');
  for (auto& row : r.rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      if (i) putchar(',');
      PrintCsvField(row[i]);
    }
    putchar('\n');
  }
}

void PrintTable(QueryResult* r) {
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

int CmdQuery(const std::string& config_path, const std::string& table, const std::string& sql, bool csv, bool as_json) {
  Config config = OrFail(LoadConfig(config_path), 2);
  SetupLogging(config, false);
  const TableConfig* tc = table.empty() ? &config.tables.front() : config.FindTable(table);
  if (!tc) Fail("no table '" + table + "' in " + config.path + " (tables: " + TableNames(config) + ")", 2);
  WarehouseOptions wo = WarehouseOptionsFor(config, *tc, /*read_only=*/true);
  wo.sql_file_access = false;  // the SQL is the user's: no files, no ATTACH, no extensions
  auto wh = OrFail(OpenWarehouse(tc->warehouse, wo));
  auto r = wh->Query(sql);
  if (!r.ok()) Fail("query failed: " + r.status().message());
  if (as_json)
    PrintJsonRows(*r);
  else if (csv)
    PrintCsvRows(*r);
  else
    PrintTable(&*r);
  return 0;
}

// --- check ---

// `check` leaves nothing behind: it creates no state_dir, ledger, staging
// directory or warehouse, and removes its write probe. What does not exist
// yet is checked for being creatable instead.

// Whether dir exists as a writable directory, or could be created: its
// nearest existing ancestor is a writable directory. *exists tells which.
Status CanCreateDir(const std::string& dir, bool* exists) {
  std::string path = dir;
  *exists = true;
  for (;;) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return Status::FailedPrecondition(path + " is not a directory");
      if (access(path.c_str(), W_OK | X_OK) != 0) return Status::PermissionDenied(path + " is not writable");
      return Status::Ok();
    }
    *exists = false;
    size_t slash = path.find_last_of('/', path.size() > 1 ? path.size() - 2 : 0);
    if (slash == std::string::npos) return Status::Ok();  // relative: the working directory
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
}

const char* NotYet(bool exists) {
  return exists ? "" : " (does not exist yet; run creates it)";
}

struct CheckReport {
  int bad = 0;
  void Line(const std::string& what, const Status& s) {
    printf("  %-60s %s\n", Shown(what).c_str(), s.ok() ? "OK" : ("FAILED: " + Shown(s.message())).c_str());
    if (!s.ok()) ++bad;
  }
  void Warning(const std::string& what) { printf("  WARNING: %s\n", Shown(what).c_str()); }
};

// Lists up to kSample keys of the source: a missing local directory fails;
// keys that do not match key_format are shown, and fail when none match.
void CheckSource(const TableConfig& t, CheckReport* r) {
  constexpr size_t kSample = 1000;
  auto src = OpenTableStore(t.source, t.source_store, t.credentials);
  StatusOr<ListPage> page = src.status();
  if (src.ok()) {
    if (auto missing = MissingLocalRoot(**src))
      page = Status::NotFound("the directory " + *missing + " does not exist");
    else
      page = (*src)->List("", "", kSample);
  }
  auto kf = KeyFormat::Compile(t.key_format, t.time_slice_format, t.zone);
  std::vector<std::string> ignored;
  size_t listed = page.ok() ? page->objects.size() : 0;
  for (size_t i = 0; i < listed && kf.ok(); ++i)
    if (!kf->Match(page->objects[i].key)) ignored.push_back(page->objects[i].key);
  Status s = page.status();
  if (s.ok() && listed > 0 && ignored.size() == listed)
    s = Status::FailedPrecondition("none of the " + std::to_string(listed) + " keys listed match key_format, e.g. '" +
                                   ignored.front() + "'");
  r->Line("source " + t.source + " (list)", s);
  if (kf.ok()) printf("  discovery: %s\n", Shown(DescribeDiscovery(t, *kf)).c_str());
  if (!s.ok()) return;
  if (listed == 0) r->Warning("the source holds no objects yet");
  if (ignored.empty()) return;
  std::string examples;
  for (size_t i = 0; i < ignored.size() && i < 3; ++i) examples += (i ? ", '" : "'") + ignored[i] + "'";
  r->Warning(std::to_string(ignored.size()) + " of " + std::to_string(listed) + (page->next_token.empty() ? "" : "+") +
             " keys listed do not match key_format and would be ignored, e.g. " + examples);
}

// A write and delete of a probe at the top of the staging store, which must
// exist or be creatable.
void CheckStaging(const TableConfig& t, CheckReport* r) {
  auto stg = OpenTableStore(t.staging, t.staging_store, t.credentials);
  Status s = stg.status();
  bool exists = true;
  if (s.ok()) {
    if (auto missing = MissingLocalRoot(**stg)) s = CanCreateDir(*missing, &exists);
    if (s.ok() && exists) {
      std::string probe = "_logferry_check_" + std::to_string(getpid());
      s = (*stg)->WriteAll(probe, "ok").status();
      if (s.ok()) s = (*stg)->Delete(probe);
    }
  }
  r->Line("staging " + t.staging + (exists ? " (write, delete)" : NotYet(false)), s);
}

// Read-only: a warehouse that does not exist yet is not created.
void CheckWarehouse(const Config& config, const TableConfig& t, CheckReport* r) {
  WarehouseOptions wo = WarehouseOptionsFor(config, t, /*read_only=*/true);
  auto wh = OpenWarehouse(t.warehouse, wo);
  Status s = wh.status();
  if (s.IsNotFound()) {
    r->Line("warehouse " + t.warehouse + NotYet(false), Status::Ok());
    return;
  }
  if (s.ok()) s = (*wh)->Query("SELECT 1").status();
  r->Line("warehouse " + t.warehouse + " (open, query)", s);
}

int CmdCheck(const std::string& config_path) {
  Config config = OrFail(LoadConfig(config_path), 2);
  SetupLogging(config, false);
  printf("config %s: OK (%zu table%s)\n", config_path.c_str(), config.tables.size(),
         config.tables.size() == 1 ? "" : "s");
  CheckReport r;
  bool exists = true;
  Status s = CanCreateDir(config.state_dir, &exists);
  r.Line("state_dir " + config.state_dir + NotYet(exists), s);
  struct stat st {};
  bool have_ledger = stat(config.LedgerPath().c_str(), &st) == 0;
  if (Ledger::IsShared(config.LedgerPath())) {
    // check creates nothing: a shared ledger not created yet is "not yet".
    Status s = Ledger::OpenExisting(config.LedgerPath()).status();
    have_ledger = s.ok();
    r.Line("ledger " + config.LedgerName() + NotYet(have_ledger), s.IsNotFound() ? Status::Ok() : s);
  } else {
    r.Line("ledger " + config.LedgerPath() + NotYet(have_ledger),
           have_ledger ? Ledger::OpenExisting(config.LedgerPath()).status() : Status::Ok());
  }
  for (const TableConfig& t : config.tables) {
    printf("table %s\n", t.name.c_str());
    CheckSource(t, &r);
    CheckStaging(t, &r);
    if (!t.notifications.empty()) {
      auto depth = ProbeNotifications(t);
      r.Line("notifications " + t.notifications + " (attributes" + (depth.ok() ? ", " + *depth : "") + ")",
             depth.status());
    }
    if (t.lineage.any() && have_ledger) {
      auto ledger = Ledger::OpenExisting(config.LedgerPath());
      r.Line(std::string("lineage columns") + (t.lineage.source ? " _source" : "") + (t.lineage.line ? " _line" : ""),
             ledger.ok() ? OpenTableSchema(**ledger, t).status() : ledger.status());
    }
    CheckWarehouse(config, t, &r);
  }
  return r.bad ? 1 : 0;
}

// --- bad-records ---

int CmdBadRecords(const std::string& config_path, const std::string& table, const std::string& since, int64_t limit,
                  bool as_json) {
  Env env = Open(config_path, false);
  int64_t since_us = since.empty() ? 0 : ParseTimeArg(since, "--since");
  if (!table.empty()) TableOrFail(env, table);
  auto rows = OrFail(env.ledger->BadRecords(table, since_us, limit));
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
  TableRuntime& t = TableOrFail(env, table);
  if (bigquery) {  // the JSON alone, for `bq mk --schema FILE` and scripts
    std::cout << BigQuerySchemaJson(t.schema->Columns(), 2) << "\n";
    return 0;
  }
  if (duckdb) {
    auto cols = t.schema->DuckDbColumns();
    printf("CREATE TABLE \"%s\" (\n", t.config->name.c_str());
    for (size_t i = 0; i < cols.size(); ++i)
      printf("  \"%s\" %s%s\n", Shown(cols[i].first).c_str(), Shown(cols[i].second).c_str(),
             i + 1 < cols.size() ? "," : "");
    printf(");\n");
  }
  printf("-- name mapping (source field -> column), schema version %lld\n",
         static_cast<long long>(OrFail(env.ledger->SchemaVersion(t.config->name))));
  for (auto& [raw, col] : t.schema->NameMapping()) printf("%s -> %s\n", Shown(raw).c_str(), Shown(col).c_str());
  return 0;
}

// --- gen ---

int CmdGen(GenOptions gen, const std::string& start, const std::string& timezone, bool no_gzip) {
  gen.start_us = ParseTimeArg(start, "--start");
  gen.zone = OrFail(TimeZone::Parse(timezone), 2);
  gen.gzip = !no_gzip;
  if (gen.out_dir.empty() || gen.out_dir[0] != '/') {
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) gen.out_dir = std::string(cwd) + "/" + gen.out_dir;
  }
  GenResult r = OrFail(Generate(gen));
  printf("wrote %lld objects, %lld records (%s uncompressed) under %s/%s\n", static_cast<long long>(r.objects),
         static_cast<long long>(r.rows), HumanBytes(r.bytes_uncompressed).c_str(), gen.out_dir.c_str(),
         gen.prefix.c_str());
  return 0;
}

// --- the subcommand table ---

// Every option of every subcommand; each subcommand binds the ones it takes.
struct Args {
  std::string config_path = "logferry.toml";
  std::string table, from, to, since, sql, max_lag;
  bool check = false;
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
  g->add_option("--objects-per-hour", gen.objects_per_hour,
                "Each hour's records split over N objects (_0 .. _N-1; twice as many in a split hour)")
      ->capture_default_str();
  g->add_option("--late-fraction", gen.late_fraction, "Fraction of records from the previous hour")
      ->capture_default_str();
  g->add_option("--format", gen.format, "out_file or json")->capture_default_str();
  g->add_option("--timezone", a->gen_tz, "Zone of times and time slices: an offset or an IANA name")
      ->capture_default_str();
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
       c->add_flag("--check", a->check, "Exit 1, one line per reason, when anything is failing or lags");
       c->add_option("--max-lag", a->max_lag, "With --check: also fail when lag exceeds this (e.g. 2h)");
     },
     [](const Args& a) { return CmdStatus(a.config_path, a.as_json, a.check || !a.max_lag.empty(), a.max_lag); }},
    {"reload", "Load partitions again from staging",
     [](CLI::App* c, Args* a) {
       AddConfig(c, a);
       c->add_option("--table", a->table, "Table (optional with one table)");
       c->add_option("--from", a->from,
                     "First partition: UTC unless it has an offset (2016-08-01T00, 2016-08-01T09+09:00)")
           ->required();
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

// Parses the command line; on a usage error prints why (naming the closest
// subcommand to a mistyped one) and returns 2, the convention of getopt
// tools, instead of CLI11's own codes. nullopt: go on.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help
    std::vector<std::string> names;
    for (const CLI::App* c : app.get_subcommands([](CLI::App*) { return true; })) names.push_back(c->get_name());
    if (argc > 1 && argv[1][0] != '-' && std::find(names.begin(), names.end(), argv[1]) == names.end()) {
      std::string closest = ClosestMatch(argv[1], names);
      fprintf(stderr, "logferry: unknown command '%s'%s\nRun 'logferry --help' for the commands.\n",
              Shown(argv[1]).c_str(), closest.empty() ? "" : ("; did you mean '" + closest + "'?").c_str());
      return 2;
    }
    app.exit(e);
    return 2;
  }
}

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
  InstallLogging(LogOptions{});  // escaped from the first line on, before any config is read
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
  std::vector<cli::Command> reprocess = cli::AddReprocessCommands(app);
  for (cli::Command& c : cli::AddLedgerCommands(app)) reprocess.push_back(std::move(c));
  if (std::optional<int> rc = ParseCommandLine(app, argc, argv)) return *rc;
  for (auto& [c, s] : commands)
    if (*c) return s->run(args);
  for (const cli::Command& c : reprocess)
    if (*c.app) return c.run();
  return 0;
}

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    Fail(std::string("internal error: ") + e.what());
  } catch (...) {
    Fail("internal error: an exception that is not a std::exception");
  }
}
