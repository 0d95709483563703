// bigquery://project/dataset through the BigQuery REST API v2.
//
// A partition is replaced by one load job: the explicit list of the
// partition's staged gs:// parts (never a wildcard, which would pick up
// orphans), destination table$YYYYMMDDHH (or $YYYYMMDD), WRITE_TRUNCATE.
// The job id is the ledger's load id (table, partition, generation), so after
// a crash the same job is found (409 → jobs.get) instead of loading twice.
// More parts than one job may name go to a scratch table first and are
// copied over the partition in one step. The daily job budget is decided
// here too: when it runs short a UTC day's partitions are grouped into one
// merged job (GroupIntoJobs, ReplacePartitions), and past it jobs wait
// (WhyWait).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <thread>

#include "common/env.h"
#include "common/strings.h"
#include "common/time.h"
#include "format/compression.h"
#include "gcp/client.h"
#include "gcp/credentials.h"
#include "warehouse/bigquery_fields.h"
#include "warehouse/warehouse.h"

namespace logferry {
namespace {

using nlohmann::json;

// What a load job reads from: the scheme's loads_from.
constexpr char kStagingScheme[] = "gs";

// Long enough for a restarted daemon to resume the job that uses a scratch
// table; short enough that leftovers do not linger.
constexpr int64_t kScratchLifetimeMs = 2 * 24 * 3600 * 1000LL;

std::string Decorator(int64_t partition_us, int64_t unit_us) {
  std::string d = FormatCompactHour(partition_us);
  if (unit_us >= kMicrosPerDay) d.resize(8);  // YYYYMMDD
  return d;
}

class BigQueryWarehouse final : public Warehouse {
 public:
  BigQueryWarehouse(std::string project, std::string dataset, WarehouseOptions opts)
      : project_(std::move(project)),
        dataset_(std::move(dataset)),
        opts_(std::move(opts)),
        endpoint_(opts_.endpoint.empty() ? "https://bigquery.googleapis.com" : opts_.endpoint),
        client_(opts_.gcp_tokens, opts_.retry) {
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }

  Status EnsureTable(const std::string& table, const SchemaRegistry& schema) override {
    LF_RETURN_IF_ERROR(EnsureDataset());
    json fields = BigQueryFields(schema.Columns());
    HttpRequest get;
    get.url = TableUrl(table);
    auto existing = client_.Send("BigQuery tables.get " + Name(table), get, AcceptNotFound("tables.get", table));
    LF_RETURN_IF_ERROR(existing.status());
    if (existing->status == 404) {
      json body = PartitionedTable(table, fields, opts_.partition_unit_us);
      if (!opts_.clustering.empty()) body["clustering"] = {{"fields", opts_.clustering}};
      return InsertTable(table, body).status();
    }
    // New fields are added by patching in the whole schema; BigQuery keeps
    // existing columns as they are (it cannot change a column's type).
    json current = json::parse(existing->body, nullptr, false);
    json have =
        current.is_object() ? current.value("schema", json::object()).value("fields", json::array()) : json::array();
    if (FieldNames(have) == FieldNames(fields) && NestedCount(have) == NestedCount(fields)) return Status::Ok();
    json merged = MergeFields(have, fields);
    return SendJson("PATCH", TableUrl(table), "BigQuery tables.patch " + Name(table),
                    {{"schema", {{"fields", merged}}}})
        .status();
  }

  StatusOr<int64_t> ReplacePartition(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                                     const SchemaRegistry& schema) override {
    LF_ASSIGN_OR_RETURN(std::vector<std::string> uris, SourceUris(std::span(&load, 1), staging));
    std::string decorated = load.table + "$" + Decorator(load.partition_us, unit_us);
    json fields = BigQueryFields(schema.Columns());
    if (uris.size() <= opts_.max_uris_per_load) {
      LF_ASSIGN_OR_RETURN(json job, RunLoad(load.load_id, uris, decorated, fields, "WRITE_TRUNCATE", unit_us,
                                            "CREATE_IF_NEEDED", nullptr, Labels(load, "replace")));
      return OutputRows(job);
    }
    // Too many parts for one job: load them in batches into a scratch
    // table, then replace the partition with one copy job.
    std::string scratch = load.load_id + "_scratch";
    LF_ASSIGN_OR_RETURN(bool fresh, CreateScratch(scratch, fields, unit_us));
    bool resumed = false;
    LF_ASSIGN_OR_RETURN(int64_t rows, LoadScratch(load.load_id, uris, scratch, fields, unit_us, &resumed));
    std::string copy_id = load.load_id + "_copy";
    if (fresh && resumed) LF_RETURN_IF_ERROR(RequireJob(copy_id, scratch));
    json copy = {{"copy",
                  {{"sourceTable", TableRef(scratch)},
                   {"destinationTable", TableRef(decorated)},
                   {"writeDisposition", "WRITE_TRUNCATE"},
                   {"createDisposition", "CREATE_NEVER"}}}};
    auto same_tables = [copy_id, scratch, decorated](const json& job) -> Status {
      const json& cfg = job.value("configuration", json::object()).value("copy", json::object());
      if (cfg.value("sourceTable", json::object()).value("tableId", "") != scratch ||
          cfg.value("destinationTable", json::object()).value("tableId", "") != decorated)
        return Status::FailedPrecondition("BigQuery job " + copy_id +
                                          " already exists copying other tables (was the ledger reset?)");
      return Status::Ok();
    };
    LF_RETURN_IF_ERROR(RunJob(copy_id, copy, same_tables).status());
    DropTable(scratch);
    return rows;
  }

  // A merged load: every part of the loads goes into one scratch table, then
  // one multi-statement transaction deletes the partitions' periods from the
  // table and inserts the scratch rows. The table sees one job instead of
  // one per partition, which is what keeps a backlog inside its daily
  // load-job quota (the loads are jobs on the scratch table).
  StatusOr<std::map<int64_t, int64_t>> ReplacePartitions(const std::string& job_id,
                                                         const std::vector<PartitionLoad>& loads, int64_t unit_us,
                                                         ObjectStore& staging, const SchemaRegistry& schema) override {
    if (loads.empty()) return std::map<int64_t, int64_t>{};
    if (loads.size() == 1) {  // job_id is the load's own
      LF_ASSIGN_OR_RETURN(int64_t rows, ReplacePartition(loads[0], unit_us, staging, schema));
      return std::map<int64_t, int64_t>{{loads[0].partition_us, rows}};
    }
    const std::string& table = loads[0].table;
    int64_t expected = 0;
    for (const PartitionLoad& load : loads) {
      if (load.table != table) return Status::InvalidArgument("a merged load covers one table");
      expected += load.expected_rows;
    }
    LF_ASSIGN_OR_RETURN(std::vector<std::string> uris, SourceUris(loads, staging));
    json fields = BigQueryFields(schema.Columns());
    std::string scratch = job_id + "_scratch";
    LF_ASSIGN_OR_RETURN(bool fresh, CreateScratch(scratch, fields, unit_us));
    bool resumed = false;
    LF_ASSIGN_OR_RETURN(int64_t loaded, LoadScratch(job_id, uris, scratch, fields, unit_us, &resumed));
    // Checked before the table is touched: a short scratch table would
    // replace the partitions with too few rows.
    if (loaded != expected)
      return Status::Internal("merged load " + job_id + ": the scratch table received " + std::to_string(loaded) +
                              " rows but the ledger expects " + std::to_string(expected));
    const std::string dml_id = job_id + "_dml";
    if (fresh && resumed) LF_RETURN_IF_ERROR(RequireJob(dml_id, scratch));
    LF_RETURN_IF_ERROR(RunMergeTransaction(dml_id, table, scratch, fields, loads, unit_us));
    DropTable(scratch);
    // What the partitions hold now, counted by the warehouse itself.
    int64_t lo = loads.front().partition_us, hi = loads.front().partition_us + unit_us;
    for (const PartitionLoad& load : loads) {
      lo = std::min(lo, load.partition_us);
      hi = std::max(hi, load.partition_us + unit_us);
    }
    LF_ASSIGN_OR_RETURN(auto counted, CountRows(table, unit_us, std::pair(lo, hi)));
    std::map<int64_t, int64_t> rows;
    for (const PartitionLoad& load : loads) rows[load.partition_us] = counted[load.partition_us];
    return rows;
  }

  bool CanAppend() const override { return true; }

  // WRITE_APPEND to the partition under the load's id: a resumed append
  // finds its job (409) instead of appending twice.
  StatusOr<int64_t> AppendToPartition(const PartitionLoad& load, int64_t unit_us, ObjectStore& staging,
                                      const SchemaRegistry& schema) override {
    LF_ASSIGN_OR_RETURN(std::vector<std::string> uris, SourceUris(std::span(&load, 1), staging));
    if (uris.size() > opts_.max_uris_per_load)
      return Status::FailedPrecondition("an append of " + std::to_string(uris.size()) +
                                        " parts is more than one load job may name; the partition loads when due");
    std::string decorated = load.table + "$" + Decorator(load.partition_us, unit_us);
    LF_RETURN_IF_ERROR(RunLoad(load.load_id, uris, decorated, BigQueryFields(schema.Columns()), "WRITE_APPEND", unit_us,
                               "CREATE_IF_NEEDED", nullptr, Labels(load, "append"))
                           .status());
    LF_ASSIGN_OR_RETURN(auto counted,
                        CountRows(load.table, unit_us, std::pair(load.partition_us, load.partition_us + unit_us)));
    return counted[load.partition_us];
  }

  // Appends may use half the daily job budget, evenly spread; the other
  // half stays for loads, reloads and requests. Past it, open partitions
  // wait for their load (less fresh, never failing).
  StatusOr<std::optional<int64_t>> AppendSpacing(LoadJobLog& sent, int64_t now_us) override {
    LF_ASSIGN_OR_RETURN(LoadJobLog::Recent recent, sent.SentInLastDay(now_us));
    int64_t share = std::max<int64_t>(1, opts_.daily_load_budget / 2);
    if (recent.jobs >= share) return std::optional<int64_t>();
    return std::optional<int64_t>(kMicrosPerDay / share);
  }

  // BigQuery counts every load job against a per-table quota over a rolling
  // day, failed ones too. Partitions are loaded one job each while the
  // budget covers that; when the partitions due outnumber the jobs left,
  // each UTC day's partitions are replaced by one merged job (DAY partitions
  // are one job per day already). Whatever the budget still cannot cover
  // waits (WhyWait) until jobs leave the 24-hour window.
  StatusOr<JobGroups> GroupIntoJobs(const std::vector<int64_t>& due, LoadJobLog& sent, int64_t now_us) override {
    LF_ASSIGN_OR_RETURN(JobGroups groups, Warehouse::GroupIntoJobs(due, sent, now_us));
    LF_ASSIGN_OR_RETURN(LoadJobLog::Recent recent, sent.SentInLastDay(now_us));
    int64_t left = opts_.daily_load_budget - recent.jobs;
    if (opts_.partition_unit_us >= kMicrosPerDay || static_cast<int64_t>(due.size()) <= left) return groups;
    groups.jobs.clear();
    for (int64_t partition_us : due) {
      if (!groups.jobs.empty() &&
          FloorTo(groups.jobs.back().front(), kMicrosPerDay) == FloorTo(partition_us, kMicrosPerDay))
        groups.jobs.back().push_back(partition_us);
      else
        groups.jobs.push_back({partition_us});
    }
    groups.why = std::to_string(due.size()) +
                 " partitions due, more than the load jobs left in daily_load_budget: merged into " +
                 std::to_string(groups.jobs.size()) + " job(s), one per UTC day";
    return groups;
  }

  // A job the log already holds was counted when it was first sent; a
  // restart that finds it costs nothing more, so the budget never stops it.
  StatusOr<std::optional<std::string>> WhyWait(const std::string& job_id, size_t waiting, LoadJobLog& sent,
                                               int64_t now_us) override {
    LF_ASSIGN_OR_RETURN(bool known, sent.WasSent(job_id));
    if (known) return std::optional<std::string>();
    LF_ASSIGN_OR_RETURN(LoadJobLog::Recent recent, sent.SentInLastDay(now_us));
    if (recent.jobs < opts_.daily_load_budget) return std::optional<std::string>();
    std::string frees = recent.oldest_sent_us ? FormatIso8601(*recent.oldest_sent_us + kMicrosPerDay) : "?";
    return std::optional<std::string>(
        std::to_string(recent.jobs) + " load jobs in the last 24 hours reach daily_load_budget " +
        std::to_string(opts_.daily_load_budget) + "; " + std::to_string(waiting) +
        " partition(s) wait for the load budget (the next job may start at " + frees + ")");
  }

  StatusOr<std::map<int64_t, int64_t>> CountByPartition(const std::string& table, int64_t unit_us) override {
    return CountRows(table, unit_us, std::nullopt);
  }

  StatusOr<QueryResult> Query(const std::string& sql) override {
    json body = {{"query", sql}, {"useLegacySql", false}, {"location", opts_.location}, {"timeoutMs", 10000}};
    LF_ASSIGN_OR_RETURN(HttpResponse resp, SendJson("POST", ProjectUrl() + "/queries", "BigQuery jobs.query", body));
    json j = json::parse(resp.body, nullptr, false);
    // Not complete within timeoutMs: poll getQueryResults (bounded).
    for (int i = 0; i < 120 && j.is_object() && !j.value("jobComplete", true); ++i) {
      opts_.retry.env->SleepForMicroseconds(1000 * std::min(2000, 100 << std::min(i, 4)));
      std::string id = j["jobReference"].value("jobId", "");
      HttpRequest poll;
      poll.url = ProjectUrl() + "/queries/" + UriEncode(id) + "?location=" + UriEncode(opts_.location);
      LF_ASSIGN_OR_RETURN(HttpResponse r2, client_.Send("BigQuery jobs.getQueryResults " + id, poll));
      j = json::parse(r2.body, nullptr, false);
    }
    if (!j.is_object() || !j.value("jobComplete", false))
      return Status::Unavailable("BigQuery query did not complete: " + Excerpt(sql, 200));
    QueryResult out;
    for (const json& f : j.value("schema", json::object()).value("fields", json::array()))
      out.columns.push_back(f.value("name", ""));
    for (const json& row : j.value("rows", json::array())) {
      std::vector<std::optional<std::string>> values;
      for (const json& cell : row.value("f", json::array())) {
        const json& v = cell.contains("v") ? cell["v"] : json();
        if (v.is_null())
          values.emplace_back(std::nullopt);
        else if (v.is_string())
          values.emplace_back(v.get<std::string>());
        else
          values.emplace_back(v.dump());
      }
      out.rows.push_back(std::move(values));
    }
    return out;
  }

 private:
  std::string ProjectUrl() const { return endpoint_ + "/bigquery/v2/projects/" + UriEncode(project_); }
  std::string DatasetUrl() const { return ProjectUrl() + "/datasets/" + UriEncode(dataset_); }
  std::string TableUrl(const std::string& table) const { return DatasetUrl() + "/tables/" + UriEncode(table); }
  std::string Name(const std::string& table) const { return project_ + "." + dataset_ + "." + table; }
  json TableRef(const std::string& table) const {
    return {{"projectId", project_}, {"datasetId", dataset_}, {"tableId", table}};
  }

  // The gs:// URIs of the loads' parts. When no part is left (every row of
  // the partitions went away: their objects were replaced by versions with
  // none in these periods), one empty file: a load job needs a file, and an
  // empty one truncates a partition to nothing (and a merged load's
  // transaction inserts no rows).
  static StatusOr<std::vector<std::string>> SourceUris(std::span<const PartitionLoad> loads, ObjectStore& staging) {
    if (!StartsWith(staging.uri(), std::string(kStagingScheme) + "://"))
      return Status::FailedPrecondition(std::string("the bigquery warehouse loads from a ") + kStagingScheme +
                                        ":// staging store, not " + staging.uri());
    std::vector<std::string> uris;
    for (const PartitionLoad& load : loads)
      for (const StagedPart& p : load.parts) uris.push_back(staging.UriOf(p.key));
    if (!uris.empty()) return uris;
    std::string empty_key = "_logferry/empty.ndjson.gz";  // outside every table prefix: never swept
    LF_RETURN_IF_ERROR(staging.WriteAll(empty_key, GzipCompress("")).status());
    uris.push_back(staging.UriOf(empty_key));
    return uris;
  }

  // Rows per partition start, counted by BigQuery; only in [range) if given.
  StatusOr<std::map<int64_t, int64_t>> CountRows(const std::string& table, int64_t unit_us,
                                                 std::optional<std::pair<int64_t, int64_t>> range) {
    std::string sql = "SELECT TIMESTAMP_TRUNC(_time, " + std::string(PartitioningType(unit_us)) +
                      ") AS p, COUNT(*) AS n FROM `" + Name(table) + "`";
    if (range)
      sql += " WHERE _time >= TIMESTAMP('" + FormatIso8601(range->first) + "') AND _time < TIMESTAMP('" +
             FormatIso8601(range->second) + "')";
    LF_ASSIGN_OR_RETURN(QueryResult r, Query(sql + " GROUP BY p"));
    std::map<int64_t, int64_t> out;
    for (const auto& row : r.rows) {
      if (row.size() < 2 || !row[0] || !row[1]) continue;
      // TIMESTAMP values come back as seconds since the epoch, as text.
      double seconds = std::strtod(row[0]->c_str(), nullptr);
      out[static_cast<int64_t>(seconds) * kMicrosPerSecond] = std::strtoll(row[1]->c_str(), nullptr, 10);
    }
    return out;
  }

  // The merged load's transaction: the partitions' periods deleted, the
  // scratch table's rows inserted, as one job.
  Status RunMergeTransaction(const std::string& dml_id, const std::string& table, const std::string& scratch,
                             const json& fields, const std::vector<PartitionLoad>& loads, int64_t unit_us) {
    std::string columns;
    for (const json& f : fields) columns += (columns.empty() ? "`" : ", `") + f.value("name", "") + "`";
    std::string ranges;
    for (const PartitionLoad& load : loads)
      ranges += std::string(ranges.empty() ? "" : " OR ") + "(_time >= TIMESTAMP('" + FormatIso8601(load.partition_us) +
                "') AND _time < TIMESTAMP('" + FormatIso8601(load.partition_us + unit_us) + "'))";
    std::string target = "`" + Name(table) + "`";
    std::string script = "BEGIN TRANSACTION;\nDELETE FROM " + target + " WHERE " + ranges + ";\nINSERT INTO " + target +
                         " (" + columns + ") SELECT " + columns + " FROM `" + Name(scratch) + "`;\nCOMMIT TRANSACTION;";
    json query = {{"query", {{"query", script}, {"useLegacySql", false}}}};
    // A job found under this id must be this transaction, as a load found
    // under its id must name the same files.
    auto same_script = [dml_id, script](const json& found) -> Status {
      const json& cfg = found.value("configuration", json::object()).value("query", json::object());
      if (cfg.value("query", "") != script)
        return Status::FailedPrecondition("BigQuery job " + dml_id +
                                          " already exists with another script (was the ledger reset?)");
      return Status::Ok();
    };
    return RunJob(dml_id, query, same_script).status();
  }

  static const char* PartitioningType(int64_t unit_us) { return unit_us >= kMicrosPerDay ? "DAY" : "HOUR"; }

  // 2xx, or the one other status the caller treats as an answer (404 "not
  // there yet", 409 "already there").
  std::function<Status(const HttpResponse&)> Accept(int also, const char* op, const std::string& table) const {
    std::string what = std::string("BigQuery ") + op + " " + Name(table);
    return [what, also](const HttpResponse& r) {
      return (r.status >= 200 && r.status < 300) || r.status == also ? Status::Ok() : gcp::ErrorStatus(what, r);
    };
  }
  std::function<Status(const HttpResponse&)> AcceptNotFound(const char* op, const std::string& table) const {
    return Accept(404, op, table);
  }
  std::function<Status(const HttpResponse&)> AcceptConflict(const char* op, const std::string& table) const {
    return Accept(409, op, table);
  }

  Status EnsureDataset() {
    if (dataset_checked_) return Status::Ok();
    HttpRequest get;
    get.url = DatasetUrl();
    LF_ASSIGN_OR_RETURN(HttpResponse r, client_.Send("BigQuery datasets.get " + project_ + "." + dataset_, get,
                                                     AcceptNotFound("datasets.get", "")));
    if (r.status == 404) {
      json body = {{"datasetReference", {{"projectId", project_}, {"datasetId", dataset_}}},
                   {"location", opts_.location}};
      LF_RETURN_IF_ERROR(SendJson("POST", ProjectUrl() + "/datasets",
                                  "BigQuery datasets.insert " + project_ + "." + dataset_, body,
                                  AcceptConflict("datasets.insert", ""))
                             .status());
    }
    dataset_checked_ = true;
    return Status::Ok();
  }

  static std::set<std::string> FieldNames(const json& fields) {
    std::set<std::string> names;
    for (const json& f : fields) names.insert(f.value("name", ""));
    return names;
  }
  static size_t NestedCount(const json& fields) {
    size_t n = 0;
    for (const json& f : fields) n += 1 + (f.contains("fields") ? NestedCount(f["fields"]) : 0);
    return n;
  }
  // Existing fields first, as they are; then the new ones (recursively for
  // RECORDs).
  static json MergeFields(const json& have, const json& want) {
    json out = have;
    for (const json& w : want) {
      bool found = false;
      for (json& h : out) {
        if (h.value("name", "") != w.value("name", "")) continue;
        found = true;
        if (h.contains("fields") && w.contains("fields")) h["fields"] = MergeFields(h["fields"], w["fields"]);
      }
      if (!found) out.push_back(w);
    }
    return out;
  }

  // A scratch table is named after the job that uses it, so a restart of
  // that job finds its own rows and no other job's. It expires by itself:
  // one left by a killed run that is never resumed (its partitions failed
  // or changed, so they load under new ids) goes away without a sweeper.
  // Returns whether it was created now (false: it was there already).
  StatusOr<bool> CreateScratch(const std::string& scratch, const json& fields, int64_t unit_us) {
    json body = PartitionedTable(scratch, fields, unit_us);
    body["expirationTime"] = std::to_string(opts_.retry.env->NowMicros() / 1000 + kScratchLifetimeMs);
    LF_ASSIGN_OR_RETURN(int status, InsertTable(scratch, body));
    return status != 409;
  }

  // A table resource partitioned on _time by the unit.
  json PartitionedTable(const std::string& table, const json& fields, int64_t unit_us) const {
    return {{"tableReference", TableRef(table)},
            {"schema", {{"fields", fields}}},
            {"timePartitioning", {{"type", PartitioningType(unit_us)}, {"field", "_time"}}}};
  }

  // tables.insert; a 409 (the table exists) is an answer, not an error:
  // returns the HTTP status.
  StatusOr<int> InsertTable(const std::string& table, const json& body) {
    LF_ASSIGN_OR_RETURN(HttpResponse r,
                        SendJson("POST", DatasetUrl() + "/tables", "BigQuery tables.insert " + Name(table), body,
                                 AcceptConflict("tables.insert", table)));
    return r.status;
  }

  // Sends body as a JSON request (with the client's retries).
  StatusOr<HttpResponse> SendJson(const char* method, const std::string& url, const std::string& what, const json& body,
                                  const std::function<Status(const HttpResponse&)>& check = {}) {
    std::string text = body.dump();
    HttpRequest req;
    req.method = method;
    req.url = url;
    req.body = text;
    req.headers = {{"Content-Type", "application/json"}};
    return client_.Send(what, req, check);
  }

  // Loads the URIs into the scratch table, max_uris_per_load per job (the
  // first truncates, so a restarted job starts from nothing); returns the
  // rows the jobs report. *resumed: some job had run before (found by id).
  StatusOr<int64_t> LoadScratch(const std::string& job_prefix, const std::vector<std::string>& uris,
                                const std::string& scratch, const json& fields, int64_t unit_us, bool* resumed) {
    int64_t rows = 0;
    for (size_t i = 0, batch = 0; i < uris.size(); i += opts_.max_uris_per_load, ++batch) {
      std::vector<std::string> slice(uris.begin() + i,
                                     uris.begin() + std::min(uris.size(), i + opts_.max_uris_per_load));
      bool found = false;
      // CREATE_NEVER: a table these jobs created would have no expiration.
      LF_ASSIGN_OR_RETURN(json job,
                          RunLoad(job_prefix + "_b" + std::to_string(batch), slice, scratch, fields,
                                  batch == 0 ? "WRITE_TRUNCATE" : "WRITE_APPEND", unit_us, "CREATE_NEVER", &found));
      *resumed = *resumed || found;
      rows += OutputRows(job);
    }
    return rows;
  }

  // The scratch table was created now, yet its loads had run before: its
  // rows are gone (expired, or dropped after the job below finished). Only
  // the job that read it may still be found; running it now would replace
  // the partitions with an empty table.
  Status RequireJob(const std::string& job_id, const std::string& scratch) {
    HttpRequest get;
    get.url = ProjectUrl() + "/jobs/" + UriEncode(job_id) + "?location=" + UriEncode(opts_.location);
    LF_ASSIGN_OR_RETURN(HttpResponse r,
                        client_.Send("BigQuery jobs.get " + job_id, get, AcceptNotFound("jobs.get", job_id)));
    if (r.status != 404) return Status::Ok();
    return Status::Unavailable("scratch table " + Name(scratch) + " lost its rows before job " + job_id +
                               " ran; the partitions load again under new generations");
  }

  void DropTable(const std::string& table) {
    HttpRequest drop;
    drop.method = "DELETE";
    drop.url = TableUrl(table);
    // Best effort: a scratch table left behind expires.
    (void)client_.Send("BigQuery tables.delete " + Name(table), drop, AcceptNotFound("tables.delete", table));
  }

  // Job labels, so that INFORMATION_SCHEMA.JOBS is the load history.
  // BigQuery's rules: keys and values at most 63 characters of lowercase
  // letters, digits, '_' and '-', keys starting with a letter.
  static json Labels(const PartitionLoad& load, const char* kind) {
    auto value = [](std::string v) {
      for (char& c : v) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') c = '_';
      }
      return v.substr(0, 63);
    };
    return {{"logferry_table", value(load.table)},
            {"logferry_partition", FormatCompactHour(load.partition_us)},
            {"logferry_kind", kind},
            {"logferry_generation", std::to_string(load.generation)}};
  }

  static int64_t OutputRows(const json& job) {
    const json& load = job.value("statistics", json::object()).value("load", json::object());
    auto it = load.find("outputRows");
    if (it == load.end()) return 0;
    return it->is_string() ? std::strtoll(it->get<std::string>().c_str(), nullptr, 10) : it->get<int64_t>();
  }

  StatusOr<json> RunLoad(const std::string& job_id, const std::vector<std::string>& uris, const std::string& dest,
                         const json& fields, const char* disposition, int64_t unit_us,
                         const char* create = "CREATE_IF_NEEDED", bool* found_existing = nullptr,
                         const json& labels = json::object()) {
    json load = {{"sourceUris", uris},
                 {"destinationTable", TableRef(dest)},
                 {"writeDisposition", disposition},
                 {"createDisposition", create},
                 {"sourceFormat", "NEWLINE_DELIMITED_JSON"},
                 {"schema", {{"fields", fields}}},
                 {"timePartitioning", {{"type", PartitioningType(unit_us)}, {"field", "_time"}}},
                 {"ignoreUnknownValues", false},
                 {"maxBadRecords", 0}};
    // BigQuery accepts schema update options only when appending or when
    // truncating one partition, not when truncating a whole (scratch) table.
    if (dest.find('$') != std::string::npos || std::string_view(disposition) == "WRITE_APPEND")
      load["schemaUpdateOptions"] = {"ALLOW_FIELD_ADDITION"};
    std::set<std::string> want(uris.begin(), uris.end());
    // A job found under this id must be this load (same files), not one left
    // by another ledger that reused the id.
    auto same_sources = [want, job_id](const json& job) -> Status {
      const json& cfg = job.value("configuration", json::object()).value("load", json::object());
      std::set<std::string> have;
      for (const json& u : cfg.value("sourceUris", json::array())) have.insert(u.get<std::string>());
      if (have != want)
        return Status::FailedPrecondition("BigQuery job " + job_id +
                                          " already exists with other source files (was the ledger reset?)");
      return Status::Ok();
    };
    json configuration = {{"load", load}};
    if (!labels.empty()) configuration["labels"] = labels;
    return RunJob(job_id, configuration, same_sources, found_existing);
  }

  // Inserts the job (or finds it, on 409) and polls it to DONE with backoff.
  StatusOr<json> RunJob(const std::string& job_id, const json& configuration,
                        const std::function<Status(const json&)>& same_job, bool* found_existing_out = nullptr) {
    json body = {{"jobReference", {{"projectId", project_}, {"jobId", job_id}, {"location", opts_.location}}},
                 {"configuration", configuration}};
    LF_ASSIGN_OR_RETURN(HttpResponse r, SendJson("POST", ProjectUrl() + "/jobs", "BigQuery jobs.insert " + job_id, body,
                                                 AcceptConflict("jobs.insert", job_id)));
    json job = json::parse(r.body, nullptr, false);
    bool found_existing = r.status == 409;
    if (found_existing_out) *found_existing_out = found_existing;
    for (int i = 0; i < 600; ++i) {
      if (!found_existing && job.is_object() && job.value("status", json::object()).value("state", "") == "DONE") break;
      if (i > 0 || found_existing) opts_.retry.env->SleepForMicroseconds(1000 * std::min(5000, 200 << std::min(i, 5)));
      HttpRequest get;
      get.url = ProjectUrl() + "/jobs/" + UriEncode(job_id) + "?location=" + UriEncode(opts_.location);
      LF_ASSIGN_OR_RETURN(HttpResponse g, client_.Send("BigQuery jobs.get " + job_id, get));
      job = json::parse(g.body, nullptr, false);
      if (found_existing) {
        LF_RETURN_IF_ERROR(same_job(job));
        found_existing = false;
      }
    }
    if (!job.is_object() || job.value("status", json::object()).value("state", "") != "DONE")
      return Status::Unavailable("BigQuery job " + job_id + " did not finish in time; it is polled again next pass");
    const json& status = job["status"];
    if (status.contains("errorResult")) {
      const json& e = status["errorResult"];
      std::string message =
          "BigQuery job " + job_id + " failed: " + e.value("reason", "") + ": " + e.value("message", "");
      for (const json& d : status.value("errors", json::array())) {
        std::string loc = d.value("location", "");
        message += "; " + (loc.empty() ? "" : loc + ": ") + d.value("message", "");
        if (message.size() > 2000) break;
      }
      // A failed job id cannot be used again: the ledger's next generation
      // gives the retry a new one, after the partition's backoff.
      return Status(gcp::ClassifyReason(e.value("reason", ""), StatusCode::kInvalidArgument), message);
    }
    return job;
  }

  std::string project_;
  std::string dataset_;
  WarehouseOptions opts_;
  std::string endpoint_;
  gcp::Client client_;
  bool dataset_checked_ = false;
};

std::string DatasetOf(const Uri& u) {
  std::string dataset = u.path;
  while (!dataset.empty() && dataset.back() == '/') dataset.pop_back();
  return dataset;
}

StatusOr<std::unique_ptr<Warehouse>> OpenBigQueryWarehouse(const Uri& u, const WarehouseOptions& opts) {
  WarehouseOptions o = opts;
  if (!o.gcp_tokens) o.gcp_tokens = gcp::MakeTokenProvider();
  return std::unique_ptr<Warehouse>(new BigQueryWarehouse(u.authority, DatasetOf(u), std::move(o)));
}

std::string ValidateBigQueryUri(const Uri& u) {
  std::string dataset = DatasetOf(u);
  if (u.authority.empty() || dataset.empty() || dataset.find('/') != std::string::npos)
    return "is not bigquery://project/dataset";
  return "";
}

}  // namespace

SchemeInfo BigQueryScheme() {
  return {.name = "bigquery",
          .example = "bigquery://project/dataset",
          .service = "BigQuery",
          .roles = kRoleWarehouse,
          .remote = true,
          .credentials = CredentialKind::kGoogle,
          .bearer_token = true,
          .daily_job_budget = true,
          .loads_from = kStagingScheme,
          .validate = ValidateBigQueryUri,
          .open_warehouse = OpenBigQueryWarehouse};
}

}  // namespace logferry
