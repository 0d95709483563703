#include "status.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "common/strings.h"
#include "common/time.h"
#include "core/liveness.h"
#include "registry/scheme_registry.h"

namespace logferry {

namespace {

using json = nlohmann::json;

// Human output escapes whatever came from a bucket or a server (keys, field
// names, errors): see EscapeForDisplay. --json output is exact instead.
std::string Shown(std::string_view s) {
  return EscapeForDisplay(s);
}

std::string Str(const json& j) {
  return Shown(j.get<std::string>());
}

long long Num(const json& j) {
  return j.get<long long>();
}

// 1234567 -> "1,234,567": lists capped with counts read at a glance.
std::string WithCommas(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

// "... and 1,234 more" under a list shown in part.
void PrintMore(size_t shown, int64_t total, const char* what) {
  if (total > static_cast<int64_t>(shown))
    printf("  ... and %s more %s\n", WithCommas(total - static_cast<int64_t>(shown)).c_str(), what);
}

// --- the processes ---

json ProcessJson(const ProcessRow& p, int64_t now) {
  json d = {{"state", LivenessName(LivenessOf(p, now))},
            {"pid", p.pid},
            {"host", p.host},
            {"mode", p.mode},
            {"started", FormatIso8601(p.started_us)},
            {"last_seen", FormatIso8601(p.heartbeat_us)}};
  if (p.last_pass_started_us) d["last_pass_started"] = FormatIso8601(*p.last_pass_started_us);
  if (p.last_pass_ended_us) {
    d["last_pass_ended"] = FormatIso8601(*p.last_pass_ended_us);
    d["last_pass_outcome"] = p.last_outcome;
  }
  return d;
}

// The running processes first (the newest of them), else the one seen last.
json DaemonJson(const std::vector<ProcessRow>& processes, int64_t now) {
  if (processes.empty()) return {{"state", "never"}, {"running", 0}};
  const ProcessRow* shown = &processes.front();
  int64_t running = 0;
  for (const ProcessRow& p : processes) {
    if (LivenessOf(p, now) != Liveness::kRunning) continue;
    if (running++ == 0) shown = &p;
  }
  json d = ProcessJson(*shown, now);
  d["running"] = running;
  return d;
}

// The workers: processes running, and any other still holding a lease (one
// that died, until its leases lapse), each with what it holds.
json WorkersJson(const std::vector<ProcessRow>& processes, const std::vector<LeaseRow>& leases, int64_t now) {
  std::map<std::string, json> held;
  for (const LeaseRow& l : leases) {
    json& h = held[l.worker];
    if (h.is_null()) h = {{"objects", 0}, {"partitions", json::array()}, {"until", FormatIso8601(l.until_us)}};
    if (l.kind == "object")
      h["objects"] = Num(h["objects"]) + 1;
    else
      h["partitions"].push_back(l.table + " " + l.what);
  }
  json out = json::array();
  for (const ProcessRow& p : processes) {
    std::string id = p.worker_id();
    auto it = held.find(id);
    if (LivenessOf(p, now) != Liveness::kRunning && it == held.end()) continue;
    json w = ProcessJson(p, now);
    w["worker"] = id;
    w["leases"] = it != held.end() ? it->second : json{{"objects", 0}, {"partitions", json::array()}};
    out.push_back(std::move(w));
  }
  return out;
}

// --- one table ---

// Request objects refused (not JSON, too large, unknown table, unfilable):
// the newest few, since a stream of junk must not flood the report.
Status AddRefusedRequests(Ledger& ledger, const std::string& table, int64_t now, json* j) {
  LF_ASSIGN_OR_RETURN(auto refused, ledger.Requests(table, "failed"));
  json list = json::array();
  int64_t recent = 0;
  for (auto it = refused.rbegin(); it != refused.rend(); ++it) {
    if (now - it->created_us <= kMicrosPerDay) ++recent;
    if (list.size() < kStatusListed)
      list.push_back({{"request", it->origin}, {"error", it->detail}, {"at", FormatIso8601(it->created_us)}});
  }
  (*j)["refused_requests"] = list;
  (*j)["refused_requests_total"] = refused.size();
  (*j)["refused_requests_24h"] = recent;
  return Status::Ok();
}

// The failing event notifications of a table that has a queue. With events,
// an object the listing had to find means an event was lost.
Status AddNotifications(Ledger& ledger, const TableConfig& cfg, const TableCounts& c, json* j) {
  (*j)["objects"]["found_only_by_listing"] = c.found_by_listing_only;
  LF_ASSIGN_OR_RETURN(auto rows, ledger.Notifications(cfg.name, "failing"));
  json failing = json::array();
  for (const NotificationRow& n : rows) {
    if (failing.size() >= kStatusListed) break;
    failing.push_back({{"message_id", n.message_id},
                       {"receive_count", n.receive_count},
                       {"error", n.detail},
                       {"updated", FormatIso8601(n.updated_us)}});
  }
  (*j)["notifications"] = {{"queue", cfg.notifications}, {"failing", failing}, {"failing_total", rows.size()}};
  return Status::Ok();
}

// Lag runs from the end of the newest loaded partition: everything before
// that instant is in the warehouse. With nothing loaded yet, the oldest
// pending partition's end tells how long data has waited.
void AddLoadProgress(const TableConfig& cfg, const TableCounts& c, int64_t now, json* j) {
  (*j)["load_jobs_24h"] = c.load_jobs_24h;
  if (const SchemeInfo* scheme = Schemes().Claim(cfg.warehouse); scheme && scheme->daily_job_budget) {
    (*j)["daily_load_budget"] = cfg.daily_load_budget;
    // Past the budget, loads wait until the oldest counted job leaves the window.
    if (c.load_jobs_24h >= cfg.daily_load_budget && c.oldest_load_job_24h_us)
      (*j)["load_budget_frees_at"] = FormatIso8601(*c.oldest_load_job_24h_us + kMicrosPerDay);
  }
  if (c.newest_loaded_partition_us) {
    int64_t through = *c.newest_loaded_partition_us + cfg.partition_unit_us;
    (*j)["newest_loaded_partition"] = FormatIso8601(*c.newest_loaded_partition_us);
    (*j)["loaded_through"] = FormatIso8601(through);
    (*j)["lag_seconds"] = (now - through) / kMicrosPerSecond;
  }
  if (c.oldest_pending_partition_us) {
    (*j)["oldest_pending_partition"] = FormatIso8601(*c.oldest_pending_partition_us);
    (*j)["oldest_pending_age_seconds"] =
        (now - (*c.oldest_pending_partition_us + cfg.partition_unit_us)) / kMicrosPerSecond;
  }
}

Status AddFailedObjects(Ledger& ledger, const TableRuntime& t, json* j) {
  LF_ASSIGN_OR_RETURN(auto failed, ledger.Objects(t.config->name, ObjectState::kFailed));
  json list = json::array();
  for (const ObjectRow& o : failed) {
    if (list.size() >= kStatusListed) break;
    json f = {{"object", t.source->UriOf(o.key)}, {"attempts", o.attempts}, {"error", o.last_error}};
    if (o.next_attempt_us) f["next_attempt"] = FormatIso8601(*o.next_attempt_us);
    list.push_back(f);
  }
  (*j)["failed_objects"] = list;
  (*j)["failed_objects_total"] = failed.size();
  return Status::Ok();
}

// Failing partitions with their last error: a load that failed, or could not
// start because the warehouse could not be opened.
Status AddFailingPartitions(Ledger& ledger, const TableRuntime& t, json* j) {
  LF_ASSIGN_OR_RETURN(auto partitions, ledger.Partitions(t.config->name));
  json list = json::array();
  int64_t total = 0;
  for (const PartitionRow& p : partitions) {
    if (p.last_error.empty() || total++ >= static_cast<int64_t>(kStatusListed)) continue;
    json f = {{"partition", FormatIso8601(p.partition_us)}, {"attempts", p.attempts}, {"error", p.last_error}};
    if (p.next_attempt_us) f["next_attempt"] = FormatIso8601(*p.next_attempt_us);
    list.push_back(f);
  }
  (*j)["failing_partitions"] = list;
  (*j)["failing_partitions_total"] = total;
  return Status::Ok();
}

// Objects acknowledged as broken (`logferry skip`), newest first: not
// failures, but listed with the reason so nobody forgets them.
Status AddSkipped(Ledger& ledger, const TableRuntime& t, json* j) {
  LF_ASSIGN_OR_RETURN(auto skipped, ledger.Objects(t.config->name, ObjectState::kSkipped));
  std::sort(skipped.begin(), skipped.end(),
            [](const ObjectRow& a, const ObjectRow& b) { return a.skipped_us.value_or(0) > b.skipped_us.value_or(0); });
  json list = json::array();
  for (size_t i = 0; i < skipped.size() && i < kStatusListed; ++i)
    list.push_back({{"object", t.source->UriOf(skipped[i].key)},
                    {"reason", skipped[i].skip_reason},
                    {"skipped", FormatIso8601(skipped[i].skipped_us.value_or(0))}});
  (*j)["skipped_objects"] = list;
  (*j)["skipped_objects_total"] = skipped.size();
  return Status::Ok();
}

// Partitions still open (period plus settle not passed) that took appends:
// their rows are queryable before the partition loads.
Status AddOpenPartitions(Ledger& ledger, const TableRuntime& t, int64_t now, json* j) {
  LF_ASSIGN_OR_RETURN(auto partitions, ledger.Partitions(t.config->name));
  json list = json::array();
  int64_t total = 0;
  for (const PartitionRow& p : partitions) {
    if (p.appends == 0 || !p.pending() || p.partition_us + t.config->partition_unit_us + t.config->settle_us <= now)
      continue;
    if (total++ >= static_cast<int64_t>(kStatusListed)) continue;
    json o = {{"partition", FormatIso8601(p.partition_us)},
              {"appends", p.appends},
              {"parts_appended", p.appended_parts},
              {"rows_queryable", p.rows_in_warehouse},
              {"loads_at", FormatIso8601(p.partition_us + t.config->partition_unit_us + t.config->settle_us)}};
    if (p.last_append_us) o["last_append"] = FormatIso8601(*p.last_append_us);
    list.push_back(o);
  }
  (*j)["open_partitions"] = list;
  (*j)["open_partitions_total"] = total;
  return Status::Ok();
}

void AddIgnoredKeys(const TableCounts& c, json* j) {
  json ignored = {{"count", c.ignored_keys}, {"examples", c.ignored_key_examples}};
  if (c.ignored_keys_listed_us) ignored["listed"] = FormatIso8601(*c.ignored_keys_listed_us);
  (*j)["ignored_keys"] = ignored;
}

StatusOr<json> TableStatus(Ledger& ledger, const TableRuntime& t, int64_t now) {
  const TableConfig& cfg = *t.config;
  LF_ASSIGN_OR_RETURN(TableCounts c, ledger.Counts(cfg.name, now));
  json j;
  j["table"] = cfg.name;
  j["objects"] = {{"pending", c.objects_pending},
                  {"staged", c.objects_staged},
                  {"failed", c.objects_failed},
                  {"superseded", c.objects_superseded},
                  {"skipped", c.objects_skipped}};
  if (!cfg.notifications.empty()) LF_RETURN_IF_ERROR(AddNotifications(ledger, cfg, c, &j));
  AddIgnoredKeys(c, &j);
  j["partitions"] = {
      {"pending", c.partitions_pending}, {"loaded", c.partitions_loaded}, {"failing", c.partitions_failed}};
  j["rows"] = {
      {"staged", c.rows_staged}, {"loaded", c.rows_loaded}, {"bad_records", c.bad_records}, {"warnings", c.warnings}};
  AddLoadProgress(cfg, c, now, &j);
  LF_RETURN_IF_ERROR(AddFailedObjects(ledger, t, &j));
  LF_RETURN_IF_ERROR(AddFailingPartitions(ledger, t, &j));
  LF_RETURN_IF_ERROR(AddSkipped(ledger, t, &j));
  LF_RETURN_IF_ERROR(AddOpenPartitions(ledger, t, now, &j));
  LF_RETURN_IF_ERROR(AddRefusedRequests(ledger, cfg.name, now, &j));
  return j;
}

// --- the human output ---

// "2016-08-01T03:00:00Z (5m ago)", or with more said in the parentheses.
std::string Ago(const json& iso, int64_t now, const std::string& more = "") {
  std::string text = iso.get<std::string>();
  auto t = ParseIso8601(text, 0);
  if (!t) return text;
  return text + " (" + FormatDuration(std::max<int64_t>(0, now - *t)) + " ago" + more + ")";
}

// Shown when work is shared or claimed: several workers, or leases held.
void PrintWorkers(const json& workers, int64_t now) {
  bool leased = std::any_of(workers.begin(), workers.end(), [](const json& w) {
    return Num(w["leases"]["objects"]) > 0 || !w["leases"]["partitions"].empty();
  });
  if (workers.size() < 2 && !leased) return;
  for (const json& w : workers) {
    const json& l = w["leases"];
    std::string holds = std::to_string(Num(l["objects"])) + " object(s)";
    if (!l["partitions"].empty()) {
      holds += ", partition(s)";
      for (const json& p : l["partitions"]) holds += " " + Str(p);
    }
    if (l.contains("until")) holds += " until " + l["until"].get<std::string>();
    printf("worker      %s (%s, pid %lld on %s, seen %s): leases %s\n", Str(w["worker"]).c_str(),
           w["state"].get<std::string>().c_str(), Num(w["pid"]), Str(w["host"]).c_str(),
           Ago(w["last_seen"], now).c_str(), holds.c_str());
  }
}

void PrintDaemon(const json& d, int64_t now) {
  std::string state = d["state"].get<std::string>();
  if (state == "never") {
    printf("daemon      not running; no 'logferry run' has recorded itself in this ledger\n");
    return;
  }
  std::string who =
      "pid " + std::to_string(Num(d["pid"])) + " on " + Str(d["host"]) + (d["mode"] == "once" ? ", run --once" : "");
  if (state == "running")
    printf("daemon      running since %s\n", Ago(d["started"], now, "; " + who).c_str());
  else
    printf(
        "daemon      not running; last seen %s\n",
        Ago(d["last_seen"], now, "; " + who + (state == "stopped" ? ", stopped" : ", did not stop cleanly")).c_str());
  if (d.contains("last_pass_ended"))
    printf("last pass   ended %s: %s\n", Ago(d["last_pass_ended"], now).c_str(), Str(d["last_pass_outcome"]).c_str());
  else if (d.contains("last_pass_started"))
    printf("last pass   started %s, not finished\n", Ago(d["last_pass_started"], now).c_str());
  if (Num(d["running"]) > 1) printf("            %lld processes are running\n", Num(d["running"]));
  PrintWorkers(d["workers"], now);
}

void PrintCounts(const json& j) {
  auto& o = j["objects"];
  printf("  objects     %lld staged, %lld pending, %lld failed, %lld superseded, %lld skipped", Num(o["staged"]),
         Num(o["pending"]), Num(o["failed"]), Num(o["superseded"]), Num(o["skipped"]));
  if (o.contains("found_only_by_listing")) printf(" (%lld found only by listing)", Num(o["found_only_by_listing"]));
  printf("\n");
  auto& ig = j["ignored_keys"];
  if (Num(ig["count"]) > 0) {
    std::string examples;
    for (auto& e : ig["examples"]) examples += (examples.empty() ? "'" : ", '") + Str(e) + "'";
    printf("  ignored     %s key(s) under the source do not match key_format, e.g. %s\n",
           WithCommas(Num(ig["count"])).c_str(), examples.c_str());
  }
  if (j.contains("notifications")) {
    auto& n = j["notifications"];
    printf("  events      %s: %lld notification(s) failing\n", Str(n["queue"]).c_str(), Num(n["failing_total"]));
    for (auto& f : n["failing"])
      printf("    message %s (received %lld times): %s\n", Str(f["message_id"]).c_str(), Num(f["receive_count"]),
             Str(f["error"]).c_str());
    PrintMore(n["failing"].size(), Num(n["failing_total"]), "failing notification(s)");
  }
  auto& p = j["partitions"];
  printf("  partitions  %lld loaded, %lld pending, %lld failing\n", Num(p["loaded"]), Num(p["pending"]),
         Num(p["failing"]));
  auto& r = j["rows"];
  printf("  rows        %lld staged, %lld loaded, %lld bad records, %lld values repaired\n", Num(r["staged"]),
         Num(r["loaded"]), Num(r["bad_records"]), Num(r["warnings"]));
}

void PrintLoadProgress(const json& j) {
  if (j.contains("loaded_through"))
    printf("  lag         %s: loaded through %s (the end of partition %s)\n",
           FormatDuration(std::max<int64_t>(0, j["lag_seconds"].get<int64_t>()) * kMicrosPerSecond).c_str(),
           j["loaded_through"].get<std::string>().c_str(), j["newest_loaded_partition"].get<std::string>().c_str());
  if (j.contains("oldest_pending_partition"))
    printf("  pending     oldest %s\n", j["oldest_pending_partition"].get<std::string>().c_str());
  for (auto& o : j["open_partitions"])
    printf(
        "  open        partition %s: %lld rows queryable from %lld append(s) of %lld part(s), last %s; loads at %s\n",
        o["partition"].get<std::string>().c_str(), Num(o["rows_queryable"]), Num(o["appends"]),
        Num(o["parts_appended"]), o.contains("last_append") ? o["last_append"].get<std::string>().c_str() : "-",
        o["loads_at"].get<std::string>().c_str());
  PrintMore(j["open_partitions"].size(), Num(j["open_partitions_total"]), "open partition(s)");
  if (j.contains("daily_load_budget")) {
    printf("  load jobs   %lld in the last 24 hours, of a budget of %lld (BigQuery allows 1,500 per table per day)\n",
           Num(j["load_jobs_24h"]), Num(j["daily_load_budget"]));
    if (j.contains("load_budget_frees_at"))
      printf("  WAITING     load budget used up: pending partitions wait; the next job may start at %s\n",
             j["load_budget_frees_at"].get<std::string>().c_str());
  } else {
    printf("  load jobs   %lld in the last 24 hours\n", Num(j["load_jobs_24h"]));
  }
}

void PrintFailures(const json& j) {
  for (auto& f : j["failed_objects"])
    printf("  FAILED object %s (attempts %lld%s): %s\n", Str(f["object"]).c_str(), Num(f["attempts"]),
           f.contains("next_attempt") ? (", next " + f["next_attempt"].get<std::string>()).c_str() : "",
           Str(f["error"]).c_str());
  PrintMore(j["failed_objects"].size(), Num(j["failed_objects_total"]), "failed object(s)");
  for (auto& f : j["failing_partitions"])
    printf("  FAILING partition %s (attempts %lld%s): %s\n", f["partition"].get<std::string>().c_str(),
           Num(f["attempts"]),
           f.contains("next_attempt") ? (", next " + f["next_attempt"].get<std::string>()).c_str() : "",
           Str(f["error"]).c_str());
  PrintMore(j["failing_partitions"].size(), Num(j["failing_partitions_total"]), "failing partition(s)");
  for (auto& f : j["skipped_objects"])
    printf("  SKIPPED object %s (at %s): %s\n", Str(f["object"]).c_str(), f["skipped"].get<std::string>().c_str(),
           Str(f["reason"]).c_str());
  PrintMore(j["skipped_objects"].size(), Num(j["skipped_objects_total"]), "skipped object(s)");
  for (auto& f : j["refused_requests"])
    printf("  REFUSED request %s (%s): %s\n", Str(f["request"]).c_str(), f["at"].get<std::string>().c_str(),
           Str(f["error"]).c_str());
  PrintMore(j["refused_requests"].size(), Num(j["refused_requests_total"]), "refused request(s)");
}

}  // namespace

StatusOr<json> StatusReport(Ledger& ledger, const std::vector<TableRuntime>& tables, int64_t now_us) {
  LF_ASSIGN_OR_RETURN(auto processes, ledger.Processes());
  LF_ASSIGN_OR_RETURN(auto leases, ledger.Leases(now_us));
  json daemon = DaemonJson(processes, now_us);
  daemon["workers"] = WorkersJson(processes, leases, now_us);
  json out = json::array();
  for (const TableRuntime& t : tables) {
    LF_ASSIGN_OR_RETURN(json j, TableStatus(ledger, t, now_us));
    j["daemon"] = daemon;
    j["ledger"] = ledger.Location();
    out.push_back(std::move(j));
  }
  return out;
}

void PrintStatus(const json& report, int64_t now_us) {
  if (report.empty()) return;
  int64_t now = now_us;
  printf("ledger      %s\n", Str(report.front()["ledger"]).c_str());
  PrintDaemon(report.front()["daemon"], now);
  for (auto& j : report) {
    printf("table %s\n", Str(j["table"]).c_str());
    PrintCounts(j);
    PrintLoadProgress(j);
    PrintFailures(j);
  }
}

std::vector<std::string> CheckProblems(const json& report, std::optional<int64_t> max_lag_us) {
  std::vector<std::string> problems;
  for (auto& j : report) {
    std::string table = Str(j["table"]) + ": ";
    auto first_error = [](const json& list, const char* name) {
      return list.empty() ? std::string() : ", e.g. " + Str(list[0][name]) + ": " + Str(list[0]["error"]);
    };
    if (int64_t n = Num(j["failed_objects_total"]))
      problems.push_back(table + WithCommas(n) + " object(s) failing" + first_error(j["failed_objects"], "object"));
    if (int64_t n = Num(j["failing_partitions_total"]))
      problems.push_back(table + WithCommas(n) + " partition(s) failing" +
                         first_error(j["failing_partitions"], "partition"));
    if (j.contains("notifications") && Num(j["notifications"]["failing_total"]) > 0)
      problems.push_back(table + WithCommas(Num(j["notifications"]["failing_total"])) + " notification(s) failing" +
                         first_error(j["notifications"]["failing"], "message_id"));
    if (int64_t n = Num(j["refused_requests_24h"]))
      problems.push_back(table + WithCommas(n) + " request(s) refused in the last 24 hours" +
                         first_error(j["refused_requests"], "request"));
    if (!max_lag_us) continue;
    int64_t lag_s = j.contains("lag_seconds")                  ? Num(j["lag_seconds"])
                    : j.contains("oldest_pending_age_seconds") ? Num(j["oldest_pending_age_seconds"])
                                                               : 0;
    if (lag_s * kMicrosPerSecond > *max_lag_us)
      problems.push_back(table + "lag " + FormatDuration(lag_s * kMicrosPerSecond) + " exceeds --max-lag " +
                         FormatDuration(*max_lag_us) +
                         (j.contains("loaded_through") ? " (loaded through " + Str(j["loaded_through"]) + ")"
                                                       : " (nothing loaded yet)"));
  }
  return problems;
}

std::string PassOutcome(const Status& pass, Ledger& ledger, const Config& config, int64_t now_us) {
  if (!pass.ok()) return "error: " + pass.ToString();
  // After every pass: what is failing only, not Counts, whose cost grows
  // with every object the ledger holds.
  int64_t objects = 0, partitions = 0;
  for (const TableConfig& t : config.tables) {
    auto failed = ledger.Objects(t.name, ObjectState::kFailed);
    auto rows = ledger.Partitions(t.name);
    if (!failed.ok() || !rows.ok()) return "ok";
    objects += static_cast<int64_t>(failed->size());
    for (const PartitionRow& p : *rows) partitions += p.last_error.empty() ? 0 : 1;
  }
  std::string failing;
  if (objects) failing = WithCommas(objects) + " object(s)";
  if (partitions) failing += (failing.empty() ? "" : " and ") + WithCommas(partitions) + " partition(s)";
  return failing.empty() ? "ok" : "ok; " + failing + " failing";
}

}  // namespace logferry
