// The BigQuery warehouse's job protocol against a LOCAL STAND-IN of the
// BigQuery REST API (jobs.insert, jobs.get, tables, datasets, jobs.query)
// written from Google's documentation. Request bodies are checked against
// Google's discovery document by the end-to-end stand-in
// (tests/e2e/bq_standin.py); this test pins what logferry sends and how it
// treats answers: job ids, 409 → jobs.get, errors, outputRows, batching,
// scratch tables, merged loads.
#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "common/time.h"
#include "format/normalizer.h"
#include "gcp/client.h"
#include "gcp/credentials.h"
#include "local_http_server.h"
#include "registry/scheme_registry.h"
#include "store/object_store.h"
#include "support/fake_env.h"
#include "warehouse/bigquery_schema.h"
#include "warehouse/warehouse.h"

namespace logferry {
namespace {

using nlohmann::json;
using testutil::LocalHttpRequest;
using testutil::LocalHttpResponse;
using testutil::LocalHttpServer;

// A remote staging store that only names objects (the warehouse never reads
// them: BigQuery does).
class NamesOnlyStore final : public ObjectStore {
 public:
  std::vector<std::string> written;
  const std::string& uri() const override { return uri_; }
  StatusOr<ListPage> List(std::string_view, std::string_view, size_t) override { return ListPage{}; }
  StatusOr<ObjectInfo> Stat(std::string_view) override { return Status::NotFound("x"); }
  StatusOr<std::unique_ptr<ReadStream>> OpenRead(std::string_view, const ReadOptions&) override {
    return Status::NotFound("x");
  }
  StatusOr<std::unique_ptr<WriteStream>> OpenWrite(std::string_view key) override {
    struct Writer final : WriteStream {
      NamesOnlyStore* store;
      std::string key;
      Status Write(std::string_view) override { return Status::Ok(); }
      StatusOr<WrittenObject> Commit() override {
        store->written.push_back(key);
        return WrittenObject{key, 0, "", "1"};
      }
    };
    auto w = std::make_unique<Writer>();
    w->store = this;
    w->key = std::string(key);
    return std::unique_ptr<WriteStream>(std::move(w));
  }
  Status Delete(std::string_view) override { return Status::Ok(); }

 private:
  std::string uri_ = "gs://stage/parts/";
};

// Merged job ids as the ledger names them (Ledger::MergedLoadId): the
// warehouse only uses them.
constexpr char kMergedJob[] = "logferry_access_2016080101_m3_00000000000000a1";
constexpr char kOtherMergedJob[] = "logferry_access_2016080101_m3_00000000000000b2";

// The core's record of the table's load jobs (the ledger's load_jobs), as
// the budget reads it.
struct FakeJobLog final : LoadJobLog {
  int64_t jobs = 0;
  std::optional<int64_t> oldest_sent_us;
  std::set<std::string> sent;
  StatusOr<Recent> SentInLastDay(int64_t) override { return Recent{jobs, oldest_sent_us}; }
  StatusOr<bool> WasSent(const std::string& job_id) override { return sent.count(job_id) > 0; }
};

struct FakeBigQuery {
  std::mutex mu;
  std::map<std::string, json> jobs;  // by id
  std::vector<std::string> inserted;
  int gets = 0;
  json error_result;  // set: jobs finish with it
  int64_t rows_per_uri = 10;
  std::map<std::string, json> tables;  // by id, as inserted
  std::vector<std::string> tables_inserted, tables_deleted;
  std::vector<std::string> queries;  // jobs.query SQL
  json query_rows = json::array();   // what jobs.query answers
  std::string refuse_jobs_ending;    // jobs.insert of such ids answers 500
  int stay_running = 0;              // jobs.get answers RUNNING this many times first

  LocalHttpResponse Handle(const LocalHttpRequest& r) {
    std::lock_guard lock(mu);
    const std::string jobs_path = "/bigquery/v2/projects/proj/jobs";
    const std::string tables_path = "/bigquery/v2/projects/proj/datasets/logs/tables";
    if (r.method == "POST" && r.path == tables_path) {
      json body = json::parse(r.body);
      std::string id = body["tableReference"]["tableId"];
      if (tables.count(id)) return {409, {}, R"({"error":{"code":409,"errors":[{"reason":"duplicate"}]}})"};
      tables[id] = body;
      tables_inserted.push_back(id);
      return {200, {}, body.dump()};
    }
    if (r.method == "DELETE" && r.path.rfind(tables_path + "/", 0) == 0) {
      std::string id = r.path.substr(tables_path.size() + 1);
      tables_deleted.push_back(id);
      if (!tables.erase(id)) return {404, {}, R"({"error":{"code":404,"errors":[{"reason":"notFound"}]}})"};
      return {204, {}, ""};
    }
    if (r.method == "POST" && r.path == "/bigquery/v2/projects/proj/queries") {
      queries.push_back(json::parse(r.body)["query"]);
      json answer = {
          {"jobComplete", true},
          {"jobReference", {{"jobId", "q" + std::to_string(queries.size())}}},
          {"schema", {{"fields", {{{"name", "p"}, {"type", "TIMESTAMP"}}, {{"name", "n"}, {"type", "INTEGER"}}}}}},
          {"rows", query_rows}};
      return {200, {}, answer.dump()};
    }
    if (r.method == "POST" && r.path == jobs_path) {
      json body = json::parse(r.body);
      std::string id = body["jobReference"]["jobId"];
      if (!refuse_jobs_ending.empty() && id.size() >= refuse_jobs_ending.size() &&
          id.compare(id.size() - refuse_jobs_ending.size(), std::string::npos, refuse_jobs_ending) == 0)
        return {500, {}, R"({"error":{"code":500,"errors":[{"reason":"backendError"}]}})"};
      if (jobs.count(id))
        return {409,
                {},
                R"({"error":{"code":409,"message":"Already Exists: Job proj:US.)" + id +
                    R"(","errors":[{"reason":"duplicate"}],"status":"ALREADY_EXISTS"}})"};
      inserted.push_back(id);
      json job = body;
      job["status"] = {{"state", "RUNNING"}};
      jobs[id] = job;
      return {200, {}, job.dump()};
    }
    if (r.method == "GET" && r.path.rfind(jobs_path + "/", 0) == 0) {
      ++gets;
      std::string id = r.path.substr(jobs_path.size() + 1);
      auto it = jobs.find(id);
      if (it == jobs.end())
        return {404, {}, R"({"error":{"code":404,"message":"no job","errors":[{"reason":"notFound"}]}})"};
      json& job = it->second;
      if (stay_running > 0) {
        --stay_running;
        return {200, {}, job.dump()};
      }
      job["status"] = {{"state", "DONE"}};
      if (!error_result.is_null()) {
        job["status"]["errorResult"] = error_result;
        job["status"]["errors"] = json::array({error_result});
      } else if (job["configuration"].contains("load")) {
        size_t n = 0;
        for (const auto& u : job["configuration"]["load"]["sourceUris"])
          if (u.get<std::string>().find("empty") == std::string::npos) ++n;
        job["statistics"] = {{"load", {{"outputRows", std::to_string(n * rows_per_uri)}}}};
      }
      return {200, {}, job.dump()};
    }
    return {404, {}, R"({"error":{"code":404,"message":"not found","errors":[{"reason":"notFound"}]}})"};
  }
};

class BigQueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<LocalHttpServer>([this](const LocalHttpRequest& r) { return bq_.Handle(r); });
  }

  std::unique_ptr<Warehouse> Open(size_t max_uris = 10'000, int64_t budget = 1000, int64_t unit_us = 3'600'000'000LL) {
    WarehouseOptions o;
    o.endpoint = server_->Url();
    o.gcp_tokens = gcp::MakeStaticTokenProvider("tok");
    o.max_uris_per_load = max_uris;
    o.daily_load_budget = budget;
    o.partition_unit_us = unit_us;
    o.retry.max_attempts = 2;
    o.retry.initial_backoff_us = 1000;
    o.retry.env = &env_;  // job polls and backoffs wait on the fake clock
    auto w = OpenWarehouse("bigquery://proj/logs", o);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return std::move(*w);
  }

  PartitionLoad Plan(int parts, int generation = 1) {
    PartitionLoad p;
    p.table = "access";
    p.partition_us = 1470009600LL * 1'000'000 + 3 * 3'600'000'000LL;  // 2016-08-01T03
    p.load_id = "logferry_access_2016080103_g" + std::to_string(generation);
    for (int i = 0; i < parts; ++i) {
      StagedPart r;
      r.key = "access/dt=2016-08-01/hr=03/" + std::to_string(i) + ".ndjson.gz";
      r.rows = 10;
      p.parts.push_back(r);
      p.expected_rows += 10;
    }
    return p;
  }

  // Hourly plans of 2016-08-01, `parts` parts of 10 rows each.
  std::vector<PartitionLoad> Plans(std::vector<int> hours, int parts, int generation = 1) {
    std::vector<PartitionLoad> out;
    for (int h : hours) {
      PartitionLoad p = Plan(parts, generation);
      p.partition_us = 1470009600LL * 1'000'000 + h * 3'600'000'000LL;
      char hh[3];
      snprintf(hh, sizeof hh, "%02d", h);
      p.load_id = std::string("logferry_access_20160801") + hh + "_g" + std::to_string(generation);
      for (auto& part : p.parts) part.key.replace(part.key.find("hr=03"), 5, std::string("hr=") + hh);
      out.push_back(p);
    }
    return out;
  }

  // What jobs.query answers: rows per hour of 2016-08-01, as BigQuery
  // writes TIMESTAMPs (seconds, as text).
  void CountsAre(std::map<int, int> rows_by_hour) {
    bq_.query_rows = json::array();
    for (auto [h, n] : rows_by_hour)
      bq_.query_rows.push_back({{"f", {{{"v", std::to_string(1470009600LL + h * 3600)}}, {{"v", std::to_string(n)}}}}});
  }

  // From the real time: scratch tables' expiry is checked against it.
  testutil::FakeEnv env_{NowMicros()};
  FakeBigQuery bq_;
  std::unique_ptr<LocalHttpServer> server_;
  NamesOnlyStore staging_;
  SchemaRegistry schema_{FixedColumns(LogFormat::kOutFile)};
};

TEST_F(BigQueryTest, OneDecoratedTruncatingLoadPerPartitionNamedByTheLedger) {
  auto wh = Open();
  auto rows = wh->ReplacePartition(Plan(3), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, 30);
  ASSERT_EQ(bq_.inserted, std::vector<std::string>{"logferry_access_2016080103_g1"});
  const json& load = bq_.jobs["logferry_access_2016080103_g1"]["configuration"]["load"];
  EXPECT_EQ(load["destinationTable"]["tableId"], "access$2016080103");
  EXPECT_EQ(load["writeDisposition"], "WRITE_TRUNCATE");
  EXPECT_EQ(load["sourceFormat"], "NEWLINE_DELIMITED_JSON");
  ASSERT_EQ(load["sourceUris"].size(), 3u);
  EXPECT_EQ(load["sourceUris"][0], "gs://stage/parts/access/dt=2016-08-01/hr=03/0.ndjson.gz");
  for (const auto& u : load["sourceUris"]) {
    EXPECT_EQ(u.get<std::string>().find('*'), std::string::npos);
  }
  EXPECT_EQ(load["timePartitioning"]["field"], "_time");
  EXPECT_EQ(load["timePartitioning"]["type"], "HOUR");
}

// A running job is polled with a growing delay (200 ms doubling, up to 5 s),
// on the Env's clock: four polls of a running job take no wall time.
TEST_F(BigQueryTest, ARunningJobIsPolledOnTheEnvClock) {
  auto wh = Open();
  bq_.stay_running = 4;
  int64_t start = env_.NowMicros();
  auto rows = wh->ReplacePartition(Plan(1), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(bq_.gets, 5);
  EXPECT_EQ(env_.sleeps(), (std::vector<int64_t>{400'000, 800'000, 1'600'000, 3'200'000}));
  EXPECT_EQ(env_.NowMicros() - start, 6'000'000);
}

TEST_F(BigQueryTest, AfterACrashTheSameJobIsFoundInsteadOfLoadingTwice) {
  auto wh = Open();
  ASSERT_TRUE(wh->ReplacePartition(Plan(2), 3'600'000'000LL, staging_, schema_).ok());
  // The process died before the ledger recorded the outcome; the retry uses
  // the same generation, hence the same job id.
  auto again = Open()->ReplacePartition(Plan(2), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, 20);
  EXPECT_EQ(bq_.inserted.size(), 1u) << "no second load job";
  // A job under that id with other files is not this load.
  auto other = Open()->ReplacePartition(Plan(3), 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("other source files"), std::string::npos) << other.status().ToString();
}

TEST_F(BigQueryTest, JobErrorsNameTheFileAndAreNotRetriedUnderTheSameId) {
  bq_.error_result = {
      {"reason", "invalid"},
      {"location", "gs://stage/parts/access/dt=2016-08-01/hr=03/1.ndjson.gz"},
      {"message", "Error while reading data, error message: JSON parsing error in row starting at position 0"}};
  auto r = Open()->ReplacePartition(Plan(2), 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(r.status().IsTransient());
  EXPECT_NE(r.status().message().find("hr=03/1.ndjson.gz"), std::string::npos) << r.status().ToString();
  EXPECT_NE(r.status().message().find("logferry_access_2016080103_g1"), std::string::npos);
  bq_.error_result = {{"reason", "backendError"}, {"message", "try again"}};
  auto t = Open()->ReplacePartition(Plan(2, 2), 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(t.ok());
  EXPECT_TRUE(t.status().IsTransient()) << t.status().ToString();
}

TEST_F(BigQueryTest, TooManyPartsGoThroughAScratchTableAndOneCopy) {
  auto r = Open(/*max_uris=*/2)->ReplacePartition(Plan(5), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 50);
  ASSERT_EQ(bq_.inserted.size(), 4u);  // 3 batches + 1 copy
  const json& first = bq_.jobs[bq_.inserted[0]]["configuration"]["load"];
  EXPECT_EQ(first["writeDisposition"], "WRITE_TRUNCATE");
  EXPECT_EQ(bq_.jobs[bq_.inserted[1]]["configuration"]["load"]["writeDisposition"], "WRITE_APPEND");
  // Schema update options are refused when truncating a whole table.
  EXPECT_FALSE(first.contains("schemaUpdateOptions"));
  std::string scratch = first["destinationTable"]["tableId"];
  EXPECT_EQ(scratch.find('$'), std::string::npos);
  const json& copy = bq_.jobs[bq_.inserted[3]]["configuration"]["copy"];
  EXPECT_EQ(copy["sourceTable"]["tableId"], scratch);
  EXPECT_EQ(copy["destinationTable"]["tableId"], "access$2016080103");
  EXPECT_EQ(copy["writeDisposition"], "WRITE_TRUNCATE");
}

TEST_F(BigQueryTest, APartitionWithNoPartsLeftIsTruncatedWithAnEmptyFile) {
  auto r = Open()->ReplacePartition(Plan(0), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, 0);
  ASSERT_EQ(staging_.written, std::vector<std::string>{"_logferry/empty.ndjson.gz"});
  const json& load = bq_.jobs[bq_.inserted[0]]["configuration"]["load"];
  EXPECT_EQ(load["sourceUris"], json::array({"gs://stage/parts/_logferry/empty.ndjson.gz"}));
  EXPECT_EQ(load["writeDisposition"], "WRITE_TRUNCATE");
}

TEST_F(BigQueryTest, DayPartitionsUseTheDayDecorator) {
  PartitionLoad p = Plan(1);
  p.partition_us = 1470009600LL * 1'000'000;
  auto r = Open()->ReplacePartition(p, 24 * 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(bq_.jobs[bq_.inserted[0]]["configuration"]["load"]["destinationTable"]["tableId"], "access$20160801");
  EXPECT_EQ(bq_.jobs[bq_.inserted[0]]["configuration"]["load"]["timePartitioning"]["type"], "DAY");
}

// One classification per protocol: a reason in a job's result means what
// the same reason means in an HTTP error (gcp::ErrorStatus). Rate limits pass
// within seconds; quotaExceeded does not, so the load waits for its
// partition's backoff instead of being retried per request.
TEST_F(BigQueryTest, JobResultReasonsAreClassifiedAsHttpErrorsAre) {
  int generation = 1;
  for (const char* reason : {"quotaExceeded", "rateLimitExceeded", "backendError", "invalid"}) {
    bq_.error_result = {{"reason", reason}, {"message", "Quota exceeded: too many table update operations"}};
    auto r = Open()->ReplacePartition(Plan(1, generation++), 3'600'000'000LL, staging_, schema_);
    ASSERT_FALSE(r.ok()) << reason;
    HttpResponse http;
    http.status = 403;
    http.body = json({{"error", {{"code", 403}, {"message", "m"}, {"errors", {{{"reason", reason}}}}}}}).dump();
    StatusCode want = gcp::ErrorStatus("x", http).code();
    if (std::string_view(reason) == "invalid") want = StatusCode::kInvalidArgument;  // no reason-specific meaning
    EXPECT_EQ(r.status().code(), want) << reason << ": " << r.status().ToString();
    EXPECT_NE(r.status().message().find(reason), std::string::npos);
  }
  bq_.error_result = {{"reason", "quotaExceeded"}, {"message", "Quota exceeded"}};
  auto q = Open()->ReplacePartition(Plan(1, generation++), 3'600'000'000LL, staging_, schema_);
  EXPECT_EQ(q.status().code(), StatusCode::kResourceExhausted) << q.status().ToString();
  EXPECT_FALSE(q.status().IsTransient());
}

TEST_F(BigQueryTest, AMergedLoadIsOneTransactionOverAScratchTableNamedAfterItsJob) {
  std::vector<PartitionLoad> plans = Plans({1, 2, 5}, 2);
  const std::string job = kMergedJob;  // the ledger's name for it
  CountsAre({{1, 20}, {2, 20}, {5, 20}});
  auto rows = Open(/*max_uris=*/4)->ReplacePartitions(job, plans, 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, (std::map<int64_t, int64_t>{
                       {plans[0].partition_us, 20}, {plans[1].partition_us, 20}, {plans[2].partition_us, 20}}));
  // Six parts, four per job: two loads into the scratch table, then the transaction.
  ASSERT_EQ(bq_.inserted, (std::vector<std::string>{job + "_b0", job + "_b1", job + "_dml"}));
  const std::string scratch = job + "_scratch";
  ASSERT_EQ(bq_.tables_inserted, std::vector<std::string>{scratch});
  EXPECT_EQ(bq_.tables.count(scratch), 0u) << "dropped after success";
  EXPECT_EQ(bq_.tables_deleted, std::vector<std::string>{scratch});
  const json& b0 = bq_.jobs[job + "_b0"]["configuration"]["load"];
  EXPECT_EQ(b0["destinationTable"]["tableId"], scratch);
  EXPECT_EQ(b0["writeDisposition"], "WRITE_TRUNCATE");
  EXPECT_EQ(b0["createDisposition"], "CREATE_NEVER") << "only the table created with an expiration is written";
  EXPECT_EQ(b0["sourceUris"].size(), 4u);
  EXPECT_EQ(bq_.jobs[job + "_b1"]["configuration"]["load"]["writeDisposition"], "WRITE_APPEND");
  std::string script = bq_.jobs[job + "_dml"]["configuration"]["query"]["query"];
  EXPECT_EQ(bq_.jobs[job + "_dml"]["configuration"]["query"]["useLegacySql"], false);
  EXPECT_EQ(script.rfind("BEGIN TRANSACTION;", 0), 0u) << script;
  EXPECT_NE(script.find("DELETE FROM `proj.logs.access` WHERE (_time >= TIMESTAMP('2016-08-01T01:00:00Z') AND "
                        "_time < TIMESTAMP('2016-08-01T02:00:00Z')) OR (_time >= TIMESTAMP('2016-08-01T02:00:00Z')"),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("TIMESTAMP('2016-08-01T05:00:00Z') AND _time < TIMESTAMP('2016-08-01T06:00:00Z'))"),
            std::string::npos)
      << script;
  EXPECT_NE(script.find("SELECT `_time`"), std::string::npos) << script;
  EXPECT_NE(script.find("FROM `proj.logs." + scratch + "`;"), std::string::npos) << script;
  EXPECT_NE(script.find("COMMIT TRANSACTION;"), std::string::npos) << script;
  ASSERT_EQ(bq_.queries.size(), 1u);
  EXPECT_NE(bq_.queries[0].find("_time >= TIMESTAMP('2016-08-01T01:00:00Z') AND _time < "
                                "TIMESTAMP('2016-08-01T06:00:00Z')"),
            std::string::npos)
      << bq_.queries[0];
}

TEST_F(BigQueryTest, TheScratchTableExpiresByItself) {
  std::vector<PartitionLoad> plans = Plans({1, 2}, 1);
  bq_.refuse_jobs_ending = "_dml";  // the run dies before the transaction
  int64_t before_ms = static_cast<int64_t>(time(nullptr)) * 1000;
  ASSERT_FALSE(Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_).ok());
  const std::string scratch = std::string(kMergedJob) + "_scratch";
  ASSERT_TRUE(bq_.tables.count(scratch)) << "left behind";
  const json& t = bq_.tables[scratch];
  int64_t expires = std::stoll(t["expirationTime"].get<std::string>());
  EXPECT_GT(expires, before_ms + 3600 * 1000) << "outlives a restart";
  EXPECT_LT(expires, before_ms + 8LL * 24 * 3600 * 1000) << "but not for long";
  EXPECT_EQ(t["timePartitioning"]["type"], "HOUR");
  EXPECT_EQ(t["schema"]["fields"], json::parse(BigQuerySchemaJson(schema_.Columns())));
  EXPECT_TRUE(bq_.tables_deleted.empty());
}

TEST_F(BigQueryTest, ARestartedMergedLoadFindsItsJobsAndNothingElse) {
  std::vector<PartitionLoad> plans = Plans({1, 2, 3}, 1);
  CountsAre({{1, 10}, {2, 10}, {3, 10}});
  ASSERT_TRUE(Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_).ok());
  size_t jobs = bq_.inserted.size();
  // The process died before the ledger recorded the outcome: the same batch
  // (same generations) finds the same jobs instead of running them again,
  // even though the scratch table is gone.
  auto again = Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(bq_.inserted.size(), jobs) << "no second job";
  EXPECT_EQ(again->at(plans[1].partition_us), 10);

  // Another generation of one partition is another batch, which the ledger
  // names anew (LedgerTest.MergedLoadIdNamesEveryPartitionAndGeneration):
  // another job.
  ASSERT_TRUE(Open()->ReplacePartitions(kOtherMergedJob, plans, 3'600'000'000LL, staging_, schema_).ok());
  EXPECT_EQ(bq_.inserted.size(), 2 * jobs);

  // A transaction found under the id must be this one.
  std::vector<PartitionLoad> other = Plans({7, 8}, 1);
  const std::string other_job = "logferry_access_2016080107_m2_00000000000000c3";
  std::string dml = other_job + "_dml";
  bq_.jobs[dml] = {{"configuration", {{"query", {{"query", "DELETE FROM `proj.logs.access` WHERE TRUE"}}}}},
                   {"status", {{"state", "DONE"}}}};
  auto clash = Open()->ReplacePartitions(other_job, other, 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(clash.ok());
  EXPECT_NE(clash.status().message().find("already exists with another script"), std::string::npos)
      << clash.status().ToString();
}

TEST_F(BigQueryTest, AMergedLoadNeverRunsItsTransactionOnAScratchTableThatLostItsRows) {
  std::vector<PartitionLoad> plans = Plans({1, 2}, 1);
  bq_.refuse_jobs_ending = "_dml";  // the loads ran, then the run died
  ASSERT_FALSE(Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_).ok());
  // The scratch table expired before the restart: its loads are found by
  // id, but its rows are gone.
  bq_.tables.clear();
  bq_.refuse_jobs_ending.clear();
  auto r = Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsTransient()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("lost its rows"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(bq_.jobs.count(std::string(kMergedJob) + "_dml"), 0u) << "the partitions were not emptied";
}

TEST_F(BigQueryTest, AMergedLoadWhoseScratchRowsDisagreeWithTheLedgerStopsBeforeTheTable) {
  std::vector<PartitionLoad> plans = Plans({1, 2}, 2);
  bq_.rows_per_uri = 9;  // BigQuery reports fewer rows than the parts hold
  auto r = Open()->ReplacePartitions(kMergedJob, plans, 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("received 36 rows but the ledger expects 40"), std::string::npos)
      << r.status().ToString();
  for (const std::string& id : bq_.inserted) {
    EXPECT_EQ(id.find("_dml"), std::string::npos) << id;
  }
}

TEST_F(BigQueryTest, TooManyPartsUseAnExpiringScratchTableNamedAfterTheLoad) {
  auto r = Open(/*max_uris=*/2)->ReplacePartition(Plan(3), 3'600'000'000LL, staging_, schema_);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const std::string scratch = "logferry_access_2016080103_g1_scratch";
  ASSERT_EQ(bq_.tables_inserted, std::vector<std::string>{scratch});
  EXPECT_EQ(bq_.tables_deleted, std::vector<std::string>{scratch});
  EXPECT_EQ(bq_.jobs["logferry_access_2016080103_g1_b0"]["configuration"]["load"]["createDisposition"], "CREATE_NEVER");
  // Restarted after the copy, with the scratch table gone: the copy is
  // found, nothing runs again.
  size_t jobs = bq_.inserted.size();
  ASSERT_TRUE(Open(2)->ReplacePartition(Plan(3), 3'600'000'000LL, staging_, schema_).ok());
  EXPECT_EQ(bq_.inserted.size(), jobs);
  // Restarted before the copy, with the scratch table expired: no copy of
  // an empty table over the partition.
  bq_.refuse_jobs_ending = "_copy";
  ASSERT_FALSE(Open(2)->ReplacePartition(Plan(3, 2), 3'600'000'000LL, staging_, schema_).ok());
  const json& left = bq_.tables["logferry_access_2016080103_g2_scratch"];
  EXPECT_GT(std::stoll(left.value("expirationTime", "0")), static_cast<int64_t>(time(nullptr)) * 1000)
      << "a scratch table left behind expires by itself";
  bq_.tables.clear();
  bq_.refuse_jobs_ending.clear();
  auto lost = Open(2)->ReplacePartition(Plan(3, 2), 3'600'000'000LL, staging_, schema_);
  ASSERT_FALSE(lost.ok());
  EXPECT_NE(lost.status().message().find("lost its rows"), std::string::npos) << lost.status().ToString();
  EXPECT_EQ(bq_.jobs.count("logferry_access_2016080103_g2_copy"), 0u);
}

// The daily job budget, decided inside the warehouse (it was the core's):
// the same decisions as before the move, which the end-to-end LoadBudget
// test shows through the binary.
constexpr int64_t kHourUs = 3'600'000'000LL;
constexpr int64_t kJul31T12 = 1469966400LL * 1'000'000;  // 2016-07-31T12:00Z

std::vector<int64_t> Hours(int64_t from_us, int n) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(from_us + i * kHourUs);
  return out;
}

TEST_F(BigQueryTest, WhileTheBudgetCoversThePartitionsDueEachIsOneJob) {
  FakeJobLog log;
  log.jobs = 5;
  std::vector<int64_t> due = Hours(kJul31T12, 5);
  auto groups = Open(10'000, /*budget=*/10)->GroupIntoJobs(due, log, kJul31T12 + kMicrosPerDay);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  ASSERT_EQ(groups->jobs.size(), 5u);
  for (size_t i = 0; i < due.size(); ++i) EXPECT_EQ(groups->jobs[i], std::vector<int64_t>{due[i]});
  EXPECT_EQ(groups->why, "");
  EXPECT_TRUE(bq_.inserted.empty() && bq_.queries.empty()) << "deciding sends nothing";
}

TEST_F(BigQueryTest, WhenThePartitionsDueOutnumberTheJobsLeftEachUtcDayIsOneJob) {
  FakeJobLog log;
  std::vector<int64_t> due = Hours(kJul31T12, 48);  // 12 + 24 + 12 hours over three UTC days
  auto groups = Open(10'000, /*budget=*/2)->GroupIntoJobs(due, log, kJul31T12 + 3 * kMicrosPerDay);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  ASSERT_EQ(groups->jobs.size(), 3u);
  EXPECT_EQ(groups->jobs[0], std::vector<int64_t>(due.begin(), due.begin() + 12));
  EXPECT_EQ(groups->jobs[1], std::vector<int64_t>(due.begin() + 12, due.begin() + 36));
  EXPECT_EQ(groups->jobs[2], std::vector<int64_t>(due.begin() + 36, due.end()));
  EXPECT_EQ(groups->why,
            "48 partitions due, more than the load jobs left in daily_load_budget: merged into 3 job(s), one per UTC "
            "day");
  // Exactly as many partitions as jobs left: one job each.
  log.jobs = 995;
  auto fits = Open(10'000, /*budget=*/1000)->GroupIntoJobs(Hours(kJul31T12, 5), log, kJul31T12);
  ASSERT_TRUE(fits.ok());
  EXPECT_EQ(fits->jobs.size(), 5u);
  auto over = Open(10'000, /*budget=*/1000)->GroupIntoJobs(Hours(kJul31T12, 6), log, kJul31T12);
  ASSERT_TRUE(over.ok());
  EXPECT_EQ(over->jobs.size(), 1u) << "six hours of one UTC day";
}

TEST_F(BigQueryTest, DayPartitionsAreNeverMerged) {
  FakeJobLog log;
  log.jobs = 1;
  std::vector<int64_t> due = {kJul31T12 - 12 * kHourUs, kJul31T12 + 12 * kHourUs, kJul31T12 + 36 * kHourUs};
  auto groups = Open(10'000, /*budget=*/1, kMicrosPerDay)->GroupIntoJobs(due, log, kJul31T12 + 3 * kMicrosPerDay);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  EXPECT_EQ(groups->jobs.size(), 3u);
  EXPECT_EQ(groups->why, "");
}

TEST_F(BigQueryTest, PastTheBudgetAJobWaitsUnlessItWasSentBefore) {
  FakeJobLog log;
  log.jobs = 2;
  log.oldest_sent_us = kJul31T12;
  auto wh = Open(10'000, /*budget=*/2);
  auto why = wh->WhyWait("logferry_access_2016080100_g1", 7, log, kJul31T12 + kHourUs);
  ASSERT_TRUE(why.ok()) << why.status().ToString();
  ASSERT_TRUE(why->has_value());
  EXPECT_EQ(**why,
            "2 load jobs in the last 24 hours reach daily_load_budget 2; 7 partition(s) wait for the load budget (the "
            "next job may start at 2016-08-01T12:00:00Z)");
  // A job counted when it was first sent (a restart resuming it) never waits.
  log.sent.insert("logferry_access_2016080100_g1");
  why = wh->WhyWait("logferry_access_2016080100_g1", 7, log, kJul31T12 + kHourUs);
  ASSERT_TRUE(why.ok());
  EXPECT_FALSE(why->has_value());
  // Under the budget, nothing waits.
  log.jobs = 1;
  why = wh->WhyWait("logferry_access_2016080101_g1", 7, log, kJul31T12 + kHourUs);
  ASSERT_TRUE(why.ok());
  EXPECT_FALSE(why->has_value());
}

}  // namespace
}  // namespace logferry
