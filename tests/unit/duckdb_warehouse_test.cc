#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "format/compression.h"
#include "format/normalizer.h"
#include "registry/scheme_registry.h"
#include "store/object_store.h"
#include "support/fake_env.h"
#include "warehouse/warehouse.h"

extern char** environ;

namespace logferry {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHoldEnv = "LF_TEST_HOLD_WAREHOUSE";

// When this binary is started with LF_TEST_HOLD_WAREHOUSE=<path>, it is the
// lock-holding child of ReadOnlyOpenWaitsForWriter, not a test run: it opens
// the warehouse for writing, reports on fd 3, and holds the file until its
// stdin reaches EOF. DuckDB's file lock is per process, so the holder must be
// a separate process; re-executing ourselves avoids fork() after DuckDB has
// started threads.
int HoldWarehouseAndExit(const char* path) {
  WarehouseOptions opts;
  opts.lock_timeout_us = 30 * kMicrosPerSecond;
  auto w = OpenWarehouse(std::string("duckdb://") + path, opts);
  char status = w.ok() ? 'R' : 'E';
  if (write(3, &status, 1) != 1) return 2;
  if (!w.ok()) return 1;
  char c;
  while (read(0, &c, 1) > 0) {
  }
  w->reset();
  return 0;
}

[[maybe_unused]] const bool kIsHolder = [] {
  if (const char* p = getenv(kHoldEnv)) _exit(HoldWarehouseAndExit(p));
  return false;
}();

using nlohmann::json;

int64_t T(const char* iso) {
  auto t = ParseIso8601(iso);
  EXPECT_TRUE(t) << iso;
  return t.value_or(0);
}

class DuckDbWarehouseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-duckdb-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto s = OpenObjectStore("file://" + dir_ + "/staging/");
    ASSERT_TRUE(s.ok());
    staging_ = std::move(s).value();
    uri_ = "duckdb://" + dir_ + "/x.duckdb";
    schema_ = std::make_unique<SchemaRegistry>(FixedColumns(LogFormat::kOutFile));
    Column* root = schema_->root();
    ASSERT_EQ(schema_->Offer(schema_->Child(root, "n"), ColumnType::kInt64, false), Fit::kOk);
    ASSERT_EQ(schema_->Offer(schema_->Child(root, "msg"), ColumnType::kString, false), Fit::kOk);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::unique_ptr<Warehouse> Open(bool read_only = false) {
    WarehouseOptions o;
    o.read_only = read_only;
    o.lock_timeout_us = 5 * kMicrosPerSecond;
    auto w = OpenWarehouse(uri_, o);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }

  // Writes rows as a gzip NDJSON part, the way staging does.
  StagedPart WritePart(const std::string& key, const std::vector<json>& rows) {
    std::string ndjson;
    for (const json& r : rows) ndjson += r.dump() + "\n";
    auto w = staging_->WriteAll(key, GzipCompress(ndjson));
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    StagedPart p;
    p.key = key;
    p.rows = static_cast<int64_t>(rows.size());
    return p;
  }

  static json Row(const char* time, int64_t n, const std::string& msg) {
    return json{{"_time", time}, {"_tag", "app"}, {"n", n}, {"msg", msg}};
  }

  PartitionLoad Plan(int64_t partition, std::vector<StagedPart> parts) {
    PartitionLoad p;
    p.table = "t";
    p.partition_us = partition;
    p.parts = std::move(parts);
    for (auto& part : p.parts) p.expected_rows += part.rows;
    return p;
  }

  std::map<std::string, std::string> ColumnTypes(Warehouse& w) {
    auto r = w.Query(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name='t' ORDER BY ordinal_position");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    std::map<std::string, std::string> out;
    if (r.ok())
      for (auto& row : r->rows) out[*row[0]] = *row[1];
    return out;
  }

  std::vector<std::string> Values(Warehouse& w, const std::string& sql) {
    auto r = w.Query(sql);
    EXPECT_TRUE(r.ok()) << sql << ": " << r.status().ToString();
    std::vector<std::string> out;
    if (r.ok())
      for (auto& row : r->rows) out.push_back(row[0].value_or("NULL"));
    return out;
  }

  std::string dir_;
  std::string uri_;
  std::unique_ptr<ObjectStore> staging_;
  std::unique_ptr<SchemaRegistry> schema_;
  const int64_t h0_ = T("2016-08-01T00:00:00Z");
  const int64_t h1_ = T("2016-08-01T01:00:00Z");
};

// `logferry query` runs the user's SQL with no way to files, the network or
// extensions; ordinary queries still work.
TEST_F(DuckDbWarehouseTest, QueryWithoutFileAccessRefusesFilesAttachAndExtensions) {
  {
    auto w = Open();
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->Query("CREATE TABLE t AS SELECT 42 AS n").ok());
  }
  std::string secret = dir_ + "/secret.csv";
  { std::ofstream(secret) << "a,b\n1,2\n"; }
  WarehouseOptions o;
  o.read_only = true;
  o.sql_file_access = false;
  auto w = OpenWarehouse(uri_, o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  auto ok = (*w)->Query("SELECT n FROM t");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  ASSERT_EQ(ok->rows.size(), 1u);
  EXPECT_EQ(ok->rows[0][0].value_or(""), "42");
  std::string written = dir_ + "/written.csv";
  for (const std::string& sql :
       std::vector<std::string>{"SELECT * FROM read_csv('" + secret + "')", "SELECT * FROM '" + secret + "'",
                                "SELECT * FROM read_text('/etc/passwd')", "COPY (SELECT 1) TO '" + written + "'",
                                "ATTACH '" + dir_ + "/other.duckdb' AS other", "INSTALL httpfs", "LOAD httpfs",
                                "SET enable_external_access = true", "SET lock_configuration = false"}) {
    auto r = (*w)->Query(sql);
    EXPECT_FALSE(r.ok()) << "allowed: " << sql;
  }
  EXPECT_FALSE(fs::exists(written));
  EXPECT_FALSE(fs::exists(dir_ + "/other.duckdb"));
  // Still refused after the attempts to switch it back on.
  EXPECT_FALSE((*w)->Query("SELECT * FROM read_csv('" + secret + "')").ok());
}

TEST_F(DuckDbWarehouseTest, EnsureTableCreatesAddsAndWidens) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  auto types = ColumnTypes(*w);
  EXPECT_EQ(types["_time"], "TIMESTAMP WITH TIME ZONE");
  EXPECT_EQ(types["_tag"], "VARCHAR");
  EXPECT_EQ(types["n"], "BIGINT");
  EXPECT_EQ(types["msg"], "VARCHAR");
  EXPECT_EQ(types.size(), 4u);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok()) << "idempotent";

  // Data loaded before the schema changes must survive the changes.
  auto n = w->ReplacePartition(Plan(h0_, {WritePart("t/p0.ndjson.gz", {Row("2016-08-01T00:10:00Z", 7, "x")})}),
                               kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n.ok()) << n.status().ToString();

  Column* root = schema_->root();
  ASSERT_EQ(schema_->Offer(schema_->Child(root, "ok"), ColumnType::kBool, false), Fit::kOk);
  ASSERT_EQ(schema_->Offer(schema_->Child(root, "req"), ColumnType::kRecord, false), Fit::kOk);
  ASSERT_EQ(schema_->Offer(schema_->Child(root, "n"), ColumnType::kFloat64, false), Fit::kOk);
  (void)schema_->CompanionOf(schema_->Child(root, "n"));
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  types = ColumnTypes(*w);
  EXPECT_EQ(types["ok"], "BOOLEAN");
  EXPECT_EQ(types["req"], "JSON");
  EXPECT_EQ(types["n"], "DOUBLE") << "BIGINT widens to DOUBLE";
  EXPECT_EQ(types["n_str"], "VARCHAR");
  EXPECT_EQ(Values(*w, "SELECT n FROM t"), (std::vector<std::string>{"7.0"}));
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok()) << "idempotent after changes";
}

TEST_F(DuckDbWarehouseTest, ReplacePartitionReplacesOnlyThatHour) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart a = WritePart("t/dt=2016-08-01/hr=00/a.ndjson.gz",
                           {Row("2016-08-01T00:00:00Z", 1, "a1"), Row("2016-08-01T00:30:00Z", 2, "a2"),
                            Row("2016-08-01T00:59:59.999999Z", 3, "a3")});
  StagedPart b = WritePart("t/dt=2016-08-01/hr=00/b.ndjson.gz",
                           {Row("2016-08-01T00:05:00Z", 4, "b1"), Row("2016-08-01T00:06:00Z", 5, "b2")});
  StagedPart c = WritePart("t/dt=2016-08-01/hr=01/c.ndjson.gz",
                           {Row("2016-08-01T01:00:00Z", 6, "c1"), Row("2016-08-01T01:10:00Z", 7, "c2"),
                            Row("2016-08-01T01:20:00Z", 8, "c3"), Row("2016-08-01T01:59:59Z", 9, "c4")});

  auto n1 = w->ReplacePartition(Plan(h1_, {c}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n1.ok()) << n1.status().ToString();
  EXPECT_EQ(*n1, 4);
  auto n0 = w->ReplacePartition(Plan(h0_, {a, b}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n0.ok()) << n0.status().ToString();
  EXPECT_EQ(*n0, 5);

  auto counts = w->CountByPartition("t", kMicrosPerHour);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(*counts, (std::map<int64_t, int64_t>{{h0_, 5}, {h1_, 4}}));

  // Loading the same plan again is a no-op in effect (loads are repeatable).
  n0 = w->ReplacePartition(Plan(h0_, {a, b}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n0.ok());
  EXPECT_EQ(*n0, 5);

  // Fewer parts: exactly those rows remain, the other hour is untouched.
  n0 = w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n0.ok());
  EXPECT_EQ(*n0, 3);
  EXPECT_EQ(Values(*w, "SELECT msg FROM t ORDER BY _time, msg"),
            (std::vector<std::string>{"a1", "a2", "a3", "c1", "c2", "c3", "c4"}));
  EXPECT_EQ(Values(*w, "SELECT CAST(_time AS VARCHAR) FROM t WHERE msg='a3'"),
            (std::vector<std::string>{"2016-08-01 00:59:59.999999+00"}));

  // No parts at all: the hour becomes empty.
  n0 = w->ReplacePartition(Plan(h0_, {}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n0.ok());
  EXPECT_EQ(*n0, 0);
  counts = w->CountByPartition("t", kMicrosPerHour);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<int64_t, int64_t>{{h1_, 4}}));
}

// Append rows of the load history are kept 14 days, replace rows for good:
// appends can come every second, and the history must not grow without bound.
TEST_F(DuckDbWarehouseTest, LoadHistoryKeepsAppendsForTwoWeeks) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart a = WritePart("t/dt=2016-08-01/hr=00/a.ndjson.gz", {Row("2016-08-01T00:00:00Z", 1, "a1")});
  ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_).ok());
  for (const char* row : {"('t', now(), 'append', 'old', 1, 1, now() - INTERVAL 15 DAY)",
                          "('t', now(), 'append', 'recent', 1, 1, now() - INTERVAL 13 DAY)",
                          "('t', now(), 'replace', 'old-replace', 1, 1, now() - INTERVAL 400 DAY)"}) {
    ASSERT_TRUE(w->Query(std::string("INSERT INTO _logferry_loads VALUES ") + row).ok());
  }
  ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_).ok());
  EXPECT_EQ(Values(*w, "SELECT load_id FROM _logferry_loads WHERE load_id <> '' ORDER BY load_id"),
            (std::vector<std::string>{"old-replace", "recent"}));
  EXPECT_EQ(Values(*w, "SELECT count(*) FROM _logferry_loads WHERE kind='replace' AND load_id = ''"),
            (std::vector<std::string>{"2"}));
}

// A replace that committed before its ledger record (the process was
// killed) is sent again under the same id when the load resumes: the
// history keeps one row for it, with the rows of the last run.
TEST_F(DuckDbWarehouseTest, AReplaceRunAgainUnderItsIdKeepsOneHistoryRow) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart a = WritePart("t/dt=2016-08-01/hr=00/a.ndjson.gz", {Row("2016-08-01T00:00:00Z", 1, "a1")});
  StagedPart b = WritePart("t/dt=2016-08-01/hr=00/b.ndjson.gz", {Row("2016-08-01T00:10:00Z", 2, "b1")});
  PartitionLoad first = Plan(h0_, {a});
  first.load_id = "logferry_t_2016080100_g1";
  ASSERT_TRUE(w->ReplacePartition(first, kMicrosPerHour, *staging_, *schema_).ok());
  PartitionLoad again = Plan(h0_, {a, b});
  again.load_id = first.load_id;
  ASSERT_TRUE(w->ReplacePartition(again, kMicrosPerHour, *staging_, *schema_).ok());
  EXPECT_EQ(Values(*w, "SELECT kind || ' ' || load_id || ' ' || parts || ' ' || rows FROM _logferry_loads"),
            (std::vector<std::string>{"replace logferry_t_2016080100_g1 2 2"}));
}

// DuckDB has no job quota: the partitions due share one job (one
// transaction), never held back, and the record of jobs sent is never read.
TEST_F(DuckDbWarehouseTest, HasNoJobBudget) {
  struct UnreadLog final : LoadJobLog {
    StatusOr<Recent> SentInLastDay(int64_t) override { return Status::Internal("read"); }
    StatusOr<bool> WasSent(const std::string&) override { return Status::Internal("read"); }
  } log;
  auto w = Open();
  ASSERT_NE(w, nullptr);
  auto groups = w->GroupIntoJobs({h0_, h1_}, log, h1_);
  ASSERT_TRUE(groups.ok()) << groups.status().ToString();
  EXPECT_EQ(groups->jobs, (std::vector<std::vector<int64_t>>{{h0_, h1_}}));
  EXPECT_EQ(groups->why, "");
  auto why = w->WhyWait("any", 2, log, h1_);
  ASSERT_TRUE(why.ok()) << why.status().ToString();
  EXPECT_FALSE(why->has_value());
}

TEST_F(DuckDbWarehouseTest, DayPartitions) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart d1 =
      WritePart("t/d1.ndjson.gz", {Row("2016-08-01T00:00:00Z", 1, "x"), Row("2016-08-01T23:59:00Z", 2, "y")});
  StagedPart d2 = WritePart("t/d2.ndjson.gz", {Row("2016-08-02T00:00:00Z", 3, "z")});
  ASSERT_TRUE(w->ReplacePartition(Plan(T("2016-08-01T00:00:00Z"), {d1}), kMicrosPerDay, *staging_, *schema_).ok());
  ASSERT_TRUE(w->ReplacePartition(Plan(T("2016-08-02T00:00:00Z"), {d2}), kMicrosPerDay, *staging_, *schema_).ok());
  auto counts = w->CountByPartition("t", kMicrosPerDay);
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ(*counts, (std::map<int64_t, int64_t>{{T("2016-08-01T00:00:00Z"), 2}, {T("2016-08-02T00:00:00Z"), 1}}));
}

TEST_F(DuckDbWarehouseTest, FailedReplaceLeavesPartitionAsItWas) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart a = WritePart("t/a.ndjson.gz", {Row("2016-08-01T00:01:00Z", 1, "a")});
  ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_).ok());

  StagedPart missing;
  missing.key = "t/missing.ndjson.gz";
  missing.rows = 1;
  auto r = w->ReplacePartition(Plan(h0_, {missing}), kMicrosPerHour, *staging_, *schema_);
  EXPECT_FALSE(r.ok()) << "a missing part must fail the load";

  auto corrupt = staging_->WriteAll("t/corrupt.ndjson.gz", GzipCompress("{\"_time\": not json\n"));
  ASSERT_TRUE(corrupt.ok());
  StagedPart bad;
  bad.key = "t/corrupt.ndjson.gz";
  bad.rows = 1;
  r = w->ReplacePartition(Plan(h0_, {bad}), kMicrosPerHour, *staging_, *schema_);
  EXPECT_FALSE(r.ok()) << "an undecodable part must fail the load";

  auto counts = w->CountByPartition("t", kMicrosPerHour);
  ASSERT_TRUE(counts.ok()) << counts.status().ToString();
  EXPECT_EQ(*counts, (std::map<int64_t, int64_t>{{h0_, 1}})) << "the old rows must still be there";
  // The connection is usable after the rollback.
  auto again = w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, 1);
}

// Normalizes out_file records (all at 00:15 UTC) into one staged part.
StagedPart StageRecords(SchemaRegistry& schema, ObjectStore& staging, const std::string& key,
                        const std::vector<std::string>& records) {
  RowNormalizer norm(&schema, FormatOptions{});
  std::string ndjson;
  int64_t rows = 0;
  for (const std::string& rec : records) {
    std::string line = "2016-08-01T00:15:00Z\tapp\t" + rec;
    std::string buf = line + std::string(kJsonPadding, ' ');
    LineError err;
    bool ok = norm.Normalize(std::string_view(buf.data(), line.size()), buf.size(), std::nullopt, &err);
    EXPECT_TRUE(ok) << rec << ": " << err.reason;
    if (ok) {
      ndjson += norm.row();
      ++rows;
    }
  }
  EXPECT_TRUE(staging.WriteAll(key, GzipCompress(ndjson)).ok());
  StagedPart p;
  p.key = key;
  p.rows = rows;
  return p;
}

TEST_F(DuckDbWarehouseTest, LoadsNormalizerOutput) {
  // Rows as the normalizer writes them (nested objects, arrays, companions,
  // escapes) must load into the columns the schema declares.
  SchemaRegistry schema(FixedColumns(LogFormat::kOutFile));
  StagedPart p = StageRecords(
      schema, *staging_, "t/n.ndjson.gz",
      {R"({"status":200,"req":{"path":"/a","ua":"x"},"tags":["a","b"],"msg":"quote \" and \\ and \n","f":1})",
       R"({"status":"oops","req":{"path":"/b"},"tags":[1,"mixed"],"f":2.5})",
       R"({"status":404,"big":18446744073709551616,"caf\u00e9":true})"});
  ASSERT_EQ(p.rows, 3);

  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", schema).ok());
  auto n = w->ReplacePartition(Plan(h0_, {p}), kMicrosPerHour, *staging_, schema);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(Values(*w, "SELECT CAST(status AS VARCHAR) FROM t ORDER BY status NULLS LAST"),
            (std::vector<std::string>{"200", "404", "NULL"}));
  EXPECT_EQ(Values(*w, "SELECT status_str FROM t WHERE status_str IS NOT NULL"), (std::vector<std::string>{"oops"}));
  EXPECT_EQ(Values(*w, "SELECT req->>'path' FROM t WHERE req IS NOT NULL ORDER BY 1"),
            (std::vector<std::string>{"/a", "/b"}));
  EXPECT_EQ(Values(*w, "SELECT msg FROM t WHERE msg IS NOT NULL"),
            (std::vector<std::string>{"quote \" and \\ and \n"}));
  EXPECT_EQ(Values(*w, "SELECT CAST(f AS VARCHAR) FROM t ORDER BY f NULLS LAST"),
            (std::vector<std::string>{"1.0", "2.5", "NULL"}));
  EXPECT_EQ(Values(*w, "SELECT big FROM t WHERE big IS NOT NULL"), (std::vector<std::string>{"18446744073709551616"}));
  EXPECT_EQ(Values(*w, "SELECT CAST(caf_ AS VARCHAR) FROM t WHERE caf_ IS NOT NULL"),
            (std::vector<std::string>{"true"}));
  EXPECT_EQ(Values(*w, "SELECT _tag FROM t LIMIT 1"), (std::vector<std::string>{"app"}));
}

TEST_F(DuckDbWarehouseTest, RecordWithDuplicateKeysDoesNotPoisonThePartition) {
  // One odd record among good ones: staging accepts it, so the load must too,
  // or the partition fails on every retry.
  SchemaRegistry schema(FixedColumns(LogFormat::kOutFile));
  StagedPart p = StageRecords(schema, *staging_, "t/dup.ndjson.gz", {R"({"a":1})", R"({"a":2,"a":3})", R"({"a":4})"});
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", schema).ok());
  auto n = w->ReplacePartition(Plan(h0_, {p}), kMicrosPerHour, *staging_, schema);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, p.rows);
}

TEST_F(DuckDbWarehouseTest, FieldNameWithNulDoesNotBreakTheTable) {
  // A key spelled with an escaped NUL before "_time" reaches the fixed _time
  // column's raw key; its companion is then named "_time<NUL>str", and
  // CREATE TABLE fails on it for every later load of the table.
  SchemaRegistry schema(FixedColumns(LogFormat::kOutFile));
  StagedPart p = StageRecords(schema, *staging_, "t/nul.ndjson.gz", {R"({"a":1})", R"({"\u0000_time":"x"})"});
  auto w = Open();
  ASSERT_TRUE(w);
  Status ensured = w->EnsureTable("t", schema);
  ASSERT_TRUE(ensured.ok()) << ensured.ToString();
  auto n = w->ReplacePartition(Plan(h0_, {p}), kMicrosPerHour, *staging_, schema);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, p.rows);
}

TEST_F(DuckDbWarehouseTest, CountByPartitionOfMissingTableIsNotFound) {
  auto w = Open();
  ASSERT_TRUE(w);
  auto c = w->CountByPartition("nope", kMicrosPerHour);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), StatusCode::kNotFound);
}

TEST_F(DuckDbWarehouseTest, QueryReturnsTextAndNulls) {
  auto w = Open();
  ASSERT_TRUE(w);
  auto r = w->Query("SELECT 1 AS a, NULL AS b, TIMESTAMPTZ '2016-08-01 00:00:00+00' AS c, 'x''y' AS d");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->columns, (std::vector<std::string>{"a", "b", "c", "d"}));
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0][0], std::optional<std::string>("1"));
  EXPECT_EQ(r->rows[0][1], std::nullopt);
  EXPECT_EQ(r->rows[0][2], std::optional<std::string>("2016-08-01 00:00:00+00")) << "timestamps are shown in UTC";
  EXPECT_EQ(r->rows[0][3], std::optional<std::string>("x'y"));
  auto bad = w->Query("SELEC nonsense");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().find('\n'), std::string::npos) << "errors are one line";
}

TEST_F(DuckDbWarehouseTest, QueryKeepsNulAndControlBytes) {
  // DuckDB's value accessors stop at NUL; Query reads strings with their
  // length, inlined (up to 12 bytes) or not, through the cast wrapper or not.
  auto w = Open();
  ASSERT_TRUE(w);
  const std::string short_s(
      "a\0b\x1f"
      "c",
      5),
      long_s("nul\0inside a longer string\x01", 27);
  for (const char* sql : {"SELECT 'a' || chr(0) || 'b' || chr(31) || 'c' AS s, "
                          "'nul' || chr(0) || 'inside a longer string' || chr(1) AS l",
                          "SELECT 'a' || chr(0) || 'b' || chr(31) || 'c' AS s, "
                          "'nul' || chr(0) || 'inside a longer string' || chr(1) AS l, 1 AS n"}) {
    auto r = w->Query(sql);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ(r->rows.size(), 1u);
    EXPECT_EQ(r->rows[0][0], std::optional<std::string>(short_s)) << sql;
    EXPECT_EQ(r->rows[0][1], std::optional<std::string>(long_s)) << sql;
  }
}

TEST_F(DuckDbWarehouseTest, QueryReportsEachColumnsKind) {
  auto w = Open();
  ASSERT_TRUE(w);
  auto r = w->Query(
      "SELECT 1::TINYINT a, 2::BIGINT b, 3.5::DOUBLE c, 1.25::DECIMAL(5,2) d, true e, 'x' f, DATE '2016-08-01' g, "
      "NULL::INTEGER h, 'nan'::DOUBLE i, 170141183460469231731687303715884105727::HUGEINT j, [1,2] k, "
      "18446744073709551615::UBIGINT l");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  using K = ValueKind;
  EXPECT_EQ(r->kinds, (std::vector<K>{K::kNumber, K::kNumber, K::kNumber, K::kNumber, K::kBool, K::kText, K::kText,
                                      K::kNumber, K::kNumber, K::kNumber, K::kText, K::kNumber}));
  ASSERT_EQ(r->rows.size(), 1u);
  std::vector<std::optional<std::string>> want{"1",          "2",
                                               "3.5",        "1.25",
                                               "true",       "x",
                                               "2016-08-01", std::nullopt,
                                               "nan",        "170141183460469231731687303715884105727",
                                               "[1, 2]",     "18446744073709551615"};
  EXPECT_EQ(r->rows[0], want);
}

TEST_F(DuckDbWarehouseTest, QueryReadsEveryChunk) {
  // DuckDB hands results out 2048 rows at a time.
  auto w = Open();
  ASSERT_TRUE(w);
  auto r = w->Query("SELECT i, 'v' || i AS s FROM range(5000) t(i) ORDER BY i");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->rows.size(), 5000u);
  for (size_t i = 0; i < r->rows.size(); i += 997) {
    EXPECT_EQ(r->rows[i][0], std::optional<std::string>(std::to_string(i)));
    EXPECT_EQ(r->rows[i][1], std::optional<std::string>("v" + std::to_string(i)));
  }
}

TEST_F(DuckDbWarehouseTest, QueryRunsStatementsOtherThanSelect) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  auto r = w->Query("PRAGMA table_info('t')");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_FALSE(r->rows.empty());
  EXPECT_EQ(r->columns[1], "name");
  EXPECT_EQ(r->rows[0][1], std::optional<std::string>("_time"));
  auto d = w->Query("DESCRIBE t");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->rows.size(), r->rows.size());
  // One statement at a time.
  EXPECT_EQ(w->Query("SELECT 1; SELECT 2").status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DuckDbWarehouseTest, QueryErrorsAtRunTimeAreReported) {
  auto w = Open();
  ASSERT_TRUE(w);
  for (const char* sql : {"SELECT CAST('x' || range AS INTEGER) AS n FROM range(3)",
                          "SELECT CAST('x' || range AS DATE) AS d FROM range(3)"}) {
    auto r = w->Query(sql);
    ASSERT_FALSE(r.ok()) << sql;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("Conversion Error"), std::string::npos) << r.status().ToString();
  }
}

TEST_F(DuckDbWarehouseTest, QueryWithTimestampsAcceptsUsualSqlSpellings) {
  // What people type at `logferry query`: a trailing semicolon, a trailing
  // comment. Timestamp columns must not make these fail.
  auto w = Open();
  ASSERT_TRUE(w);
  for (const char* sql : {"SELECT TIMESTAMPTZ '2016-08-01 00:00:00+00' AS c;",
                          "SELECT TIMESTAMPTZ '2016-08-01 00:00:00+00' AS c -- newest first\n",
                          "SELECT TIMESTAMPTZ '2016-08-01 00:00:00+00' AS c -- trailing comment"}) {
    auto r = w->Query(sql);
    if (!r.ok()) {
      ADD_FAILURE() << sql << ": " << r.status().ToString();
      continue;
    }
    ASSERT_EQ(r->rows.size(), 1u);
    EXPECT_EQ(r->rows[0][0], std::optional<std::string>("2016-08-01 00:00:00+00")) << sql;
  }
}

TEST_F(DuckDbWarehouseTest, ReadOnlyOpenOfMissingFileIsNotFound) {
  WarehouseOptions o;
  o.read_only = true;
  auto w = OpenWarehouse(uri_, o);
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_ + "/x.duckdb")) << "a read-only open must not create the file";
  EXPECT_EQ(OpenWarehouse("snowflake://p/d", {}).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(DuckDbWarehouseTest, DataSurvivesReopenAndReadOnlyCannotWrite) {
  {
    auto w = Open();
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
    StagedPart a = WritePart("t/a.ndjson.gz", {Row("2016-08-01T00:01:00Z", 1, "a")});
    ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_).ok());
  }
  auto ro = Open(/*read_only=*/true);
  ASSERT_TRUE(ro);
  EXPECT_EQ(Values(*ro, "SELECT msg FROM t"), (std::vector<std::string>{"a"}));
  EXPECT_FALSE(ro->Query("DELETE FROM t").ok()) << "read-only means read-only";
  EXPECT_EQ(Values(*ro, "SELECT count(*) FROM t"), (std::vector<std::string>{"1"}));
}

class LockHolder {
 public:
  // Starts a copy of this binary that opens `db_path` for writing and holds it.
  bool Start(const std::string& db_path) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    // Close-on-exec everywhere, and above fd 3, so the child gets exactly the
    // two ends dup2() puts at 0 and 3 and nothing else.
    if (!MakePipe(ready_) || !MakePipe(release_)) return false;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, release_[0], 0);
    posix_spawn_file_actions_adddup2(&fa, ready_[1], 3);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
    env_strings.push_back(std::string(kHoldEnv) + "=" + db_path);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    char* argv[] = {exe, nullptr};
    int rc = posix_spawn(&pid_, exe, &fa, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(release_[0]);
    close(ready_[1]);
    release_[0] = ready_[1] = -1;
    if (rc != 0) {
      pid_ = -1;
      return false;
    }
    // Wait (bounded) for the child to hold the lock.
    pollfd pfd{ready_[0], POLLIN, 0};
    if (poll(&pfd, 1, 45000) != 1) return false;
    char c = 0;
    return read(ready_[0], &c, 1) == 1 && c == 'R';
  }
  // Lets the child close the warehouse and exit.
  void Release() {
    if (release_[1] >= 0) close(release_[1]);
    release_[1] = -1;
  }
  // The child's exit status (-1 if it did not exit normally).
  int Wait() {
    Release();
    if (pid_ <= 0) return -1;
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) return -1;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ~LockHolder() {
    Wait();
    if (ready_[0] >= 0) close(ready_[0]);
  }

 private:
  static bool MakePipe(int fds[2]) {
    int raw[2];
    if (pipe2(raw, O_CLOEXEC) != 0) return false;
    for (int i = 0; i < 2; ++i) {
      fds[i] = fcntl(raw[i], F_DUPFD_CLOEXEC, 10);
      close(raw[i]);
      if (fds[i] < 0) return false;
    }
    return true;
  }

  pid_t pid_ = -1;
  int ready_[2] = {-1, -1};
  int release_[2] = {-1, -1};
};

TEST_F(DuckDbWarehouseTest, OpenWhileAnotherProcessWritesWaitsThenFailsOrSucceeds) {
  {
    // The file must exist for a read-only open to try at all.
    auto w = Open();
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  }
  LockHolder holder;
  ASSERT_TRUE(holder.Start(dir_ + "/x.duckdb")) << "could not start the lock-holding child";

  WarehouseOptions ro;
  ro.read_only = true;
  ro.lock_timeout_us = 300'000;
  auto blocked = OpenWarehouse(uri_, ro);
  ASSERT_FALSE(blocked.ok()) << "opened while another process holds the write lock";
  EXPECT_EQ(blocked.status().code(), StatusCode::kUnavailable) << blocked.status().ToString();
  EXPECT_NE(blocked.status().message().find("lock"), std::string::npos) << blocked.status().message();

  WarehouseOptions rw;
  rw.lock_timeout_us = 300'000;
  auto blocked_rw = OpenWarehouse(uri_, rw);
  ASSERT_FALSE(blocked_rw.ok());
  EXPECT_EQ(blocked_rw.status().code(), StatusCode::kUnavailable) << blocked_rw.status().ToString();

  // The holder lets go while we wait: the open succeeds within its timeout.
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    holder.Release();
  });
  ro.lock_timeout_us = 60 * kMicrosPerSecond;
  auto waited = OpenWarehouse(uri_, ro);
  releaser.join();
  ASSERT_TRUE(waited.ok()) << waited.status().ToString();
  EXPECT_EQ(Values(**waited, "SELECT count(*) FROM t"), (std::vector<std::string>{"0"}));
  EXPECT_EQ(holder.Wait(), 0) << "the lock-holding child failed";
}

// Two workers starting on a new warehouse: the second may find the file the
// first is creating before its header is written. It waits a moment instead
// of failing every due partition; a file that stays invalid is refused.
TEST_F(DuckDbWarehouseTest, AFileBeingCreatedIsWaitedForBrieflyAnInvalidOneRefused) {
  const std::string path = dir_ + "/x.duckdb";
  auto write_junk = [&] { std::ofstream(path) << std::string(8192, 'x'); };
  // The other worker's file is complete by the time this one has slept once.
  class CreatedMeanwhile : public testutil::FakeEnv {
   public:
    explicit CreatedMeanwhile(std::string path) : path_(std::move(path)) {}
    void SleepForMicroseconds(int64_t micros) override {
      if (!done_.exchange(true)) fs::remove(path_);
      FakeEnv::SleepForMicroseconds(micros);
    }

   private:
    std::string path_;
    std::atomic<bool> done_{false};
  };
  write_junk();
  CreatedMeanwhile env(path);
  WarehouseOptions o;
  o.retry.env = &env;
  o.lock_timeout_us = 60 * kMicrosPerSecond;
  auto w = OpenWarehouse(uri_, o);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_FALSE(env.sleeps().empty()) << "it waited";
  w->reset();

  fs::remove(path);
  write_junk();
  testutil::FakeEnv stays_invalid;
  o.retry.env = &stays_invalid;
  auto refused = OpenWarehouse(uri_, o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInternal) << refused.status().ToString();
  EXPECT_NE(refused.status().message().find("not a valid DuckDB database file"), std::string::npos)
      << refused.status().message();
  EXPECT_LT(stays_invalid.slept_us(), 5 * kMicrosPerSecond) << "not the whole lock_timeout";
}

TEST_F(DuckDbWarehouseTest, LoadReadsOnlyTheColumnsItsPartsHold) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  // The part's rows hold msg, but the ledger says the part holds only n: a
  // load that passed every column would load msg too.
  StagedPart a = WritePart("t/a.ndjson.gz", {Row("2016-08-01T00:01:00Z", 1, "a")});
  a.columns = "_time,_tag,n";
  ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a}), kMicrosPerHour, *staging_, *schema_).ok());
  EXPECT_EQ(Values(*w, "SELECT coalesce(msg, 'NULL') || '/' || n || '/' || _tag FROM t"),
            (std::vector<std::string>{"NULL/1/app"}));

  // A part staged before the ledger recorded columns loads them all.
  StagedPart b = WritePart("t/b.ndjson.gz", {Row("2016-08-01T00:02:00Z", 2, "b")});
  ASSERT_TRUE(w->ReplacePartition(Plan(h0_, {a, b}), kMicrosPerHour, *staging_, *schema_).ok());
  EXPECT_EQ(Values(*w, "SELECT coalesce(msg, 'NULL') FROM t ORDER BY n"), (std::vector<std::string>{"a", "b"}));
}

TEST_F(DuckDbWarehouseTest, PartitionOfManyPartsLoadsEveryRowOnce) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  std::vector<StagedPart> parts;
  for (int i = 0; i < 600; ++i) {  // more than two batches of files
    parts.push_back(WritePart("t/p" + std::to_string(i) + ".ndjson.gz", {Row("2016-08-01T00:03:00Z", i, "m")}));
    parts.back().columns = "_time,n,msg";
  }
  auto n = w->ReplacePartition(Plan(h0_, parts), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 600);
  EXPECT_EQ(Values(*w, "SELECT count(DISTINCT n) || '/' || sum(n) FROM t"), (std::vector<std::string>{"600/179700"}));
  n = w->ReplacePartition(Plan(h0_, parts), kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 600) << "a repeated load replaces";
}

}  // namespace
// The partitions of one job change together or not at all: a part that
// cannot load rolls back the replacement of every partition in the job.
TEST_F(DuckDbWarehouseTest, AJobReplacesAllItsPartitionsOrNone) {
  auto w = Open();
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->EnsureTable("t", *schema_).ok());
  StagedPart a = WritePart("t/a.ndjson.gz", {Row("2016-08-01T00:01:00Z", 1, "a")});
  StagedPart b = WritePart("t/b.ndjson.gz", {Row("2016-08-01T01:01:00Z", 2, "b")});
  auto rows = w->ReplacePartitions("job1", {Plan(h0_, {a}), Plan(h1_, {b})}, kMicrosPerHour, *staging_, *schema_);
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*rows, (std::map<int64_t, int64_t>{{h0_, 1}, {h1_, 1}}));

  StagedPart a2 =
      WritePart("t/a2.ndjson.gz", {Row("2016-08-01T00:02:00Z", 3, "a2"), Row("2016-08-01T00:03:00Z", 4, "a3")});
  StagedPart bad = WritePart("t/bad.ndjson.gz", {json{{"_time", "not a time"}}});
  rows = w->ReplacePartitions("job2", {Plan(h0_, {a2}), Plan(h1_, {bad})}, kMicrosPerHour, *staging_, *schema_);
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("bad.ndjson.gz line 1 column _time"), std::string::npos)
      << rows.status().ToString();
  EXPECT_EQ(Values(*w, "SELECT string_agg(msg, ',' ORDER BY n) FROM t"), (std::vector<std::string>{"a,b"}));
}

}  // namespace logferry
