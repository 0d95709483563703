#include "ledger/sqlite.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <unordered_map>

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

// Prepared statements by SQL text, kept across Prepare calls: compiling a
// statement costs more than running most of the ledger's. A statement is
// lent to one cursor at a time (a second cursor on the same SQL while the
// first is open gets a statement of its own, finalized after use); at most
// kCapacity idle ones are kept, the least recently used evicted first.
class StatementCache {
 public:
  static constexpr size_t kCapacity = 128;

  struct Entry {
    sqlite3_stmt* stmt = nullptr;
    uint64_t last_used = 0;
    bool lent = false;
  };

  StatementCache() = default;
  ~StatementCache() { Clear(); }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // The cached statement for sql, now lent; nullptr when there is none idle.
  Entry* Borrow(std::string_view sql) {
    auto it = entries_.find(sql);
    if (it == entries_.end() || it->second.lent) return nullptr;
    it->second.lent = true;
    it->second.last_used = ++clock_;
    return &it->second;
  }
  // Keeps a newly prepared statement, lent to its cursor; nullptr when a
  // statement for the same SQL is cached already (the caller owns stmt).
  Entry* Add(std::string_view sql, sqlite3_stmt* stmt) {
    if (entries_.size() >= kCapacity) EvictOne();
    auto [it, added] = entries_.try_emplace(std::string(sql));
    if (!added) return nullptr;
    it->second = Entry{stmt, ++clock_, true};
    return &it->second;
  }
  // Takes a statement back: reset, bindings cleared, ready for the next cursor.
  static void Return(Entry* e) {
    sqlite3_reset(e->stmt);
    sqlite3_clear_bindings(e->stmt);
    e->lent = false;
  }
  // Finalizes every statement (the connection closes after this).
  void Clear() {
    for (auto& [sql, e] : entries_) sqlite3_finalize(e.stmt);
    entries_.clear();
  }
  size_t size() const { return entries_.size(); }

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };

  // The least recently used idle statement goes; none when all are lent
  // (the cache then holds more than kCapacity until they come back).
  void EvictOne() {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if (!it->second.lent && (victim == entries_.end() || it->second.last_used < victim->second.last_used))
        victim = it;
    if (victim == entries_.end()) return;
    sqlite3_finalize(victim->second.stmt);
    entries_.erase(victim);
  }

  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> entries_;
  uint64_t clock_ = 0;
};

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite3* db, StatementCache* cache, std::string_view sql) : db_(db) {
    if ((cached_ = cache->Borrow(sql))) {
      stmt_ = cached_->stmt;
      return;
    }
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) {
      prepare_status_ = SqliteStatus(db, rc, "prepare '" + std::string(sql.substr(0, 80)) + "'");
      return;
    }
    if (stmt_) cached_ = cache->Add(sql, stmt_);
  }
  ~SqliteCursor() override {
    if (cached_)
      StatementCache::Return(cached_);
    else
      sqlite3_finalize(stmt_);
  }
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
    if (!stmt_) return false;  // empty SQL (only a comment or spaces)
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
  StatementCache::Entry* cached_ = nullptr;  // null: stmt_ is this cursor's own
  Status prepare_status_;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, std::string describe) : db_(db), describe_(std::move(describe)) {}
  ~SqliteConnection() override {
    cache_.Clear();
    sqlite3_close(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  Dialect dialect() const override { return Dialect::kSqlite; }
  std::string Describe() const override { return describe_; }
  std::unique_ptr<Cursor> Prepare(std::string_view sql) override {
    return std::make_unique<SqliteCursor>(db_, &cache_, sql);
  }
  size_t CachedStatements() const override { return cache_.size(); }

  // One statement (no ';') runs through the statement cache: the ledger
  // sets a savepoint around every object of a commit group.
  Status Exec(std::string_view sql) override {
    if (sql.find(';') == std::string_view::npos) return Run(sql, "exec");
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
  Status Begin() override { return Run("BEGIN IMMEDIATE", "begin transaction"); }
  Status Commit() override {
    Status s = Run("COMMIT", "commit");
    if (!s.ok()) Rollback();
    return s;
  }
  void Rollback() override {
    if (InTransaction()) (void)Run("ROLLBACK", "rollback");
  }
  int64_t Changes() const override { return sqlite3_changes(db_); }
  bool InTransaction() const override { return sqlite3_get_autocommit(db_) == 0; }

 private:
  // One statement to its end, through the cache; errors as sqlite3_exec's.
  Status Run(std::string_view sql, std::string_view what) {
    auto cursor = Prepare(sql);
    for (;;) {
      StatusOr<bool> row = cursor->Step();
      if (!row.ok()) return Status(row.status().code(), std::string(what) + ": " + sqlite3_errmsg(db_));
      if (!*row) return Status::Ok();
    }
  }

  sqlite3* db_;
  std::string describe_;
  StatementCache cache_;
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
  // The page cache of one connection, at most 16 MiB (SQLite's default is
  // 2 MiB): a ledger of 20,000 objects and their parts is about 12 MB, and
  // every page a commit touches beyond the cache is read again with pread.
  sqlite3_exec(db, "PRAGMA cache_size=-16384", nullptr, nullptr, nullptr);
  return std::unique_ptr<Connection>(std::make_unique<SqliteConnection>(db, describe));
}

}  // namespace logferry
