// What only the PostgreSQL ledger has: its URI handling, a connection that
// breaks and comes back, and `logferry ledger migrate`'s copy from SQLite.
// (Every other ledger test runs on both backends: ledger_test.cc.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "common/time.h"
#include "ledger/ledger.h"
#include "ledger/postgres.h"
#include "support/pg_server.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

TEST(PostgresUriTest, RedactConninfoDropsEveryFormOfThePassword) {
  EXPECT_EQ(RedactConninfo("postgresql://lf:s3cret@db:5432/ledger"), "postgresql://lf@db:5432/ledger");
  EXPECT_EQ(RedactConninfo("postgres://lf:p%40ss@db/ledger?sslmode=require"),
            "postgres://lf@db/ledger?sslmode=require");
  EXPECT_EQ(RedactConninfo("postgresql://db/ledger?password=s3cret&sslmode=require"),
            "postgresql://db/ledger?sslmode=require");
  EXPECT_EQ(RedactConninfo("postgresql://db/ledger?sslmode=require&password=s3cret"),
            "postgresql://db/ledger?sslmode=require");
  EXPECT_EQ(RedactConninfo("postgresql://lf@db/ledger"), "postgresql://lf@db/ledger");
  EXPECT_EQ(RedactConninfo("host=db password='a b\\'c' user=lf"), "host=db user=lf");
  EXPECT_EQ(RedactConninfo("postgresql://[::1]:5432/ledger"), "postgresql://[::1]:5432/ledger");
  EXPECT_TRUE(Ledger::IsShared("postgresql://db/x"));
  EXPECT_TRUE(Ledger::IsShared("postgres://db/x"));
  EXPECT_FALSE(Ledger::IsShared("/var/lib/logferry/ledger.db"));
}

TEST(PostgresUriTest, PlaceholdersBecomeDollarNumbersOutsideQuotes) {
  int n = 0;
  EXPECT_EQ(ToDollarPlaceholders("SELECT a FROM t WHERE b=? AND c='?' AND d=?", &n),
            "SELECT a FROM t WHERE b=$1 AND c='?' AND d=$2");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(ToDollarPlaceholders("SELECT ?2, ?1, ?2 FROM \"x?\" WHERE y='it''s ?'", &n),
            "SELECT $2, $1, $2 FROM \"x?\" WHERE y='it''s ?'");
  EXPECT_EQ(n, 2);
  EXPECT_EQ(ToDollarPlaceholders("SELECT 1", &n), "SELECT 1");
  EXPECT_EQ(n, 0);
}

class PostgresLedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = testing::PgServer::Get(&error);
    ASSERT_NE(server_, nullptr) << "PostgreSQL 15 could not start: " << error;
    uri_ = server_->FreshDatabase();
    ASSERT_FALSE(uri_.empty());
    char tmpl[] = "/tmp/lf-ledger-pg-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static ObjectInfo Obj(const std::string& key) { return ObjectInfo{key, 100, 1, "e"}; }

  testing::PgServer* server_ = nullptr;
  std::string uri_, dir_;
  int64_t now_ = *ParseIso8601("2016-08-02T00:00:00Z");
  int64_t h0_ = *ParseIso8601("2016-08-01T00:00:00Z");
};

TEST_F(PostgresLedgerTest, OpeningWithoutCreatingFindsNoLedgerInAnEmptyDatabase) {
  auto existing = Ledger::OpenExisting(uri_);
  ASSERT_FALSE(existing.ok());
  EXPECT_TRUE(existing.status().IsNotFound()) << existing.status().ToString();
  EXPECT_EQ(Ledger::OpenReadOnly(uri_).status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(Ledger::Open(uri_).ok());
  EXPECT_TRUE(Ledger::OpenExisting(uri_).ok());
  EXPECT_EQ(Ledger::Open(server_->Uri("no_such_database")).status().code(), StatusCode::kNotFound);
}

TEST_F(PostgresLedgerTest, ALostConnectionIsUnavailableAndTheNextCallConnectsAgain) {
  auto ledger = Ledger::Open(uri_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ASSERT_TRUE((*ledger)->RecordDiscovered("t", {Obj("a")}, "listing", now_).ok());
  ASSERT_TRUE(server_->Stop());
  Status down = (*ledger)->RecordDiscovered("t", {Obj("b")}, "listing", now_).status();
  Status still_down = (*ledger)->Objects("t").status();
  ASSERT_TRUE(server_->Restart());
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_EQ(still_down.code(), StatusCode::kUnavailable) << still_down.ToString();
  EXPECT_NE(still_down.message().find("postgresql://postgres@127.0.0.1"), std::string::npos) << still_down.message();
  auto again = (*ledger)->RecordDiscovered("t", {Obj("b")}, "listing", now_);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(*again, 1);
  EXPECT_EQ((*ledger)->Objects("t")->size(), 2u);
}

TEST_F(PostgresLedgerTest, TextThatIsNotUtf8IsStoredReplacedInsteadOfFailing) {
  auto ledger = Ledger::Open(uri_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  ASSERT_TRUE((*ledger)->RecordDiscovered("t", {Obj(std::string("bad\xff\0key", 8))}, "listing", now_).ok());
  auto objects = (*ledger)->Objects("t");
  ASSERT_TRUE(objects.ok());
  ASSERT_EQ(objects->size(), 1u);
  EXPECT_EQ((*objects)[0].key, "bad\xEF\xBF\xBD\xEF\xBF\xBDkey");
}

// Writes take the ledger-wide lock, as SQLite's writers do: a write waits
// while another session holds it, and then sees what that session wrote.
TEST_F(PostgresLedgerTest, AWriteWaitsForTheLedgerLockThatAnotherProcessHolds) {
  auto ledger = Ledger::Open(uri_);
  ASSERT_TRUE(ledger.ok()) << ledger.status().ToString();
  std::string db = uri_.substr(uri_.rfind('/') + 1), key = std::to_string(kPostgresLedgerLockKey);
  auto count = [&](const char* granted) {
    return server_->Query("SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND " + std::string(granted), db);
  };
  FILE* other = popen(server_->PsqlCommand(db).append(" >/dev/null 2>&1").c_str(), "w");
  ASSERT_NE(other, nullptr);
  fprintf(other, "SELECT pg_advisory_lock(%s);\n", key.c_str());
  fflush(other);
  for (int i = 0; i < 600 && count("granted") != "1"; ++i) usleep(50'000);
  ASSERT_EQ(count("granted"), "1");
  Status checked;
  std::thread writer([&] { checked = (*ledger)->CheckTableSettings("t", "partition=hour"); });
  for (int i = 0; i < 600 && count("NOT granted") != "1"; ++i) usleep(50'000);
  EXPECT_EQ(count("NOT granted"), "1") << "the ledger's write waits for the lock";
  fprintf(other, "INSERT INTO table_settings VALUES('t', 'partition=day'); SELECT pg_advisory_unlock(%s);\n",
          key.c_str());
  pclose(other);
  writer.join();
  EXPECT_EQ(checked.code(), StatusCode::kFailedPrecondition) << checked.ToString();
}

// A SQLite ledger with a bit of everything, copied: the same rows, read
// back through the interface; ids continue after the copied ones; a second
// copy into the now non-empty ledger is refused.
TEST_F(PostgresLedgerTest, MigrateCopiesEveryTableAndRefusesANonEmptyLedger) {
  std::string lite_path = dir_ + "/ledger.db";
  {
    auto lite = Ledger::Open(lite_path);
    ASSERT_TRUE(lite.ok()) << lite.status().ToString();
    ASSERT_TRUE((*lite)->RecordDiscovered("t", {Obj("a"), Obj("b")}, "listing", now_).ok());
    ObjectRow a = (*(*lite)->FindObject("t", "a", "e")).value();
    StagedObject st;
    st.object_id = a.id;
    st.parts = {PartRow{a.id, h0_, h0_, "t/h0/a", 5, 50, "00000000", std::string("_time,x")}};
    st.rows_staged = st.lines_read = 6;
    st.bad_total = 1;
    st.bad_records = {BadRecord{3, 40, "x", "not a number", "x=\"q\""}};
    ColumnRecord c;
    c.name = "x";
    c.raw_key = std::string("x\0y", 3);
    st.columns = {c};
    ASSERT_TRUE((*lite)->CommitStaged(st, now_).ok());
    auto plan = (*lite)->BeginLoad("t", h0_, now_);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE((*lite)->FinishLoad(*plan, 5, now_).ok());
    ASSERT_TRUE((*lite)->RecordRequest("t", "cli", "", h0_, h0_ + kMicrosPerHour, kMicrosPerHour, now_).ok());
  }
  auto copied = Ledger::CopySqliteToPostgres(lite_path, uri_);
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  std::map<std::string, int64_t> rows;
  for (const TableCopy& t : *copied) rows[t.table] = t.rows;
  EXPECT_EQ(rows["objects"], 2);
  EXPECT_EQ(rows["parts"], 1);
  EXPECT_EQ(rows["partitions"], 1);
  EXPECT_EQ(rows["loads"], 1);
  EXPECT_EQ(rows["bad_records"], 1);
  EXPECT_EQ(rows["columns"], 1);
  EXPECT_EQ(rows["requests"], 1);

  auto lite = Ledger::OpenReadOnly(lite_path);
  auto pg = Ledger::Open(uri_);
  ASSERT_TRUE(lite.ok() && pg.ok());
  auto lite_counts = (*lite)->Counts("t", now_), pg_counts = (*pg)->Counts("t", now_);
  EXPECT_EQ(pg_counts->objects_staged, 1);
  EXPECT_EQ(pg_counts->objects_pending, lite_counts->objects_pending);
  EXPECT_EQ(pg_counts->rows_loaded, lite_counts->rows_loaded);
  EXPECT_EQ(pg_counts->bad_records, lite_counts->bad_records);
  EXPECT_EQ((*pg)->LiveParts("t")->size(), 1u);
  EXPECT_EQ((*pg)->LiveParts("t")->front().columns, std::optional<std::string>("_time,x"));
  EXPECT_EQ((*pg)->Columns("t")->front().raw_key, std::string("x\0y", 3));
  EXPECT_EQ((*pg)->SchemaVersion("t").value(), (*lite)->SchemaVersion("t").value());
  auto request = (*pg)->RecordRequest("t", "cli", "", h0_, h0_ + kMicrosPerHour, kMicrosPerHour, now_);
  ASSERT_TRUE(request.ok()) << request.status().ToString();
  EXPECT_EQ(request->first, 2) << "ids continue after the copied ones";

  Status again = Ledger::CopySqliteToPostgres(lite_path, uri_).status();
  EXPECT_EQ(again.code(), StatusCode::kFailedPrecondition) << again.ToString();
  EXPECT_EQ((*pg)->Objects("t")->size(), 2u);
}

}  // namespace
}  // namespace logferry
