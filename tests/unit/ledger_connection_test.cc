// The ledger's SQL connections (ledger/connection.h) reuse prepared
// statements: the same SQL run many times, two cursors on one SQL at once,
// a failing statement, and (PostgreSQL) a connection that breaks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ledger/connection.h"
#include "ledger/postgres.h"
#include "ledger/sqlite.h"
#include "support/pg_server.h"

namespace logferry {
namespace {

namespace fs = std::filesystem;

// What every driver must do the same with its statements cached.
void RunsTheSameSqlManyTimes(Connection* db) {
  ASSERT_TRUE(db->Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)").ok());
  Transaction txn(db);
  ASSERT_TRUE(txn.status().ok());
  for (int i = 0; i < 500; ++i) {
    Statement ins(db, "INSERT INTO t(k, v) VALUES(?, ?)");
    ASSERT_TRUE(ins.Bind(1, i).Bind(2, "v" + std::to_string(i)).Run().ok());
    EXPECT_EQ(db->Changes(), 1);
  }
  ASSERT_TRUE(txn.Commit().ok());
  size_t cached = db->CachedStatements();
  EXPECT_GE(cached, 1u);
  for (int i = 0; i < 500; i += 7) {
    Statement sel(db, "SELECT v FROM t WHERE k=?");
    auto v = sel.Bind(1, i).First<std::string>([](Statement& s) { return s.Text(0); });
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    ASSERT_TRUE(v->has_value()) << i;
    EXPECT_EQ(**v, "v" + std::to_string(i)) << "bindings of the previous run are not left over";
  }
  EXPECT_EQ(db->CachedStatements(), cached + 1) << "one statement per distinct SQL";
}

// A cursor left half-way (one row of many read) and a second cursor on the
// same SQL opened meanwhile both read from the start.
void TwoCursorsOnOneSql(Connection* db) {
  ASSERT_TRUE(db->Exec("CREATE TABLE n(k INTEGER PRIMARY KEY)").ok());
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(Statement(db, "INSERT INTO n(k) VALUES(?)").Bind(1, i).Run().ok());
  const char* sql = "SELECT k FROM n WHERE k>=? ORDER BY k";
  Statement outer(db, sql);
  outer.Bind(1, 1);
  ASSERT_TRUE(*outer.Step());
  EXPECT_EQ(outer.Int(0), 1);
  {
    Statement inner(db, sql);
    auto all = inner.Bind(1, 2).Collect<int64_t>([](Statement& s) { return s.Int(0); });
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    EXPECT_EQ(*all, (std::vector<int64_t>{2, 3}));
  }
  ASSERT_TRUE(*outer.Step());
  EXPECT_EQ(outer.Int(0), 2) << "the outer cursor goes on where it was";
  Statement again(db, sql);
  auto all = again.Bind(1, 3).Collect<int64_t>([](Statement& s) { return s.Int(0); });
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, (std::vector<int64_t>{3}));
}

// A statement that fails keeps its error's classification every time, and
// does not spoil the connection or the transaction's savepoints.
void AFailingStatementKeepsItsClassification(Connection* db) {
  ASSERT_TRUE(db->Exec("CREATE TABLE u(k INTEGER PRIMARY KEY)").ok());
  ASSERT_TRUE(Statement(db, "INSERT INTO u(k) VALUES(1)").Run().ok());
  for (int i = 0; i < 3; ++i) {
    Status bad = Statement(db, "SELECT nope FROM u").Run();
    EXPECT_EQ(bad.code(), StatusCode::kInternal) << bad.ToString();
    Status dup = Statement(db, "INSERT INTO u(k) VALUES(?)").Bind(1, 1).Run();
    EXPECT_FALSE(dup.ok());
    EXPECT_EQ(dup.code(), StatusCode::kInternal) << dup.ToString();
  }
  Transaction txn(db);
  ASSERT_TRUE(txn.status().ok()) << txn.status().ToString();
  ASSERT_TRUE(db->Exec("SAVEPOINT one").ok());
  EXPECT_FALSE(Statement(db, "INSERT INTO u(k) VALUES(?)").Bind(1, 1).Run().ok());
  ASSERT_TRUE(db->Exec("ROLLBACK TO SAVEPOINT one; RELEASE SAVEPOINT one").ok());
  ASSERT_TRUE(Statement(db, "INSERT INTO u(k) VALUES(?)").Bind(1, 2).Run().ok());
  ASSERT_TRUE(txn.Commit().ok());
  auto n = Statement(db, "SELECT count(*) FROM u").First<int64_t>([](Statement& s) { return s.Int(0); });
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(**n, 2);
}

class SqliteConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lf-conn-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto db = OpenSqlite(dir_ + "/l.db", false, "test ledger");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }
  void TearDown() override {
    db_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir_;
  std::unique_ptr<Connection> db_;
};

TEST_F(SqliteConnectionTest, RunsTheSameSqlManyTimesOnOneStatement) {
  RunsTheSameSqlManyTimes(db_.get());
}
TEST_F(SqliteConnectionTest, TwoCursorsOnOneSqlEachReadTheirOwnRows) {
  TwoCursorsOnOneSql(db_.get());
}
TEST_F(SqliteConnectionTest, AFailingStatementKeepsItsClassification) {
  AFailingStatementKeepsItsClassification(db_.get());
}

TEST_F(SqliteConnectionTest, TheCacheIsBoundedAndClosingWithCachedStatementsFinalizesThem) {
  for (int i = 0; i < 1000; ++i) {
    auto v = Statement(db_.get(), "SELECT " + std::to_string(i)).First<int64_t>([](Statement& s) { return s.Int(0); });
    ASSERT_TRUE(v.ok());
    EXPECT_EQ(**v, i);
  }
  EXPECT_LE(db_->CachedStatements(), 128u);
  EXPECT_GT(db_->CachedStatements(), 0u);
  db_.reset();  // sqlite3_close refuses a connection with statements left: a leak ASan would see
  auto again = OpenSqlite(dir_ + "/l.db", false, "test ledger");
  ASSERT_TRUE(again.ok());
}

TEST_F(SqliteConnectionTest, ALockedLedgerIsStillUnavailableThroughTheCachedBegin) {
  auto other = OpenSqlite(dir_ + "/l.db", false, "other");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(db_->Exec("PRAGMA busy_timeout=0").ok());
  ASSERT_TRUE(db_->Begin().ok());
  db_->Rollback();  // BEGIN and ROLLBACK now cached
  ASSERT_TRUE((*other)->Begin().ok());
  Status busy = db_->Begin();
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.ToString();
  EXPECT_FALSE(db_->InTransaction());
  (*other)->Rollback();
  EXPECT_TRUE(db_->Begin().ok());
  EXPECT_TRUE(db_->Commit().ok());
}

class PostgresConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    server_ = testing::PgServer::Get(&error);
    ASSERT_NE(server_, nullptr) << "PostgreSQL 15 could not start: " << error;
    auto db = OpenPostgres(server_->FreshDatabase(), false);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(*db);
  }
  testing::PgServer* server_ = nullptr;
  std::unique_ptr<Connection> db_;
};

TEST_F(PostgresConnectionTest, RunsTheSameSqlManyTimesOnOnePreparedStatement) {
  RunsTheSameSqlManyTimes(db_.get());
}
TEST_F(PostgresConnectionTest, TwoCursorsOnOneSqlEachReadTheirOwnRows) {
  TwoCursorsOnOneSql(db_.get());
}
TEST_F(PostgresConnectionTest, AFailingStatementKeepsItsClassification) {
  AFailingStatementKeepsItsClassification(db_.get());
}

// The server forgets a session's prepared statements when the connection
// breaks: the connection made again prepares them again.
TEST_F(PostgresConnectionTest, StatementsArePreparedAgainAfterAReconnect) {
  ASSERT_TRUE(db_->Exec("CREATE TABLE r(k BIGINT PRIMARY KEY)").ok());
  ASSERT_TRUE(Statement(db_.get(), "INSERT INTO r(k) VALUES(?)").Bind(1, 1).Run().ok());
  EXPECT_EQ(db_->CachedStatements(), 1u);
  ASSERT_TRUE(server_->Stop());
  Status down = Statement(db_.get(), "INSERT INTO r(k) VALUES(?)").Bind(1, 2).Run();
  ASSERT_TRUE(server_->Restart());
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  for (int k = 2; k <= 4; ++k) {
    Status s = Statement(db_.get(), "INSERT INTO r(k) VALUES(?)").Bind(1, k).Run();
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  auto n = Statement(db_.get(), "SELECT count(*) FROM r").First<int64_t>([](Statement& s) { return s.Int(0); });
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(**n, 4);
  EXPECT_EQ(db_->CachedStatements(), 2u);
}

// A table changed under a prepared `SELECT *` (another worker's migration):
// the run that fails forgets the statement, the next one works.
TEST_F(PostgresConnectionTest, AStatementWhoseTableChangedIsPreparedAgain) {
  ASSERT_TRUE(db_->Exec("CREATE TABLE c(k BIGINT)").ok());
  ASSERT_TRUE(db_->Exec("INSERT INTO c VALUES(1)").ok());
  auto read = [&] { return Statement(db_.get(), "SELECT * FROM c").Run(); };
  ASSERT_TRUE(read().ok());
  ASSERT_TRUE(db_->Exec("ALTER TABLE c ADD COLUMN v TEXT").ok());
  Status first = read();
  if (!first.ok()) {
    EXPECT_EQ(first.code(), StatusCode::kInternal) << first.ToString();
  }
  Status second = read();
  EXPECT_TRUE(second.ok()) << second.ToString();
}

}  // namespace
}  // namespace logferry
