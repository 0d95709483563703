#include "ledger/sqlite.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>

namespace logferry {

Status SqliteStatus(sqlite3* db, int rc, std::string_view what) {
  std::string m = std::string(what) + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_IOERR) return Status::Unavailable(m);
  if (primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB) return Status::Corruption(m);
  if (primary == SQLITE_READONLY || primary == SQLITE_PERM || primary == SQLITE_CANTOPEN)
    return Status::PermissionDenied(m);
  return Status::Internal(m);
}

namespace {

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite3* db, std::string_view sql) : db_(db) {
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) prepare_status_ = SqliteStatus(db, rc, "prepare '" + std::string(sql.substr(0, 80)) + "'");
  }
  ~SqliteCursor() override { sqlite3_finalize(stmt_); }
  SqliteCursor(const SqliteCursor&) = delete;
  SqliteCursor& operator=(const SqliteCursor&) = delete;

  void BindInt(int i, int64_t v) override {
    if (stmt_) sqlite3_bind_int64(stmt_, i, v);
  }
  void BindDouble(int i, double v) override {
    if (stmt_) sqlite3_bind_double(stmt_, i, v);
  }
  void BindText(int i, std::string_view v) override {
    if (stmt_) sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindBlob(int i, std::string_view v) override {
    if (stmt_) sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindNull(int i) override {
    if (stmt_) sqlite3_bind_null(stmt_, i);
  }

  StatusOr<bool> Step() override {
    if (!prepare_status_.ok()) return prepare_status_;
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteStatus(db_, rc, "step");
  }

  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  double Double(int col) const override { return sqlite3_column_double(stmt_, col); }
  std::string Text(int col) const override {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (!p) return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  std::string Blob(int col) const override {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (!p) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  Status prepare_status_;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, std::string describe) : db_(db), describe_(std::move(describe)) {}
  ~SqliteConnection() override { sqlite3_close(db_); }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  Dialect dialect() const override { return Dialect::kSqlite; }
  std::string Describe() const override { return describe_; }
  std::unique_ptr<Cursor> Prepare(std::string_view sql) override { return std::make_unique<SqliteCursor>(db_, sql); }

  Status Exec(std::string_view sql) override {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string m = err ? err : "";
      sqlite3_free(err);
      return SqliteStatus(db_, rc, "exec: " + m);
    }
    return Status::Ok();
  }

  // IMMEDIATE takes the write lock at once, so two processes never both read
  // and then both try to write (a deadlock SQLite would answer with SQLITE_BUSY).
  Status Begin() override {
    int rc = sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
    return rc == SQLITE_OK ? Status::Ok() : SqliteStatus(db_, rc, "begin transaction");
  }
  Status Commit() override {
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::Ok();
    Status s = SqliteStatus(db_, rc, "commit");
    Rollback();
    return s;
  }
  void Rollback() override { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }
  int64_t Changes() const override { return sqlite3_changes(db_); }
  bool InTransaction() const override { return sqlite3_get_autocommit(db_) == 0; }

 private:
  sqlite3* db_;
  std::string describe_;
};

// A path as the path of a SQLite URI filename: '?', '#' and '%' would end or
// escape it.
std::string PercentEncodePath(const std::string& path) {
  std::string out;
  for (char c : path) {
    if (c == '?' || c == '#' || c == '%') {
      char hex[4];
      snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
      out += hex;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

std::string SqliteReadOnlyUri(const std::string& path) {
  // A WAL database opened read-only gets a -wal and -shm file created beside
  // it, which it cannot remove. Without a -wal file no process has the
  // ledger open (the last one to close removes it), so it is read as
  // immutable, creating nothing; with one, the files exist already.
  struct stat st {};
  bool in_use = stat((path + "-wal").c_str(), &st) == 0;
  return "file:" + PercentEncodePath(path) + (in_use ? "?mode=ro" : "?immutable=1");
}

StatusOr<std::unique_ptr<Connection>> OpenSqlite(const std::string& filename, bool read_only,
                                                 const std::string& describe) {
  int flags = SQLITE_OPEN_NOMUTEX |
              (read_only ? SQLITE_OPEN_READONLY | SQLITE_OPEN_URI : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(filename.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(db, rc, "open ledger " + describe + (read_only ? " read-only" : ""));
    sqlite3_close(db);
    return s;
  }
  sqlite3_busy_timeout(db, 30000);
  return std::unique_ptr<Connection>(std::make_unique<SqliteConnection>(db, describe));
}

}  // namespace logferry
